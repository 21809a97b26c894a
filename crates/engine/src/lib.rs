//! One load, start to finish: recover → plan → read → write → bookkeeping. Each strategy is
//! one module under [`strategies`]; this file holds what they share.

pub mod checks;
pub mod evolution;
pub mod fault;
mod guards;
pub mod lease;
pub mod partition;
pub mod strategies;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{new_null_array, ArrayRef, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use dataloader_core::table::next_occurrence;
use dataloader_core::{
    BatchStream, Catalog, Claim, Clock, Error, LoadStrategy, NewRun, Predicate, Probe, ReadRequest,
    Result, RunOwner, RunStatus, RunUpdate, Source, SourceObject, SourceSchema, StateUpdate, Store,
    TableControl, TargetTable, Trigger, Watermark, WatermarkKind, WatermarkRead,
};
use dataloader_lake::{CommitTag, DeltaDestination};
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use evolution::{LOADED_AT, RUN_ID};
pub use lease::{spawn_heartbeat, Heartbeat, Lease, DEFAULT_LEASE};

use lease::{lease_until, RunFence};

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

/// Why a run left open by a process that died is closed (runs that committed were recovered
/// from the Delta log before).
const STOPPED_BEFORE_COMMIT: &str =
    "the process running this load stopped before it committed anything";

/// How to run one load.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Read the whole table and replace the Delta table, whatever the strategy; the watermark
    /// (if any) becomes the source's maximum. The remedy for a column Delta cannot widen.
    pub full_refresh: bool,
}

/// What a finished load reports (also what `dataloader load --json` prints).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub run_id: i64,
    pub table: String,
    pub strategy: LoadStrategy,
    pub status: RunStatus,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
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

/// The run a load records into: its id, what stops it, and the lease it holds.
struct RunHandle {
    run_id: i64,
    cancel: CancellationToken,
    lease: Lease,
}

/// `connection:source`: what a table's rows and watermark come from (see
/// `TableControl::loaded_from`).
fn loaded_from(spec: &dataloader_core::TableSpec) -> String {
    format!("{}:{}", spec.connection, spec.source)
}

/// What a strategy did; the engine turns it into bookkeeping.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
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
        self.rows_read += other.rows_read;
        self.rows_written += other.rows_written;
        self.rows_inserted += other.rows_inserted;
        self.rows_updated += other.rows_updated;
        self.rows_deleted += other.rows_deleted;
        self.watermark_after = other.watermark_after.or(self.watermark_after.take());
        self.delta_version = other.delta_version.or(self.delta_version);
        self.notes.extend(other.notes);
    }
}

/// Everything a strategy needs for one run.
pub struct LoadContext<'a> {
    pub table: &'a TableControl,
    pub source: Arc<dyn Source>,
    pub schema: SourceSchema,
    /// Destination column name of each source column, in source order.
    pub dest_names: Vec<String>,
    pub destination: DeltaDestination,
    pub run_id: i64,
    /// The worker that holds the run.
    pub worker: &'a str,
    pub loaded_at: DateTime<Utc>,
    pub batch_size: usize,
    pub progress: Option<ProgressFn>,
    pub store: Arc<dyn Store>,
    pub evolution: evolution::Evolution,
    /// The connection's limit, which also bounds the ranges of a parallel read.
    pub max_connections: Option<u32>,
    /// Whether the Delta table existed when the load started.
    pub table_exists: bool,
    rows_read: Arc<AtomicU64>,
}

/// A source read, shaped to the destination's columns and carrying the audit columns.
pub struct PreparedRead {
    pub schema: SchemaRef,
    pub batches: BatchStream,
    pub captured_max: Option<Watermark>,
}

