//! What the scheduler's monitors ask: runs queued too long (cancelled), runs running too long
//! (asked to stop), and failed runs waiting for the failed monitor's verdict.

use chrono::{DateTime, Utc};
use dataloader_core::{Error, Result, RetryVerdict, RunRecord, RunningRun};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, Value};
use crate::rows::{ControlRow, RUN_COLUMNS};
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
    pub(crate) async fn cancel_queued(
        &self,
        queued_before: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<i64>> {
        let err = |e| Error::store("cancel queued runs", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let cancelled: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE historical_metadata SET status = 'Cancelled', finished_at = $2, error_class = 'Cancelled', \
             error_text = $3, lease_expires_at = NULL, retry_analyzed = TRUE \
             WHERE status = 'Queued' AND queued_at < $1 RETURNING run_id, table_id",
        )
        .bind(queued_before)
        .bind(now)
        .bind(reason)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        for (run_id, table_id) in &cancelled {
            sqlx::query("UPDATE table_control SET status = 'Cancelled' WHERE table_id = $1 AND last_run_id = $2")
                .bind(table_id)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(cancelled.into_iter().map(|(_, t)| t).collect())
    }

    pub(crate) async fn running_runs(&self) -> Result<Vec<RunningRun>> {
        // run_id, table_id, started_at, timeout_minutes
        type Running = (i64, i64, Option<DateTime<Utc>>, Option<i64>);
        let rows: Vec<Running> = sqlx::query_as(
            "SELECT h.run_id, h.table_id, h.started_at, t.timeout_minutes FROM historical_metadata h \
             JOIN table_control t ON t.table_id = h.table_id \
             WHERE h.status = 'In Progress' AND h.cancel_requested = FALSE",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::store("list running runs", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(run_id, table_id, started, timeout_minutes)| {
                started.map(|started_at| RunningRun {
                    run_id,
                    table_id,
                    started_at,
                    timeout_minutes,
                })
            })
            .collect())
    }

    pub(crate) async fn request_cancel(&self, run_id: i64) -> Result<()> {
        sqlx::query("UPDATE historical_metadata SET cancel_requested = TRUE WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::store("request a cancel", e))?;
        Ok(())
    }

    pub(crate) async fn runs_to_analyze(&self, limit: i64) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM historical_metadata WHERE status = 'Failed' \
             AND retry_analyzed = FALSE ORDER BY run_id LIMIT $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("list failed runs", e))?
            .iter()
            .map(ControlRow::run_record)
            .collect()
    }

    pub(crate) async fn record_verdict(&self, run_id: i64, v: &RetryVerdict) -> Result<()> {
        let err = |e| Error::store("record the retry analysis", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "UPDATE historical_metadata SET retry_category = $2, retry_recommendation = $3, \
             retry_explanation = $4, retry_recommended = $5, retry_analyzed = TRUE WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(&v.category)
        .bind(&v.recommendation)
        .bind(&v.explanation)
        .bind(v.retry_at.is_some())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if let Some(at) = v.retry_at {
            sqlx::query(
                "UPDATE table_control SET next_load_date_time = $2, retry_count = retry_count + 1 \
                 WHERE last_run_id = $1",
            )
            .bind(run_id)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }
}
