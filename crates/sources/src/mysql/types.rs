//! MySQL / MariaDB → Arrow type map, from `information_schema.COLUMNS`; one row per type.
//! `docs/connectors/mysql.md` is the same table for users.
//!
//! | MySQL / MariaDB | Arrow / Delta | notes |
//! |---|---|---|
//! | `tinyint`, `tinyint unsigned`, `smallint`, `year` | Int16 / short | `tinyint(1)` (BOOL) too: its values are not always 0 and 1 |
//! | `smallint unsigned`, `mediumint` (both), `int` | Int32 / integer | |
//! | `int unsigned`, `bigint` | Int64 / long | |
//! | `bigint unsigned` | Decimal128(20,0) | exact, every value fits |
//! | `decimal(p,s)`, p ≤ 38 | Decimal128(p,s) | exact; p > 38 unsupported |
//! | `float`, `double` | Float32, Float64 | |
//! | `bit(1)` | Boolean | |
//! | `bit(n)`, n > 1 | Int64 | the bits as an unsigned number |
//! | `char`, `varchar`, `*text`, `enum`, `set` | Utf8 / string | |
//! | `json` | Utf8 | the document as text |
//! | `binary`, `varbinary`, `*blob` | Binary | |
//! | `date` | Date32 / date | zero dates (`0000-00-00`) become NULL |
//! | `datetime(p)` | Timestamp(µs) / timestamp_ntz | microseconds kept; zero dates NULL |
//! | `timestamp(p)` | Timestamp(µs, UTC) / timestamp | read in UTC |
//! | `time(p)` | Utf8 `[-]HH:MM:SS[.ffffff]` | can exceed 24 h, so not a time of day |
//! | spatial types and anything else | — | unsupported |

use arrow::datatypes::{DataType, TimeUnit};
use dataloader_core::WatermarkKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Int16,
    Int32,
    Int64,
    UInt64AsDecimal,
    Float,
    Double,
    DecimalText,
    Bit1,
    BitsAsInt,
    Text,
    Bytes,
    Date,
    DateTime,
    Time,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub data_type: DataType,
    pub decode: Decode,
    pub watermark: Option<WatermarkKind>,
}

/// `data_type` is `information_schema.COLUMNS.DATA_TYPE` (`int`), `column_type` its
/// `COLUMN_TYPE` (`int(10) unsigned`).
pub fn map(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
) -> Option<Mapping> {
    use Decode::*;
    use WatermarkKind as W;
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let m = |data_type, decode, watermark| {
        Some(Mapping {
            data_type,
            decode,
            watermark,
        })
    };
    match (data_type.to_ascii_lowercase().as_str(), unsigned) {
        ("tinyint", _) | ("smallint", false) | ("year", _) => {
            m(DataType::Int16, Int16, Some(W::Integer))
        }
        ("smallint", true) | ("mediumint", _) | ("int", false) => {
            m(DataType::Int32, Int32, Some(W::Integer))
        }
        ("int", true) | ("bigint", false) => m(DataType::Int64, Int64, Some(W::Integer)),
        ("bigint", true) => m(
            DataType::Decimal128(20, 0),
            UInt64AsDecimal,
            Some(W::Integer),
        ),
        ("decimal", _) => {
            let p = precision? as u8;
            let s = scale.unwrap_or(0) as i8;
            (1..=38).contains(&p).then_some(())?;
            m(DataType::Decimal128(p, s), DecimalText, Some(W::Decimal))
        }
        ("float", _) => m(DataType::Float32, Float, None),
        ("double", _) => m(DataType::Float64, Double, None),
        ("bit", _) if column_type.eq_ignore_ascii_case("bit(1)") => {
            m(DataType::Boolean, Bit1, None)
        }
        ("bit", _) => m(DataType::Int64, BitsAsInt, None),
        ("char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext", _) => {
            m(DataType::Utf8, Text, Some(W::Text))
        }
        ("enum" | "set" | "json", _) => m(DataType::Utf8, Text, None),
        ("binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob", _) => {
            m(DataType::Binary, Bytes, None)
        }
        ("date", _) => m(DataType::Date32, Date, Some(W::Date)),
        ("datetime", _) => m(
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DateTime,
            Some(W::Timestamp),
        ),
        ("timestamp", _) => m(
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DateTime,
            Some(W::TimestampTz),
        ),
        ("time", _) => m(DataType::Utf8, Time, None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_widen_and_decimals_keep_precision() {
        assert_eq!(
            map("int", "int(10) unsigned", None, None)
                .unwrap()
                .data_type,
            DataType::Int64
        );
        assert_eq!(
            map("bigint", "bigint(20) unsigned", None, None)
                .unwrap()
                .data_type,
            DataType::Decimal128(20, 0)
        );
        assert_eq!(
            map("decimal", "decimal(12,2)", Some(12), Some(2))
                .unwrap()
                .data_type,
            DataType::Decimal128(12, 2)
        );
        assert!(map("decimal", "decimal(65,2)", Some(65), Some(2)).is_none());
        assert_eq!(
            map("bit", "bit(1)", None, None).unwrap().data_type,
            DataType::Boolean
        );
        assert!(map("geometry", "geometry", None, None).is_none());
    }
}
