//! The landing-table monitor: a schema file for every destination table, and a dbt
//! `sources.yml` per schema, rewritten (atomically) only when something changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataloader_core::{Catalog, Error, Result, Store, TableControl};
use dataloader_lake::DeltaDestination;
use deltalake_types::{DataType, Schema, TimeUnit};
use serde::Serialize;

/// Arrow types through the `deltalake` re-export, without a direct arrow dependency here.
mod deltalake_types {
    pub use dataloader_lake::arrow::datatypes::{DataType, Schema, TimeUnit};
}

#[derive(Serialize)]
struct TableFile<'a> {
    table: String,
    source: SourceRef<'a>,
    strategy: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    watermark_column: Option<&'a str>,
    primary_key: &'a [String],
    columns: Vec<Column>,
}

#[derive(Serialize)]
struct SourceRef<'a> {
    connection: &'a str,
    table: String,
}

#[derive(Serialize, Clone)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    delta_type: String,
    arrow_type: String,
    nullable: bool,
}

/// A loaded table and its Delta columns, grouped per schema for `sources.yml`.
type Landed = (TableControl, Vec<Column>);

/// Delta's name for an Arrow type, as `DESCRIBE` shows it.
pub fn delta_type(t: &DataType) -> String {
    match t {
        DataType::Int8 => "byte".into(),
        DataType::Int16 => "short".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "long".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp_ntz".into(),
        other => other.to_string(),
    }
}

fn columns(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            delta_type: delta_type(f.data_type()),
            arrow_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// Writes `contents` to `path` through a temporary file and a rename, unless it is unchanged.
fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return Ok(false);
    }
    let io = |e: std::io::Error| Error::Write {
        table: path.display().to_string(),
        step: "write the schema file",
        message: e.to_string(),
        source: Some(e.into()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("yml.tmp");
    std::fs::write(&tmp, contents).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(true)
}

/// One pass: returns the files written (new or changed).
pub async fn run(store: &dyn Store, catalog: &dyn Catalog, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut by_schema: BTreeMap<(String, String), Vec<Landed>> = BTreeMap::new();
    for table in store.tables().await? {
        let dest = &table.spec.destination;
        let url = catalog.table_url(dest)?;
        let Some(schema) = DeltaDestination::new(&url, dest.to_string())?
            .schema()
            .await?
        else {
            continue;
        };
        let cols = columns(&schema);
        let spec = &table.spec;
        let file = TableFile {
            table: dest.to_string(),
            source: SourceRef {
                connection: &spec.connection,
                table: spec.source.to_string(),
            },
            strategy: spec.strategy.as_str(),
            watermark_column: spec
                .incremental_column
                .as_deref()
                .or(spec.rolling_column.as_deref()),
            primary_key: &spec.primary_keys,
            columns: cols.clone(),
        };
        let yaml = serde_yaml::to_string(&file).map_err(|e| Error::Internal(e.to_string()))?;
        let path = dir
            .join(&dest.catalog)
            .join(&dest.schema)
            .join(format!("{}.yml", dest.table));
        if write_if_changed(&path, &yaml)? {
            written.push(path);
        }
        by_schema
            .entry((dest.catalog.clone(), dest.schema.clone()))
            .or_default()
            .push((table, cols));
    }
    for ((catalog_name, schema_name), tables) in by_schema {
        let sources = serde_json::json!({
            "version": 2,
            "sources": [{
                "name": schema_name,
                "database": catalog_name,
                "schema": schema_name,
                "description": "Loaded by DataLoader",
                "tables": tables.iter().map(|(t, cols)| serde_json::json!({
                    "name": t.spec.destination.table,
                    "description": format!(
                        "{} from {} ({})",
                        t.spec.destination, t.spec.origin(), t.spec.strategy
                    ),
                    "meta": {
                        "dataloader_strategy": t.spec.strategy.as_str(),
                        "dataloader_source": t.spec.origin(),
                    },
                    "columns": cols.iter().map(|c| serde_json::json!({
                        "name": c.name,
                        "data_type": c.delta_type,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }],
        });
        let yaml = serde_yaml::to_string(&sources).map_err(|e| Error::Internal(e.to_string()))?;
        let path = dir
            .join(&catalog_name)
            .join(&schema_name)
            .join("sources.yml");
        if write_if_changed(&path, &yaml)? {
            written.push(path);
        }
    }
    Ok(written)
}
