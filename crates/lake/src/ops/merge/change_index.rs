//! Step 1 of the plain merge: index the change set while it is staged. Each key is encoded as
//! comparable bytes, and for each key the row with the greatest order value wins (NULL is the
//! smallest; on a tie the later row). Kept apart from the file rewriting, which only reads
//! the finished index.

use std::collections::HashMap;

use deltalake::arrow::array::{Array, ArrayRef, Int64Array};
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{RowConverter, SortField};

/// The same column names and types in the same order (nullability and metadata aside).
pub(super) fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Key (row format) → (order value in row format, row position in the staged file).
pub(super) type Winners = HashMap<Box<[u8]>, (Box<[u8]>, u64)>;

/// The change set's winning row per key, and where to find it in the staged file.
pub(super) struct ChangeIndex {
    pub(super) winners: Winners,
    pub(super) rows: u64,
    /// The sorted distinct values of the pruning column among the winners; `None` when a
    /// change has a NULL key, which pruning by value cannot place, so every file is read.
    pub(super) prune_values: Option<Vec<i64>>,
}

/// Turns key columns into comparable byte strings; the same fields give the same bytes, so
/// the staged keys and the target's keys meet in one hash map.
#[derive(Clone)]
pub(super) struct KeyEncoder {
    /// Name and type of each key column.
    pub(super) fields: Vec<(String, DataType)>,
}

impl KeyEncoder {
    pub(super) fn new(schema: &SchemaRef, keys: &[String]) -> std::result::Result<Self, String> {
        let fields = keys
            .iter()
            .map(|k| {
                schema
                    .field_with_name(k)
                    .map(|f| (k.clone(), f.data_type().clone()))
                    .map_err(|_| format!("the key column \"{k}\" is not in the table"))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(KeyEncoder { fields })
    }

    pub(super) fn converter(&self) -> std::result::Result<RowConverter, String> {
        RowConverter::new(
            self.fields
                .iter()
                .map(|(_, data_type)| SortField::new(data_type.clone()))
                .collect(),
        )
        .map_err(|e| e.to_string())
    }

    /// Encodes the key columns found by name in `batch` (which may hold only those).
    pub(super) fn encode(
        &self,
        converter: &RowConverter,
        batch: &RecordBatch,
    ) -> std::result::Result<deltalake::arrow::row::Rows, String> {
        let columns = self
            .fields
            .iter()
            .map(|(name, data_type)| {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| format!("a data file lacks the key column \"{name}\""))?;
                if column.data_type() == data_type {
                    Ok(column.clone())
                } else {
                    strict_cast(column, data_type)
                }
            })
            .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
        converter
            .convert_columns(&columns)
            .map_err(|e| e.to_string())
    }
}

/// The first integer key column: its file statistics bound which files can hold a key.
pub(super) fn prune_column(schema: &SchemaRef, keys: &[String]) -> Option<String> {
    keys.iter()
        .find(|k| {
            schema.field_with_name(k).is_ok_and(|f| {
                matches!(
                    f.data_type(),
                    DataType::Int8
                        | DataType::Int16
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::UInt8
                        | DataType::UInt16
                        | DataType::UInt32
                )
            })
        })
        .cloned()
}

/// A cast that fails on a value it cannot convert, where arrow's default would make it NULL.
pub(super) fn strict_cast(
    column: &ArrayRef,
    to: &DataType,
) -> std::result::Result<ArrayRef, String> {
    let options = deltalake::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    deltalake::arrow::compute::cast_with_options(column, to, &options).map_err(|e| e.to_string())
}

fn int64_values(column: &ArrayRef) -> std::result::Result<Int64Array, String> {
    let cast = strict_cast(column, &DataType::Int64)?;
    cast.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| "key values are not integers".to_string())
}

/// Builds the [`ChangeIndex`] one staged batch at a time. Errors are messages for the step
/// "stage the changes".
pub(super) struct ChangeIndexer<'a> {
    /// The change set's columns, which every batch must have.
    schema: SchemaRef,
    keys: &'a [String],
    encoder: &'a KeyEncoder,
    /// The integer key column whose values are collected for file pruning.
    prune: Option<&'a str>,
    key_converter: RowConverter,
    order_column: usize,
    order_converter: RowConverter,
    winners: Winners,
    prune_values: Vec<i64>,
    null_key: bool,
    rows: u64,
}

impl<'a> ChangeIndexer<'a> {
    pub(super) fn new(
        schema: SchemaRef,
        keys: &'a [String],
        encoder: &'a KeyEncoder,
        order_by: &str,
        prune: Option<&'a str>,
    ) -> std::result::Result<Self, String> {
        let key_converter = encoder.converter()?;
        let order_column = schema
            .index_of(order_by)
            .map_err(|_| format!("no column \"{order_by}\" to order by"))?;
        let order_converter = RowConverter::new(vec![SortField::new(
            schema.field(order_column).data_type().clone(),
        )])
        .map_err(|e| e.to_string())?;
        Ok(ChangeIndexer {
            schema,
            keys,
            encoder,
            prune,
            key_converter,
            order_column,
            order_converter,
            winners: Winners::new(),
            prune_values: Vec::new(),
            null_key: false,
            rows: 0,
        })
    }

    /// Indexes the next batch of the change set, its rows following those already indexed.
    pub(super) fn add(&mut self, batch: &RecordBatch) -> std::result::Result<(), String> {
        if !same_columns(&batch.schema(), &self.schema) {
            return Err("a batch of changes does not have the change set's columns".to_string());
        }
        self.null_key |= self
            .keys
            .iter()
            .any(|k| batch.column_by_name(k).is_some_and(|c| c.null_count() > 0));
        let key_rows = self.encoder.encode(&self.key_converter, batch)?;
        let order_rows = self
            .order_converter
            .convert_columns(&[batch.column(self.order_column).clone()])
            .map_err(|e| e.to_string())?;
        let batch_prune_values = match self.prune {
            Some(column) => Some(
                batch
                    .column_by_name(column)
                    .ok_or_else(|| format!("the changes lack the key column \"{column}\""))
                    .and_then(int64_values)?,
            ),
            None => None,
        };
        for i in 0..batch.num_rows() {
            let position = self.rows + i as u64;
            let key = key_rows.row(i);
            let order_value = order_rows.row(i);
            match self.winners.get_mut(key.as_ref()) {
                Some((best, at)) => {
                    if order_value.as_ref() >= &best[..] {
                        *best = order_value.as_ref().into();
                        *at = position;
                    }
                }
                None => {
                    self.winners
                        .insert(key.as_ref().into(), (order_value.as_ref().into(), position));
                    if let Some(values) = &batch_prune_values {
                        if values.is_valid(i) {
                            self.prune_values.push(values.value(i));
                        }
                    }
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// The index of every batch added.
    pub(super) fn finish(self) -> ChangeIndex {
        let mut prune_values = self.prune_values;
        let prune_values = (!self.null_key).then(|| {
            prune_values.sort_unstable();
            prune_values.dedup();
            prune_values
        });
        ChangeIndex {
            winners: self.winners,
            rows: self.rows,
            prune_values,
        }
    }
}
