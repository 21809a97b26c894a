//! The path catalog: `catalog.schema.table` lives at `<root>/<catalog>/<schema>/<table>`; it
//! keeps no registry, so every table is registered as soon as it exists.

use async_trait::async_trait;
use dataloader_core::{Catalog, Drift, Error, Registration, Result, TargetTable};
use url::Url;

#[derive(Debug, Clone)]
pub struct PathCatalog {
    root: Url,
}

impl PathCatalog {
    /// `root` is a local path (made absolute) or a URL such as `s3://bucket/lake`.
    pub fn new(root: &str) -> Result<Self> {
        if let Some(rest) = root.strip_prefix("az://") {
            let (container, path) = rest.split_once('/').unwrap_or((rest, ""));
            return Err(Error::config(
                "lake_root",
                format!("\"{root}\": az:// lake roots are not accepted (their paths were mis-read by some object_store versions, delta-rs #3824): write abfss://{container}@<account>.dfs.core.windows.net/{path}"),
            ));
        }
        let root = if root.contains("://") {
            Url::parse(root)
                .map_err(|e| Error::config("lake_root", format!("\"{root}\" is not a URL: {e}")))?
        } else {
            let path = std::path::absolute(root)
                .map_err(|e| Error::config("lake_root", format!("\"{root}\": {e}")))?;
            Url::from_directory_path(&path).map_err(|_| {
                Error::config(
                    "lake_root",
                    format!("\"{root}\" is not a usable directory path"),
                )
            })?
        };
        Ok(PathCatalog { root })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }
}

#[async_trait]
impl Catalog for PathCatalog {
    fn table_url(&self, t: &TargetTable) -> Result<String> {
        // TargetTable's parts are plain names (checked when parsed), so they are safe path segments.
        let mut url = self.root.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| {
                Error::config("lake_root", format!("{} cannot hold paths", self.root))
            })?;
            segments.pop_if_empty();
            segments.push(&t.catalog).push(&t.schema).push(&t.table);
        }
        Ok(url.to_string())
    }

    fn describe(&self) -> String {
        "path".into()
    }

    fn keeps_registry(&self) -> bool {
        false
    }

    async fn drift(&self, _desired: &Registration) -> Result<Drift> {
        Ok(Drift::Current)
    }

    async fn register(&self, _desired: &Registration) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_urls() {
        let c = PathCatalog::new("/tmp/lake").unwrap();
        let t = TargetTable::parse("bronze.sales.orders").unwrap();
        assert_eq!(
            c.table_url(&t).unwrap(),
            "file:///tmp/lake/bronze/sales/orders"
        );
        let c = PathCatalog::new("s3://bucket/lake").unwrap();
        assert_eq!(
            c.table_url(&t).unwrap(),
            "s3://bucket/lake/bronze/sales/orders"
        );
    }

    #[test]
    fn az_roots_are_refused_with_what_to_write() {
        let err = PathCatalog::new("az://lake/runs").unwrap_err().to_string();
        assert!(
            err.contains("write abfss://lake@<account>.dfs.core.windows.net/runs"),
            "{err}"
        );
        let abfss =
            PathCatalog::new("abfss://lake@devstoreaccount1.dfs.core.windows.net/x").unwrap();
        let t = TargetTable::parse("bronze.sales.orders").unwrap();
        assert_eq!(
            abfss.table_url(&t).unwrap(),
            "abfss://lake@devstoreaccount1.dfs.core.windows.net/x/bronze/sales/orders"
        );
    }
}
