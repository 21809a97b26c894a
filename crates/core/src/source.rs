//! The `Source` seam: one connected database, read as a stream of Arrow batches.

use std::pin::Pin;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::Stream;

use crate::{Result, SourceTable, Watermark};

pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// What to read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceObject {
    Table(SourceTable),
    /// A table's `source_query`: one reading SELECT, read as a derived table
    /// (`SELECT … FROM (sql) src WHERE …`). `label` is the table's `source_table`: the name
    /// the rows go by in messages and history; nothing reads it.
    Query {
        sql: String,
        label: SourceTable,
    },
}

impl SourceObject {
    /// The table's name, or the label of its query.
    pub fn label(&self) -> &SourceTable {
        match self {
            SourceObject::Table(t) | SourceObject::Query { label: t, .. } => t,
        }
    }
}

impl std::fmt::Display for SourceObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceObject::Table(t) => t.fmt(f),
            SourceObject::Query { label, .. } => write!(f, "{label} (source query)"),
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
    Ge(String, Watermark),
    Lt(String, Watermark),
    Le(String, Watermark),
    IsNull(String),
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
}

/// A watermark-bounded read: the rows past `after`, up to the column's maximum captured in
/// the read's own snapshot (`after < col <= max`), plus NULLs when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkRead {
    pub column: String,
    /// Exclusive lower bound; `None` reads from the start.
    pub after: Option<Watermark>,
    /// Also read the rows whose column is NULL.
    pub include_nulls: bool,
}

/// A cheap question to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Min(String),
    Max(String),
    RowCount,
    /// A user query returning one value (trusted configuration, run as written).
    Query(String),
    /// Rows whose column is NULL.
    NullCount(String),
}

#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub object: SourceObject,
    /// Columns to read, in order, as [`Source::describe`] returned them.
    pub columns: Vec<SourceColumn>,
    pub filter: Option<Predicate>,
    /// Capture the maximum first, in the same snapshot as the read, and bound the read by it,
    /// so rows committed during the run wait for the next one instead of being skipped.
    pub watermark: Option<WatermarkRead>,
    pub batch_size: usize,
}

pub struct ReadOutput {
    /// The Arrow schema of every batch: the requested columns, source names.
    pub schema: SchemaRef,
    pub batches: BatchStream,
    /// The captured maximum; `None` when nothing past `after` (or no bound was asked for).
    pub captured_max: Option<Watermark>,
}

impl ReadRequest {
    /// The filter the source runs once it captured `max`, or `None` when nothing can match.
    pub fn effective_filter(&self, max: Option<&Watermark>) -> Option<Option<Predicate>> {
        let Some(w) = &self.watermark else {
            return Some(self.filter.clone());
        };
        let mut range = Vec::new();
        if let Some(max) = max {
            let mut bounds = Vec::new();
            if let Some(after) = &w.after {
                bounds.push(Predicate::Gt(w.column.clone(), after.clone()));
            }
            bounds.push(Predicate::Le(w.column.clone(), max.clone()));
            range.push(Predicate::And(bounds));
        }
        if w.include_nulls {
            range.push(Predicate::IsNull(w.column.clone()));
        }
        let watermark = match range.len() {
            0 => return None,
            1 => range.remove(0),
            _ => Predicate::Or(range),
        };
        Some(Some(match &self.filter {
            Some(f) => Predicate::And(vec![f.clone(), watermark]),
            None => watermark,
        }))
    }

    /// The filter for capturing the maximum: `filter AND col > after`.
    pub fn max_filter(&self) -> Option<Predicate> {
        let mut parts: Vec<Predicate> = self.filter.iter().cloned().collect();
        if let Some(WatermarkRead {
            column,
            after: Some(after),
            ..
        }) = &self.watermark
        {
            parts.push(Predicate::Gt(column.clone(), after.clone()));
        }
        match parts.len() {
            0 => None,
            1 => Some(parts.remove(0)),
            _ => Some(Predicate::And(parts)),
        }
    }
}

#[async_trait]
pub trait Source: Send + Sync {
    /// The server's product and version, for `connection test`.
    async fn server_version(&self) -> Result<String>;

    /// `object` as a query whose `columns` keep their order and names, those in `as_text`
    /// converted to the source's own text (a table's `column_types: {c: string}`); an error
    /// when the source cannot read such a query.
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject>;

    /// The names of `object`'s columns, in order, whatever their types: what a projection
    /// that converts some of them to text starts from. A source that can list them without
    /// mapping them says so here; otherwise an unmapped column fails as in `describe`.
    async fn column_names(&self, object: &SourceObject) -> Result<Vec<String>> {
        Ok(self.describe(object).await?.column_names())
    }

    /// Columns, native types and the Arrow types they map to; fails on an unmapped type.
    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema>;

    /// Rows matching the request, projected, in batches; memory bounded by the batch size.
    async fn read(&self, request: ReadRequest) -> Result<ReadOutput>;

    /// Answers a probe: a watermark-typed value for `Min`/`Max` (`None` on an empty table),
    /// an integer for counts, text for a query.
    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>>;
}
