//! Reading a table without changing it: row and duplicate-key counts, a predicate's share of
//! the table, and every row (for commands that show a table and for tests).

use std::sync::Arc;

use dataloader_core::Result;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::execution::memory_pool::FairSpillPool;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};

use crate::delta::{count, quote, quoted_list, DeltaDestination, KEY_GROUPING_MEMORY};

/// What [`DeltaDestination::key_counts`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCounts {
    pub rows: u64,
    pub duplicated_keys: u64,
}

impl DeltaDestination {
    /// The table's row count, and how many values of `keys` it holds more than once (rows
    /// with a NULL key part count as their own value); `None` when the table does not exist.
    pub async fn key_counts(&self, keys: &[String]) -> Result<Option<KeyCounts>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        // Grouping every key of a big table would hold them all; past this DataFusion spills.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(KEY_GROUPING_MEMORY)))
            .build_arc()
            .map_err(|e| self.error("count duplicated keys", e))?;
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        self.register(&ctx, &table, "t").await?;
        let rows = count(&ctx, "SELECT COUNT(*) FROM t")
            .await
            .map_err(|e| self.error("count the table", e))?;
        let duplicated_keys = if keys.is_empty() {
            0
        } else {
            let key_list = quoted_list(keys);
            count(
                &ctx,
                &format!("SELECT COUNT(*) FROM (SELECT {key_list} FROM t GROUP BY {key_list} HAVING COUNT(*) > 1) d"),
            )
            .await
            .map_err(|e| self.error("count duplicated keys", e))?
        };
        Ok(Some(KeyCounts {
            rows,
            duplicated_keys,
        }))
    }

    /// How many rows match `predicate`, and how many rows the table holds; `None` when the
    /// table does not exist yet.
    pub async fn count_where(&self, predicate: Expr) -> Result<Option<(u64, u64)>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let ctx = SessionContext::new();
        self.register(&ctx, &table, "t").await?;
        let total = count(&ctx, "SELECT COUNT(*) FROM t")
            .await
            .map_err(|e| self.error("count the table", e))?;
        let matching = ctx
            .table("t")
            .await
            .and_then(|t| t.filter(predicate))
            .map_err(|e| self.error("count rows", e))?
            .count()
            .await
            .map_err(|e| self.error("count rows", e))?;
        Ok(Some((matching as u64, total)))
    }

    /// Every row, ordered by `order_by` columns: for `dataloader` commands that show a table and
    /// for tests that compare it with its source. Reads the whole table into memory.
    pub async fn read_all(&self, order_by: &[&str]) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.open().await? else {
            return Ok(vec![]);
        };
        let ctx = SessionContext::new();
        self.register(&ctx, &table, "t").await?;
        let order = if order_by.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                order_by
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ctx.sql(&format!("SELECT * FROM t{order}"))
            .await
            .map_err(|e| self.error("scan the table", e))?
            .collect()
            .await
            .map_err(|e| self.error("scan the table", e))
    }
}
