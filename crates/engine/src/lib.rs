//! One load, start to finish: plan → read → write → bookkeeping. Each strategy is one module
//! under [`strategies`]; this file holds what they share.

pub mod strategies;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use dataloader_core::table::next_occurrence;
use dataloader_core::{
    BatchStream, Catalog, Clock, Error, LoadStrategy, NewRun, Predicate, ReadRequest, Result,
    RunStatus, RunUpdate, Source, SourceObject, SourceSchema, Store, TableControl, TargetTable,
    Trigger, Watermark,
};
use dataloader_lake::{CommitTag, DeltaDestination};
use futures::StreamExt;
use serde::Serialize;
use tracing::Instrument;

/// Columns DataLoader adds to every row.
pub const LOADED_AT: &str = "_loaded_at";
pub const RUN_ID: &str = "_run_id";

/// Called with the running count of rows read, for progress bars.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

pub struct Engine {
    store: Arc<dyn Store>,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    worker: String,
    batch_size: usize,
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
    pub watermark_before: Option<String>,
    pub watermark_after: Option<String>,
    pub delta_version: Option<i64>,
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
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    /// The new watermark, if it moved.
    pub watermark_after: Option<Watermark>,
    pub delta_version: Option<i64>,
}

/// Everything a strategy needs for one run.
pub struct LoadContext<'a> {
    pub table: &'a TableControl,
    pub source: Arc<dyn Source>,
    pub schema: SourceSchema,
    /// Destination column name of each source column, in source order.
    pub dest_names: Vec<String>,
    pub destination: DeltaDestination,
    pub tag: CommitTag,
    pub run_id: i64,
    pub loaded_at: DateTime<Utc>,
    pub batch_size: usize,
    pub progress: Option<ProgressFn>,
    rows_read: Arc<std::sync::atomic::AtomicU64>,
}

/// A source read, renamed to destination columns and carrying the audit columns.
pub struct PreparedRead {
    pub schema: SchemaRef,
    pub batches: BatchStream,
    pub captured_max: Option<Watermark>,
}

