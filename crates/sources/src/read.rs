//! What every SQL source's `read` shares: the upper bound from the captured maximum, the
//! WHERE clause, and the row-by-row batch assembly that feeds a bounded channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use dataloader_core::{
    BatchStream, Error, Predicate, ReadOutput, ReadRequest, Result, SourceColumn, SourceObject,
    Watermark, WatermarkKind,
};
use tokio::sync::mpsc;

use crate::batch::{BatchBuilder, ColumnBuilder};
use crate::dialect::SqlDialect;

/// Batches in flight between the reading task and the writer: the back-pressure that bounds
/// memory to a few batches.
const CHANNEL_DEPTH: usize = 2;

/// The watermark kind of the column whose maximum bounds the read.
pub fn watermark_kind(
    request: &ReadRequest,
    table: &str,
    kind_of: impl Fn(usize) -> Option<WatermarkKind>,
) -> Result<Option<WatermarkKind>> {
    let Some(w) = &request.watermark else {
        return Ok(None);
    };
    let idx = column_index(&request.columns, &w.column, table, "incremental")?;
    kind_of(idx)
        .map(Some)
        .ok_or_else(|| not_a_watermark(&request.columns[idx], table))
}

pub fn not_a_watermark(column: &SourceColumn, table: &str) -> Error {
    Error::config(
        "incremental_column",
        format!(
            "column \"{}\" of {table} has type {}, which cannot be a watermark (use an integer, numeric, date, timestamp or text column)",
            column.name, column.native_type
        ),
    )
}

pub fn column_index(
    columns: &[SourceColumn],
    column: &str,
    table: &str,
    role: &'static str,
) -> Result<usize> {
    columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| Error::ColumnNotFound {
            table: table.to_string(),
            column: column.to_string(),
            role,
            columns: columns.iter().map(|c| c.name.clone()).collect(),
        })
}

/// A source query's columns, checked: a read selects them by name, so each name must be one
/// column's.
pub fn query_columns(object: &SourceObject, names: &[&str]) -> Result<()> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::config(
                "source_query",
                format!("{object} returns more than one column named \"{name}\": give each its own alias"),
            ));
        }
    }
    Ok(())
}

/// A read that matched nothing: the schema and no batches.
pub fn empty_output(schema: SchemaRef, captured_max: Option<Watermark>) -> ReadOutput {
    ReadOutput {
        schema,
        batches: Box::pin(futures::stream::empty()),
        captured_max,
    }
}

/// `SELECT … FROM from[ WHERE …]` over `columns`, each one written by `expr(index, quoted
/// name)` (the dialect's quoting plus any cast its reader needs).
pub fn select_sql(
    dialect: &dyn SqlDialect,
    columns: &[SourceColumn],
    expr: impl Fn(usize, String) -> String,
    from: &str,
    filter: Option<&Predicate>,
) -> Result<String> {
    let list = columns
        .iter()
        .enumerate()
        .map(|(i, c)| expr(i, dialect.quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "SELECT {list} FROM {from}{}",
        where_clause(dialect, filter)?
    ))
}

/// A watermark as the source printed it; a `timestamptz` printed in UTC without its offset
/// gets one, so it reads back as the instant it is.
pub fn utc_watermark(kind: WatermarkKind, text: String) -> Result<Watermark> {
    match kind {
        WatermarkKind::TimestampTz => Watermark::new(kind, format!("{text}+00")),
        _ => Watermark::new(kind, text),
    }
}

/// ` WHERE …`, or nothing.
pub fn where_clause(dialect: &dyn SqlDialect, filter: Option<&Predicate>) -> Result<String> {
    Ok(match filter {
        Some(p) => format!(" WHERE {}", dialect.render(p)?),
        None => String::new(),
    })
}

