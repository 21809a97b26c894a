//! SQLite → Arrow type map, by declared column type (SQLite's own affinity rules, made
//! stricter so that a value never changes type silently).
//!
//! | declared type | Arrow / Delta | notes |
//! |---|---|---|
//! | contains `INT` | Int64 / long | |
//! | `BOOLEAN`, `BOOL` | Boolean | 0 / 1 |
//! | `REAL`, `FLOAT`, `DOUBLE` | Float64 / double | |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)` (p ≤ 38) | Decimal128(p,s) | read as text, parsed exactly |
//! | `DATE` | Date32 / date | text `YYYY-MM-DD` |
//! | `DATETIME`, `TIMESTAMP` | Timestamp(µs) / timestamp_ntz | text `YYYY-MM-DD HH:MM:SS[.ffffff]` |
//! | `TEXT`, `CHAR`, `CLOB`, `VARCHAR(n)` | Utf8 / string | |
//! | `BLOB` | Binary | |

use arrow::datatypes::{DataType, TimeUnit};
use dataloader_core::WatermarkKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Integer,
    Boolean,
    Real,
    DecimalText,
    DateText,
    TimestampText,
    Text,
    Blob,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub data_type: DataType,
    pub decode: Decode,
    pub watermark: Option<WatermarkKind>,
}

pub fn map(declared: &str) -> Option<Mapping> {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim().to_string();
    let m = |data_type, decode, watermark| {
        Some(Mapping {
            data_type,
            decode,
            watermark,
        })
    };
    match base.as_str() {
        "BOOLEAN" | "BOOL" => m(DataType::Boolean, Decode::Boolean, None),
        "DATE" => m(
            DataType::Date32,
            Decode::DateText,
            Some(WatermarkKind::Date),
        ),
        "DATETIME" | "TIMESTAMP" => m(
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Decode::TimestampText,
            Some(WatermarkKind::Timestamp),
        ),
        "DECIMAL" | "NUMERIC" => {
            let (p, s) = precision_scale(&upper)?;
            m(
                DataType::Decimal128(p, s),
                Decode::DecimalText,
                Some(WatermarkKind::Decimal),
            )
        }
        "REAL" | "FLOAT" | "DOUBLE" | "DOUBLE PRECISION" => {
            m(DataType::Float64, Decode::Real, None)
        }
        "BLOB" => m(DataType::Binary, Decode::Blob, None),
        b if b.contains("INT") => m(
            DataType::Int64,
            Decode::Integer,
            Some(WatermarkKind::Integer),
        ),
        b if b.contains("CHAR") || b.contains("CLOB") || b.contains("TEXT") => {
            m(DataType::Utf8, Decode::Text, Some(WatermarkKind::Text))
        }
        _ => None,
    }
}

fn precision_scale(upper: &str) -> Option<(u8, i8)> {
    let inner = upper.split_once('(')?.1.strip_suffix(')')?;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u8>());
    let p = parts.next()?.ok()?;
    let s = match parts.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    ((1..=38).contains(&p) && s <= p).then_some((p, s as i8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types() {
        assert_eq!(map("INTEGER").unwrap().data_type, DataType::Int64);
        assert_eq!(
            map("decimal(12, 2)").unwrap().data_type,
            DataType::Decimal128(12, 2)
        );
        assert_eq!(map("VARCHAR(20)").unwrap().data_type, DataType::Utf8);
        assert!(map("DECIMAL").is_none());
        assert!(map("GEOMETRY").is_none());
    }
}
