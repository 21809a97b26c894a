//! Deletes: rows matching a predicate (a rolling window moving on), and rows whose keys left
//! the source (`delete_detection: pk_scan`), each in one commit, the second bounded by
//! `max_delete_ratio`.

use dataloader_core::{BatchStream, Error, Result};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use deltalake::parquet::basic::{Compression, ZstdLevel};

use crate::destination::DeltaDestination;
use crate::sql::{count, keys_compared, quoted_list};
use crate::stage::Staging;
use crate::tag::CommitTag;

/// Like [`key_predicate`](crate::sql::key_predicate), with a NULL key part equal to a NULL: a
/// key scan must find a row whose key holds a NULL in the source, not delete it.
fn null_safe_key_predicate(keys: &[String], left: &str, right: &str) -> String {
    keys_compared(keys, left, right, "IS NOT DISTINCT FROM")
}

impl DeltaDestination {
    /// Deletes the rows matching `predicate` in one commit; returns how many.
    pub async fn delete_where(
        &self,
        predicate: Expr,
        tag: &CommitTag,
    ) -> Result<(u64, Option<i64>)> {
        let Some(table) = self.open().await? else {
            return Ok((0, None));
        };
        let before = table.version();
        let (table, metrics) = table
            .delete()
            .with_predicate(predicate)
            .with_commit_properties(tag.commit_properties([]))
            .await
            .map_err(|e| self.error("delete rows", e))?;
        // delta-rs leaves the count empty when whole files go; the version says whether it committed.
        let deleted = metrics.num_deleted_rows.unwrap_or(0) as u64;
        let version = table
            .version()
            .filter(|v| Some(*v) != before)
            .map(|v| v as i64);
        Ok((deleted, version))
    }

    /// Deletes the rows whose `keys` are not among the staged source keys, in one commit,
    /// unless that would delete more than `max_ratio` of the table or the source had no keys.
    pub async fn delete_missing_keys(
        &self,
        key_schema: SchemaRef,
        source_keys: BatchStream,
        keys: &[String],
        max_ratio: f64,
        tag: &CommitTag,
    ) -> Result<(u64, Option<i64>)> {
        let Some(table) = self.open().await? else {
            return Ok((0, None));
        };
        let staged = self
            .stage(
                Staging::SourceKeys,
                Compression::ZSTD(ZstdLevel::default()),
                key_schema,
                source_keys,
                |_| Ok(()),
            )
            .await?;
        let source_rows = staged.rows;
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "source_keys",
            staged.path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| self.error("read the staged keys", e))?;
        self.register(&ctx, &table, "target").await?;
        let key_list = quoted_list(keys);
        let on = null_safe_key_predicate(keys, "t", "s");
        let target_rows = count(&ctx, "SELECT COUNT(*) FROM target")
            .await
            .map_err(|e| self.error("count the table", e))?;
        let missing = count(&ctx, &format!(
            "SELECT COUNT(*) FROM (SELECT {key_list} FROM target) t LEFT ANTI JOIN source_keys s ON {on}"
        ))
        .await
        .map_err(|e| self.error("compare keys", e))?;
        if missing == 0 {
            return Ok((0, None));
        }
        if source_rows == 0 {
            return Err(Error::Conflict {
                table: self.name.clone(),
                message: format!(
                    "the source returned no primary keys, which would delete all {target_rows} rows; refusing (check the source, or load with --full-refresh)"
                ),
            });
        }
        if missing as f64 > max_ratio * target_rows as f64 {
            return Err(Error::Conflict {
                table: self.name.clone(),
                message: format!(
                    "delete detection would delete {missing} of {target_rows} rows ({:.1}%), more than max_delete_ratio {max_ratio}; refusing (raise max_delete_ratio if that is right)",
                    100.0 * missing as f64 / target_rows.max(1) as f64
                ),
            });
        }
        let source = ctx
            .sql(&format!("SELECT {key_list} FROM source_keys"))
            .await
            .map_err(|e| self.error("plan the key comparison", e))?;
        let predicate = null_safe_key_predicate(keys, "target", "source");
        let (table, metrics) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(tag.commit_properties([]))
            .when_not_matched_by_source_delete(|d| d)
            .map_err(|e| self.error("plan the deletes", e))?
            .await
            .map_err(|e| self.error("delete rows gone from the source", e))?;
        Ok((
            metrics.num_target_rows_deleted as u64,
            table.version().map(|v| v as i64),
        ))
    }
}
