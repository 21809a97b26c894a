//! What a strategy works with during one run: the table, the source and its schema, the
//! destination, and the reads shaped to the destination's columns with the audit columns added.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use dataloader_core::{
    BatchStream, Error, Predicate, Probe, ReadRequest, Result, Source, SourceObject, SourceSchema,
    StateUpdate, Store, TableControl, Watermark, WatermarkRead,
};
use dataloader_lake::{CommitTag, DeltaDestination};
use futures::StreamExt;

use crate::commit_state::CommitState;
use crate::{app_id, evolution, fault, partition, ProgressFn};

/// Everything a strategy needs for one run.
pub struct LoadContext<'a> {
    pub table: &'a TableControl,
    pub source: Arc<dyn Source>,
    /// What the loads read: the source table, the table's source query, or either with
    /// columns converted to text (`column_types`).
    pub object: SourceObject,
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
    pub(crate) rows_read: Arc<AtomicU64>,
}

/// A source read, shaped to the destination's columns and carrying the audit columns.
pub struct PreparedRead {
    pub schema: SchemaRef,
    pub batches: BatchStream,
    pub captured_max: Option<Watermark>,
}

impl LoadContext<'_> {
    /// What the loads read (see [`LoadContext::object`]'s field).
    pub fn object(&self) -> SourceObject {
        self.object.clone()
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
        CommitTag {
            app_id: app_id(self.table.table_id),
            version: self.run_id,
            state: CommitState::new(watermark, state, self.table.spec.origin()).to_map(),
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
        // The destination's type of each key (a column `column_types` widens is cast).
        let schema = Arc::new(arrow::datatypes::Schema::new(
            indexes
                .iter()
                .zip(output.schema.fields())
                .map(|(&i, f)| {
                    let name = &self.dest_names[i];
                    let data_type = match self.evolution.target.field_with_name(name) {
                        Ok(target) => target.data_type().clone(),
                        Err(_) => f.data_type().clone(),
                    };
                    arrow::datatypes::Field::new(name, data_type, true)
                })
                .collect::<Vec<_>>(),
        ));
        let out = schema.clone();
        let batches = output.batches.map(move |b| {
            let b = b?;
            let columns = b
                .columns()
                .iter()
                .zip(out.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Internal(format!("casting a key to its Delta type: {e}")))?;
            RecordBatch::try_new(out.clone(), columns).map_err(|e| Error::Internal(e.to_string()))
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
