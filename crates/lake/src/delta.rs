//! Writer primitives over one Delta table. Every commit carries an application transaction
//! (`txn`), so a run can tell whether its own commit already happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dataloader_core::{BatchStream, Codec, Error, Layout, Result};
use deltalake::arrow::array::Int64Array;
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
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::logstore::{object_store_factories, StorageConfig};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;
use std::num::NonZeroU64;
use url::Url;

use crate::fence::{CommitFence, FencedStore};

/// Identifies a commit: the loaded table (app id) and the run (version), plus the state the
/// run will record once the commit is in, so a crashed run's bookkeeping can be recovered
/// from the Delta log.
#[derive(Debug, Clone)]
pub struct CommitTag {
    pub app_id: String,
    pub version: i64,
    pub state: serde_json::Map<String, serde_json::Value>,
}

/// Key of the commit metadata that carries [`CommitTag::state`].
pub const STATE_KEY: &str = "dataloader.state";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// The Delta version the commit produced; `None` when nothing was committed.
    pub version: Option<i64>,
    pub rows_written: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
}

pub struct DeltaDestination {
    url: Url,
    /// `catalog.schema.table`, for messages.
    pub(crate) name: String,
    layout: Layout,
    fence: Option<Fence>,
}

/// The fence every commit of this destination passes, and its refusal once it refused.
struct Fence {
    check: Arc<dyn CommitFence>,
    refusal: Arc<Mutex<Option<Error>>>,
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
        e: impl std::fmt::Display,
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

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `left.k = right.k AND …` over the key columns (`target`/`source` for delta-rs' MERGE).
pub(crate) fn key_predicate(keys: &[String], left: &str, right: &str) -> String {
    keys_compared(keys, left, right, "=")
}

pub(crate) fn keys_compared(keys: &[String], left: &str, right: &str, operator: &str) -> String {
    keys.iter()
        .map(|k| format!("{left}.{q} {operator} {right}.{q}", q = quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `"a", "b"`: columns quoted for SQL.
pub(crate) fn quoted_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lets `deltalake` open `s3://`, `abfss://`/`az://` and `gs://` tables; once per process.
fn register_object_stores() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        deltalake::aws::register_handlers(None);
        deltalake::azure::register_handlers(None);
        deltalake::gcp::register_handlers(None);
    });
}

impl DeltaDestination {
    pub fn new(url: &str, name: impl Into<String>) -> Result<Self> {
        register_object_stores();
        let name = name.into();
        let url = Url::parse(url).map_err(|e| Error::Write {
            table: name.clone(),
            step: "parse the table location",
            message: e.to_string(),
        })?;
        Ok(DeltaDestination {
            url,
            name,
            layout: Layout::default(),
            fence: None,
        })
    }

    /// Every commit asks `fence` first, right before it reaches the Delta log; a refusal
    /// fails the operation with the fence's own error and commits nothing.
    pub fn with_fence(mut self, fence: Arc<dyn CommitFence>) -> Self {
        self.fence = Some(Fence {
            check: fence,
            refusal: Arc::default(),
        });
        self
    }

    /// A builder for this table, its object store behind the fence when there is one.
    fn builder(&self) -> std::result::Result<DeltaTableBuilder, DeltaTableError> {
        let builder = DeltaTableBuilder::from_url(self.url.clone())?;
        let Some(fence) = &self.fence else {
            return Ok(builder);
        };
        let scheme = Url::parse(&format!("{}://", self.url.scheme()))
            .map_err(|_| DeltaTableError::InvalidTableLocation(self.url.to_string()))?;
        let factory = object_store_factories()
            .get(&scheme)
            .map(|entry| entry.value().clone())
            .ok_or_else(|| DeltaTableError::InvalidTableLocation(self.url.to_string()))?;
        let (root, _) = factory.parse_url_opts(&self.url, &StorageConfig::default())?;
        let fenced = FencedStore {
            inner: root,
            fence: fence.check.clone(),
            refusal: fence.refusal.clone(),
        };
        Ok(builder.with_storage_backend(Arc::new(fenced), self.url.clone()))
    }

    /// Writes data files with `layout` instead of the defaults.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The Parquet settings of this table's data files.
    pub(crate) fn writer_properties(&self) -> WriterProperties {
        let compression = match self.layout.codec {
            Codec::Zstd(level) => Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        };
        WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.layout.row_group_rows))
            .set_created_by(format!("dataloader {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// A failed step; the fence's refusal when it refused the commit.
    pub(crate) fn error(&self, step: &'static str, e: impl std::fmt::Display) -> Error {
        if let Some(refused) = self
            .fence
            .as_ref()
            .and_then(|f| f.refusal.lock().ok().and_then(|mut r| r.take()))
        {
            return refused;
        }
        Error::Write {
            table: self.name.clone(),
            step,
            message: e.to_string(),
        }
    }

    /// The table as it is now, or `None` when no Delta table exists there yet.
    pub async fn open(&self) -> Result<Option<DeltaTable>> {
        if self.url.scheme() == "file" {
            if let Ok(path) = self.url.to_file_path() {
                if !path.join("_delta_log").exists() {
                    return Ok(None);
                }
            }
        }
        let mut table = self
            .builder()
            .map_err(|e| self.error("open the table", e))?
            .build()
            .map_err(|e| self.error("open the table", e))?;
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(self.error("open the table", e)),
        }
    }

    pub async fn version(&self) -> Result<Option<i64>> {
        Ok(self
            .open()
            .await?
            .and_then(|t| t.version())
            .map(|v| v as i64))
    }

    /// The last run version this app committed, from the table's `txn` actions.
    pub async fn committed_version(&self, app_id: &str) -> Result<Option<i64>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let state = table
            .snapshot()
            .map_err(|e| self.error("read the table state", e))?;
        state
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.error("read the table's transactions", e))
    }

