//! A Delta table's columns as a catalog registers them: from the Delta schema's own JSON (the
//! Spark StructField form Unity Catalog keeps as `type_json`) to Spark's type names, and a
//! fingerprint of a registration, so a catalog can tell one made before schema evolution.

use dataloader_core::{CatalogColumn, Error, Registration, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::destination::DeltaDestination;

/// The property holding [`fingerprint`] on a registered table.
pub const FINGERPRINT_PROPERTY: &str = "dataloader.schema_fingerprint";

impl DeltaDestination {
    /// The table's columns for a catalog; `None` when the table does not exist.
    pub async fn catalog_columns(&self) -> Result<Option<Vec<CatalogColumn>>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.error("read the table's schema", e))?;
        let schema = serde_json::to_value(snapshot.schema().as_ref())
            .map_err(|e| self.error("read the table's schema", e))?;
        let partitions = snapshot.metadata().partition_columns().to_vec();
        columns(&schema, &partitions).map(Some)
    }
}

/// The columns of a Delta schema (its JSON form) with `partitions` marked.
pub fn columns(schema: &Value, partitions: &[String]) -> Result<Vec<CatalogColumn>> {
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Internal(format!("a Delta schema without fields: {schema}")))?;
    fields
        .iter()
        .enumerate()
        .map(|(position, field)| {
            let name = field
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Internal(format!("a Delta field without a name: {field}")))?
                .to_string();
            let data_type = field.get("type").unwrap_or(&Value::Null);
            let (type_name, precision, scale) = type_name(data_type)?;
            Ok(CatalogColumn {
                type_text: type_text(data_type)?,
                type_json: field.to_string(),
                type_name,
                type_precision: precision,
                type_scale: scale,
                position: position as i32,
                nullable: field
                    .get("nullable")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                partition_index: partitions.iter().position(|p| *p == name).map(|i| i as i32),
                name,
            })
        })
        .collect()
}