impl LoadContext<'_> {
    pub fn object(&self) -> SourceObject {
        SourceObject::Table(self.table.spec.source.clone())
    }

    /// The destination name of a source column.
    pub fn dest_name(&self, source_column: &str) -> Result<&str> {
        dest_name(
            &self.table.spec.source,
            &self.schema,
            &self.dest_names,
            source_column,
            "requested",
        )
    }

    /// The destination names of the primary key.
    pub fn dest_keys(&self) -> Result<Vec<String>> {
        self.table
            .spec
            .primary_keys
            .iter()
            .map(|k| self.dest_name(k).map(str::to_string))
            .collect()
    }

    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }

    /// A commit tag whose state the engine will record when the run succeeds.
    pub fn tag(&self, watermark: Option<&Watermark>, state: &StateUpdate) -> CommitTag {
        let mut map = serde_json::Map::new();
        if let Some(w) = watermark {
            map.insert(
                "watermark".into(),
                serde_json::json!({"kind": w.kind.as_str(), "value": w.value}),
            );
        }
        if let Some(cursor) = &state.backfill_cursor {
            map.insert("backfill_cursor".into(), serde_json::json!(cursor));
        }
        if let Some(v) = &state.check_value {
            map.insert("check_value".into(), serde_json::json!(v));
        }
        if let Some(s) = state.strategy {
            map.insert("strategy".into(), serde_json::json!(s.as_str()));
        }
        map.insert(
            "loaded_from".into(),
            serde_json::json!(loaded_from(&self.table.spec)),
        );
        CommitTag {
            app_id: app_id(self.table.table_id),
            version: self.run_id,
            state: map,
        }
    }

    pub async fn probe(&self, probe: &Probe) -> Result<Option<Watermark>> {
        self.source.probe(&self.object(), &self.schema, probe).await
    }

    /// Reads every column, shaped to the destination.
    pub async fn read(
        &self,
        filter: Option<Predicate>,
        watermark: Option<WatermarkRead>,
    ) -> Result<PreparedRead> {
        fault::point("before_read");
        let request = ReadRequest {
            object: self.object(),
            columns: self.schema.columns.clone(),
            filter,
            watermark,
            batch_size: self.batch_size,
        };
        let ranges = partition::ranges(
            &self.source,
            &request,
            &self.schema,
            &self.table.spec,
            self.max_connections,
        )
        .await?;
        let output = match ranges {
            Some(ranges) => {
                tracing::info!(ranges = ranges.len(), "parallel read");
                partition::read(&self.source, request, ranges).await?
            }
            None => self.source.read(request).await?,
        };
        let loaded_at = self.loaded_at.timestamp_micros();
        let run_id = self.run_id;
        let plan = self.evolution.clone();
        let counter = self.rows_read.clone();
        let progress = self.progress.clone();
        let batches = output.batches.map(move |batch| {
            let batch = batch?;
            let n = batch.num_rows();
            let before = counter.fetch_add(n as u64, Ordering::Relaxed);
            if before > 0 {
                fault::point("mid_stream");
            }
            if let Some(p) = &progress {
                p(before + n as u64);
            }
            let mut columns = plan.shape(&batch)?;
            columns.push(Arc::new(
                TimestampMicrosecondArray::from(vec![loaded_at; n]).with_timezone("UTC"),
            ));
            columns.push(Arc::new(Int64Array::from(vec![run_id; n])));
            RecordBatch::try_new(plan.target.clone(), columns)
                .map_err(|e| Error::Internal(format!("shaping a batch for the destination: {e}")))
        });
        Ok(PreparedRead {
            schema: self.evolution.target.clone(),
            batches: Box::pin(batches),
            captured_max: output.captured_max,
        })
    }

    /// Reads only the primary key, renamed to the destination's names.
    pub async fn read_keys(&self) -> Result<(SchemaRef, BatchStream)> {
        let indexes: Vec<usize> = self
            .table
            .spec
            .primary_keys
            .iter()
            .filter_map(|k| self.schema.columns.iter().position(|c| &c.name == k))
            .collect();
        let output = self
            .source
            .read(ReadRequest {
                object: self.object(),
                columns: indexes
                    .iter()
                    .map(|&i| self.schema.columns[i].clone())
                    .collect(),
                filter: None,
                watermark: None,
                batch_size: self.batch_size,
            })
            .await?;
        let schema = Arc::new(arrow::datatypes::Schema::new(
            indexes
                .iter()
                .zip(output.schema.fields())
                .map(|(&i, f)| {
                    arrow::datatypes::Field::new(&self.dest_names[i], f.data_type().clone(), true)
                })
                .collect::<Vec<_>>(),
        ));
        let out = schema.clone();
        let batches = output.batches.map(move |b| {
            let b = b?;
            RecordBatch::try_new(out.clone(), b.columns().to_vec())
                .map_err(|e| Error::Internal(e.to_string()))
        });
        Ok((schema, Box::pin(batches)))
    }

    /// Rows the NULL policy leaves out, as a note for the run's history row.
    pub async fn skipped_nulls_note(&self, column: &str) -> Result<Option<String>> {
        let nulls = self.probe(&Probe::NullCount(column.to_string())).await?;
        Ok(nulls.filter(|n| n.value != "0").map(|n| {
            format!(
                "{} rows with NULL {column} not loaded (null_watermark: skip)",
                n.value
            )
        }))
    }
}

