//! The generic merge: delta-rs' MERGE, for every table the plain merge cannot take (new
//! columns, partitions, column mapping, deletion vectors, change data feed, constraints).

use dataloader_core::{BatchStream, Result, RowCounts};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::DeltaTable;

use crate::destination::DeltaDestination;
use crate::sql::{key_predicate, newest_per_key, quote};
use crate::stage::Staging;
use crate::tag::CommitTag;
use crate::write::WriteSummary;

impl DeltaDestination {
    /// Merges the batches into `table` by `keys` with delta-rs' MERGE, each key's newest row
    /// by `order_by` winning.
    pub(super) async fn merge_generic(
        &self,
        table: DeltaTable,
        schema: SchemaRef,
        batches: BatchStream,
        keys: &[String],
        order_by: &str,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        // MERGE scans its source more than once, so the change set is staged in a local
        // Parquet file first: memory stays bounded by one batch, whatever its size.
        let staged = self
            .stage(
                Staging::MergeChanges,
                Compression::ZSTD(ZstdLevel::default()),
                schema.clone(),
                batches,
                |_| Ok(()),
            )
            .await?;
        if staged.rows == 0 {
            return Ok(WriteSummary::default());
        }
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "source_rows",
            staged.path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| self.error("read the staged changes", e))?;
        let source = ctx
            .sql(&newest_per_key(keys, order_by))
            .await
            .map_err(|e| self.error("plan the merge source", e))?;
        let predicate = key_predicate(keys, "target", "source");
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let (table, metrics) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_merge_schema(true)
            .with_commit_properties(tag.commit_properties([]))
            .when_matched_update(|mut update| {
                for c in &columns {
                    update = update.update(quote(c), format!("source.{}", quote(c)));
                }
                update
            })
            .and_then(|b| {
                b.when_not_matched_insert(|mut insert| {
                    for c in &columns {
                        insert = insert.set(quote(c), format!("source.{}", quote(c)));
                    }
                    insert
                })
            })
            .map_err(|e| self.error("plan the merge", e))?
            .await
            .map_err(|e| self.error("merge into the table", e))?;
        Ok(WriteSummary {
            version: table.version().map(|v| v as i64),
            rows: RowCounts {
                written: (metrics.num_target_rows_inserted + metrics.num_target_rows_updated)
                    as u64,
                inserted: metrics.num_target_rows_inserted as u64,
                updated: metrics.num_target_rows_updated as u64,
                ..RowCounts::default()
            },
        })
    }
}
