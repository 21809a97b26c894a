//! The store: one pool of a [`Backend`]'s database, and the core's `Store` trait on it. Each
//! method is written once, for both backends, in the module of its topic (`connections`,
//! `tables`, `runs`, `leases`, `monitors`, `audit`); this impl only points to them, as
//! `#[async_trait]` takes the whole trait in one block.
//!
//! The `where` clause below (the same on each topic's `impl`) is what generic sqlx code needs
//! of the driver: a connection that executes, and the Rust types it binds and reads. Rust does
//! not carry a trait's `where` clauses to its users, so it cannot be said once in `Backend`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dataloader_core::access::{ApiToken, Role};
use dataloader_core::alert::{AlertRule, Attempt, Delivery, NewDelivery};
use dataloader_core::connection::ConnectionChange;
use dataloader_core::secret::SecretSetting;
use dataloader_core::store::HistoryRecord;
use dataloader_core::{
    Claim, ConnectionConfig, Error, InvalidTable, LostRun, NewRun, Result, RetryVerdict, RunOwner,
    RunRecord, RunTotals, RunUpdate, RunningRun, Store, TableControl, TableSpec, TargetTable,
    Watermark, WorkerTick,
};
use sqlx::{ColumnIndex, Encode, Executor, Pool, Type};

use crate::backend::{Backend, Conn, DbRow, Param, Value};
use crate::migrations;

/// The control tables on one database; `B` says which (see [`crate::open`]).
pub struct SqlStore<B: Backend> {
    pub(crate) pool: Pool<B::Db>,
    /// Where the database is, for messages (credentials removed).
    pub(crate) location: String,
    /// The task that reads a rotating password again (PostgreSQL), stopped with the store.
    password_refresh: Option<tokio::task::AbortHandle>,
}

impl<B: Backend> Drop for SqlStore<B> {
    fn drop(&mut self) {
        if let Some(task) = &self.password_refresh {
            task.abort();
        }
    }
}

impl<B: Backend> SqlStore<B> {
    /// Connects to the database `url` names; not migrated (see [`Store::migrate`]).
    pub(crate) async fn connect(url: &str, password: Option<SecretSetting>) -> Result<Self> {
        let (pool, location, password_refresh) = B::connect(url, password).await?;
        Ok(SqlStore {
            pool,
            location,
            password_refresh,
        })
    }

