//! Staging: the one way an operation parks its incoming batches in a local Parquet file before
//! using them. A MERGE, a key scan and a first load read their input more than once, and a
//! stream can be read only once; a local file keeps memory bounded by one batch, whatever the
//! input's size.

use std::path::PathBuf;

use dataloader_core::{BatchStream, Result};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use futures::StreamExt;

use crate::destination::DeltaDestination;

/// The step a failure while staging reports, whether in writing the file or in inspecting
/// a batch.
pub(crate) const STAGE_STEP: &str = "stage the changes";

/// What is staged; it names the temporary folder, the file, and the step reported when the
/// folder cannot be made.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Staging {
    /// A merge's change set.
    MergeChanges,
    /// The source's keys, for a delete by key scan.
    SourceKeys,
    /// A merged table's first load.
    FirstLoadRows,
}

impl Staging {
    fn folder_prefix(self) -> &'static str {
        match self {
            Staging::MergeChanges => "dataloader-merge-",
            Staging::SourceKeys => "dataloader-keys-",
            Staging::FirstLoadRows => "dataloader-first-",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Staging::MergeChanges => "changes.parquet",
            Staging::SourceKeys => "keys.parquet",
            Staging::FirstLoadRows => "rows.parquet",
        }
    }

    fn folder_step(self) -> &'static str {
        match self {
            Staging::MergeChanges => "create the merge staging folder",
            Staging::SourceKeys => "create the key staging folder",
            Staging::FirstLoadRows => "create the staging folder",
        }
    }
}

/// A staged Parquet file. Its folder is deleted when this is dropped, so keep it until the
/// file's last reader is done.
pub(crate) struct Staged {
    _folder: tempfile::TempDir,
    pub(crate) path: PathBuf,
    /// How many rows the file holds.
    pub(crate) rows: u64,
}

impl DeltaDestination {
    /// Writes `batches` to a new local Parquet file compressed with `compression`, handing each
    /// batch to `inspect` before it is written (an error there stops the staging).
    pub(crate) async fn stage(
        &self,
        staging: Staging,
        compression: Compression,
        schema: SchemaRef,
        mut batches: BatchStream,
        mut inspect: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<Staged> {
        let folder = tempfile::Builder::new()
            .prefix(staging.folder_prefix())
            .tempdir()
            .map_err(|e| self.error(staging.folder_step(), e))?;
        let path = folder.path().join(staging.file_name());
        let file = std::fs::File::create(&path).map_err(|e| self.error(STAGE_STEP, e))?;
        let props = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| self.error(STAGE_STEP, e))?;
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            inspect(&batch)?;
            rows += batch.num_rows() as u64;
            writer
                .write(&batch)
                .map_err(|e| self.error(STAGE_STEP, e))?;
        }
        writer.close().map_err(|e| self.error(STAGE_STEP, e))?;
        Ok(Staged {
            _folder: folder,
            path,
            rows,
        })
    }
}
