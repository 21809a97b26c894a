//! The delta-rs write that overwrite, append and a merged table's first load all go through:
//! the batches stream into Parquet files as they come and land in one commit. Also
//! [`WriteSummary`], what every writing operation reports.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dataloader_core::{BatchStream, Error, Result, RowCounts};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::TaskContext;
use deltalake::datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;
use deltalake::datafusion::physical_plan::SendableRecordBatchStream;
use deltalake::protocol::SaveMode;
use futures::StreamExt;

use crate::destination::DeltaDestination;
use crate::tag::CommitTag;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// The Delta version the commit produced; `None` when nothing was committed.
    pub version: Option<i64>,
    /// Written, inserted and updated; a write reads nothing and deletes nothing.
    pub rows: RowCounts,
}

/// Hands a [`BatchStream`] to DataFusion once, keeping our own error if the stream fails so
/// the user sees it instead of DataFusion's wrapper.
#[derive(Debug)]
struct OnceStream {
    schema: SchemaRef,
    inner: Mutex<Option<BatchStreamHolder>>,
    failure: Arc<Mutex<Option<Error>>>,
    rows: Arc<AtomicU64>,
}

struct BatchStreamHolder(BatchStream);

struct StreamedInput {
    plan: LogicalPlan,
    failure: Arc<Mutex<Option<Error>>>,
    rows: Arc<AtomicU64>,
}

impl StreamedInput {
    /// Our own error if the source stream failed, else the writer's.
    fn error(
        &self,
        destination: &DeltaDestination,
        step: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        match self.failure.lock().ok().and_then(|mut f| f.take()) {
            Some(source_error) => source_error,
            None => destination.error(step, e),
        }
    }
}

impl std::fmt::Debug for BatchStreamHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchStream")
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.inner.lock().ok().and_then(|mut s| s.take());
        let failure = self.failure.clone();
        let rows = self.rows.clone();
        match taken {
            Some(BatchStreamHolder(stream)) => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                stream.map(move |item| match item {
                    Ok(batch) => {
                        rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        Ok(batch)
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                        Err(DataFusionError::Execution(message))
                    }
                }),
            )),
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Internal(
                        "the source stream can be read only once".into(),
                    ))
                }),
            )),
        }
    }
}

/// Wraps the batches as a one-shot DataFusion plan that counts rows and keeps a source
/// error for [`StreamedInput::error`].
fn streamed_input(schema: SchemaRef, batches: BatchStream) -> Result<StreamedInput> {
    let failure = Arc::new(Mutex::new(None));
    let rows = Arc::new(AtomicU64::new(0));
    let partition = Arc::new(OnceStream {
        schema: schema.clone(),
        inner: Mutex::new(Some(BatchStreamHolder(batches))),
        failure: failure.clone(),
        rows: rows.clone(),
    });
    let table = StreamingTable::try_new(schema, vec![partition])
        .map_err(|e| Error::Internal(format!("streaming source: {e}")))?;
    let plan = LogicalPlanBuilder::scan("source", provider_as_source(Arc::new(table)), None)
        .and_then(|b| b.build())
        .map_err(|e| Error::Internal(format!("write plan: {e}")))?;
    Ok(StreamedInput {
        plan,
        failure,
        rows,
    })
}

impl DeltaDestination {
    /// Writes the batches in one commit with `mode` (creating the table if needed).
    pub(crate) async fn write(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        tag: &CommitTag,
        mode: SaveMode,
    ) -> Result<WriteSummary> {
        let input = streamed_input(schema, batches)?;
        let table = self.table_for_write().await?;
        let layout = self.layout();
        // An existing table keeps its partitioning until a load replaces the whole table.
        let creates = table.version().is_none() || mode == SaveMode::Overwrite;
        let mut builder = table
            .write(Vec::<RecordBatch>::new())
            .with_input_plan(input.plan.clone())
            .with_save_mode(mode)
            .with_writer_properties(self.writer_properties())
            .with_target_file_size(NonZeroU64::new(layout.target_file_size))
            .with_commit_properties(tag.commit_properties([]));
        if creates && !layout.partition_by.is_empty() {
            builder = builder.with_partition_columns(layout.partition_by.clone());
        }
        if mode == SaveMode::Overwrite {
            builder = builder.with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite);
        } else {
            builder = builder.with_schema_mode(deltalake::operations::write::SchemaMode::Merge);
        }
        let table = builder
            .await
            .map_err(|e| input.error(self, "write the table", e))?;
        let written = input.rows.load(Ordering::Relaxed);
        Ok(WriteSummary {
            version: table.version().map(|v| v as i64),
            rows: RowCounts {
                written,
                inserted: written,
                ..RowCounts::default()
            },
        })
    }
}
