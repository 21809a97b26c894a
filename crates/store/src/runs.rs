//! `historical_metadata`: a run's life. Queued (once per table while a lease holds it), started,
//! finished with the table's new state in the same transaction (so the watermark never moves
//! without its successful run), or abandoned; and the runs read back.

use chrono::{DateTime, Utc};
use dataloader_core::{Error, NewRun, Result, RunOwner, RunRecord, RunUpdate};
use sqlx::{ColumnIndex, Encode, Executor, Row, Type};

use crate::backend::{Backend, Conn, DbRow, Param, RowsAffected, Value};
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
    pub(crate) async fn create_run(&self, run: &NewRun) -> Result<i64> {
        // SQLite takes the write lock at once (`BEGIN IMMEDIATE`): a second load waits for the
        // first and then sees its run, instead of failing to upgrade a read lock.
        let mut tx = self
            .begin_write()
            .await
            .map_err(|e| Error::store("queue the run", e))?;
        let destination: String = {
            // PostgreSQL locks the row (`FOR UPDATE`): two loads starting at once take turns.
            let row = sqlx::query(B::TABLE_FOR_RUN)
                .bind(run.table_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| Error::store("queue the run", e))?
                .ok_or_else(|| {
                    Error::store_message(
                        "queue the run",
                        format!("no table with id {}", run.table_id),
                    )
                })?;
            let c: String = row.try_get(0).map_err(decode_err)?;
            let s: String = row.try_get(1).map_err(decode_err)?;
            let t: String = row.try_get(2).map_err(decode_err)?;
            format!("{c}.{s}.{t}")
        };
        let live: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT run_id, worker FROM historical_metadata WHERE table_id = $1 \
             AND status IN ('Queued', 'In Progress') AND lease_expires_at >= $2 LIMIT 1",
        )
        .bind(run.table_id)
        .bind(run.queued_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| Error::store("queue the run", e))?;
        if let Some((live_run, worker)) = live {
            return Err(Error::Conflict {
                table: destination,
                message: format!(
                    "run {live_run} ({}) is loading this table now; wait for it to finish, or cancel it, then load again",
                    worker.unwrap_or_else(|| "unknown worker".into())
                ),
            });
        }
        let run_id: i64 = sqlx::query_scalar(
            "INSERT INTO historical_metadata (table_id, destination, trigger_type, status, \
             queued_at, watermark_before, worker, lease_owner, lease_expires_at) \
             VALUES ($1, $2, $3, 'Queued', $4, $5, $6, $6, $7) RETURNING run_id",
        )
        .bind(run.table_id)
        .bind(destination)
        .bind(run.trigger.as_str())
        .bind(run.queued_at)
        .bind(run.watermark_before.as_ref().map(|w| w.value.clone()))
        .bind(&run.worker)
        .bind(run.lease_until)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::store("queue the run", e))?;
        sqlx::query(
            "UPDATE table_control SET status = 'Queued', last_run_id = $2 WHERE table_id = $1",
        )
        .bind(run.table_id)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::store("queue the run", e))?;
        tx.commit()
            .await
            .map_err(|e| Error::store("queue the run", e))?;
        Ok(run_id)
    }

    pub(crate) async fn start_run(
        &self,
        run_id: i64,
        worker: &str,
        started_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| Error::store("start the run", e))?;
        let started = sqlx::query(
            "UPDATE historical_metadata SET status = 'In Progress', started_at = $2 \
             WHERE run_id = $1 AND status = 'Queued' AND lease_owner = $3",
        )
        .bind(run_id)
        .bind(started_at)
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::store("start the run", e))?
        .rows_affected();
        if started == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE table_control SET status = 'In Progress' \
             WHERE table_id = (SELECT table_id FROM historical_metadata WHERE run_id = $1)",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::store("start the run", e))?;
        tx.commit()
            .await
            .map_err(|e| Error::store("start the run", e))?;
        Ok(true)
    }

    pub(crate) async fn finish_run(
        &self,
        run_id: i64,
        owner: RunOwner<'_>,
        u: &RunUpdate,
    ) -> Result<bool> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| Error::store("record the run", e))?;
        // The owner's guard ($14: the worker, or NULL for a recovery): a worker ends only
        // its own open run; a recovery ends an open run, or one closed as lost or
        // cancelled before its commit was recorded.
        let worker = match owner {
            RunOwner::Worker(worker) => Some(worker),
            RunOwner::Recovery => None,
        };
        let ended = sqlx::query(
            "UPDATE historical_metadata SET status = $2, finished_at = $3, rows_read = $4, \
             rows_written = $5, rows_deleted = $6, bytes_written = $7, watermark_after = $8, \
             delta_version = $9, error_class = $10, error_text = $11, schema_changes = $12, \
             notes = $13, lease_expires_at = NULL WHERE run_id = $1 AND (\
             (lease_owner = $14 AND status IN ('Queued', 'In Progress')) OR \
             ($14 IS NULL AND (status IN ('Queued', 'In Progress') OR (status IN ('Failed', 'Cancelled') \
             AND delta_version IS NULL AND error_class IN ('WorkerLost', 'Cancelled')))))",
        )
        .bind(run_id)
        .bind(u.status.as_str())
        .bind(u.finished_at)
        // The columns are signed BIGINTs; no load counts past i64::MAX rows.
        .bind(u.rows.read as i64)
        .bind(u.rows.written as i64)
        .bind(u.rows.deleted as i64)
        .bind(u.bytes_written)
        .bind(u.watermark_after.as_ref().map(|w| w.value.clone()))
        .bind(u.delta_version)
        .bind(u.error_class.map(|kind| kind.as_str().to_string()))
        .bind(&u.error_text)
        .bind(&u.schema_changes)
        .bind(&u.notes)
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::store("record the run", e))?
        .rows_affected();
        if ended == 0 {
            tx.rollback()
                .await
                .map_err(|e| Error::store("record the run", e))?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE table_control SET status = $2, next_load_date_time = $3, \
             incremental_value = COALESCE($4, incremental_value), \
             incremental_value_type = COALESCE($5, incremental_value_type), \
             backfill_cursor = CASE WHEN $6 THEN $7 ELSE backfill_cursor END, \
             last_check_value = COALESCE($8, last_check_value), \
             last_delete_scan_at = COALESCE($9, last_delete_scan_at), \
             load_strategy = COALESCE($10, load_strategy), \
             loaded_from = COALESCE($11, loaded_from), \
             retry_count = CASE WHEN $2 = 'Succeeded' THEN 0 ELSE retry_count END \
             WHERE table_id = (SELECT table_id FROM historical_metadata WHERE run_id = $1)",
        )
        .bind(run_id)
        .bind(u.status.as_str())
        .bind(u.next_load_date_time)
        .bind(u.watermark_after.as_ref().map(|w| w.value.clone()))
        .bind(u.watermark_after.as_ref().map(|w| w.kind.as_str()))
        .bind(u.state.backfill_cursor.is_some())
        .bind(u.state.backfill_cursor.clone().flatten())
        .bind(&u.state.check_value)
        .bind(u.state.delete_scan_at)
        .bind(u.state.strategy.map(|s| s.as_str()))
        .bind(&u.state.loaded_from)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::store("record the run", e))?;
        tx.commit()
            .await
            .map_err(|e| Error::store("record the run", e))?;
        Ok(true)
    }

    pub(crate) async fn save_backfill_cursor(
        &self,
        run_id: i64,
        worker: &str,
        cursor: Option<&str>,
    ) -> Result<bool> {
        // The run's owner only: a worker that lost its run must not set a cursor back.
        let saved = sqlx::query(
            "UPDATE table_control SET backfill_cursor = $3 WHERE table_id = \
             (SELECT table_id FROM historical_metadata WHERE run_id = $1 AND lease_owner = $2 \
             AND status = 'In Progress')",
        )
        .bind(run_id)
        .bind(worker)
        .bind(cursor)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("save the backfill cursor", e))?
        .rows_affected();
        Ok(saved > 0)
    }

    pub(crate) async fn abandon_runs(
        &self,
        table_id: i64,
        except_run: Option<i64>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        sqlx::query_scalar(
            "UPDATE historical_metadata SET status = 'Failed', finished_at = $4, \
             error_class = 'Cancelled', error_text = $3 \
             WHERE table_id = $1 AND ($2 IS NULL OR run_id <> $2) AND status IN ('Queued', 'In Progress') \
             AND (lease_expires_at IS NULL OR lease_expires_at < $4) \
             RETURNING run_id",
        )
        .bind(table_id)
        .bind(except_run)
        .bind(reason)
        .bind(at)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::store("close abandoned runs", e))
    }

    pub(crate) async fn run(&self, run_id: i64) -> Result<Option<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM historical_metadata WHERE run_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| Error::store("read the run", e))?
            .map(|r| r.run_record())
            .transpose()
    }

    pub(crate) async fn runs(&self, table_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM historical_metadata \
             WHERE ($1 IS NULL OR table_id = $1) ORDER BY run_id DESC LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(table_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("list the runs", e))?
            .iter()
            .map(ControlRow::run_record)
            .collect()
    }
}
