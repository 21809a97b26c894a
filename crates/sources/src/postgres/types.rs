//! PostgreSQL → Arrow type map. One row per type; `docs/connectors/postgresql.md` is the same
//! table for users.
//!
//! | PostgreSQL | Arrow / Delta | read as |
//! |---|---|---|
//! | `smallint` | Int16 / short | binary |
//! | `integer` | Int32 / integer | binary |
//! | `bigint` | Int64 / long | binary |
//! | `real`, `double precision` | Float32, Float64 | binary |
//! | `boolean` | Boolean | binary |
//! | `text`, `varchar(n)`, `char(n)`, `name`, `citext` | Utf8 / string | binary |
//! | `numeric(p,s)`, p ≤ 38 | Decimal128(p,s) | binary, exact |
//! | `numeric` (unconstrained) | Decimal128(38,9) | binary; a value needing more than 29 integer or 9 fraction digits is an error |
//! | `date` | Date32 / date | binary |
//! | `timestamp` | Timestamp(µs) / timestamp_ntz | binary |
//! | `timestamptz` | Timestamp(µs, UTC) / timestamp | binary |
//! | `time`, `timetz` | Utf8 `HH:MM:SS[.ffffff][+TZ]` | `::text` |
//! | `interval` | Utf8, ISO 8601 (`P1DT2H`) | `::text` |
//! | `uuid`, `json`, `jsonb`, `xml`, `inet`, `cidr`, `macaddr`, enums | Utf8 | `::text` |
//! | `bytea` | Binary | binary |
//! | arrays of any mapped type | Utf8, a JSON array (`[1,2,null]`) | `to_json(…)::text` |

use arrow::datatypes::{DataType, TimeUnit};
use dataloader_core::WatermarkKind;

/// Unconstrained `numeric` becomes this decimal; values that do not fit are refused.
pub const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 9);

/// How a column's value arrives from the server (always in binary result format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Text,
    Bytes,
    Numeric,
    Date,
    Timestamp,
}

/// How the column appears in the SELECT list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Plain,
    CastText,
    ArrayAsJson,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub data_type: DataType,
    pub decode: Decode,
    pub select: Select,
    /// Set for types that can hold a watermark.
    pub watermark: Option<WatermarkKind>,
}

fn m(
    data_type: DataType,
    decode: Decode,
    select: Select,
    watermark: Option<WatermarkKind>,
) -> Mapping {
    Mapping {
        data_type,
        decode,
        select,
        watermark,
    }
}

/// The catalog facts about one column that decide its mapping.
#[derive(Debug, Clone)]
pub struct PgType<'a> {
    /// `pg_type.typname`, for example `int4`, `_int4`.
    pub name: &'a str,
    /// `pg_type.typtype`: `b` base, `e` enum, `d` domain, …
    pub kind: &'a str,
    /// `pg_type.typcategory`: `A` for arrays.
    pub category: &'a str,
    /// The element type's name for arrays.
    pub element: Option<&'a str>,
    pub typmod: i32,
}

pub fn map(t: &PgType<'_>) -> Option<Mapping> {
    use Decode::*;
    use Select::*;
    use WatermarkKind as W;
    Some(match t.name {
        "int2" => m(DataType::Int16, I16, Plain, Some(W::Integer)),
        "int4" => m(DataType::Int32, I32, Plain, Some(W::Integer)),
        "int8" => m(DataType::Int64, I64, Plain, Some(W::Integer)),
        "float4" => m(DataType::Float32, F32, Plain, None),
        "float8" => m(DataType::Float64, F64, Plain, None),
        "bool" => m(DataType::Boolean, Bool, Plain, None),
        "text" | "varchar" | "bpchar" | "name" | "citext" => {
            m(DataType::Utf8, Text, Plain, Some(W::Text))
        }
        "numeric" => {
            let (p, s) = numeric_precision_scale(t.typmod)?;
            m(DataType::Decimal128(p, s), Numeric, Plain, Some(W::Decimal))
        }
        "date" => m(DataType::Date32, Date, Plain, Some(W::Date)),
        "timestamp" => m(
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Timestamp,
            Plain,
            Some(W::Timestamp),
        ),
        "timestamptz" => m(
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Timestamp,
            Plain,
            Some(W::TimestampTz),
        ),
        "time" | "timetz" | "interval" | "uuid" | "json" | "jsonb" | "xml" | "inet" | "cidr"
        | "macaddr" | "macaddr8" => m(DataType::Utf8, Text, CastText, None),
        "bytea" => m(DataType::Binary, Bytes, Plain, None),
        _ if t.kind == "e" => m(DataType::Utf8, Text, CastText, None),
        _ if t.category == "A" => {
            let element = t.element?;
            // The element must itself be mappable (and not an array of something exotic).
            map(&PgType {
                name: element,
                kind: "b",
                category: "",
                element: None,
                typmod: -1,
            })?;
            m(DataType::Utf8, Text, ArrayAsJson, None)
        }
        _ => return None,
    })
}

/// `numeric(p,s)` from the type modifier; `None` (unsupported) when p > 38 or s < 0.
fn numeric_precision_scale(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return Some(UNCONSTRAINED_NUMERIC);
    }
    let precision = ((typmod - 4) >> 16) & 0xffff;
    let scale = (typmod - 4) & 0x7ff;
    if precision > 38 || precision == 0 || scale > precision {
        return None;
    }
    Some((precision as u8, scale as i8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, typmod: i32) -> PgType<'_> {
        PgType {
            name,
            kind: "b",
            category: "",
            element: None,
            typmod,
        }
    }

    #[test]
    fn numeric_modifiers() {
        // numeric(12,2): typmod = ((12 << 16) | 2) + 4
        let typmod = ((12 << 16) | 2) + 4;
        assert_eq!(
            map(&t("numeric", typmod)).unwrap().data_type,
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            map(&t("numeric", -1)).unwrap().data_type,
            DataType::Decimal128(38, 9)
        );
        assert!(map(&t("numeric", ((50 << 16) | 2) + 4)).is_none());
    }

    #[test]
    fn unknown_types_are_unmapped() {
        assert!(map(&t("point", -1)).is_none());
        let arr = PgType {
            name: "_point",
            kind: "b",
            category: "A",
            element: Some("point"),
            typmod: -1,
        };
        assert!(map(&arr).is_none());
    }
}