    /// The Arrow schema of the table, `None` when it does not exist yet.
    pub async fn schema(&self) -> Result<Option<SchemaRef>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let state = table
            .snapshot()
            .map_err(|e| self.error("read the table schema", e))?;
        Ok(Some(state.snapshot().arrow_schema()))
    }

    /// The state recorded by the newest commit that `app_id` made with txn `version`.
    pub async fn committed_state(
        &self,
        app_id: &str,
        version: i64,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        use futures::TryStreamExt;
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        if self.committed_version(app_id).await? != Some(version) {
            return Ok(None);
        }
        let commits: Vec<_> = table
            .history(Some(50))
            .try_collect()
            .await
            .map_err(|e| self.error("read the table history", e))?;
        Ok(commits.into_iter().find_map(|c| {
            let run = c.info.get("dataloader.run").and_then(|v| v.as_i64());
            match (run, c.info.get(STATE_KEY)) {
                (Some(r), Some(serde_json::Value::Object(state))) if r == version => {
                    Some(state.clone())
                }
                _ => None,
            }
        }))
    }

    async fn table_for_write(&self) -> Result<DeltaTable> {
        if let Some(path) = self
            .url
            .to_file_path()
            .ok()
            .filter(|_| self.url.scheme() == "file")
        {
            std::fs::create_dir_all(&path)
                .map_err(|e| self.error("create the table directory", e))?;
        }
        let mut table = self
            .builder()
            .and_then(|b| b.build())
            .map_err(|e| self.error("open the table", e))?;
        // A location without a table yet is where the first write creates it.
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
            Err(e) => Err(self.error("open the table", e)),
        }
    }

    /// The run's transaction and state, plus `extra` commit metadata.
    pub(crate) fn commit_properties(
        tag: &CommitTag,
        extra: impl IntoIterator<Item = (String, serde_json::Value)>,
    ) -> CommitProperties {
        CommitProperties::default()
            .with_application_transaction(Transaction::new(&tag.app_id, tag.version))
            .with_metadata(
                [
                    (
                        "dataloader.run".to_string(),
                        serde_json::Value::from(tag.version),
                    ),
                    (
                        STATE_KEY.to_string(),
                        serde_json::Value::Object(tag.state.clone()),
                    ),
                ]
                .into_iter()
                .chain(extra),
            )
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

    /// Replaces the table's contents (and schema) in one commit, streaming the batches into
    /// Parquet files as they come. Readers see the old table until the commit.
    pub async fn overwrite(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        self.write(schema, batches, tag, SaveMode::Overwrite).await
    }

    /// Appends the batches in one commit (creating the table if needed).
    pub async fn append(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        self.write(schema, batches, tag, SaveMode::Append).await
    }

    async fn write(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        tag: &CommitTag,
        mode: SaveMode,
    ) -> Result<WriteSummary> {
        let input = Self::streamed_input(schema, batches)?;
        let table = self.table_for_write().await?;
        // An existing table keeps its partitioning until a load replaces the whole table.
        let creates = table.version().is_none() || mode == SaveMode::Overwrite;
        let mut builder = table
            .write(Vec::<RecordBatch>::new())
            .with_input_plan(input.plan.clone())
            .with_save_mode(mode)
            .with_writer_properties(self.writer_properties())
            .with_target_file_size(NonZeroU64::new(self.layout.target_file_size))
            .with_commit_properties(Self::commit_properties(tag, []));
        if creates && !self.layout.partition_by.is_empty() {
            builder = builder.with_partition_columns(self.layout.partition_by.clone());
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
            rows_written: written,
            rows_inserted: written,
            rows_updated: 0,
        })
    }

    /// Upserts the batches by `keys` in one commit. Rows with the same key are reduced to
    /// the one with the greatest `order_by` value first, so the merge never sees two source
    /// rows for one target row.
    pub async fn merge(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        keys: &[String],
        order_by: &str,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        let Some(table) = self.open().await? else {
            return self
                .create_by_key(schema, batches, keys, order_by, tag)
                .await;
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.error("read the table state", e))?;
        if crate::merge::plain_table(snapshot, &schema) {
            return crate::merge::PlainMerge {
                destination: self,
                table,
                schema,
                keys,
                order_by,
                tag,
            }
            .run(batches)
            .await;
        }
        // MERGE scans its source more than once, so the change set is staged in a local
        // Parquet file first: memory stays bounded by one batch, whatever its size.
        let staging = tempfile::Builder::new()
            .prefix("dataloader-merge-")
            .tempdir()
            .map_err(|e| self.error("create the merge staging folder", e))?;
        let staged = staging.path().join("changes.parquet");
        let rows = self.stage(&staged, schema.clone(), batches).await?;
        if rows == 0 {
            return Ok(WriteSummary::default());
        }
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "source_rows",
            staged.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| self.error("read the staged changes", e))?;
        let source = ctx
            .sql(&newest_per_key(keys, order_by))
            .await
            .map_err(|e| self.error("plan the merge source", e))?;
        let predicate = key_predicate(keys, "target", "source");
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let (table, metrics) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_merge_schema(true)
            .with_commit_properties(Self::commit_properties(tag, []))
            .when_matched_update(|mut update| {
                for c in &columns {
                    update = update.update(quote(c), format!("source.{}", quote(c)));
                }
                update
            })
            .and_then(|b| {
                b.when_not_matched_insert(|mut insert| {
                    for c in &columns {
                        insert = insert.set(quote(c), format!("source.{}", quote(c)));
                    }
                    insert
                })
            })
            .map_err(|e| self.error("plan the merge", e))?
            .await
            .map_err(|e| self.error("merge into the table", e))?;
        Ok(WriteSummary {
            version: table.version().map(|v| v as i64),
            rows_written: (metrics.num_target_rows_inserted + metrics.num_target_rows_updated)
                as u64,
            rows_inserted: metrics.num_target_rows_inserted as u64,
            rows_updated: metrics.num_target_rows_updated as u64,
        })
    }

    /// Makes `table` queryable as `name` in `ctx`, its object store included.
    pub(crate) async fn register(
        &self,
        ctx: &SessionContext,
        table: &DeltaTable,
        name: &str,
    ) -> Result<()> {
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| self.error("scan the table", e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| self.error("scan the table", e))?;
        ctx.register_table(name, provider)
            .map_err(|e| self.error("scan the table", e))?;
        Ok(())
    }

    pub(crate) async fn stage(
        &self,
        path: &std::path::Path,
        schema: SchemaRef,
        mut batches: BatchStream,
    ) -> Result<u64> {
        let file = std::fs::File::create(path).map_err(|e| self.error("stage the changes", e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| self.error("stage the changes", e))?;
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer
                .write(&batch)
                .map_err(|e| self.error("stage the changes", e))?;
        }
        writer
            .close()
            .map_err(|e| self.error("stage the changes", e))?;
        Ok(rows)
    }
}

/// Memory for grouping keys (duplicate counts, a first load's reduction) before DataFusion spills.
pub(crate) const KEY_GROUPING_MEMORY: usize = 128 << 20;

/// `source_rows` with one row per key: the one with the greatest `order_by` value (NULL
/// counts as the oldest; among equal values any one of them).
pub(crate) fn newest_per_key(keys: &[String], order_by: &str) -> String {
    format!(
        "SELECT * EXCEPT (__dl_rank) FROM (SELECT *, row_number() OVER (PARTITION BY {} ORDER BY {} DESC NULLS LAST) AS __dl_rank FROM source_rows) WHERE __dl_rank = 1",
        quoted_list(keys),
        quote(order_by)
    )
}

/// The value of a one-row `SELECT COUNT(*) …`.
pub(crate) async fn count(ctx: &SessionContext, sql: &str) -> Result<u64, DataFusionError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>())
        .map(|a| a.value(0) as u64)
        .ok_or_else(|| DataFusionError::Internal(format!("{sql} returned no count")))
}
