//! Upsert by primary key without a query engine, for the usual table: the change set has the
//! table's columns, and the table is unpartitioned and uses no feature a plain writer must
//! honour (see [`plain_table`]).
//!
//! 1. The change set is staged in a local Parquet file while its keys are indexed; for each key
//!    the row with the greatest order value wins (NULL is the smallest; on a tie the later row).
//!    See `change_index`.
//! 2. A target file can hold a changed key only if the range of its key statistics holds one
//!    of the winners' keys; other files are not read.
//! 3. Each remaining file's key columns are read; a file without a changed key stays as it is.
//!    The others are rewritten without their changed rows, several at once. See `rewrite`.
//! 4. The winners are written as new files, and one commit removes the rewritten files and
//!    adds the new ones.
//!
//! This module holds the choice of path ([`plain_table`]) and steps 1 to 4 in order.

use std::num::NonZeroU64;
use std::sync::Arc;

use dataloader_core::{BatchStream, Error, Result, RowCounts};
use deltalake::arrow::array::BooleanArray;
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, Remove};
use deltalake::logstore::ObjectStoreRef;
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::operations::write::WriterStatsConfig;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::protocol::{DeltaOperation, MergePredicate};
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};

use super::change_index::{prune_column, same_columns, ChangeIndexer, KeyEncoder};
use super::rewrite::{conform, may_hold, rewrite_without_changed, Rewritten, READ_BATCH_ROWS};
use crate::destination::DeltaDestination;
use crate::sql::key_predicate;
use crate::stage::{Staging, STAGE_STEP};
use crate::tag::CommitTag;
use crate::write::WriteSummary;

/// Whether `table` can take the engine-free merge with `schema` as its change set's columns;
/// the generic MERGE handles the rest (new columns, partitions, column mapping, deletion
/// vectors, change data feed, constraints).
pub(super) fn plain_table(snapshot: &DeltaTableState, schema: &SchemaRef) -> bool {
    let table_schema = snapshot.snapshot().arrow_schema();
    let same_columns = same_columns(&table_schema, schema);
    // The kernel's protocol and metadata accessors are crate-private; their JSON form is not.
    let protocol = serde_json::to_value(snapshot.protocol()).unwrap_or_default();
    let plain_features = |key: &str| {
        protocol[key]
            .as_array()
            .is_none_or(|features| features.iter().all(|f| f.as_str() == Some("timestampNtz")))
    };
    let metadata = serde_json::to_value(snapshot.metadata()).unwrap_or_default();
    let unpartitioned = metadata["partitionColumns"]
        .as_array()
        .is_some_and(|p| p.is_empty());
    let configuration_allows = metadata["configuration"].as_object().is_none_or(|config| {
        config.iter().all(|(key, value)| {
            let on = value
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            match key.as_str() {
                "delta.appendOnly"
                | "delta.enableChangeDataFeed"
                | "delta.enableDeletionVectors"
                | "delta.enableRowTracking" => !on,
                "delta.columnMapping.mode" => value.as_str() == Some("none"),
                // Under WriteSerializable a concurrent blind append is not checked against
                // the keys this merge matched.
                "delta.isolationLevel" => value.as_str() == Some("Serializable"),
                k => !k.starts_with("delta.constraints."),
            }
        })
    });
    let no_invariants = table_schema
        .fields()
        .iter()
        .all(|f| !f.metadata().contains_key("delta.invariants"));
    same_columns
        // Writer versions 3 to 6 bring constraints, generated and identity columns implicitly.
        && matches!(protocol["minWriterVersion"].as_i64(), Some(1 | 2 | 7))
        && plain_features("readerFeatures")
        && plain_features("writerFeatures")
        && unpartitioned
        && configuration_allows
        && no_invariants
}

pub(super) struct PlainMerge<'a> {
    pub(super) destination: &'a DeltaDestination,
    pub(super) table: DeltaTable,
    pub(super) schema: SchemaRef,
    pub(super) keys: &'a [String],
    pub(super) order_by: &'a str,
    pub(super) tag: &'a CommitTag,
}

