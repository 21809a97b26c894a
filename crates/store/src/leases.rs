//! The scheduler's claim and the run leases: due tables claimed in one transaction (PostgreSQL
//! skips rows another claimer holds), leases renewed while a run works and checked before each
//! commit, and runs whose lease ran out failed as lost.

use chrono::{DateTime, Utc};
use dataloader_core::{Claim, Error, InvalidTable, LostRun, Result, TableControl};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, Value};
use crate::rows::{ControlRow, TABLE_COLUMNS};
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
    pub(crate) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Claim>> {
        let err = |e| Error::store("claim due tables", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // A schedule, time zone or activation changed by plain SQL (a trigger flags the row):
        // its next load follows the new schedule. A schedule that cannot be read makes it due
        // now, so the row is reported below instead of waiting silently.
        let changed: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(B::RESCHEDULE)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        for (table_id, schedule, timezone) in changed {
            let next = schedule.map(|s| {
                dataloader_core::schedule::next_occurrence(
                    &s,
                    timezone.as_deref().unwrap_or("UTC"),
                    now,
                )
                .unwrap_or(now)
            });
            sqlx::query(
                "UPDATE table_control SET next_load_date_time = $2, schedule_changed = FALSE \
                 WHERE table_id = $1",
            )
            .bind(table_id)
            .bind(next)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        let ids: Vec<i64> = sqlx::query_scalar(B::CLAIM_DUE)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        if ids.is_empty() {
            tx.commit().await.map_err(err)?;
            return Ok(vec![]);
        }
        // Ids come from the database as integers: safe to list in the SQL.
        let list = |ids: &[i64]| {
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // A row must be readable and valid (a cron that fires, the keys its strategy needs).
        let read: Vec<std::result::Result<TableControl, InvalidTable>> =
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TABLE_COLUMNS} FROM table_control WHERE table_id IN ({})",
                list(&ids)
            )))
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?
            .iter()
            .map(|row| ControlRow::read_table(row).and_then(TableControl::loadable))
            .collect();
        let (tables, invalid): (Vec<_>, Vec<_>) = read.into_iter().partition(|t| t.is_ok());
        let tables: Vec<TableControl> = tables.into_iter().filter_map(|t| t.ok()).collect();
        // One unreadable or invalid row holds nothing else back: it gets a failed run saying
        // why, and waits for its next scheduled time (an hour when even that cannot be read).
        // Each is recorded in a savepoint, so a row the database refuses to update (it breaks
        // a CHECK added after it was written) is only logged.
        for bad in invalid.into_iter().filter_map(|t| t.err()) {
            tracing::warn!(
                table_id = bad.table_id,
                destination = %bad.destination,
                problem = %bad.problem,
                "a due table_control row cannot be loaded as it stands: not loaded"
            );
            let mut savepoint = sqlx::Acquire::begin(&mut tx).await.map_err(err)?;
            let recorded: std::result::Result<(), sqlx::Error> = async {
                let (schedule, timezone): (Option<String>, Option<String>) = sqlx::query_as(
                    "SELECT schedule, timezone FROM table_control WHERE table_id = $1",
                )
                .bind(bad.table_id)
                .fetch_one(&mut *savepoint)
                .await?;
                let next = schedule.map(|s| {
                    dataloader_core::schedule::next_occurrence(
                        &s,
                        timezone.as_deref().unwrap_or("UTC"),
                        now,
                    )
                    .unwrap_or(now + chrono::Duration::hours(1))
                });
                let run_id: i64 = sqlx::query_scalar(
                    "INSERT INTO historical_metadata (table_id, destination, trigger_type, status, \
                     queued_at, finished_at, worker, error_class, error_text) \
                     VALUES ($1, $2, 'schedule', 'Failed', $3, $3, $4, 'Config', $5) RETURNING run_id",
                )
                .bind(bad.table_id)
                .bind(&bad.destination)
                .bind(now)
                .bind(worker)
                .bind(format!("this table_control row cannot be loaded as it stands: {}; correct it (dataloader table update, or SQL; dataloader validate lists every such row)", bad.problem))
                .fetch_one(&mut *savepoint)
                .await?;
                sqlx::query(
                    "UPDATE table_control SET status = 'Failed', last_run_id = $2, \
                     next_load_date_time = $3 WHERE table_id = $1",
                )
                .bind(bad.table_id)
                .bind(run_id)
                .bind(next)
                .execute(&mut *savepoint)
                .await?;
                Ok(())
            }
            .await;
            match recorded {
                Ok(()) => savepoint.commit().await.map_err(err)?,
                Err(e) => {
                    tracing::warn!(table_id = bad.table_id, error = %e, "could not record why the row is not loaded");
                    savepoint.rollback().await.map_err(err)?;
                }
            }
        }
        let good: Vec<i64> = tables.iter().map(|t| t.table_id).collect();
        if good.is_empty() {
            tx.commit().await.map_err(err)?;
            return Ok(vec![]);
        }
        let id_list = list(&good);
        let runs: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO historical_metadata (table_id, destination, trigger_type, status, queued_at, \
             watermark_before, worker, lease_owner, lease_expires_at) \
             SELECT table_id, destination_catalog || '.' || destination_schema || '.' || destination_table, \
             'schedule', 'Queued', $1, incremental_value, $2, $2, $3 FROM table_control \
             WHERE table_id IN ({id_list}) RETURNING run_id, table_id"
        )))
        .bind(now)
        .bind(worker)
        .bind(lease_until)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE table_control SET status = 'Queued', last_run_id = \
             (SELECT MAX(h.run_id) FROM historical_metadata h WHERE h.table_id = table_control.table_id) \
             WHERE table_id IN ({id_list})"
        )))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let mut claims: Vec<Claim> = runs
            .into_iter()
            .filter_map(|(run_id, table_id)| {
                tables
                    .iter()
                    .find(|t| t.table_id == table_id)
                    .map(|t| Claim {
                        run_id,
                        table: t.clone(),
                    })
            })
            .collect();
        // Most urgent first, as claimed.
        claims.sort_by_key(|c| ids.iter().position(|i| *i == c.table.table_id));
        Ok(claims)
    }

    pub(crate) async fn renew_lease(
        &self,
        run_id: i64,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE historical_metadata SET lease_expires_at = $2 \
             WHERE run_id = $1 AND status IN ('Queued', 'In Progress') AND lease_owner = $3 \
             RETURNING cancel_requested",
        )
        .bind(run_id)
        .bind(lease_until)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| Error::store("renew the lease", e))?;
        // No open run: a monitor closed it (its lease ran out while this process was
        // stalled), and another load may own the table now. Stop.
        Ok(cancel.unwrap_or(true))
    }

    pub(crate) async fn lease_holds(
        &self,
        run_id: i64,
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT run_id FROM historical_metadata WHERE run_id = $1 AND status = 'In Progress' \
             AND lease_owner = $2 AND lease_expires_at > $3 AND cancel_requested = FALSE",
        )
        .bind(run_id)
        .bind(worker)
        .bind(until)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| Error::store("check the run's lease", e))?;
        Ok(held.is_some())
    }

    pub(crate) async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostRun>> {
        let err = |e| Error::store("expire leases", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let lost: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE historical_metadata SET status = 'Failed', finished_at = $1, error_class = 'WorkerLost', \
             error_text = 'worker lost: ' || COALESCE(lease_owner, '?') || ' stopped renewing its lease', \
             lease_expires_at = NULL, retry_analyzed = TRUE, retry_category = 'worker lost', \
             retry_recommendation = 'retry_now', \
             retry_explanation = 'the process running the load stopped (killed or its machine lost); the table is loaded again at once' \
             WHERE status IN ('Queued', 'In Progress') AND lease_expires_at IS NOT NULL AND lease_expires_at < $1 \
             RETURNING run_id, table_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let mut out = Vec::with_capacity(lost.len());
        for (run_id, table_id) in lost {
            // Due again at once while retries remain; the caller reschedules the rest.
            let counts: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE table_control SET status = 'Failed', retry_count = retry_count + 1, \
                 next_load_date_time = CASE WHEN retry_count < max_retries THEN $3 ELSE next_load_date_time END \
                 WHERE table_id = $1 AND last_run_id = $2 RETURNING retry_count, max_retries",
            )
            .bind(table_id)
            .bind(run_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            let retries_exhausted = counts.is_some_and(|(count, max)| count > max);
            if let Some((count, max)) = counts.filter(|_| retries_exhausted) {
                sqlx::query(
                    "UPDATE historical_metadata SET retry_recommendation = 'do_not_retry', \
                     retry_explanation = $2 WHERE run_id = $1",
                )
                .bind(run_id)
                .bind(format!(
                    "the process running the load stopped {count} times in a row (max_retries {max}): the table waits for its next scheduled time"
                ))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            out.push(LostRun {
                run_id,
                table_id,
                retries_exhausted,
            });
        }
        tx.commit().await.map_err(err)?;
        Ok(out)
    }
}
