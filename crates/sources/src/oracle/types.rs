//! Oracle → Arrow type map, from `ALL_TAB_COLUMNS`, and the decoding of driver values.
//! `docs/connectors/oracle.md` is the same table for users.
//!
//! | Oracle | Arrow / Delta | notes |
//! |---|---|---|
//! | `NUMBER(p,s)`, p ≤ 38, s ≥ 0 | Decimal128(p,s) | exact |
//! | `NUMBER(p,s)`, s < 0 | Decimal128(p − s, 0) | an integer rounded to 10^−s |
//! | `NUMBER`, `FLOAT(b)` (no decimal precision) | Decimal128(38,10) | exact; a value with more than 28 integer or 10 fraction digits fails the load, never a float |
//! | `BINARY_FLOAT`, `BINARY_DOUBLE` | Float32, Float64 | |
//! | `DATE` | Timestamp(µs) / timestamp_ntz | Oracle's DATE has a time of day |
//! | `TIMESTAMP(p ≤ 6)` | Timestamp(µs) / timestamp_ntz | |
//! | `TIMESTAMP(p) WITH TIME ZONE`, `… WITH LOCAL TIME ZONE`, p ≤ 6 | Timestamp(µs, UTC) / timestamp | converted to the UTC instant |
//! | `TIMESTAMP(7–9)` (any kind) | Utf8 `YYYY-MM-DD HH:MM:SS.fffffffff[+00:00]` | all digits kept; `timestamp_precision=microseconds` maps them to timestamps and refuses finer values |
//! | `CHAR`, `NCHAR`, `VARCHAR2`, `NVARCHAR2`, `CLOB`, `NCLOB`, `LONG` | Utf8 | |
//! | `RAW`, `BLOB`, `LONG RAW` | Binary | |
//! | anything else (`ROWID`, `XMLTYPE`, object types, `INTERVAL`) | — | unsupported |

use arrow::datatypes::{DataType, TimeUnit};
use chrono::NaiveDate;
use dataloader_core::WatermarkKind;