impl LoadContext<'_> {
    /// The destination name of a source column.
    pub fn dest_name(&self, source_column: &str) -> Result<&str> {
        self.schema
            .columns
            .iter()
            .position(|c| c.name == source_column)
            .map(|i| self.dest_names[i].as_str())
            .ok_or_else(|| Error::ColumnNotFound {
                table: self.table.spec.source.to_string(),
                column: source_column.to_string(),
                role: "requested",
                columns: self.schema.column_names(),
            })
    }

    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn read(
        &self,
        filter: Option<Predicate>,
        bound_by_max_of: Option<String>,
    ) -> Result<PreparedRead> {
        let output = self
            .source
            .read(ReadRequest {
                object: SourceObject::Table(self.table.spec.source.clone()),
                columns: self.schema.columns.clone(),
                filter,
                bound_by_max_of,
                batch_size: self.batch_size,
            })
            .await?;
        let mut fields: Vec<Field> = output
            .schema
            .fields()
            .iter()
            .zip(&self.dest_names)
            .map(|(f, name)| Field::new(name, f.data_type().clone(), true))
            .collect();
        fields.push(Field::new(
            LOADED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
        fields.push(Field::new(RUN_ID, DataType::Int64, false));
        let schema = Arc::new(Schema::new(fields));
        let loaded_at = self.loaded_at.timestamp_micros();
        let run_id = self.run_id;
        let out_schema = schema.clone();
        let counter = self.rows_read.clone();
        let progress = self.progress.clone();
        let batches = output.batches.map(move |batch| {
            let batch = batch?;
            let n = batch.num_rows();
            let total =
                counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed) + n as u64;
            if let Some(p) = &progress {
                p(total);
            }
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            columns.push(Arc::new(
                TimestampMicrosecondArray::from(vec![loaded_at; n]).with_timezone("UTC"),
            ));
            columns.push(Arc::new(Int64Array::from(vec![run_id; n])));
            RecordBatch::try_new(out_schema.clone(), columns)
                .map_err(|e| Error::Internal(format!("adding audit columns: {e}")))
        });
        Ok(PreparedRead {
            schema,
            batches: Box::pin(batches),
            captured_max: output.captured_max,
        })
    }
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, catalog: Arc<dyn Catalog>, clock: Arc<dyn Clock>) -> Self {
        Engine {
            store,
            catalog,
            clock,
            worker: default_worker_name(),
            batch_size: dataloader_sources::DEFAULT_BATCH_SIZE,
        }
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
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
        let no_run = |error| LoadFailure {
            run_id: None,
            error,
        };
        let table = self
            .store
            .table_by_destination(destination)
            .await
            .map_err(no_run)?
            .ok_or_else(|| {
                no_run(Error::UnknownTable {
                    destination: destination.to_string(),
                })
            })?;
        let queued_at = self.clock.now();
        let run_id = self
            .store
            .create_run(&NewRun {
                table_id: table.table_id,
                trigger,
                queued_at,
                watermark_before: table.incremental_value.clone(),
                worker: self.worker.clone(),
            })
            .await
            .map_err(no_run)?;
        let span = tracing::info_span!("load", run_id, table = %destination);
        async {
            let started = Instant::now();
            let started_at = self.clock.now();
            let fail = |error| LoadFailure {
                run_id: Some(run_id),
                error,
            };
            self.store
                .start_run(run_id, started_at)
                .await
                .map_err(fail)?;
            let table_url = self.catalog.table_url(destination).map_err(fail)?;
            let result = self
                .execute(&table, run_id, started_at, &table_url, progress)
                .await;
            let finished_at = self.clock.now();
            match result {
                Ok(outcome) => {
                    let next = match &table.spec.schedule {
                        Some(s) => Some(
                            next_occurrence(s, &table.spec.timezone, finished_at).map_err(fail)?,
                        ),
                        None => None,
                    };
                    self.store
                        .finish_run(
                            run_id,
                            &RunUpdate {
                                status: RunStatus::Succeeded,
                                finished_at,
                                rows_read: outcome.rows_read as i64,
                                rows_written: outcome.rows_written as i64,
                                rows_deleted: 0,
                                bytes_written: 0,
                                watermark_after: outcome.watermark_after.clone(),
                                delta_version: outcome.delta_version,
                                error_class: None,
                                error_text: None,
                                next_load_date_time: next,
                            },
                        )
                        .await
                        .map_err(fail)?;
                    tracing::info!(
                        rows_read = outcome.rows_read,
                        rows_written = outcome.rows_written,
                        "load succeeded"
                    );
                    Ok(LoadReport {
                        run_id,
                        table: destination.to_string(),
                        strategy: table.spec.strategy,
                        status: RunStatus::Succeeded,
                        rows_read: outcome.rows_read,
                        rows_written: outcome.rows_written,
                        rows_inserted: outcome.rows_inserted,
                        rows_updated: outcome.rows_updated,
                        watermark_before: table.incremental_value.as_ref().map(|w| w.value.clone()),
                        watermark_after: outcome
                            .watermark_after
                            .or(table.incremental_value.clone())
                            .map(|w| w.value),
                        delta_version: outcome.delta_version,
                        table_url,
                        duration_ms: started.elapsed().as_millis(),
                    })
                }
                Err(error) => {
                    tracing::warn!(error = %error, "load failed");
                    let recorded = self
                        .store
                        .finish_run(
                            run_id,
                            &RunUpdate {
                                status: RunStatus::Failed,
                                finished_at,
                                rows_read: 0,
                                rows_written: 0,
                                rows_deleted: 0,
                                bytes_written: 0,
                                watermark_after: None,
                                delta_version: None,
                                error_class: Some(format!("{:?}", error.kind())),
                                error_text: Some(error.to_string()),
                                next_load_date_time: table.next_load_date_time,
                            },
                        )
                        .await;
                    if let Err(e) = recorded {
                        tracing::error!(error = %e, "could not record the failed run");
                    }
                    Err(fail(error))
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn execute(
        &self,
        table: &TableControl,
        run_id: i64,
        started_at: DateTime<Utc>,
        table_url: &str,
        progress: Option<ProgressFn>,
    ) -> Result<Outcome> {
        let spec = &table.spec;
        spec.validate()?;
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
        let ctx = LoadContext {
            table,
            source,
            schema,
            dest_names,
            destination: DeltaDestination::new(table_url, spec.destination.to_string())?,
            tag: CommitTag {
                app_id: format!("dataloader-table-{}", table.table_id),
                version: run_id,
            },
            run_id,
            loaded_at: started_at,
            batch_size: self.batch_size,
            progress,
            rows_read: Arc::default(),
        };
        let outcome = match spec.strategy {
            LoadStrategy::Full => strategies::full::run(&ctx).await?,
            LoadStrategy::Incremental => strategies::incremental::run(&ctx).await?,
        };
        if outcome.delta_version == Some(0) {
            self.catalog.register(&spec.destination, table_url).await?;
        }
        Ok(outcome)
    }
}

/// Every column the table's configuration names must exist in the source.
fn check_columns(table: &TableControl, schema: &SourceSchema) -> Result<()> {
    let spec = &table.spec;
    let named = spec
        .primary_keys
        .iter()
        .map(|k| ("primary key", k))
        .chain(spec.incremental_column.iter().map(|c| ("incremental", c)));
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

fn default_worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
