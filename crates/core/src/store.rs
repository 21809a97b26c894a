//! The control plane seam: the four control tables (named as in the loader DataLoader
//! replaces) behind one trait, so SQLite and
//! PostgreSQL are interchangeable.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{ApiToken, Role};
use crate::alert::{AlertRule, Attempt, Delivery, NewDelivery};
use crate::connection::ConnectionChange;
use crate::summary::{RunTotals, WorkerTick};
use crate::{
    ConnectionConfig, Error, ErrorKind, LoadStrategy, Result, RowCounts, TableSpec, TargetTable,
    Watermark,
};

/// A run's id in `historical_metadata`.
pub type RunId = i64;

/// Status strings as the loader DataLoader replaces wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Queued,
    #[serde(rename = "In Progress")]
    InProgress,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::InProgress => "In Progress",
            RunStatus::Succeeded => "Succeeded",
            RunStatus::Failed => "Failed",
            RunStatus::Cancelled => "Cancelled",
            RunStatus::Skipped => "Skipped",
        }
    }
}

impl FromStr for RunStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "Queued" => RunStatus::Queued,
            "In Progress" => RunStatus::InProgress,
            "Succeeded" => RunStatus::Succeeded,
            "Failed" => RunStatus::Failed,
            "Cancelled" => RunStatus::Cancelled,
            "Skipped" => RunStatus::Skipped,
            other => {
                return Err(Error::store_message(
                    "decode status",
                    format!("unknown status \"{other}\""),
                ))
            }
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Schedule,
    /// `dataloader load` run by Dagster through Pipes.
    Dagster,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Dagster => "dagster",
        }
    }
}

impl FromStr for Trigger {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "manual" => Ok(Trigger::Manual),
            "schedule" => Ok(Trigger::Schedule),
            "dagster" => Ok(Trigger::Dagster),
            other => Err(Error::store_message(
                "decode trigger",
                format!("unknown trigger \"{other}\""),
            )),
        }
    }
}

/// A `table_control` row: the declared spec plus the state loads keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableControl {
    pub table_id: i64,
    #[serde(flatten)]
    pub spec: TableSpec,
    pub incremental_value: Option<Watermark>,
    pub next_load_date_time: Option<DateTime<Utc>>,
    pub status: Option<RunStatus>,
    pub last_run_id: Option<i64>,
    /// `chunked_backfill` progress (JSON, see the engine's backfill module).
    pub backfill_cursor: Option<String>,
    /// `check_and_load`: the probe value of the last successful load.
    pub last_check_value: Option<String>,
    pub last_delete_scan_at: Option<DateTime<Utc>>,
    /// Automatic retries since the last success.
    pub retry_count: i64,
    /// `connection:source` of the last load that committed: what the Delta table's rows and
    /// the stored watermark came from (`None` before a first load, or for rows older than
    /// this column).
    pub loaded_from: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TableControl {
    /// The row when its settings can be loaded as they stand; otherwise what is wrong, as an
    /// unreadable row says it. The claim skips such rows and `dataloader validate` lists them.
    pub fn loadable(self) -> std::result::Result<TableControl, InvalidTable> {
        match self.spec.validate() {
            Ok(()) => Ok(self),
            Err(e) => Err(InvalidTable {
                table_id: self.table_id,
                destination: self.spec.destination.to_string(),
                problem: e.to_string(),
            }),
        }
    }

    /// When the table fell due, if the master sensor would claim it at `now`: active, not
    /// queued or running, and its next load time passed (a scheduled table never loaded is
    /// due since it was created). The store's claim query says the same in SQL.
    pub fn due_since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.spec.is_active
            || matches!(self.status, Some(RunStatus::Queued | RunStatus::InProgress))
        {
            return None;
        }
        match self.next_load_date_time {
            Some(at) => (at <= now).then_some(at),
            None => self.spec.schedule.is_some().then_some(self.created_at),
        }
    }

    /// The order the master sensor claims due tables in (the claim query's `ORDER BY`):
    /// priority, then next load time (a never-loaded table counts as `now`).
    pub fn claim_order(&self, now: DateTime<Utc>) -> (i64, DateTime<Utc>, i64) {
        (
            self.spec.priority,
            self.next_load_date_time.unwrap_or(now),
            self.table_id,
        )
    }
}

/// A `table_control` row DataLoader cannot read (edited with plain SQL, or by another
/// version): it is skipped by the sensor and reported, while every other table loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidTable {
    pub table_id: i64,
    /// `catalog.schema.table` as the row holds it.
    pub destination: String,
    pub problem: String,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub table_id: i64,
    pub trigger: Trigger,
    pub queued_at: DateTime<Utc>,
    pub watermark_before: Option<Watermark>,
    pub worker: String,
    /// The run's lease, renewed while it runs: a process that dies stops renewing it, and the
    /// master sensor then fails the run and makes the table due again.
    pub lease_until: DateTime<Utc>,
}