/// Unconstrained `NUMBER` becomes this decimal; values that do not fit are refused.
pub const UNCONSTRAINED_NUMBER: (u8, i8) = (38, 10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// NUMBER as exact text, parsed into the decimal.
    NumberText,
    Float,
    Double,
    Text,
    Bytes,
    /// DATE / TIMESTAMP: naive.
    Timestamp,
    /// WITH (LOCAL) TIME ZONE: to UTC.
    TimestampUtc,
    /// Fine timestamps kept as text; `true` when zoned.
    TimestampText(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub data_type: DataType,
    pub read: Read,
    pub watermark: Option<WatermarkKind>,
}

/// `data_type` as `ALL_TAB_COLUMNS.DATA_TYPE` spells it (`TIMESTAMP(6) WITH TIME ZONE`).
pub fn map(
    data_type: &str,
    precision: Option<i64>,
    scale: Option<i64>,
    micro_timestamps: bool,
) -> Option<Mapping> {
    use WatermarkKind as W;
    let t = data_type.to_ascii_uppercase();
    let m = |data_type, read, watermark| {
        Some(Mapping {
            data_type,
            read,
            watermark,
        })
    };
    if let Some(rest) = t.strip_prefix("TIMESTAMP") {
        let fs: u8 = rest
            .strip_prefix('(')
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(6);
        let zoned = rest.contains("TIME ZONE");
        if fs > 6 && !micro_timestamps {
            return m(DataType::Utf8, Read::TimestampText(zoned), Some(W::Text));
        }
        return if zoned {
            m(
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Read::TimestampUtc,
                Some(W::TimestampTz),
            )
        } else {
            m(
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Read::Timestamp,
                Some(W::Timestamp),
            )
        };
    }
    match t.as_str() {
        "NUMBER" => {
            let (p, s) = match (precision, scale) {
                (Some(p), Some(s)) if s < 0 => (p - s, 0),
                (Some(p), Some(s)) => (p, s),
                (Some(p), None) => (p, 0),
                _ => (
                    i64::from(UNCONSTRAINED_NUMBER.0),
                    i64::from(UNCONSTRAINED_NUMBER.1),
                ),
            };
            if !(1..=38).contains(&p) || s > p {
                return None;
            }
            m(
                DataType::Decimal128(p as u8, s as i8),
                Read::NumberText,
                Some(W::Decimal),
            )
        }
        "FLOAT" => m(
            DataType::Decimal128(UNCONSTRAINED_NUMBER.0, UNCONSTRAINED_NUMBER.1),
            Read::NumberText,
            Some(W::Decimal),
        ),
        "BINARY_FLOAT" => m(DataType::Float32, Read::Float, None),
        "BINARY_DOUBLE" => m(DataType::Float64, Read::Double, None),
        "DATE" => m(
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Read::Timestamp,
            Some(W::Timestamp),
        ),
        "CHAR" | "NCHAR" | "VARCHAR2" | "NVARCHAR2" => m(DataType::Utf8, Read::Text, Some(W::Text)),
        "CLOB" | "NCLOB" | "LONG" => m(DataType::Utf8, Read::Text, None),
        "RAW" | "BLOB" | "LONG RAW" => m(DataType::Binary, Read::Bytes, None),
        _ => None,
    }
}

/// A source query's column type, from the driver's description of its result, as
/// `ALL_TAB_COLUMNS` spells a table's — (DATA_TYPE, DATA_PRECISION, DATA_SCALE) — so [`map`]
/// reads it as it reads a table's.
pub fn from_oracle_type(t: &oracle::sql_type::OracleType) -> (String, Option<i64>, Option<i64>) {
    use oracle::sql_type::OracleType as O;
    let named = |name: &str| (name.to_string(), None, None);
    match t {
        O::Varchar2(_) => named("VARCHAR2"),
        O::NVarchar2(_) => named("NVARCHAR2"),
        O::Char(_) => named("CHAR"),
        O::NChar(_) => named("NCHAR"),
        O::Raw(_) => named("RAW"),
        O::BinaryFloat => named("BINARY_FLOAT"),
        O::BinaryDouble => named("BINARY_DOUBLE"),
        // Precision 0 is NUMBER without one; scale -127 a computed NUMBER's "no scale".
        O::Number(0, -127) => named("NUMBER"),
        O::Number(0, s) => ("NUMBER".into(), None, Some(i64::from(*s))),
        O::Number(p, s) => ("NUMBER".into(), Some(i64::from(*p)), Some(i64::from(*s))),
        O::Float(p) => ("FLOAT".into(), Some(i64::from(*p)), None),
        O::Date => named("DATE"),
        O::Timestamp(fs) => named(&format!("TIMESTAMP({fs})")),
        O::TimestampTZ(fs) => named(&format!("TIMESTAMP({fs}) WITH TIME ZONE")),
        O::TimestampLTZ(fs) => named(&format!("TIMESTAMP({fs}) WITH LOCAL TIME ZONE")),
        O::CLOB => named("CLOB"),
        O::NCLOB => named("NCLOB"),
        O::BLOB => named("BLOB"),
        O::Long => named("LONG"),
        O::LongRaw => named("LONG RAW"),
        other => named(&other.to_string()),
    }
}

/// An Oracle timestamp (as the driver returns it) in microseconds since 1970, UTC when zoned.
pub fn micros(t: &oracle::sql_type::Timestamp, to_utc: bool) -> Result<i64, String> {
    if !t.nanosecond().is_multiple_of(1000) {
        return Err(format!(
            "{t} has digits below the microsecond, which a Delta timestamp would drop"
        ));
    }
    let local = NaiveDate::from_ymd_opt(t.year(), t.month(), t.day())
        .and_then(|d| d.and_hms_micro_opt(t.hour(), t.minute(), t.second(), t.nanosecond() / 1000))
        .ok_or_else(|| format!("{t} is not a valid timestamp"))?;
    let offset = if to_utc { i64::from(t.tz_offset()) } else { 0 };
    Ok(local.and_utc().timestamp_micros() - offset * 1_000_000)
}

/// All the digits of a fine timestamp, in UTC when zoned.
pub fn text(t: &oracle::sql_type::Timestamp, zoned: bool) -> Result<String, String> {
    let local = NaiveDate::from_ymd_opt(t.year(), t.month(), t.day())
        .and_then(|d| d.and_hms_nano_opt(t.hour(), t.minute(), t.second(), t.nanosecond()))
        .ok_or_else(|| format!("{t} is not a valid timestamp"))?;
    if zoned {
        let utc = local - chrono::Duration::seconds(i64::from(t.tz_offset()));
        Ok(format!(
            "{}.{:09}+00:00",
            utc.format("%Y-%m-%d %H:%M:%S"),
            t.nanosecond()
        ))
    } else {
        Ok(format!(
            "{}.{:09}",
            local.format("%Y-%m-%d %H:%M:%S"),
            t.nanosecond()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oracle::sql_type::Timestamp;

    #[test]
    fn query_columns_read_like_table_columns() {
        use oracle::sql_type::OracleType as O;
        let mapped = |t: O| {
            let (dt, p, s) = from_oracle_type(&t);
            map(&dt, p, s, false).map(|m| m.data_type)
        };
        assert_eq!(mapped(O::Number(12, 2)), Some(DataType::Decimal128(12, 2)));
        assert_eq!(
            mapped(O::Number(0, -127)),
            Some(DataType::Decimal128(38, 10)),
            "a computed NUMBER"
        );
        assert_eq!(mapped(O::Varchar2(20)), Some(DataType::Utf8));
        assert_eq!(
            mapped(O::TimestampTZ(6)),
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
        );
        assert_eq!(mapped(O::Timestamp(9)), Some(DataType::Utf8));
        assert_eq!(mapped(O::Rowid), None);
    }

    #[test]
    fn numbers_are_never_floats() {
        assert_eq!(
            map("NUMBER", Some(12), Some(2), false).unwrap().data_type,
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            map("NUMBER", None, None, false).unwrap().data_type,
            DataType::Decimal128(38, 10)
        );
        assert_eq!(
            map("NUMBER", Some(5), Some(-2), false).unwrap().data_type,
            DataType::Decimal128(7, 0)
        );
        assert_eq!(
            map("FLOAT", Some(126), None, false).unwrap().data_type,
            DataType::Decimal128(38, 10)
        );
        assert_eq!(
            map("BINARY_DOUBLE", None, None, false).unwrap().data_type,
            DataType::Float64
        );
        assert!(map("XMLTYPE", None, None, false).is_none());
    }

    #[test]
    fn timestamps_by_precision_and_zone() {
        let tz = map("TIMESTAMP(6) WITH TIME ZONE", None, Some(6), false).unwrap();
        assert_eq!(tz.read, Read::TimestampUtc);
        assert_eq!(
            map("TIMESTAMP(9)", None, Some(9), false).unwrap().data_type,
            DataType::Utf8
        );
        assert_eq!(
            map("TIMESTAMP(9)", None, Some(9), true).unwrap().read,
            Read::Timestamp
        );
        assert_eq!(
            map("DATE", None, None, false).unwrap().read,
            Read::Timestamp
        );
    }

    #[test]
    fn driver_timestamps_convert_exactly() {
        // 2024-02-29 13:14:15.123456 +02:00 is 11:14:15.123456 UTC.
        let t = Timestamp::new(2024, 2, 29, 13, 14, 15, 123_456_000)
            .unwrap()
            .and_tz_hm_offset(2, 0)
            .unwrap();
        let utc = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(11, 14, 15, 123_456)
            .unwrap();
        assert_eq!(micros(&t, true).unwrap(), utc.and_utc().timestamp_micros());
        let fine = Timestamp::new(2024, 2, 29, 13, 14, 15, 123_456_789)
            .unwrap()
            .and_tz_hm_offset(-5, -30)
            .unwrap();
        assert!(micros(&fine, true)
            .unwrap_err()
            .contains("below the microsecond"));
        assert_eq!(
            text(&fine, true).unwrap(),
            "2024-02-29 18:44:15.123456789+00:00"
        );
    }
}
