//! What the console and `/metrics` read of `historical_metadata` in a few queries, whatever
//! the number of tables: each table's last run and last success, and every run added up by
//! table, outcome and retry verdict, with a histogram of durations counted in SQL.

use chrono::{DateTime, Utc};
use dataloader_core::summary::{RunTotals, CATALOG_FAILURE_NOTE, DURATION_BUCKETS};
use dataloader_core::{Error, Result, RunRecord, RunStatus};
use sqlx::{ColumnIndex, Encode, Executor, Row, Type};

use crate::backend::{Backend, Conn, DbRow, Param, Value};
use crate::rows::{decode_err, ControlRow, RUN_COLUMNS};
use crate::store::SqlStore;

impl<B: Backend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    for<'a> &'a str: Param<B::Db> + ColumnIndex<DbRow<B>>,
    for<'a> Option<&'a str>: Type<B::Db> + Encode<'a, B::Db>,
    usize: ColumnIndex<DbRow<B>>,
    bool: Value<B::Db>,
    i64: Value<B::Db>,
    Option<i64>: Param<B::Db>,
    f64: Value<B::Db>,
    String: Value<B::Db>,
    Option<String>: Param<B::Db>,
    DateTime<Utc>: Value<B::Db>,
    Option<DateTime<Utc>>: Param<B::Db>,
{
    /// The run each table's `last_run_id` names.
    pub(crate) async fn last_runs(&self) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM historical_metadata \
             WHERE run_id IN (SELECT last_run_id FROM table_control WHERE last_run_id IS NOT NULL)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("read the tables' last runs", e))?
            .iter()
            .map(ControlRow::run_record)
            .collect()
    }

    /// When each table's newest successful run finished.
    pub(crate) async fn last_successes(
        &self,
        table_id: Option<i64>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>> {
        let rows: Vec<(i64, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT table_id, MAX(finished_at) FROM historical_metadata \
             WHERE status = 'Succeeded' AND ($1 IS NULL OR table_id = $1) GROUP BY table_id",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::store("read the tables' last successes", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at)| at.map(|at| (id, at)))
            .collect())
    }

    /// Every run added up by table, status and retry recommendation.
    pub(crate) async fn run_totals(&self) -> Result<Vec<RunTotals>> {
        let seconds = B::RUN_SECONDS;
        let buckets: Vec<String> = DURATION_BUCKETS
            .iter()
            .map(|b| {
                format!("CAST(SUM(CASE WHEN {seconds} <= {b:.1} THEN 1 ELSE 0 END) AS BIGINT)")
            })
            .collect();
        let sql = format!(
            "SELECT table_id, status, retry_recommendation, CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(rows_written), 0) AS BIGINT), \
             CAST(COALESCE(SUM(bytes_written), 0) AS BIGINT), \
             CAST(SUM(CASE WHEN {seconds} IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(COALESCE(SUM({seconds}), 0) AS DOUBLE PRECISION), \
             CAST(SUM(CASE WHEN notes LIKE '%{CATALOG_FAILURE_NOTE}%' THEN 1 ELSE 0 END) AS BIGINT), {} \
             FROM historical_metadata GROUP BY table_id, status, retry_recommendation \
             ORDER BY table_id",
            buckets.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("add up the runs", e))?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get(1usize).map_err(decode_err)?;
                Ok(RunTotals {
                    table_id: row.try_get(0usize).map_err(decode_err)?,
                    status: status.parse::<RunStatus>()?,
                    retry: row.try_get(2usize).map_err(decode_err)?,
                    runs: row.try_get(3usize).map_err(decode_err)?,
                    rows_written: row.try_get(4usize).map_err(decode_err)?,
                    bytes_written: row.try_get(5usize).map_err(decode_err)?,
                    timed: row.try_get(6usize).map_err(decode_err)?,
                    seconds: row.try_get(7usize).map_err(decode_err)?,
                    catalog_failures: row.try_get(8usize).map_err(decode_err)?,
                    at_most: (0..DURATION_BUCKETS.len())
                        .map(|i| row.try_get::<i64, _>(9 + i).map_err(decode_err))
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
    }
}
