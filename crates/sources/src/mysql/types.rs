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
use mysql_async::consts::{ColumnFlags, ColumnType};

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

/// A source query's column as [`super::MysqlSource`]'s catalog lists a table's: (name,
/// DATA_TYPE, COLUMN_TYPE, nullable, precision, scale). Any may be NULL (an outer join).
pub fn of_column(
    c: &mysql_async::Column,
) -> (String, String, String, bool, Option<u64>, Option<u64>) {
    let (data_type, column_type, p, s) = from_protocol(
        c.column_type(),
        c.flags(),
        c.column_length(),
        c.decimals(),
        c.character_set(),
    );
    (c.name_str().to_string(), data_type, column_type, true, p, s)
}

/// A source query's column, from the result's column definition, in
/// `information_schema.COLUMNS` terms — `(DATA_TYPE, COLUMN_TYPE, precision, scale)` — so
/// [`map`] reads it as it reads a table's.
pub fn from_protocol(
    t: ColumnType,
    flags: ColumnFlags,
    length: u32,
    decimals: u8,
    charset: u16,
) -> (String, String, Option<u64>, Option<u64>) {
    use ColumnType::*;
    let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
    // Character set 63 is `binary`: bytes, not text.
    let binary = charset == 63;
    let name = match t {
        MYSQL_TYPE_TINY => "tinyint",
        MYSQL_TYPE_SHORT => "smallint",
        MYSQL_TYPE_INT24 => "mediumint",
        MYSQL_TYPE_LONG => "int",
        MYSQL_TYPE_LONGLONG => "bigint",
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            // The length counts the digits, a point when there is a scale, and a sign unless
            // unsigned (MySQL's `my_decimal_length_to_precision`).
            let scale = u64::from(decimals);
            let precision = u64::from(length)
                .saturating_sub(u64::from(scale > 0))
                .saturating_sub(u64::from(!unsigned));
            let sign = if unsigned { " unsigned" } else { "" };
            return (
                "decimal".into(),
                format!("decimal({precision},{scale}){sign}"),
                Some(precision),
                Some(scale),
            );
        }
        MYSQL_TYPE_FLOAT => "float",
        MYSQL_TYPE_DOUBLE => "double",
        MYSQL_TYPE_BIT => return ("bit".into(), format!("bit({length})"), None, None),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "date",
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => "datetime",
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => "timestamp",
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => "time",
        MYSQL_TYPE_YEAR => "year",
        MYSQL_TYPE_JSON => "json",
        MYSQL_TYPE_ENUM => "enum",
        MYSQL_TYPE_SET => "set",
        // ENUM and SET columns arrive as strings with a flag.
        _ if flags.contains(ColumnFlags::ENUM_FLAG) => "enum",
        _ if flags.contains(ColumnFlags::SET_FLAG) => "set",
        MYSQL_TYPE_STRING if binary => "binary",
        MYSQL_TYPE_STRING => "char",
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR if binary => "varbinary",
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR => "varchar",
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB
            if binary =>
        {
            "blob"
        }
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => {
            "text"
        }
        MYSQL_TYPE_GEOMETRY => "geometry",
        MYSQL_TYPE_NULL => "null",
        other => return (format!("{other:?}"), format!("{other:?}"), None, None),
    };
    let column_type = if unsigned {
        format!("{name} unsigned")
    } else {
        name.to_string()
    };
    (name.to_string(), column_type, None, None)
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

    #[test]
    fn query_columns_read_like_table_columns() {
        use ColumnType::*;
        let none = ColumnFlags::empty();
        let unsigned = ColumnFlags::UNSIGNED_FLAG;
        let mapped = |t, flags, length, decimals, charset| {
            let (data_type, column_type, p, s) = from_protocol(t, flags, length, decimals, charset);
            map(&data_type, &column_type, p, s).map(|m| m.data_type)
        };
        // decimal(12,2): 12 digits, a point and a sign.
        assert_eq!(
            mapped(MYSQL_TYPE_NEWDECIMAL, none, 14, 2, 63),
            Some(DataType::Decimal128(12, 2))
        );
        assert_eq!(
            mapped(MYSQL_TYPE_NEWDECIMAL, unsigned, 10, 0, 63),
            Some(DataType::Decimal128(10, 0))
        );
        assert_eq!(
            mapped(MYSQL_TYPE_LONGLONG, unsigned, 20, 0, 63),
            Some(DataType::Decimal128(20, 0))
        );
        assert_eq!(
            mapped(MYSQL_TYPE_LONG, unsigned, 10, 0, 63),
            Some(DataType::Int64)
        );
        assert_eq!(
            mapped(MYSQL_TYPE_VAR_STRING, none, 80, 0, 45),
            Some(DataType::Utf8)
        );
        assert_eq!(
            mapped(MYSQL_TYPE_VAR_STRING, none, 8, 0, 63),
            Some(DataType::Binary)
        );
        assert_eq!(
            mapped(MYSQL_TYPE_BLOB, none, 65535, 0, 45),
            Some(DataType::Utf8)
        );
        assert_eq!(
            mapped(MYSQL_TYPE_BIT, none, 1, 0, 63),
            Some(DataType::Boolean)
        );
        assert_eq!(
            from_protocol(MYSQL_TYPE_STRING, ColumnFlags::ENUM_FLAG, 5, 0, 45).0,
            "enum"
        );
        assert_eq!(mapped(MYSQL_TYPE_GEOMETRY, none, 0, 0, 63), None);
    }
}