    /// A write transaction. SQLite takes the write lock at once (`BEGIN IMMEDIATE`): a second
    /// writer waits for the first, instead of failing to upgrade a read lock.
    pub(crate) async fn begin_write(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, B::Db>, sqlx::Error> {
        match B::BEGIN_WRITE {
            Some(begin) => self.pool.begin_with(begin).await,
            None => self.pool.begin().await,
        }
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B>
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
    async fn migrate(&self) -> Result<()> {
        migrations::migrator(B::MIGRATIONS)
            .run(&self.pool)
            .await
            .map_err(|e| Error::store("migrate the control tables", e))
    }

    fn describe(&self) -> String {
        self.location.clone()
    }

    // connections.rs

    async fn upsert_connection_by(
        &self,
        connection: &ConnectionConfig,
        changed_by: &str,
    ) -> Result<()> {
        self.upsert_connection(connection, changed_by).await
    }

    async fn connection_history(&self, name: &str) -> Result<Vec<ConnectionChange>> {
        self.connection_history(name).await
    }

    async fn connection(&self, name: &str) -> Result<Option<ConnectionConfig>> {
        self.connection(name).await
    }

    async fn connections(&self) -> Result<Vec<ConnectionConfig>> {
        self.connections().await
    }

    async fn delete_connection(&self, name: &str) -> Result<bool> {
        self.delete_connection(name, "cli").await
    }

    // tables.rs

    async fn insert_table(&self, spec: &TableSpec, now: DateTime<Utc>) -> Result<i64> {
        self.insert_table(spec, now).await
    }

    async fn update_table_spec(
        &self,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.update_table_spec(table_id, spec, now).await
    }

    async fn table(&self, table_id: i64) -> Result<Option<TableControl>> {
        self.table(table_id).await
    }

    async fn table_by_destination(
        &self,
        destination: &TargetTable,
    ) -> Result<Option<TableControl>> {
        self.table_by_destination(destination).await
    }

    async fn tables(&self) -> Result<Vec<TableControl>> {
        self.tables().await
    }

    async fn invalid_tables(&self) -> Result<Vec<InvalidTable>> {
        self.invalid_tables().await
    }

    async fn set_watermark(&self, table_id: i64, watermark: Option<&Watermark>) -> Result<()> {
        self.set_watermark(table_id, watermark).await
    }

    async fn set_next_load(&self, table_id: i64, at: Option<DateTime<Utc>>) -> Result<()> {
        self.set_next_load(table_id, at).await
    }

    // runs.rs

    async fn create_run(&self, run: &NewRun) -> Result<i64> {
        self.create_run(run).await
    }

    async fn start_run(
        &self,
        run_id: i64,
        worker: &str,
        started_at: DateTime<Utc>,
    ) -> Result<bool> {
        self.start_run(run_id, worker, started_at).await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        owner: RunOwner<'_>,
        update: &RunUpdate,
    ) -> Result<bool> {
        self.finish_run(run_id, owner, update).await
    }

    async fn save_backfill_cursor(
        &self,
        run_id: i64,
        worker: &str,
        cursor: Option<&str>,
    ) -> Result<bool> {
        self.save_backfill_cursor(run_id, worker, cursor).await
    }

    async fn abandon_runs(
        &self,
        table_id: i64,
        except_run: Option<i64>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        self.abandon_runs(table_id, except_run, reason, at).await
    }

    async fn run(&self, run_id: i64) -> Result<Option<RunRecord>> {
        self.run(run_id).await
    }

    async fn runs(&self, table_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>> {
        self.runs(table_id, limit).await
    }

    // leases.rs

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Claim>> {
        self.claim_due(now, limit, worker, lease_until).await
    }

    async fn renew_lease(
        &self,
        run_id: i64,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        self.renew_lease(run_id, worker, lease_until).await
    }

    async fn lease_holds(&self, run_id: i64, worker: &str, until: DateTime<Utc>) -> Result<bool> {
        self.lease_holds(run_id, worker, until).await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostRun>> {
        self.expire_leases(now).await
    }

    // monitors.rs

    async fn cancel_queued(
        &self,
        queued_before: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<i64>> {
        self.cancel_queued(queued_before, now, reason).await
    }

    async fn running_runs(&self) -> Result<Vec<RunningRun>> {
        self.running_runs().await
    }

    async fn request_cancel(&self, run_id: i64) -> Result<()> {
        self.request_cancel(run_id).await
    }

    async fn runs_to_analyze(&self, limit: i64) -> Result<Vec<RunRecord>> {
        self.runs_to_analyze(limit).await
    }

    async fn record_verdict(&self, run_id: i64, verdict: &RetryVerdict) -> Result<()> {
        self.record_verdict(run_id, verdict).await
    }

    // audit.rs

    async fn table_history(&self, table_id: i64) -> Result<Vec<HistoryRecord>> {
        self.table_history(table_id).await
    }

    // summaries.rs, tables.rs and tokens.rs: the console's reads and acts

    async fn pending_migrations(&self) -> Result<usize> {
        let applied: std::result::Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM _dataloader_migrations WHERE success",
        )
        .fetch_one(&self.pool)
        .await;
        match applied {
            Ok(n) => Ok(B::MIGRATIONS.len().saturating_sub(n.max(0) as usize)),
            // No bookkeeping table yet ("no such table" on SQLite, 42P01 on PostgreSQL):
            // nothing applied. Any other failure is the database's, and said as such.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01")
                    || e.message().contains("no such table") =>
            {
                Ok(B::MIGRATIONS.len())
            }
            Err(e) => Err(Error::store("read the applied migrations", e)),
        }
    }

    async fn last_runs(&self) -> Result<Vec<RunRecord>> {
        self.last_runs().await
    }

    async fn last_successes(&self, table_id: Option<i64>) -> Result<Vec<(i64, DateTime<Utc>)>> {
        self.last_successes(table_id).await
    }

    async fn run_totals(&self) -> Result<Vec<RunTotals>> {
        self.run_totals().await
    }

    async fn set_active(
        &self,
        table_id: i64,
        active: bool,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<bool> {
        self.set_active(table_id, active, now, changed_by).await
    }

    // alerts.rs

    async fn save_alert_rule(&self, rule: &AlertRule, now: DateTime<Utc>) -> Result<()> {
        self.save_alert_rule(rule, now).await
    }

    async fn alert_rules(&self) -> Result<Vec<AlertRule>> {
        self.alert_rules().await
    }

    async fn delete_alert_rule(&self, name: &str) -> Result<bool> {
        self.delete_alert_rule(name).await
    }

    async fn queue_delivery(&self, delivery: &NewDelivery, now: DateTime<Utc>) -> Result<bool> {
        self.queue_delivery(delivery, now).await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.claim_deliveries(now, hold_until, limit).await
    }

    async fn record_attempt(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.record_attempt(delivery_id, attempt, now).await
    }

    async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>> {
        self.deliveries(limit).await
    }

    async fn runs_finished_since(&self, since: DateTime<Utc>) -> Result<Vec<RunRecord>> {
        self.runs_finished_since(since).await
    }

    async fn record_tick(&self, tick: &WorkerTick) -> Result<()> {
        self.record_tick(tick).await
    }

    async fn workers(&self) -> Result<Vec<WorkerTick>> {
        self.workers().await
    }

    async fn insert_table_by(
        &self,
        spec: &TableSpec,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<i64> {
        self.insert_table_by(spec, now, changed_by).await
    }

    async fn update_table_spec_by(
        &self,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<()> {
        self.update_table_spec_by(table_id, spec, now, changed_by)
            .await
    }

    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.create_token(name, role, token_hash, now).await
    }

    async fn token_by_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>> {
        self.token_by_hash(token_hash, now).await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.tokens().await
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool> {
        self.revoke_token(name, now).await
    }
}
