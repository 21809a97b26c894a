//! The `Source` seam: one connected database, read as a stream of Arrow batches.

use std::pin::Pin;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::Stream;

use crate::{Result, SourceTable, Watermark};

pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// What to read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceObject {
    Table(SourceTable),
}

impl std::fmt::Display for SourceObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceObject::Table(t) => t.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    /// The name in the source, as the source spells it.
    pub name: String,
    /// The source's own type name, for messages and docs (`numeric(12,2)`).
    pub native_type: String,
    /// What the column becomes in Arrow and Delta.
    pub data_type: DataType,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceSchema {
    pub object: SourceObject,
    pub columns: Vec<SourceColumn>,
    /// The primary key the source declares, if any.
    pub primary_key: Vec<String>,
}

impl SourceSchema {
    pub fn column(&self, name: &str) -> Option<&SourceColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// A filter on one column, rendered by each source's SQL dialect with typed literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    Gt(String, Watermark),
    Le(String, Watermark),
    And(Vec<Predicate>),
}

#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub object: SourceObject,
    /// Columns to read, in order, as [`Source::describe`] returned them.
    pub columns: Vec<SourceColumn>,
    pub filter: Option<Predicate>,
    /// Capture `MAX(column)` of the rows matching `filter` first, in the same snapshot as the
    /// read, and bound the read by it (`column <= max`), so rows committed during the run
    /// wait for the next one instead of being skipped.
    pub bound_by_max_of: Option<String>,
    pub batch_size: usize,
}

pub struct ReadOutput {
    /// The Arrow schema of every batch: the requested columns, source names.
    pub schema: SchemaRef,
    pub batches: BatchStream,
    /// The captured maximum; `None` when nothing matched (or no bound was asked for).
    pub captured_max: Option<Watermark>,
}

#[async_trait]
pub trait Source: Send + Sync {
    /// The server's product and version, for `connection test`.
    async fn server_version(&self) -> Result<String>;

    /// Columns, native types and the Arrow types they map to; fails on an unmapped type.
    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema>;

    /// Rows matching the request, projected, in batches; memory bounded by the batch size.
    async fn read(&self, request: ReadRequest) -> Result<ReadOutput>;
}
