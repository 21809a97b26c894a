//! Schema evolution: how the source's columns meet the Delta table's.
//!
//! - A new source column is added to the Delta table (nullable); older rows read NULL.
//! - A column gone from the source stays in Delta, NULL in new rows; columns are never dropped.
//! - A widened column (int → bigint, float → double, decimal with more digits) is widened when
//!   the load rewrites the whole table (`full`, `--full-refresh`); other loads stop with the
//!   remedy, because this Delta writer cannot widen a column in place.
//! - Any other type change stops the load before anything is written.
//! - `schema_evolution: strict` stops the load on any difference at all.
//! - A column `column_types` widens is compared, and cast, as its wider type.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use dataloader_core::{
    ColumnType, ColumnTypes, Error, Result, SchemaEvolution, SourceSchema, TableSpec,
};

/// Columns DataLoader adds to every row.
pub const LOADED_AT: &str = "_loaded_at";
pub const RUN_ID: &str = "_run_id";

#[derive(Debug, Clone)]
pub struct Evolution {
    /// The destination's columns (data, then the audit columns) after this load.
    pub target: SchemaRef,
    /// For each target data column, the source column that fills it (`None`: NULL).
    fill: Vec<Option<usize>>,
    /// What changed, in words, for the run's history row.
    pub changes: Vec<String>,
}

impl Evolution {
    /// The data columns of `batch` (source order) rearranged and cast to the target's.
    pub fn shape(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.fill
            .iter()
            .zip(self.target.fields())
            .map(|(source, field)| match source {
                None => Ok(crate::nulls(field.data_type(), batch.num_rows())),
                Some(i) => {
                    let column = batch.column(*i);
                    if column.data_type() == field.data_type() {
                        Ok(column.clone())
                    } else {
                        cast(column, field.data_type()).map_err(|e| {
                            Error::Internal(format!(
                                "casting column {} to {}: {e}",
                                field.name(),
                                field.data_type()
                            ))
                        })
                    }
                }
            })
            .collect()
    }
}

fn same_type(a: &DataType, b: &DataType) -> bool {
    let norm = |t: &DataType| match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    };
    norm(a) == norm(b)
}

/// `to` holds every value of `from` exactly.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Int16, Int32 | Int64) | (Int32, Int64) | (Float32, Float64) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && i16::from(*p2) - i16::from(*s2) >= i16::from(*p1) - i16::from(*s1)
        }
        (Date32, Timestamp(TimeUnit::Microsecond, None)) => true,
        _ => false,
    }
}

/// The type each source column loads as: its mapped type, or the wider type `column_types`
/// names for it (a cast that loses nothing, or the load stops before it reads).
fn load_types(
    dest: &str,
    source: &SourceSchema,
    column_types: &ColumnTypes,
) -> Result<Vec<DataType>> {
    source
        .columns
        .iter()
        .map(|c| match column_types.get(&c.name) {
            Some(ColumnType::Wider(t)) if same_type(&c.data_type, t) || widens(&c.data_type, t) => {
                Ok(t.clone())
            }
            Some(ColumnType::Wider(t)) => Err(Error::config(
                "column_types",
                format!(
                    "{dest}: column \"{}\" is {} in the source ({}), and {t} does not hold all its values exactly: load it as string",
                    c.name, c.native_type, c.data_type
                ),
            )),
            _ => Ok(c.data_type.clone()),
        })
        .collect()
}

pub fn plan(
    spec: &TableSpec,
    source: &SourceSchema,
    dest_names: &[String],
    existing: Option<&Schema>,
    rewrites_all: bool,
    column_types: &ColumnTypes,
) -> Result<Evolution> {
    let dest = spec.destination.to_string();
    let types = load_types(&dest, source, column_types)?;
    let audit = [
        Field::new(
            LOADED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(RUN_ID, DataType::Int64, true),
    ];
    let Some(existing) = existing else {
        let mut fields: Vec<Field> = types
            .iter()
            .zip(dest_names)
            .map(|(t, n)| Field::new(n, t.clone(), true))
            .collect();
        fields.extend(audit);
        return Ok(Evolution {
            target: Arc::new(Schema::new(fields)),
            fill: (0..source.columns.len()).map(Some).collect(),
            changes: vec![],
        });
    };
    let mut fields = Vec::new();
    let mut fill = Vec::new();
    let mut changes = Vec::new();
    let mut refused = Vec::new();
    for field in existing
        .fields()
        .iter()
        .filter(|f| f.name() != LOADED_AT && f.name() != RUN_ID)
    {
        let name = field.name();
        match dest_names.iter().position(|n| n == name) {
            Some(i) => {
                let new_type = &types[i];
                let old_type = field.data_type();
                if same_type(old_type, new_type) {
                    fields.push(Field::new(name, old_type.clone(), true));
                } else if rewrites_all {
                    // The whole table is replaced: it takes the source's type, whatever it is.
                    let how = if widens(old_type, new_type) {
                        "widened"
                    } else {
                        "changed"
                    };
                    changes.push(format!("column {name} {how} from {old_type} to {new_type}"));
                    fields.push(Field::new(name, new_type.clone(), true));
                } else if widens(old_type, new_type) {
                    refused.push(format!(
                        "column \"{name}\" widened from {old_type} to {new_type} in the source; the Delta table cannot widen it in place: reload it with `dataloader load {dest} --full-refresh`"
                    ));
                    fields.push(Field::new(name, old_type.clone(), true));
                } else {
                    refused.push(format!(
                        "column \"{name}\" changed from {old_type} to {new_type} in the source, which cannot be applied to the Delta table: reload it with `dataloader load {dest} --full-refresh` (it replaces the table with the new type), or load into a new destination"
                    ));
                    fields.push(Field::new(name, old_type.clone(), true));
                }
                fill.push(Some(i));
            }
            None => {
                changes.push(format!(
                    "column {name} is no longer in the source: kept, NULL in new rows"
                ));
                fields.push(Field::new(name, field.data_type().clone(), true));
                fill.push(None);
            }
        }
    }
    for (i, name) in dest_names.iter().enumerate() {
        if existing.field_with_name(name).is_err() {
            let data_type = &types[i];
            changes.push(format!("added column {name} ({data_type})"));
            fields.push(Field::new(name, data_type.clone(), true));
            fill.push(Some(i));
        }
    }
    if !refused.is_empty() {
        return Err(Error::SchemaChange {
            table: dest,
            message: refused.join("; "),
        });
    }
    if spec.schema_evolution == SchemaEvolution::Strict && !changes.is_empty() {
        return Err(Error::SchemaChange {
            table: dest,
            message: format!(
                "schema_evolution is strict and the source changed: {}; set schema_evolution: add_columns to accept it",
                changes.join("; ")
            ),
        });
    }
    fields.extend(audit);
    Ok(Evolution {
        target: Arc::new(Schema::new(fields)),
        fill,
        changes,
    })
}
