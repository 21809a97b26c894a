//! DataLoader's destination: Delta Lake tables through `deltalake`, named by a [`Catalog`].
//!
//! [`DeltaDestination`] (`destination`) is the table handle. Each operation on it lives in
//! its own module under `ops/` (overwrite, append, merge, delete); reading without changing
//! is `inspect`. What several operations share sits in leaf modules they import, never the
//! other way round: commit tags (`tag`), staging input in a local file (`stage`), the
//! streamed delta-rs write (`write`), SQL text (`sql`) and the commit fence (`fence`).
//!
//! [`Catalog`]: dataloader_core::Catalog

pub mod catalog;
mod destination;
pub mod expr;
pub mod fence;
pub mod inspect;
mod ops;
pub mod registration;
mod sql;
mod stage;
mod tag;
#[cfg(test)]
mod test_support;
pub mod unity;
mod vended;
mod write;

pub use catalog::PathCatalog;
pub use deltalake::arrow;
pub use deltalake::datafusion::logical_expr::Expr;
pub use deltalake::parquet;
pub use destination::DeltaDestination;
pub use fence::CommitFence;
pub use inspect::KeyCounts;
pub use tag::{CommitTag, STATE_KEY};
pub use unity::UnityCatalog;
pub use vended::VendedStorage;
pub use write::WriteSummary;

use std::sync::Arc;

use dataloader_core::{Catalog, Error, Result};

/// The catalog a setting names: `path` (the default: tables are folders under the lake root)
/// or `unity:<URL>` (tables registered in Unity Catalog, stored under the lake root).
pub fn open_catalog(setting: &str, lake_root: &str) -> Result<Arc<dyn Catalog>> {
    match setting.trim() {
        "" | "path" => Ok(Arc::new(PathCatalog::new(lake_root)?)),
        s => match s.strip_prefix("unity:") {
            Some(url) => Ok(Arc::new(UnityCatalog::new(url, lake_root)?)),
            None => Err(Error::config(
                "catalog",
                format!(
                    "\"{s}\" is not a catalog: use path, or unity:https://<workspace or server>"
                ),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_setting_is_path_or_a_unity_url() {
        let err = open_catalog("glue", "/tmp/lake").err().unwrap().to_string();
        assert!(err.contains("use path, or unity:https://"), "{err}");
        let err = open_catalog("unity:http://example.com", "/tmp/lake")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("use https://"), "{err}");
        let unity = open_catalog(
            "unity:http://127.0.0.1:9/?create_schemas=false",
            "/tmp/lake",
        )
        .unwrap();
        assert_eq!(unity.describe(), "unity:http://127.0.0.1:9");
    }
}