impl PlainMerge<'_> {
    fn error(
        &self,
        step: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        self.destination.error(step, e)
    }

    pub(super) async fn run(self, batches: BatchStream) -> Result<WriteSummary> {
        let encoder = KeyEncoder::new(&self.schema, self.keys)
            .map_err(|e| self.destination.error_message("index the changes", e))?;
        let prune = prune_column(&self.schema, self.keys);
        let mut indexer = ChangeIndexer::new(
            self.schema.clone(),
            self.keys,
            &encoder,
            self.order_by,
            prune.as_deref(),
        )
        .map_err(|e| self.destination.error_message(STAGE_STEP, e))?;
        // The keys are indexed as the change set is staged, so it is read only once.
        let staged = self
            .destination
            .stage(
                Staging::MergeChanges,
                Compression::SNAPPY,
                self.schema.clone(),
                batches,
                |batch| {
                    indexer
                        .add(batch)
                        .map_err(|e| self.destination.error_message(STAGE_STEP, e))
                },
            )
            .await?;
        let index = indexer.finish();
        if index.rows == 0 {
            return Ok(WriteSummary::default());
        }
        let snapshot = self
            .table
            .snapshot()
            .map_err(|e| self.error("read the table state", e))?;
        let table_schema = snapshot.snapshot().arrow_schema();
        let stats = WriterStatsConfig::from_config(snapshot.snapshot().table_configuration());
        let config = WriterConfig::new(
            table_schema.clone(),
            vec![],
            Some(self.destination.writer_properties()),
            NonZeroU64::new(self.destination.layout().target_file_size),
            None,
            stats.num_indexed_cols,
            stats.stats_columns.clone(),
        );
        let store = self.table.log_store().object_store(None);

        let total_files = snapshot.log_data().num_files();
        let candidates: Vec<(Remove, deltalake::Path, u64)> = snapshot
            .log_data()
            .iter()
            .filter(|file| match (&prune, &index.prune_values) {
                (Some(column), Some(values)) => may_hold(file.stats().as_deref(), column, values),
                _ => true,
            })
            .map(|file| {
                (
                    file.remove_action(true),
                    file.object_store_path(),
                    file.size().max(0) as u64,
                )
            })
            .collect();
        let scanned = candidates.len();

        let winners = Arc::new(index.winners);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let rewrites: Vec<Option<(Remove, Rewritten)>> = futures::stream::iter(candidates)
            .map(|(remove, path, size)| {
                let store = store.clone();
                let encoder = encoder.clone();
                let winners = winners.clone();
                let config = config.clone();
                let table_schema = table_schema.clone();
                let file = remove.path.clone();
                let task = tokio::spawn(async move {
                    rewrite_without_changed(
                        store,
                        path,
                        size,
                        &encoder,
                        &winners,
                        config,
                        &table_schema,
                    )
                    .await
                    .map(|r| r.map(|rewritten| (remove, rewritten)))
                });
                async move {
                    match task.await {
                        Ok(result) => result.map_err(|e| format!("data file {file}: {e}")),
                        Err(e) => Err(format!("data file {file}: the rewriting task failed: {e}")),
                    }
                }
            })
            .buffer_unordered(workers)
            .try_collect()
            .await
            .map_err(|e| {
                self.destination
                    .error_message("rewrite the files holding changed rows", e)
            })?;

        let mut actions = Vec::new();
        // A key the target held twice (loaded before it was a key) counts once.
        let mut matched_keys = std::collections::HashSet::new();
        let mut rewritten = 0usize;
        let mut added_files = 0usize;
        for (remove, file) in rewrites.into_iter().flatten() {
            matched_keys.extend(file.matched_keys);
            rewritten += 1;
            added_files += file.adds.len();
            actions.push(Action::Remove(remove));
            actions.extend(file.adds.into_iter().map(Action::Add));
        }
        let updated = matched_keys.len() as u64;
        drop(matched_keys);
        let winner_count = winners.len() as u64;
        let positions = {
            let mut p: Vec<u64> = winners.values().map(|(_, position)| *position).collect();
            p.sort_unstable();
            p
        };
        drop(winners);
        let added = self
            .write_winners(&staged.path, &positions, store, config, &table_schema)
            .await?;
        added_files += added.len();
        actions.extend(added.into_iter().map(Action::Add));
        let inserted = winner_count.saturating_sub(updated);

        let on = key_predicate(self.keys, "target", "source");
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(on),
            matched_predicates: vec![MergePredicate {
                action_type: "update".into(),
                predicate: None,
            }],
            not_matched_predicates: vec![MergePredicate {
                action_type: "insert".into(),
                predicate: None,
            }],
            not_matched_by_source_predicates: vec![],
        };
        let metrics = serde_json::json!({
            "num_source_rows": index.rows,
            "num_target_rows_updated": updated,
            "num_target_rows_inserted": inserted,
            "num_target_files_scanned": scanned,
            "num_target_files_skipped_during_scan": total_files - scanned,
            "num_target_files_removed": rewritten,
            "num_target_files_added": added_files,
        });
        let properties = self
            .tag
            .commit_properties([("operationMetrics".to_string(), metrics)]);
        let commit = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(|e| self.error("commit the merge", e))?;
        tracing::info!(
            table = %self.destination.name,
            files = total_files,
            scanned,
            rewritten,
            added = added_files,
            updated,
            inserted,
            "merged by key"
        );
        Ok(WriteSummary {
            version: Some(commit.version as i64),
            rows: RowCounts {
                written: winner_count,
                inserted,
                updated,
                ..RowCounts::default()
            },
        })
    }

    /// Writes the staged rows at `positions` (sorted) as new data files.
    async fn write_winners(
        &self,
        staged: &std::path::Path,
        positions: &[u64],
        store: ObjectStoreRef,
        config: WriterConfig,
        table_schema: &SchemaRef,
    ) -> Result<Vec<Add>> {
        let step = "write the changed rows";
        let file = std::fs::File::open(staged).map_err(|e| self.error(step, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
            .map_err(|e| self.error(step, e))?;
        let mut writer = DeltaWriter::new(store, config);
        let mut offset = 0u64;
        let mut next = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| self.error(step, e))?;
            let end = offset + batch.num_rows() as u64;
            let mut keep = vec![false; batch.num_rows()];
            while next < positions.len() && positions[next] < end {
                keep[(positions[next] - offset) as usize] = true;
                next += 1;
            }
            offset = end;
            let kept = filter_record_batch(&batch, &BooleanArray::from(keep))
                .map_err(|e| self.error(step, e))?;
            if kept.num_rows() > 0 {
                let kept = conform(&kept, table_schema)
                    .map_err(|e| self.destination.error_message(step, e))?;
                writer.write(&kept).await.map_err(|e| self.error(step, e))?;
            }
        }
        writer.close().await.map_err(|e| self.error(step, e))
    }
}
