//! One load, start to finish: recover → plan → read → write → bookkeeping. The run's lifecycle
//! is `request` (what a caller asks), `load` (the one entry point), `recovery` (before a run),
//! `run` (the run's record, started and finished), `execute` (checks and the strategy),
//! `lease` (heartbeat and commit fence) and `context` (what a strategy works with); each
//! strategy is one module under [`strategies`]. This file holds the engine and what they all
//! report.

pub mod checks;
pub mod commit_state;
mod context;
pub mod evolution;
mod execute;
pub mod fault;
mod guards;
pub mod lease;
mod load;
pub mod partition;
mod recovery;
mod registration;
mod request;
mod run;
pub mod strategies;
mod vending;

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use dataloader_core::{
    Catalog, Clock, Error, LoadStrategy, Result, RowCounts, RunStatus, StateUpdate, Store,
    TargetTable, Watermark,
};
use dataloader_lake::DeltaDestination;
use serde::Serialize;

pub(crate) use context::dest_name;
pub use context::{LoadContext, PreparedRead};
pub use evolution::{LOADED_AT, RUN_ID};
pub use lease::{spawn_heartbeat, Heartbeat, Lease, DEFAULT_LEASE};
pub use request::LoadRequest;

/// Called with the running count of rows read, for progress bars.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

pub struct Engine {
    store: Arc<dyn Store>,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    worker: String,
    batch_size: usize,
    lease: std::time::Duration,
}

/// What a finished load reports (also what `dataloader load --json` prints).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub run_id: i64,
    pub table: String,
    pub strategy: LoadStrategy,
    pub status: RunStatus,
    /// Flattened: the JSON keeps `rows_read`, `rows_written`, … at the top level.
    #[serde(flatten)]
    pub rows: RowCounts,
    pub watermark_before: Option<String>,
    pub watermark_after: Option<String>,
    pub delta_version: Option<i64>,
    pub schema_changes: Vec<String>,
    pub notes: Vec<String>,
    pub table_url: String,
    pub duration_ms: u128,
}

/// A failed load: the error, and the run that recorded it (none when the table is unknown).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct LoadFailure {
    pub run_id: Option<i64>,
    #[source]
    pub error: Error,
}

/// What a strategy did; the engine turns it into bookkeeping.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: RowCounts,
    /// Bytes of the data files the run's commits added (set by the engine, not a strategy).
    pub bytes_written: u64,
    /// The new watermark, if it moved.
    pub watermark_after: Option<Watermark>,
    /// The newest Delta version this run committed.
    pub delta_version: Option<i64>,
    /// A probe said nothing changed: no read, no commit.
    pub skipped: bool,
    pub notes: Vec<String>,
    pub state: StateUpdate,
}

impl Outcome {
    fn absorb(&mut self, other: Outcome) {
        self.rows += other.rows;
        self.watermark_after = other.watermark_after.or(self.watermark_after.take());
        self.delta_version = other.delta_version.or(self.delta_version);
        self.notes.extend(other.notes);
    }
}

/// The Delta application id of a table's loads.
pub fn app_id(table_id: i64) -> String {
    format!("dataloader-table-{table_id}")
}

/// Fills `data_type`-typed nulls, for columns the source no longer has.
pub(crate) fn nulls(data_type: &arrow::datatypes::DataType, n: usize) -> ArrayRef {
    new_null_array(data_type, n)
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, catalog: Arc<dyn Catalog>, clock: Arc<dyn Clock>) -> Self {
        Engine {
            store,
            catalog,
            clock,
            worker: recovery::default_worker_name(),
            batch_size: dataloader_sources::DEFAULT_BATCH_SIZE,
            lease: DEFAULT_LEASE,
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Names this process in the runs it records (`historical_metadata.worker`).
    pub fn with_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The Delta table of a destination, through the catalog.
    pub fn destination(&self, destination: &TargetTable) -> Result<DeltaDestination> {
        DeltaDestination::new(
            &self.catalog.table_url(destination)?,
            destination.to_string(),
        )
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }
}
