use async_trait::async_trait;

use crate::{Result, TargetTable};

/// Maps `catalog.schema.table` to where its Delta table lives, and registers it.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The table's location as a URL (`file:///…`, `s3://…`).
    fn table_url(&self, table: &TargetTable) -> Result<String>;

    /// Whether the catalog knows the table; always for path catalogs, which have no registry.
    async fn is_registered(&self, table: &TargetTable) -> Result<bool>;

    /// Makes a table known to the catalog; a no-op for path catalogs.
    async fn register(&self, table: &TargetTable, url: &str) -> Result<()>;
}