/// How a run ended, and what the table's state becomes. Written in one transaction so the
/// watermark never moves without its successful run.
#[derive(Debug, Clone)]
pub struct RunUpdate {
    pub status: RunStatus,
    pub finished_at: DateTime<Utc>,
    /// Stored as `rows_read`, `rows_written` and `rows_deleted`; the control tables keep no
    /// inserted or updated count.
    pub rows: RowCounts,
    pub bytes_written: i64,
    /// The new watermark; `None` leaves the stored one as it is.
    pub watermark_after: Option<Watermark>,
    pub delta_version: Option<i64>,
    pub error_class: Option<ErrorKind>,
    pub error_text: Option<String>,
    pub next_load_date_time: Option<DateTime<Utc>>,
    /// Schema differences the run found and applied (or refused), for the record.
    pub schema_changes: Option<String>,
    /// Anything else worth keeping: skipped NULL rows, recovery of an earlier run.
    pub notes: Option<String>,
    /// Table state that moves with the run (only on success).
    pub state: StateUpdate,
}

impl RunUpdate {
    /// A run that ended without loading anything (failed or cancelled); the table keeps its
    /// state and waits until `next_load_date_time`.
    pub fn ended(
        status: RunStatus,
        finished_at: DateTime<Utc>,
        error_class: ErrorKind,
        error_text: impl Into<String>,
        next_load_date_time: Option<DateTime<Utc>>,
    ) -> RunUpdate {
        RunUpdate {
            status,
            finished_at,
            rows: RowCounts::default(),
            bytes_written: 0,
            watermark_after: None,
            delta_version: None,
            error_class: Some(error_class),
            error_text: Some(error_text.into()),
            next_load_date_time,
            schema_changes: None,
            notes: None,
            state: StateUpdate::default(),
        }
    }
}

/// State changes written in the same transaction as a successful run.
#[derive(Debug, Clone, Default)]
pub struct StateUpdate {
    /// `Some(None)` clears the cursor.
    pub backfill_cursor: Option<Option<String>>,
    pub check_value: Option<String>,
    pub delete_scan_at: Option<DateTime<Utc>>,
    /// A finished backfill switches the table to this strategy.
    pub strategy: Option<LoadStrategy>,
    /// `connection:source` the run loaded from (see [`TableControl::loaded_from`]).
    pub loaded_from: Option<String>,
}

/// Who ends a run: the worker that holds it, or the recovery of a run whose worker is gone.
#[derive(Debug, Clone, Copy)]
pub enum RunOwner<'a> {
    /// Only while the run is open and leased to this worker.
    Worker(&'a str),
    /// A run still open, or one closed as lost or cancelled before its commit was recorded.
    Recovery,
}

/// A `historical_metadata` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: i64,
    pub table_id: i64,
    pub destination: String,
    pub trigger: String,
    pub status: RunStatus,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows_read: Option<i64>,
    pub rows_written: Option<i64>,
    pub rows_deleted: Option<i64>,
    pub bytes_written: Option<i64>,
    pub watermark_before: Option<String>,
    pub watermark_after: Option<String>,
    pub delta_version: Option<i64>,
    pub worker: Option<String>,
    pub error_class: Option<String>,
    pub error_text: Option<String>,
    pub schema_changes: Option<String>,
    pub notes: Option<String>,
    pub retry_category: Option<String>,
    pub retry_recommendation: Option<String>,
    pub retry_explanation: Option<String>,
}

impl RunRecord {
    /// The kind of error the run ended with, when `error_class` names one of DataLoader's.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.error_class.as_deref().and_then(ErrorKind::from_class)
    }
}

/// A run the scheduler claimed, with its table as it was at the claim.
#[derive(Debug, Clone)]
pub struct Claim {
    pub run_id: i64,
    pub table: TableControl,
}

/// A run failed because its lease ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRun {
    pub run_id: i64,
    pub table_id: i64,
    /// Its table has been lost more than `max_retries` times in a row: it is not due again at
    /// once, and waits for its next scheduled time.
    pub retries_exhausted: bool,
}

/// What the failed monitor concluded about a failed run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryVerdict {
    pub category: String,
    pub recommendation: String,
    pub explanation: String,
    /// When to load again; `None` leaves the table to its schedule.
    pub retry_at: Option<DateTime<Utc>>,
}

