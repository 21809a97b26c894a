//! `scheduler_workers`: each worker's last master-sensor tick, for the console and `/metrics`.

use chrono::{DateTime, Utc};
use dataloader_core::{Error, Result, WorkerTick};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, Value};
use crate::store::SqlStore;

/// worker, started_at, last_tick_at, last_tick_seconds, last_tick_lateness_seconds, ticks,
/// running_loads
type TickRow = (String, DateTime<Utc>, DateTime<Utc>, f64, f64, i64, i64);

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
    pub(crate) async fn record_tick(&self, t: &WorkerTick) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_workers (worker, started_at, last_tick_at, last_tick_seconds, \
             last_tick_lateness_seconds, ticks, running_loads) VALUES ($1, $2, $3, $4, $5, 1, $6) \
             ON CONFLICT (worker) DO UPDATE SET last_tick_at = excluded.last_tick_at, \
             last_tick_seconds = excluded.last_tick_seconds, \
             last_tick_lateness_seconds = excluded.last_tick_lateness_seconds, \
             ticks = scheduler_workers.ticks + 1, running_loads = excluded.running_loads",
        )
        .bind(&t.worker)
        .bind(t.started_at)
        .bind(t.last_tick_at)
        .bind(t.last_tick_seconds)
        .bind(t.last_tick_lateness_seconds)
        .bind(t.running_loads)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("record the scheduler's tick", e))?;
        Ok(())
    }

    pub(crate) async fn workers(&self) -> Result<Vec<WorkerTick>> {
        let rows: Vec<TickRow> = sqlx::query_as(
            "SELECT worker, started_at, last_tick_at, last_tick_seconds, \
             last_tick_lateness_seconds, ticks, running_loads FROM scheduler_workers \
             ORDER BY last_tick_at DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::store("read the scheduler's workers", e))?;
        Ok(rows
            .into_iter()
            .map(|r| WorkerTick {
                worker: r.0,
                started_at: r.1,
                last_tick_at: r.2,
                last_tick_seconds: r.3,
                last_tick_lateness_seconds: r.4,
                ticks: r.5,
                running_loads: r.6,
            })
            .collect())
    }
}
