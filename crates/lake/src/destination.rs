//! The table handle every operation starts from: where the Delta table lives, how its data
//! files are laid out, the fence its commits pass, and how to open it. Operations live in
//! `ops/`; this module knows none of them.

use std::sync::{Arc, Mutex};

use dataloader_core::{Cause, Codec, Error, Layout, Result};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::logstore::object_store::ObjectStore;
use deltalake::logstore::{object_store_factories, StorageConfig};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

use crate::fence::{CommitFence, FencedStore};
use crate::vended::{VendedStorage, VendedStore};

pub struct DeltaDestination {
    url: Url,
    /// `catalog.schema.table`, for messages.
    pub(crate) name: String,
    layout: Layout,
    fence: Option<Fence>,
    vended: VendedStorage,
    /// The task renewing `vended`, stopped with the destination.
    renewal: Option<Renewal>,
}

/// Stops a renewal task when dropped.
struct Renewal(tokio::task::AbortHandle);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fence every commit of this destination passes, and its refusal once it refused.
struct Fence {
    check: Arc<dyn CommitFence>,
    refusal: Arc<Mutex<Option<Error>>>,
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
            source: Some(e.into()),
        })?;
        Ok(DeltaDestination {
            url,
            name,
            layout: Layout::default(),
            fence: None,
            vended: VendedStorage::default(),
            renewal: None,
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

    /// A builder for this table: its object store writes with the vended credential when a
    /// catalog vended one, and sits behind the fence when there is one.
    pub(crate) fn builder(&self) -> std::result::Result<DeltaTableBuilder, DeltaTableError> {
        let builder = DeltaTableBuilder::from_url(self.url.clone())?;
        if !self.vended.in_use() && self.fence.is_none() {
            return Ok(builder);
        }
        let root: Arc<dyn ObjectStore> = if self.vended.in_use() {
            Arc::new(VendedStore::new(self.url.clone(), self.vended.clone()))
        } else {
            let scheme = Url::parse(&format!("{}://", self.url.scheme()))
                .map_err(|_| DeltaTableError::InvalidTableLocation(self.url.to_string()))?;
            let factory = object_store_factories()
                .get(&scheme)
                .map(|entry| entry.value().clone())
                .ok_or_else(|| DeltaTableError::InvalidTableLocation(self.url.to_string()))?;
            factory
                .parse_url_opts(&self.url, &StorageConfig::default())?
                .0
        };
        let store: Arc<dyn ObjectStore> = match &self.fence {
            Some(fence) => Arc::new(FencedStore {
                inner: root,
                fence: fence.check.clone(),
                refusal: fence.refusal.clone(),
            }),
            None => root,
        };
        Ok(builder.with_storage_backend(store, self.url.clone()))
    }

    /// The credential every store of this table writes with; setting it reaches the next
    /// request, of an operation under way too.
    pub fn vended_storage(&self) -> &VendedStorage {
        &self.vended
    }

    /// Keeps `task` (which renews the storage options) running as long as this destination.
    pub fn with_renewal(mut self, task: tokio::task::AbortHandle) -> Self {
        self.renewal = Some(Renewal(task));
        self
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

    /// A step failed because of `e`; the fence's refusal when it refused the commit.
    pub(crate) fn error(
        &self,
        step: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        self.failed(step, e.to_string(), Some(e.into()))
    }

    /// A step failed for a reason no foreign error carries; as [`Self::error`].
    pub(crate) fn error_message(&self, step: &'static str, message: String) -> Error {
        self.failed(step, message, None)
    }

    fn failed(&self, step: &'static str, message: String, source: Option<Cause>) -> Error {
        if let Some(refused) = self
            .fence
            .as_ref()
            .and_then(|f| f.refusal.lock().ok().and_then(|mut r| r.take()))
        {
            return refused;
        }
        self.vended.write_error(&self.name, step, message, source)
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

    /// The Arrow schema of the table, `None` when it does not exist yet.
    pub async fn schema(&self) -> Result<Option<SchemaRef>> {
        Ok(self.schema_and_version().await?.map(|(schema, _)| schema))
    }

    /// The table's Arrow schema and version, read from one load of its log; `None` when it
    /// does not exist yet.
    pub async fn schema_and_version(&self) -> Result<Option<(SchemaRef, i64)>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let Some(version) = table.version() else {
            return Ok(None);
        };
        let state = table
            .snapshot()
            .map_err(|e| self.error("read the table schema", e))?;
        Ok(Some((state.snapshot().arrow_schema(), version as i64)))
    }

    /// The table to write to, loaded when it exists; a local location's folder is made first.
    pub(crate) async fn table_for_write(&self) -> Result<DeltaTable> {
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
}
