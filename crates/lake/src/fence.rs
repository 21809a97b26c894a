//! Fencing: a commit reaches the Delta log only while its run still owns the table.
//!
//! A load that lost its lease (its process stalled, or lost the control database) must not
//! commit after another worker took the table over. Checking before a write is not enough:
//! writing the data files can take minutes. So the check runs at the one moment that
//! matters — right before the commit file is created in `_delta_log/` — by wrapping the
//! table's object store. Every Delta operation (write, merge, delete) commits through that
//! one call, whatever delta-rs does before it. delta-rs has no pre-commit hook, hence the
//! wrapper.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dataloader_core::{Error, Result};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    self, CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    RenameTargetMode,
};
use futures::stream::BoxStream;

/// Decides, right before a commit, whether it may go ahead; an error refuses it.
#[async_trait]
pub trait CommitFence: Send + Sync {
    async fn check(&self) -> Result<()>;
}

/// An object store that asks a [`CommitFence`] before it creates a Delta commit file, and
/// keeps the fence's refusal so the caller sees it instead of delta-rs' wrapper.
pub(crate) struct FencedStore {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) fence: Arc<dyn CommitFence>,
    pub(crate) refusal: Arc<Mutex<Option<Error>>>,
}

/// `_delta_log/00000000000000000042.json`: a commit, not a checkpoint or a data file.
fn is_commit(location: &Path) -> bool {
    let mut parts: Vec<_> = location.parts().collect();
    let Some(file) = parts.pop() else {
        return false;
    };
    let in_log = parts.last().is_some_and(|p| p.as_ref() == "_delta_log");
    let name = file.as_ref();
    in_log
        && name
            .strip_suffix(".json")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

impl FencedStore {
    async fn admit(&self, location: &Path) -> object_store::Result<()> {
        if !is_commit(location) {
            return Ok(());
        }
        match self.fence.check().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let message = e.to_string();
                if let Ok(mut slot) = self.refusal.lock() {
                    slot.get_or_insert(e);
                }
                Err(object_store::Error::Generic {
                    store: "dataloader fence",
                    source: message.into(),
                })
            }
        }
    }
}

impl fmt::Display for FencedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fenced({})", self.inner)
    }
}

impl fmt::Debug for FencedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FencedStore({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FencedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            self.admit(location).await?;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    // Log stores without conditional put commit by copying or renaming a temporary file.
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        if matches!(options.mode, CopyMode::Create) {
            self.admit(to).await?;
        }
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        if matches!(options.target_mode, RenameTargetMode::Create) {
            self.admit(to).await?;
        }
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commit_files_are_fenced() {
        for commit in [
            "t/_delta_log/00000000000000000000.json",
            "bucket/a/b/_delta_log/00000000000000000042.json",
        ] {
            assert!(is_commit(&Path::from(commit)), "{commit}");
        }
        for other in [
            "t/_delta_log/_last_checkpoint",
            "t/_delta_log/00000000000000000010.checkpoint.parquet",
            "t/_delta_log/00000000000000000010.crc",
            "t/part-0001.parquet",
            "t/00000000000000000001.json",
            "t/_delta_log/_commits/abc.json",
        ] {
            assert!(!is_commit(&Path::from(other)), "{other}");
        }
    }
}