pub fn batch_schema(columns: &[SourceColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The reading task's end of a read: fills column builders row by row and sends each full
/// batch, waiting while the writer is behind.
pub struct BatchSender {
    builder: BatchBuilder,
    tx: mpsc::Sender<Result<RecordBatch>>,
    table: String,
    names: Vec<String>,
    /// Set when the read ends on purpose (finished or failed with an error): a reading task
    /// that stops otherwise, by a panic say, must not look like the end of the rows.
    ended: Arc<AtomicBool>,
}

impl BatchSender {
    /// The sender, and the stream the writer consumes.
    pub fn new(schema: SchemaRef, batch_size: usize, table: &str) -> Result<(Self, BatchStream)> {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        let ended = Arc::new(AtomicBool::new(false));
        let sender = BatchSender {
            builder: BatchBuilder::new(schema, batch_size.max(1))?,
            tx,
            table: table.to_string(),
            names,
            ended: ended.clone(),
        };
        let shown = table.to_string();
        let stream = futures::stream::unfold(Some(rx), move |rx| {
            let (ended, shown) = (ended.clone(), shown.clone());
            async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(b) => Some((b, Some(rx))),
                    None if ended.load(Ordering::Acquire) => None,
                    None => Some((
                        Err(Error::Internal(format!(
                            "reading {shown} stopped before its last row"
                        ))),
                        None,
                    )),
                }
            }
        });
        Ok((sender, Box::pin(stream)))
    }

    pub fn column(&mut self, i: usize) -> &mut ColumnBuilder {
        &mut self.builder.columns[i]
    }

    /// Ends the read with an error for the writer to report.
    pub async fn fail(&self, error: Error) {
        self.ended.store(true, Ordering::Release);
        let _ = self.tx.send(Err(error)).await;
    }

    /// Sends a whole batch (for sources that receive batches rather than rows); `false` when
    /// the writer has gone.
    pub async fn send_batch(&self, batch: RecordBatch) -> bool {
        self.tx.send(Ok(batch)).await.is_ok()
    }

    /// Ends the read: column `i` holds a value the destination cannot store exactly.
    pub async fn value_error(&self, i: usize, message: String) {
        self.fail(Error::UnrepresentableValue {
            table: self.table.clone(),
            column: self.names.get(i).cloned().unwrap_or_default(),
            message,
        })
        .await;
    }

    /// Counts a finished row; `false` when the writer has gone (the load failed or stopped).
    pub async fn end_row(&mut self) -> bool {
        self.builder.rows += 1;
        if self.builder.is_full() {
            return self.tx.send(self.builder.finish()).await.is_ok();
        }
        true
    }

    /// [`Self::fail`] for a reader on a blocking thread (a synchronous driver).
    pub fn fail_blocking(&self, error: Error) {
        self.ended.store(true, Ordering::Release);
        let _ = self.tx.blocking_send(Err(error));
    }

    /// [`Self::value_error`] for a reader on a blocking thread.
    pub fn value_error_blocking(&self, i: usize, message: String) {
        self.fail_blocking(Error::UnrepresentableValue {
            table: self.table.clone(),
            column: self.names.get(i).cloned().unwrap_or_default(),
            message,
        });
    }

    /// [`Self::end_row`] for a reader on a blocking thread.
    pub fn end_row_blocking(&mut self) -> bool {
        self.builder.rows += 1;
        if self.builder.is_full() {
            return self.tx.blocking_send(self.builder.finish()).is_ok();
        }
        true
    }

    /// [`Self::finish`] for a reader on a blocking thread.
    pub fn finish_blocking(mut self) {
        self.ended.store(true, Ordering::Release);
        if self.builder.rows > 0 {
            let _ = self.tx.blocking_send(self.builder.finish());
        }
    }

    /// Sends the last, partly filled batch.
    pub async fn finish(mut self) {
        self.ended.store(true, Ordering::Release);
        if self.builder.rows > 0 {
            let _ = self.tx.send(self.builder.finish()).await;
        }
    }
}

/// Whether a probe runs the user's own SQL (a check query, or any probe of a source query),
/// which each source then runs read-only where its database can.
pub fn runs_user_sql(object: &SourceObject, probe: &dataloader_core::Probe) -> bool {
    matches!(probe, dataloader_core::Probe::Query(_))
        || matches!(object, SourceObject::Query { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;
    use futures::StreamExt;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
    }

    /// A reading task that stops without finishing (a panic, say) fails the read: the writer
    /// must never commit what it got as if it were the whole table.
    #[tokio::test]
    async fn a_reader_that_stops_early_fails_the_read() {
        let (mut sender, batches) = BatchSender::new(schema(), 2, "t").unwrap();
        let task = tokio::spawn(async move {
            for i in 0..3 {
                if let crate::batch::ColumnBuilder::Int64(b) = sender.column(0) {
                    b.append_value(i);
                }
                sender.end_row().await;
            }
            panic!("the driver gave up");
        });
        let got: Vec<Result<RecordBatch>> = batches.collect().await;
        assert!(task.await.is_err());
        assert_eq!(got.len(), 2, "one full batch, then the error");
        assert!(got[0].is_ok());
        let error = got[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("stopped before its last row"), "{error}");
    }

    #[tokio::test]
    async fn a_finished_read_ends_cleanly() {
        let (mut sender, batches) = BatchSender::new(schema(), 2, "t").unwrap();
        tokio::spawn(async move {
            for i in 0..3 {
                if let crate::batch::ColumnBuilder::Int64(b) = sender.column(0) {
                    b.append_value(i);
                }
                sender.end_row().await;
            }
            sender.finish().await;
        });
        let got: Vec<Result<RecordBatch>> = batches.collect().await;
        let rows: usize = got.iter().map(|b| b.as_ref().unwrap().num_rows()).sum();
        assert_eq!(rows, 3);
    }
}
