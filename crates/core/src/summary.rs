//! What the console and `/metrics` are told about many runs at once: runs added up by table
//! and outcome, a duration histogram's buckets, the schedulers' ticks.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::RunStatus;

/// What a run's note says when its data committed but the catalog did not take the
/// registration: the engine writes it, `/metrics` counts it.
pub const CATALOG_FAILURE_NOTE: &str = "registering it in the catalog failed";

/// A scheduler worker's last master-sensor tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerTick {
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub last_tick_at: DateTime<Utc>,
    /// How long the tick took (failing lost runs and claiming).
    pub last_tick_seconds: f64,
    /// How long after its planned time the tick began.
    pub last_tick_lateness_seconds: f64,
    pub ticks: i64,
    /// Loads the worker was running or waiting on at the tick.
    pub running_loads: i64,
}

/// Upper bounds, in seconds, of the buckets of the load duration histogram.
pub const DURATION_BUCKETS: [f64; 9] =
    [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0];

/// One table's runs that ended with one status (and retry recommendation), added up: what
/// `/metrics` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTotals {
    pub table_id: i64,
    pub status: RunStatus,
    /// The failed monitor's recommendation, for failed runs it has looked at.
    pub retry: Option<String>,
    pub runs: i64,
    pub rows_written: i64,
    pub bytes_written: i64,
    /// Runs that started and finished, and the sum of their durations in seconds.
    pub timed: i64,
    pub seconds: f64,
    /// How many of the timed runs took at most each of [`DURATION_BUCKETS`] (cumulative).
    pub at_most: Vec<i64>,
    /// Runs whose data committed but whose catalog registration failed.
    pub catalog_failures: i64,
}

/// What the lake and the catalog hold of one table, for its page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStorage {
    /// The Delta table's version; none before a first commit.
    pub delta_version: Option<i64>,
    /// Its data files and their bytes at that version.
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    /// The catalog registration: `current`, `missing`, `stale: …`, or why there is none.
    pub catalog: String,
}