/// A running run, for the long-running monitor.
#[derive(Debug, Clone)]
pub struct RunningRun {
    pub run_id: i64,
    pub table_id: i64,
    pub started_at: DateTime<Utc>,
    pub timeout_minutes: Option<i64>,
}

/// A `table_control_history` row, written by a database trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRecord {
    pub history_id: i64,
    pub table_id: i64,
    pub operation: String,
    pub changed_at: DateTime<Utc>,
    pub changed_by: Option<String>,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Creates or upgrades the control tables; safe to run again.
    async fn migrate(&self) -> Result<()>;

    /// Where the store is, for messages (credentials removed).
    fn describe(&self) -> String;

    /// Adds or changes a connection; `connection_history` records it as the CLI's change.
    async fn upsert_connection(&self, connection: &ConnectionConfig) -> Result<()> {
        self.upsert_connection_by(connection, "cli").await
    }
    /// [`Store::upsert_connection`] for a caller that the change's record names.
    async fn upsert_connection_by(
        &self,
        connection: &ConnectionConfig,
        changed_by: &str,
    ) -> Result<()>;
    /// Who changed a connection, and which fields, newest first.
    async fn connection_history(&self, name: &str) -> Result<Vec<ConnectionChange>>;
    async fn connection(&self, name: &str) -> Result<Option<ConnectionConfig>>;
    async fn connections(&self) -> Result<Vec<ConnectionConfig>>;
    /// The named connection, or an error that lists the known ones.
    async fn require_connection(&self, name: &str) -> Result<ConnectionConfig> {
        match self.connection(name).await? {
            Some(c) => Ok(c),
            None => Err(Error::UnknownConnection {
                name: name.to_string(),
                known: self
                    .connections()
                    .await?
                    .into_iter()
                    .map(|c| c.name)
                    .collect(),
            }),
        }
    }
    /// Fails while a table still uses the connection.
    async fn delete_connection(&self, name: &str) -> Result<bool>;

    /// Inserts a table; new tables are due at once (`next_load_date_time` = `now`).
    async fn insert_table(&self, spec: &TableSpec, now: DateTime<Utc>) -> Result<i64>;
    async fn update_table_spec(
        &self,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn table(&self, table_id: i64) -> Result<Option<TableControl>>;
    async fn table_by_destination(&self, destination: &TargetTable)
        -> Result<Option<TableControl>>;
    /// Every table that can be read; rows that cannot are left out (see
    /// [`Store::invalid_tables`]).
    async fn tables(&self) -> Result<Vec<TableControl>>;
    /// The rows of `table_control` that cannot be read, and why.
    async fn invalid_tables(&self) -> Result<Vec<InvalidTable>>;

    /// Records a `Queued` run and marks the table `Queued`; a conflict when another run of the
    /// table holds a live lease (it is loading the table now).
    async fn create_run(&self, run: &NewRun) -> Result<i64>;
    /// Moves a `Queued` run to `In Progress`; `false` when it is no longer queued (a monitor
    /// cancelled it), in which case the load must not start.
    async fn start_run(&self, run_id: i64, worker: &str, started_at: DateTime<Utc>)
        -> Result<bool>;
    /// Records how a run ended and moves its table's state, in one transaction; `false` (and
    /// nothing written) when `owner` may not end it: the run was closed by a monitor, or
    /// another worker holds it.
    async fn finish_run(
        &self,
        run_id: i64,
        owner: RunOwner<'_>,
        update: &RunUpdate,
    ) -> Result<bool>;
    /// Whether `worker` still owns the open, uncancelled run `run_id` with a lease that runs
    /// past `until`: asked right before every commit.
    async fn lease_holds(&self, run_id: i64, worker: &str, until: DateTime<Utc>) -> Result<bool>;
    /// Sets (or, with `None`, forgets) the watermark by hand.
    async fn set_watermark(&self, table_id: i64, watermark: Option<&Watermark>) -> Result<()>;
    /// Progress inside a run (a committed backfill chunk), saved at once; `false` (and nothing
    /// saved) when the run is no longer open and `worker`'s.
    async fn save_backfill_cursor(
        &self,
        run_id: i64,
        worker: &str,
        cursor: Option<&str>,
    ) -> Result<bool>;
    /// Marks the table's `Queued` / `In Progress` runs but `except_run` `Failed` with `reason`,
    /// those whose lease ran out or that have none (a live worker's run is left alone);
    /// returns them.
    async fn abandon_runs(
        &self,
        table_id: i64,
        except_run: Option<RunId>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>>;
    async fn run(&self, run_id: i64) -> Result<Option<RunRecord>>;
    /// Newest first.
    async fn runs(&self, table_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>>;
    /// Newest first.
    async fn table_history(&self, table_id: i64) -> Result<Vec<HistoryRecord>>;

    /// Claims up to `limit` due tables (active, `next_load_date_time <= now`, not queued or
    /// running), by priority then due time: each gets a `Queued` run leased to `worker`. On
    /// PostgreSQL concurrent claimers skip each other's rows (`FOR UPDATE SKIP LOCKED`). A due
    /// row that cannot be read is not claimed: it gets a `Failed` run naming the problem and
    /// waits for its next scheduled time.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Claim>>;
    /// Extends a run's lease held by `worker`; returns whether the run must stop: a monitor
    /// asked it to, or the run is no longer open and `worker`'s (it was failed as lost while
    /// its process stalled).
    async fn renew_lease(
        &self,
        run_id: i64,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Fails runs whose lease ran out (their worker is gone) and counts a retry of their
    /// tables; a table with retries left is due at once, the others keep their next load time.
    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostRun>>;
    /// Cancels runs queued since before `queued_before`.
    async fn cancel_queued(
        &self,
        queued_before: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<i64>>;
    async fn running_runs(&self) -> Result<Vec<RunningRun>>;
    /// Asks a running run to stop; its worker sees it at the next heartbeat.
    async fn request_cancel(&self, run_id: i64) -> Result<()>;
    async fn set_next_load(&self, table_id: i64, at: Option<DateTime<Utc>>) -> Result<()>;
    /// Failed runs the failed monitor has not looked at, oldest first.
    async fn runs_to_analyze(&self, limit: i64) -> Result<Vec<RunRecord>>;
    /// Stores the verdict on the run and, for a retry, reschedules the table and counts it.
    async fn record_verdict(&self, run_id: i64, verdict: &RetryVerdict) -> Result<()>;

    // What the console (`dataloader serve`) and `/metrics` read and do.
    /// How many of this binary's migrations the database has not applied.
    async fn pending_migrations(&self) -> Result<usize>;
    /// The run each table's `last_run_id` names.
    async fn last_runs(&self) -> Result<Vec<RunRecord>>;
    /// When each table's (or only `table_id`'s) newest successful run finished:
    /// `(table_id, finished_at)`.
    async fn last_successes(&self, table_id: Option<i64>) -> Result<Vec<(i64, DateTime<Utc>)>>;
    /// Every run added up by table, status and retry recommendation.
    async fn run_totals(&self) -> Result<Vec<RunTotals>>;
    /// Pauses or resumes a table, naming `changed_by` in the audit row; `false` when it was
    /// so already.
    async fn set_active(
        &self,
        table_id: i64,
        active: bool,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<bool>;
    /// Adds or replaces (by name) an alert rule.
    async fn save_alert_rule(&self, rule: &AlertRule, now: DateTime<Utc>) -> Result<()>;
    async fn alert_rules(&self) -> Result<Vec<AlertRule>>;
    /// `false` when no rule has the name. Its deliveries stay, for the record.
    async fn delete_alert_rule(&self, name: &str) -> Result<bool>;
    /// Queues a delivery; `false` when the rule's event has one already (nothing is added).
    async fn queue_delivery(&self, delivery: &NewDelivery, now: DateTime<Utc>) -> Result<bool>;
    /// Pending deliveries due at `now`, each held until `hold_until` for this caller to send.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>>;
    async fn record_attempt(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// The newest deliveries first.
    async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>>;
    /// Runs that ended at or after `since`, oldest first.
    async fn runs_finished_since(&self, since: DateTime<Utc>) -> Result<Vec<RunRecord>>;
    /// Records a worker's master-sensor tick (the first one records its start).
    async fn record_tick(&self, tick: &WorkerTick) -> Result<()>;
    /// Every worker that ever ticked, the most recent first.
    async fn workers(&self) -> Result<Vec<WorkerTick>>;
    /// [`Store::insert_table`] for a caller (a console or API token) that the audit row names
    /// instead of the database's user, in the same transaction.
    async fn insert_table_by(
        &self,
        spec: &TableSpec,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<i64>;
    /// [`Store::update_table_spec`] for a caller the audit rows name, in one transaction.
    async fn update_table_spec_by(
        &self,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<()>;
    /// Saves a new token by its hash; an error when the name is taken.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// The token with this hash (revoked ones too: the caller refuses them), noting its use.
    async fn token_by_hash(&self, token_hash: &str, now: DateTime<Utc>)
        -> Result<Option<ApiToken>>;
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// `false` when no unrevoked token has the name.
    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool>;
}