/// The destination name of a source column, given each column's (`dest_names`, in source
/// order); `role` says why it was asked for, in the error.
pub(crate) fn dest_name<'a>(
    source: &dataloader_core::SourceTable,
    schema: &SourceSchema,
    dest_names: &'a [String],
    column: &str,
    role: &'static str,
) -> Result<&'a str> {
    schema
        .columns
        .iter()
        .position(|c| c.name == column)
        .map(|i| dest_names[i].as_str())
        .ok_or_else(|| Error::ColumnNotFound {
            table: source.to_string(),
            column: column.to_string(),
            role,
            columns: schema.column_names(),
        })
}

/// Whether a run that the Delta log says committed lacks its bookkeeping: still open (its
/// process died), or closed as lost or cancelled without its commit recorded (its lease ran out,
/// or a signal or a monitor stopped it after the commit).
fn committed_but_unrecorded(run: &dataloader_core::RunRecord) -> bool {
    match run.status {
        RunStatus::Queued | RunStatus::InProgress => true,
        RunStatus::Failed | RunStatus::Cancelled => {
            run.delta_version.is_none()
                && matches!(run.error_class.as_deref(), Some("WorkerLost" | "Cancelled"))
        }
        _ => false,
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
            worker: default_worker_name(),
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

    /// Runs one load of the table now and records it in `historical_metadata`.
    pub async fn load(
        &self,
        destination: &TargetTable,
        trigger: Trigger,
        progress: Option<ProgressFn>,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        self.load_with(destination, trigger, progress, LoadOptions::default())
            .await
    }

    pub async fn load_with(
        &self,
        destination: &TargetTable,
        trigger: Trigger,
        progress: Option<ProgressFn>,
        options: LoadOptions,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        self.load_until(
            destination,
            trigger,
            progress,
            options,
            CancellationToken::new(),
        )
        .await
    }

    /// A load that `cancel` stops (on a signal, say): nothing is committed after it fires and
    /// the run ends `Cancelled`. The run holds a lease while it runs, so that a process killed
    /// outright leaves a run the master sensor fails, not a table that stays `In Progress`.
    pub async fn load_until(
        &self,
        destination: &TargetTable,
        trigger: Trigger,
        progress: Option<ProgressFn>,
        options: LoadOptions,
        cancel: CancellationToken,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let no_run = |error| LoadFailure {
            run_id: None,
            error,
        };
        let find = || async {
            self.store
                .table_by_destination(destination)
                .await?
                .ok_or_else(|| Error::UnknownTable {
                    destination: destination.to_string(),
                })
        };
        let table = find().await.map_err(no_run)?;
        let (table, dest, recovered) = self.prepare(table, -1).await.map_err(no_run)?;
        let queued_at = self.clock.now();
        let run_id = self
            .store
            .create_run(&NewRun {
                table_id: table.table_id,
                trigger,
                queued_at,
                watermark_before: table.incremental_value.clone(),
                worker: self.worker.clone(),
                lease_until: lease_until(queued_at, self.lease),
            })
            .await
            .map_err(no_run)?;
        let heartbeat = spawn_heartbeat(
            self.store.clone(),
            self.clock.clone(),
            run_id,
            self.worker.clone(),
            self.lease,
            cancel.clone(),
        );
        let run = RunHandle {
            run_id,
            cancel,
            lease: heartbeat.lease(),
        };
        self.execute_run(&table, run, dest, recovered, progress, options)
            .await
    }

    /// Runs a load the scheduler claimed (its run is already `Queued`, its heartbeat already
    /// running: `lease` is the one that heartbeat keeps). `cancel` stops it cooperatively:
    /// nothing is committed after it fires and the run ends `Cancelled`.
    pub async fn run_claimed(
        &self,
        claim: &Claim,
        progress: Option<ProgressFn>,
        cancel: CancellationToken,
        lease: Lease,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let (table, dest, recovered) = self
            .prepare(claim.table.clone(), claim.run_id)
            .await
            .map_err(|error| LoadFailure {
                run_id: Some(claim.run_id),
                error,
            })?;
        let run = RunHandle {
            run_id: claim.run_id,
            cancel,
            lease,
        };
        self.execute_run(
            &table,
            run,
            dest,
            recovered,
            progress,
            LoadOptions::default(),
        )
        .await
    }

    /// Recovery before a run: the table's state as the Delta log says it should be.
    async fn prepare(
        &self,
        table: TableControl,
        except_run: i64,
    ) -> Result<(TableControl, DeltaDestination, Vec<String>)> {
        let destination = table.spec.destination.clone();
        let dest = self
            .destination(&destination)?
            .with_layout(table.spec.layout()?);
        let recovered = self.recover(&table, &dest, except_run).await?;
        let table = if recovered.is_empty() {
            table
        } else {
            self.store
                .table(table.table_id)
                .await?
                .ok_or_else(|| Error::UnknownTable {
                    destination: destination.to_string(),
                })?
        };
        Ok((table, dest, recovered))
    }

    async fn execute_run(
        &self,
        table: &TableControl,
        run: RunHandle,
        dest: DeltaDestination,
        recovered: Vec<String>,
        progress: Option<ProgressFn>,
        options: LoadOptions,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let RunHandle {
            run_id,
            cancel,
            lease,
        } = run;
        let destination = &table.spec.destination;
        let table_url = dest.url().to_string();
        let dest = dest.with_fence(Arc::new(RunFence {
            store: self.store.clone(),
            clock: self.clock.clone(),
            run_id,
            worker: self.worker.clone(),
            lease: lease.duration,
            table: destination.to_string(),
        }));
        let owner = RunOwner::Worker(&self.worker);
        let span = tracing::info_span!("load", run_id, table = %destination);
        async {
            let started = Instant::now();
            let started_at = self.clock.now();
            let fail = |error| LoadFailure { run_id: Some(run_id), error };
            if !self.store.start_run(run_id, &self.worker, started_at).await.map_err(fail)? {
                return Err(fail(Error::Cancelled { table: destination.to_string() }));
            }
            let mut schema_changes = Vec::new();
            let result = tokio::select! {
                result = self.execute(table, run_id, started_at, dest, progress, options, &mut schema_changes) => result,
                _ = cancel.cancelled() => Err(match lease.lost() {
                    Some(why) => Error::LeaseLost { table: destination.to_string(), run_id, message: why.clone() },
                    None => Error::Cancelled { table: destination.to_string() },
                }),
            };
            let finished_at = self.clock.now();
            match result {
                Ok(mut outcome) => {
                    fault::point("after_commit");
                    outcome.notes.extend(recovered);
                    if outcome.delta_version.is_some() {
                        outcome.state.loaded_from = Some(loaded_from(&table.spec));
                    }
                    // What committed is recorded, whatever else fails: a schedule that cannot
                    // say its next time leaves the table to manual loads, with a note.
                    let next = table.spec.next_scheduled(finished_at).unwrap_or_else(|e| {
                        outcome.notes.push(format!("no next scheduled load: {e}"));
                        None
                    });
                    let status = if outcome.skipped { RunStatus::Skipped } else { RunStatus::Succeeded };
                    let recorded = self
                        .store
                        .finish_run(
                            run_id,
                            owner,
                            &RunUpdate {
                                status,
                                finished_at,
                                rows_read: outcome.rows_read as i64,
                                rows_written: outcome.rows_written as i64,
                                rows_deleted: outcome.rows_deleted as i64,
                                bytes_written: 0,
                                watermark_after: outcome.watermark_after.clone(),
                                delta_version: outcome.delta_version,
                                error_class: None,
                                error_text: None,
                                next_load_date_time: next,
                                schema_changes: joined(&schema_changes),
                                notes: joined(&outcome.notes),
                                state: outcome.state.clone(),
                            },
                        )
                        .await
                        .map_err(fail)?;
                    if !recorded {
                        // Committed, but a monitor closed the run meanwhile (its lease ran out):
                        // the next load records the commit from the Delta log.
                        return Err(fail(Error::LeaseLost {
                            table: destination.to_string(),
                            run_id,
                            message: "was closed while it committed (its lease ran out); its commit stands and the next load records it from the Delta log".into(),
                        }));
                    }
                    tracing::info!(rows_read = outcome.rows_read, rows_written = outcome.rows_written, %status, "load finished");
                    Ok(LoadReport {
                        run_id,
                        table: destination.to_string(),
                        strategy: outcome.state.strategy.unwrap_or(table.spec.strategy),
                        status,
                        rows_read: outcome.rows_read,
                        rows_written: outcome.rows_written,
                        rows_inserted: outcome.rows_inserted,
                        rows_updated: outcome.rows_updated,
                        rows_deleted: outcome.rows_deleted,
                        watermark_before: table.incremental_value.as_ref().map(|w| w.value.clone()),
                        watermark_after: outcome
                            .watermark_after
                            .or(table.incremental_value.clone())
                            .map(|w| w.value),
                        delta_version: outcome.delta_version,
                        schema_changes,
                        notes: outcome.notes,
                        table_url,
                        duration_ms: started.elapsed().as_millis(),
                    })
                }
                Err(error) => {
                    tracing::warn!(error = %error, "load failed");
                    let cancelled = matches!(
                        error.kind(),
                        dataloader_core::ErrorKind::Cancelled | dataloader_core::ErrorKind::WorkerLost
                    );
                    // A failed table waits for its next scheduled time; the failed monitor
                    // brings a retryable one forward.
                    let next = match &table.spec.schedule {
                        Some(s) => next_occurrence(s, &table.spec.timezone, finished_at).ok(),
                        None => table.next_load_date_time,
                    };
                    let recorded = self
                        .store
                        .finish_run(
                            run_id,
                            owner,
                            &RunUpdate {
                                schema_changes: joined(&schema_changes),
                                ..RunUpdate::ended(
                                    if cancelled { RunStatus::Cancelled } else { RunStatus::Failed },
                                    finished_at,
                                    format!("{:?}", error.kind()),
                                    error.to_string(),
                                    next,
                                )
                            },
                        )
                        .await;
                    match recorded {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("the run was closed by a monitor meanwhile; its record stands"),
                        Err(e) => tracing::error!(error = %e, "could not record the failed run"),
                    }
                    Err(fail(error))
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Finishes the bookkeeping of a run that committed to Delta but stopped before recording
    /// it (the `txn` in the Delta log says so), and closes runs left `Queued`/`In Progress`.
    async fn recover(
        &self,
        table: &TableControl,
        dest: &DeltaDestination,
        except_run: i64,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let app = app_id(table.table_id);
        if let Some(committed) = dest.committed_version(&app).await? {
            let run = self.store.run(committed).await?;
            if run.as_ref().is_some_and(committed_but_unrecorded) {
                let state = dest
                    .committed_state(&app, committed)
                    .await?
                    .unwrap_or_default();
                let watermark = match state.get("watermark") {
                    Some(w) => Some(Watermark::new(
                        w["kind"]
                            .as_str()
                            .unwrap_or("text")
                            .parse::<WatermarkKind>()?,
                        w["value"].as_str().unwrap_or_default(),
                    )?),
                    None => None,
                };
                let update = StateUpdate {
                    backfill_cursor: state
                        .get("backfill_cursor")
                        .map(|c| c.as_str().map(str::to_string)),
                    check_value: state
                        .get("check_value")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    delete_scan_at: None,
                    strategy: state
                        .get("strategy")
                        .and_then(|s| s.as_str())
                        .map(str::parse)
                        .transpose()?,
                    loaded_from: state
                        .get("loaded_from")
                        .and_then(|s| s.as_str())
                        .map(str::to_string),
                };
                let now = self.clock.now();
                let recorded = self
                    .store
                    .finish_run(
                        committed,
                        RunOwner::Recovery,
                        &RunUpdate {
                            status: RunStatus::Succeeded,
                            finished_at: now,
                            rows_read: 0,
                            rows_written: 0,
                            rows_deleted: 0,
                            bytes_written: 0,
                            watermark_after: watermark,
                            delta_version: dest.version().await?,
                            error_class: None,
                            error_text: None,
                            next_load_date_time: table.next_load_date_time,
                            schema_changes: None,
                            notes: Some("committed to Delta, then its process stopped: bookkeeping recovered from the Delta log".into()),
                            state: update,
                        },
                    )
                    .await?;
                if recorded {
                    notes.push(format!("recovered run {committed}: it had committed to Delta before its process stopped"));
                }
            }
        }
        notes.extend(self.close_runs_of_gone_processes(table, except_run).await?);
        let abandoned = self
            .store
            .abandon_runs(
                table.table_id,
                except_run,
                STOPPED_BEFORE_COMMIT,
                self.clock.now(),
            )
            .await?;
        if !abandoned.is_empty() {
            notes.push(format!(
                "closed abandoned run(s) {}",
                abandoned
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(notes)
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        table: &TableControl,
        run_id: i64,
        started_at: DateTime<Utc>,
        destination: DeltaDestination,
        progress: Option<ProgressFn>,
        options: LoadOptions,
        schema_changes: &mut Vec<String>,
    ) -> Result<Outcome> {
        let spec = &table.spec;
        spec.validate()?;
        let existing = destination.schema().await?;
        if !options.full_refresh {
            guards::stored_state_fits(table, &destination, existing.is_some()).await?;
        }
        let connection = self.store.require_connection(&spec.connection).await?;
        let source = dataloader_sources::connect(&connection).await?;
        let schema = source
            .describe(&SourceObject::Table(spec.source.clone()))
            .await?;
        check_columns(table, &schema)?;
        let dest_names = spec
            .column_naming
            .apply_all(&spec.source.to_string(), &schema.column_names())?;
        if let Some(clash) = dest_names.iter().find(|n| *n == LOADED_AT || *n == RUN_ID) {
            return Err(Error::config(
                "column_naming",
                format!("{}: source column becomes \"{clash}\", a name DataLoader reserves for its audit columns", spec.source),
            ));
        }
        let rewrites_all = options.full_refresh || spec.effective_strategy() == LoadStrategy::Full;
        let evolution = evolution::plan(
            spec,
            &schema,
            &dest_names,
            existing.as_deref(),
            rewrites_all,
        )?;
        schema_changes.extend(evolution.changes.iter().cloned());
        let ctx = LoadContext {
            table,
            source,
            schema,
            dest_names,
            destination,
            run_id,
            worker: &self.worker,
            loaded_at: started_at,
            batch_size: self.batch_size,
            progress,
            store: self.store.clone(),
            evolution,
            max_connections: connection.max_connections,
            table_exists: existing.is_some(),
            rows_read: Arc::default(),
        };
        let outcome = if options.full_refresh {
            strategies::full::refresh(&ctx).await?
        } else {
            match spec.strategy {
                LoadStrategy::Full => strategies::full::run(&ctx, StateUpdate::default()).await?,
                LoadStrategy::Incremental => {
                    strategies::incremental::run(&ctx, StateUpdate::default()).await?
                }
                LoadStrategy::AppendOnly => {
                    strategies::append_only::run(&ctx, StateUpdate::default()).await?
                }
                LoadStrategy::Rolling => strategies::rolling::run(&ctx).await?,
                LoadStrategy::CheckAndLoad => strategies::check_and_load::run(&ctx).await?,
                LoadStrategy::ChunkedBackfill => strategies::chunked_backfill::run(&ctx).await?,
            }
        };
        if outcome.delta_version == Some(0) {
            self.catalog
                .register(&spec.destination, ctx.destination.url().as_str())
                .await?;
        }
        Ok(outcome)
    }
}

fn joined(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items.join("; "))
}

/// Every column the table's configuration names must exist in the source.
fn check_columns(table: &TableControl, schema: &SourceSchema) -> Result<()> {
    let spec = &table.spec;
    let named = spec
        .primary_keys
        .iter()
        .map(|k| ("primary key", k))
        .chain(spec.incremental_column.iter().map(|c| ("incremental", c)))
        .chain(spec.rolling_column.iter().map(|c| ("rolling", c)));
    for (role, column) in named {
        if schema.column(column).is_none() {
            return Err(Error::ColumnNotFound {
                table: spec.source.to_string(),
                column: column.clone(),
                role,
                columns: schema.column_names(),
            });
        }
    }
    Ok(())
}

impl Engine {
    /// Runs of the table that a process on this machine left open when it died: closed at once,
    /// rather than when their lease runs out, so that a load started again after a crash goes
    /// ahead. (Runs recovered from the Delta log were closed before this.)
    async fn close_runs_of_gone_processes(
        &self,
        table: &TableControl,
        except_run: i64,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for run in self.store.runs(Some(table.table_id), 10).await? {
            let open = run.run_id != except_run
                && matches!(run.status, RunStatus::Queued | RunStatus::InProgress);
            let Some(worker) = run.worker.as_deref().filter(|_| open) else {
                continue;
            };
            if !local_process_gone(worker) {
                continue;
            }
            let closed = self
                .store
                .finish_run(
                    run.run_id,
                    RunOwner::Recovery,
                    &RunUpdate::ended(
                        RunStatus::Failed,
                        self.clock.now(),
                        "WorkerLost",
                        STOPPED_BEFORE_COMMIT,
                        table.next_load_date_time,
                    ),
                )
                .await?;
            if !closed {
                continue;
            }
            notes.push(format!(
                "closed run {}: its process on this machine had stopped",
                run.run_id
            ));
        }
        Ok(notes)
    }
}

/// Whether `worker` (`host:pid/space…`, as [`default_worker_name`] writes it) names a process
/// of this machine's process space that no longer runs. Anything unsure counts as running:
/// another host, another boot or PID namespace (a container sharing the host name), or a
/// process hidden from us.
#[cfg(unix)]
fn local_process_gone(worker: &str) -> bool {
    // This process's own name is `host:pid/space`: another process of the same space shares
    // the `host:` prefix and the `/space` suffix after its pid.
    let own = default_worker_name();
    let Some((host, rest)) = own.split_once(':') else {
        return false;
    };
    let Some(space) = rest.split_once('/').map(|(_, space)| space) else {
        return false;
    };
    let Some(rest) = worker.strip_prefix(host).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let (pid, rest) = rest.split_at(digits);
    if !rest.starts_with(&format!("/{space}")) {
        return false;
    }
    match pid
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        Some(pid) if pid.as_raw_nonzero().get() as u32 != std::process::id() => matches!(
            rustix::process::test_kill_process(pid),
            Err(e) if e == rustix::io::Errno::SRCH
        ),
        _ => false,
    }
}

#[cfg(not(unix))]
fn local_process_gone(_worker: &str) -> bool {
    false
}

/// This boot's PID namespace, as a short token: two processes with the same host name and PID
/// are one process only when their tokens match.
fn process_space() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(boot.trim(), namespace), &mut hasher);
    Some(format!("{:08x}", std::hash::Hasher::finish(&hasher) as u32))
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into())
}

/// `host:pid/space` (`host:pid` where /proc does not tell the process space), read once.
fn default_worker_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| match process_space() {
        Some(space) => format!("{}:{}/{space}", host_name(), std::process::id()),
        None => format!("{}:{}", host_name(), std::process::id()),
    })
    .clone()
}
