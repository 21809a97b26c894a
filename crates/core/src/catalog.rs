//! The `Catalog` seam: where a `catalog.schema.table` lives, and how a catalog that keeps a
//! registry of tables (Unity Catalog) learns of it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::{Result, TargetTable};

/// One column as a catalog registers it, in Unity Catalog's terms (`ColumnInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogColumn {
    pub name: String,
    /// `LONG`, `STRING`, `DECIMAL`, `ARRAY`, …
    pub type_name: String,
    /// Spark's catalog string: `bigint`, `decimal(12,2)`, `array<string>`.
    pub type_text: String,
    /// The field as Spark's StructField JSON (the Delta log's own).
    pub type_json: String,
    pub type_precision: Option<i32>,
    pub type_scale: Option<i32>,
    pub position: i32,
    pub nullable: bool,
    /// Its place among the table's partition columns.
    pub partition_index: Option<i32>,
}

/// What a table should look like in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub table: TargetTable,
    /// The Delta table's location (`file:///…`, `s3://…`, `abfss://…`).
    pub location: String,
    pub columns: Vec<CatalogColumn>,
    pub comment: String,
    pub properties: BTreeMap<String, String>,
}

/// How a table's registration differs from what it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Drift {
    /// Registered as it should be (always, for catalogs without a registry).
    Current,
    Missing,
    /// Registered at another location.
    WrongLocation {
        registered: String,
    },
    /// Registered from another Delta schema (after schema evolution) or other settings.
    Stale {
        changes: Vec<String>,
    },
    /// A table of that name exists that DataLoader did not register: left alone.
    NotManaged,
}

/// Maps `catalog.schema.table` to where its Delta table lives, and registers it.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The table's location as a URL (`file:///…`, `s3://…`).
    fn table_url(&self, table: &TargetTable) -> Result<String>;

    /// What this catalog is, for `table show` and messages: `path`, `unity:https://…`.
    fn describe(&self) -> String;

    /// How the table's registration differs from `desired`.
    async fn drift(&self, desired: &Registration) -> Result<Drift>;

    /// Makes the registration match `desired` (creating it, or re-creating it after schema
    /// evolution); nothing in the Delta table is touched. Idempotent. A no-op for catalogs
    /// without a registry.
    async fn register(&self, desired: &Registration) -> Result<()>;
}