/// A digest of everything a registration says (columns, location, comment, properties), stable across
/// runs and versions: a registration carrying another one was made from another schema or
/// other settings.
pub fn fingerprint(registration: &Registration) -> String {
    let mut hash = Sha256::new();
    for c in &registration.columns {
        // The type, not the whole field: a field's metadata (an identity column's high-water
        // mark) changes with commits that change nothing a catalog shows.
        let partition = c.partition_index.map_or(-1, |p| p);
        let field: Value = serde_json::from_str(&c.type_json).unwrap_or(Value::Null);
        let data_type = field.get("type").unwrap_or(&Value::Null);
        hash.update(format!("{}|{data_type}|{}|{partition}\n", c.name, c.nullable).as_bytes());
    }
    hash.update(registration.location.as_bytes());
    hash.update(registration.comment.as_bytes());
    for (key, value) in &registration.properties {
        hash.update(format!("\n{key}={value}").as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn unknown(data_type: &Value) -> Error {
    Error::Internal(format!("a Delta type no catalog type matches: {data_type}"))
}

/// Spark's catalog string of a Delta type.
fn type_text(data_type: &Value) -> Result<String> {
    if let Some(primitive) = data_type.as_str() {
        return Ok(match primitive {
            "long" => "bigint".into(),
            "integer" => "int".into(),
            "short" => "smallint".into(),
            "byte" => "tinyint".into(),
            other => other.into(),
        });
    }
    let field = |key: &str| data_type.get(key).ok_or_else(|| unknown(data_type));
    match data_type.get("type").and_then(Value::as_str) {
        Some("array") => Ok(format!("array<{}>", type_text(field("elementType")?)?)),
        Some("map") => Ok(format!(
            "map<{},{}>",
            type_text(field("keyType")?)?,
            type_text(field("valueType")?)?
        )),
        Some("struct") => {
            let fields = field("fields")?
                .as_array()
                .ok_or_else(|| unknown(data_type))?;
            let parts = fields
                .iter()
                .map(|f| {
                    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                    Ok(format!(
                        "{name}:{}",
                        type_text(f.get("type").unwrap_or(&Value::Null))?
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(format!("struct<{}>", parts.join(",")))
        }
        _ => Err(unknown(data_type)),
    }
}

/// Unity Catalog's `type_name`, with a decimal's precision and scale.
fn type_name(data_type: &Value) -> Result<(String, Option<i32>, Option<i32>)> {
    let Some(primitive) = data_type.as_str() else {
        let kind = data_type.get("type").and_then(Value::as_str);
        return match kind {
            Some(k @ ("array" | "map" | "struct")) => Ok((k.to_ascii_uppercase(), None, None)),
            _ => Err(unknown(data_type)),
        };
    };
    if let Some(inner) = primitive
        .strip_prefix("decimal(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let (p, s) = inner.split_once(',').ok_or_else(|| unknown(data_type))?;
        let parse = |n: &str| n.trim().parse::<i32>().map_err(|_| unknown(data_type));
        return Ok(("DECIMAL".into(), Some(parse(p)?), Some(parse(s)?)));
    }
    let name = match primitive {
        "long" => "LONG",
        "integer" => "INT",
        "short" => "SHORT",
        "byte" => "BYTE",
        "timestamp_ntz" => "TIMESTAMP_NTZ",
        "string" | "float" | "double" | "boolean" | "binary" | "date" | "timestamp" => {
            return Ok((primitive.to_ascii_uppercase(), None, None))
        }
        _ => return Err(unknown(data_type)),
    };
    Ok((name.into(), None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_fields_become_spark_catalog_columns() {
        let schema = serde_json::json!({"type": "struct", "fields": [
            {"name": "id", "type": "long", "nullable": false, "metadata": {}},
            {"name": "amount", "type": "decimal(12,2)", "nullable": true, "metadata": {}},
            {"name": "at", "type": "timestamp_ntz", "nullable": true, "metadata": {}},
            {"name": "tags", "type": {"type": "array", "elementType": "string", "containsNull": true},
             "nullable": true, "metadata": {}},
            {"name": "attrs", "type": {"type": "map", "keyType": "string", "valueType": "integer",
             "valueContainsNull": true}, "nullable": true, "metadata": {}},
            {"name": "spot", "type": {"type": "struct", "fields": [
                {"name": "x", "type": "double", "nullable": true, "metadata": {}}]},
             "nullable": true, "metadata": {}},
            {"name": "region", "type": "string", "nullable": true, "metadata": {}}
        ]});
        let columns = columns(&schema, &["region".to_string()]).unwrap();
        let texts: Vec<(&str, &str, &str)> = columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_name.as_str(), c.type_text.as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("id", "LONG", "bigint"),
                ("amount", "DECIMAL", "decimal(12,2)"),
                ("at", "TIMESTAMP_NTZ", "timestamp_ntz"),
                ("tags", "ARRAY", "array<string>"),
                ("attrs", "MAP", "map<string,int>"),
                ("spot", "STRUCT", "struct<x:double>"),
                ("region", "STRING", "string"),
            ]
        );
        assert_eq!(
            (columns[1].type_precision, columns[1].type_scale),
            (Some(12), Some(2))
        );
        assert!(!columns[0].nullable);
        assert_eq!(
            serde_json::from_str::<Value>(&columns[0].type_json).unwrap(),
            serde_json::json!({"name": "id", "type": "long", "nullable": false, "metadata": {}})
        );
        assert_eq!(columns[6].partition_index, Some(0));
        assert_eq!(columns[5].position, 5);

        let registration = Registration {
            table: dataloader_core::TargetTable::parse("bronze.s.t").unwrap(),
            location: "file:///lake/bronze/s/t".into(),
            columns: columns.clone(),
            comment: "c".into(),
            properties: [("dataloader.strategy".to_string(), "full".to_string())].into(),
        };
        let before = fingerprint(&registration);
        assert_eq!(before, fingerprint(&registration.clone()), "stable");
        let mut evolved = registration.clone();
        evolved.columns.push(CatalogColumn {
            name: "added".into(),
            ..columns[0].clone()
        });
        assert_ne!(before, fingerprint(&evolved));
        let mut restrategized = registration.clone();
        restrategized
            .properties
            .insert("dataloader.strategy".into(), "incremental".into());
        assert_ne!(before, fingerprint(&restrategized));
        let mut with_metadata = registration.clone();
        with_metadata.columns[0].type_json =
            r#"{"name":"id","type":"long","nullable":false,"metadata":{"delta.identity.highWaterMark":7}}"#.into();
        assert_eq!(
            before,
            fingerprint(&with_metadata),
            "metadata is not the schema"
        );
    }
}
