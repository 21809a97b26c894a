//! Per-column type overrides (`column_types: {free_num: string}`): a column can load as text
//! when no mapped type holds its values (an unconstrained `numeric` with 42 digits), or as a
//! wider type than the one it maps to. Keys are source column names, as the source spells
//! them; the flat form (`TableSpec::column_types`) maps them to the type's name.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, TimeUnit};

use crate::{Error, Result};

const FIELD: &str = "column_types";

/// What an overridden column loads as.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// The source's own text for each value, converted by the source (exact for decimals).
    String,
    /// A type every value of the column's mapped type converts to exactly; the load checks
    /// that it really is wider once it knows the column's type.
    Wider(DataType),
}

impl ColumnType {
    /// Parses a Delta type name: `string`, `bigint`/`long`, `int`/`integer`, `double`,
    /// `decimal(p,s)` or `timestamp_ntz`.
    pub fn parse(column: &str, name: &str) -> Result<ColumnType> {
        let lower = name.trim().to_ascii_lowercase();
        let wider = |t| Ok(ColumnType::Wider(t));
        match lower.as_str() {
            "string" => Ok(ColumnType::String),
            "bigint" | "long" => wider(DataType::Int64),
            "int" | "integer" => wider(DataType::Int32),
            "double" => wider(DataType::Float64),
            "timestamp_ntz" => wider(DataType::Timestamp(TimeUnit::Microsecond, None)),
            _ => match parse_decimal(&lower) {
                Some((p, s)) if (1..=38).contains(&p) && i16::from(s) <= i16::from(p) => {
                    wider(DataType::Decimal128(p, s))
                }
                _ => Err(Error::config(
                    FIELD,
                    format!("column \"{column}\": \"{name}\" is not a type a column can load as: use string, bigint, int, double, decimal(p,s) with p at most 38, or timestamp_ntz"),
                )),
            },
        }
    }
}

fn parse_decimal(text: &str) -> Option<(u8, i8)> {
    let inner = text.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// A table's overrides, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnTypes(BTreeMap<String, ColumnType>);

impl ColumnTypes {
    /// Parses the flat form; `watermarks` are the columns whose order a load compares in the
    /// source (incremental, rolling, a parallel read's key), which must keep their type there.
    pub fn parse(flat: &BTreeMap<String, String>, watermarks: &[&str]) -> Result<ColumnTypes> {
        let mut parsed = BTreeMap::new();
        for (column, name) in flat {
            if column.trim().is_empty() {
                return Err(Error::config(FIELD, "a column name is empty"));
            }
            let column_type = ColumnType::parse(column, name)?;
            if column_type == ColumnType::String && watermarks.contains(&column.as_str()) {
                return Err(Error::config(
                    FIELD,
                    format!("column \"{column}\" is compared in the source (a watermark, window or range column), where text would sort differently than its values: it cannot load as string"),
                ));
            }
            parsed.insert(column.clone(), column_type);
        }
        Ok(ColumnTypes(parsed))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, column: &str) -> Option<&ColumnType> {
        self.0.get(column)
    }

    /// The overridden columns, in name order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The columns the source converts to text.
    pub fn text_columns(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, t)| **t == ColumnType::String)
            .map(|(c, _)| c.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn names_parse_to_types() {
        let parsed = ColumnTypes::parse(
            &flat(&[
                ("a", "string"),
                ("b", "BIGINT"),
                ("c", "decimal(38, 4)"),
                ("d", "double"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(parsed.get("a"), Some(&ColumnType::String));
        assert_eq!(parsed.get("b"), Some(&ColumnType::Wider(DataType::Int64)));
        assert_eq!(
            parsed.get("c"),
            Some(&ColumnType::Wider(DataType::Decimal128(38, 4)))
        );
        assert_eq!(parsed.text_columns(), vec!["a"]);
    }

    #[test]
    fn unknown_types_and_watermarks_as_text_are_refused() {
        let err = ColumnTypes::parse(&flat(&[("a", "varchar")]), &[]).unwrap_err();
        assert!(
            err.to_string().contains("\"varchar\" is not a type"),
            "{err}"
        );
        let err = ColumnTypes::parse(&flat(&[("a", "decimal(40,2)")]), &[]).unwrap_err();
        assert!(err.to_string().contains("at most 38"), "{err}");
        let err = ColumnTypes::parse(&flat(&[("ts", "string")]), &["ts"]).unwrap_err();
        assert!(err.to_string().contains("cannot load as string"), "{err}");
        // Widening a watermark column is fine: the source still compares its own type.
        assert!(ColumnTypes::parse(&flat(&[("ts", "bigint")]), &["ts"]).is_ok());
    }
}
