//! Reading a table without changing it: row and duplicate-key counts, a predicate's share of
//! the table, the bytes a run's commits added, and every row (for commands that show a table
//! and for tests).

use std::sync::Arc;

use dataloader_core::Result;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::execution::memory_pool::FairSpillPool;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::kernel::Action;
use deltalake::logstore::get_actions;

use crate::destination::DeltaDestination;
use crate::sql::{count, quote, quoted_list, KEY_GROUPING_MEMORY};

/// What [`DeltaDestination::key_counts`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCounts {
    pub rows: u64,
    pub duplicated_keys: u64,
}

impl DeltaDestination {
    /// The table's version, its data files and their bytes; `None` before a first commit.
    pub async fn files(&self) -> Result<Option<(i64, u64, u64)>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.error("read the table's files", e))?;
        let log = snapshot.log_data();
        let bytes = log.iter().map(|f| f.size().max(0) as u64).sum();
        Ok(Some((
            snapshot.version() as i64,
            log.num_files() as u64,
            bytes,
        )))
    }

    /// The bytes of the data files that the commits after version `after` (all commits when
    /// `None`) up to and including `through` added: the sum of their `add` actions' sizes.
    pub async fn bytes_added(&self, after: Option<i64>, through: i64) -> Result<u64> {
        // Only the log store is needed: the commits are read one by one, not replayed.
        let table = self
            .builder()
            .and_then(|builder| builder.build())
            .map_err(|e| self.error("open the table", e))?;
        let store = table.log_store();
        let mut bytes = 0u64;
        // Delta versions are never negative; i64 is how the control tables keep them.
        let first = after.map_or(0, |v| v + 1).max(0) as u64;
        for version in first..=through.max(0) as u64 {
            let Some(commit) = store
                .read_commit_entry(version)
                .await
                .map_err(|e| self.error("read a commit of the Delta log", e))?
            else {
                continue;
            };
            let actions = get_actions(version, &commit)
                .map_err(|e| self.error("read a commit of the Delta log", e))?;
            bytes += actions
                .iter()
                .filter_map(|action| match action {
                    Action::Add(add) => u64::try_from(add.size).ok(),
                    _ => None,
                })
                .sum::<u64>();
        }
        Ok(bytes)
    }

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

#[cfg(test)]
mod tests {
    use crate::test_support::{batch, schema, stream, tag};
    use crate::DeltaDestination;

    #[tokio::test]
    async fn key_counts_find_keys_held_twice_and_a_missing_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let dest = DeltaDestination::new(url.as_str(), "bronze.test.t").unwrap();
        assert_eq!(dest.key_counts(&["id".into()]).await.unwrap(), None);
        dest.append(
            schema(),
            stream(vec![batch(&[
                (1, "a", None),
                (2, "b", None),
                (3, "c", None),
            ])]),
            &tag(1),
        )
        .await
        .unwrap();
        let counts = dest.key_counts(&["id".into()]).await.unwrap().unwrap();
        assert_eq!((counts.rows, counts.duplicated_keys), (3, 0));
        // Appending keys 2 and 3 again holds two keys twice; (id, name) stays unique for 3.
        dest.append(
            schema(),
            stream(vec![batch(&[(2, "b", None), (3, "changed", None)])]),
            &tag(2),
        )
        .await
        .unwrap();
        let counts = dest.key_counts(&["id".into()]).await.unwrap().unwrap();
        assert_eq!((counts.rows, counts.duplicated_keys), (5, 2));
        let counts = dest
            .key_counts(&["id".into(), "name".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counts.duplicated_keys, 1);
        assert_eq!(
            dest.key_counts(&[]).await.unwrap().unwrap().duplicated_keys,
            0
        );
    }
}
