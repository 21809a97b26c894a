//! SQL Server → Arrow type map, from `INFORMATION_SCHEMA.COLUMNS`, and the decoding of
//! `tiberius` values. `docs/connectors/mssql.md` is the same table for users.
//!
//! | SQL Server | Arrow / Delta | notes |
//! |---|---|---|
//! | `bit` | Boolean | |
//! | `tinyint`, `smallint` | Int16 / short | `tinyint` is 0–255 |
//! | `int` | Int32 / integer | |
//! | `bigint` | Int64 / long | |
//! | `decimal(p,s)`, `numeric(p,s)` | Decimal128(p,s) | exact (p ≤ 38 always) |
//! | `money`, `smallmoney` | Decimal128(19,4), Decimal128(10,4) | exact |
//! | `real`, `float` | Float32, Float64 | |
//! | `date` | Date32 | |
//! | `datetime`, `smalldatetime`, `datetime2(p ≤ 6)` | Timestamp(µs) / timestamp_ntz, or Timestamp(µs, UTC) with a source `timezone` | `datetime`'s 1/300 s ticks rounded to the microsecond |
//! | `datetime2(7)` | Utf8 `YYYY-MM-DD HH:MM:SS.fffffff` | 100 ns kept; `datetime2_precision=microseconds` maps it to a timestamp and refuses values with a 7th digit |
//! | `datetimeoffset(p ≤ 6)` | Timestamp(µs, UTC) | the instant |
//! | `datetimeoffset(7)` | Utf8 `YYYY-MM-DD HH:MM:SS.fffffff+00:00` (UTC) | as `datetime2(7)` |
//! | `time` | Utf8 `HH:MM:SS[.fffffff]` | |
//! | `char`, `varchar`, `nchar`, `nvarchar` (incl. `max`), `text`, `ntext`, `xml` | Utf8 | |
//! | `uniqueidentifier` | Utf8 | lower-case, hyphenated |
//! | `binary`, `varbinary` (incl. `max`), `image`, `rowversion`/`timestamp` | Binary | |
//! | `sql_variant`, `geography`, `geometry`, `hierarchyid` | — | unsupported |

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use dataloader_core::WatermarkKind;
use tiberius::ColumnData;

use crate::batch::ColumnBuilder;

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub data_type: DataType,
    pub watermark: Option<WatermarkKind>,
    /// Timestamps kept as 100 ns text.
    pub text_timestamp: bool,
}

/// Options of the connection that change the mapping.
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// Naive date-times are in this zone: they become UTC instants.
    pub source_timezone: Option<chrono_tz::Tz>,
    /// `datetime2(7)` / `datetimeoffset(7)` as microsecond timestamps (values with a 7th
    /// digit are refused rather than rounded).
    pub datetime2_microseconds: bool,
}

pub fn map(
    data_type: &str,
    precision: Option<u8>,
    scale: Option<u8>,
    datetime_precision: Option<u8>,
    o: &MapOptions,
) -> Option<Mapping> {
    use WatermarkKind as W;
    let m = |data_type, watermark| {
        Some(Mapping {
            data_type,
            watermark,
            text_timestamp: false,
        })
    };
    // With a source time zone the values become UTC instants, but the watermark stays in the
    // column's own (local) terms, so it compares in the database as it is stored.
    let naive_ts = || {
        if o.source_timezone.is_some() {
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                W::Timestamp,
            )
        } else {
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                W::Timestamp,
            )
        }
    };
    let seven = datetime_precision.unwrap_or(7) > 6 && !o.datetime2_microseconds;
    match data_type.to_ascii_lowercase().as_str() {
        "bit" => m(DataType::Boolean, None),
        "tinyint" | "smallint" => m(DataType::Int16, Some(W::Integer)),
        "int" => m(DataType::Int32, Some(W::Integer)),
        "bigint" => m(DataType::Int64, Some(W::Integer)),
        "decimal" | "numeric" => m(
            DataType::Decimal128(precision?, scale.unwrap_or(0) as i8),
            Some(W::Decimal),
        ),
        "money" => m(DataType::Decimal128(19, 4), Some(W::Decimal)),
        "smallmoney" => m(DataType::Decimal128(10, 4), Some(W::Decimal)),
        "real" => m(DataType::Float32, None),
        "float" => m(DataType::Float64, None),
        "date" => m(DataType::Date32, Some(W::Date)),
        "datetime" | "smalldatetime" => {
            let (t, w) = naive_ts();
            m(t, Some(w))
        }
        "datetime2" if seven => Some(Mapping {
            data_type: DataType::Utf8,
            watermark: Some(W::Text),
            text_timestamp: true,
        }),
        "datetime2" => {
            let (t, w) = naive_ts();
            m(t, Some(w))
        }
        "datetimeoffset" if seven => Some(Mapping {
            data_type: DataType::Utf8,
            watermark: None,
            text_timestamp: true,
        }),
        "datetimeoffset" => m(
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Some(W::TimestampTz),
        ),
        "time" => m(DataType::Utf8, None),
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" => {
            m(DataType::Utf8, Some(W::Text))
        }
        "xml" | "uniqueidentifier" => m(DataType::Utf8, None),
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => m(DataType::Binary, None),
        _ => None,
    }
}

fn date_from_days(base: NaiveDate, days: i64) -> Result<NaiveDate, String> {
    base.checked_add_signed(Duration::days(days))
        .ok_or_else(|| "date out of range".to_string())
}

/// 10^-scale second increments since midnight → nanoseconds.
fn time_nanos(time: tiberius::time::Time) -> u64 {
    time.increments() * 10u64.pow(9 - u32::from(time.scale()))
}

fn datetime2(dt: tiberius::time::DateTime2) -> Result<(NaiveDateTime, u64), String> {
    let date = date_from_days(
        NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default(),
        i64::from(dt.date().days()),
    )?;
    let nanos = time_nanos(dt.time());
    Ok((
        date.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::nanoseconds(nanos as i64),
        nanos,
    ))
}

fn text_with_100ns(t: NaiveDateTime) -> String {
    let hundreds = t.and_utc().timestamp_subsec_nanos() / 100;
    format!("{}.{hundreds:07}", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Appends one `tiberius` value; `tz` converts naive date-times to UTC.
pub fn append(
    b: &mut ColumnBuilder,
    value: &ColumnData<'_>,
    mapping: &Mapping,
    tz: Option<chrono_tz::Tz>,
) -> Result<(), String> {
    let utc_micros = |t: NaiveDateTime| -> Result<i64, String> {
        match tz {
            None => Ok(t.and_utc().timestamp_micros()),
            Some(zone) => t
                .and_local_timezone(zone)
                .earliest()
                .map(|z| z.timestamp_micros())
                .ok_or_else(|| format!("{t} does not exist in {zone} (a daylight-saving gap)")),
        }
    };
    let exact_micros = |t: NaiveDateTime, nanos: u64| -> Result<i64, String> {
        if !nanos.is_multiple_of(1000) {
            return Err(format!(
                "{} has 100 ns digits a microsecond timestamp would drop",
                text_with_100ns(t)
            ));
        }
        utc_micros(t)
    };
    match (value, b) {
        (
            ColumnData::U8(None)
            | ColumnData::I16(None)
            | ColumnData::I32(None)
            | ColumnData::I64(None)
            | ColumnData::F32(None)
            | ColumnData::F64(None)
            | ColumnData::Bit(None)
            | ColumnData::String(None)
            | ColumnData::Guid(None)
            | ColumnData::Binary(None)
            | ColumnData::Numeric(None)
            | ColumnData::Xml(None)
            | ColumnData::DateTime(None)
            | ColumnData::SmallDateTime(None)
            | ColumnData::Time(None)
            | ColumnData::Date(None)
            | ColumnData::DateTime2(None)
            | ColumnData::DateTimeOffset(None),
            b,
        ) => b.append_null(),
        (ColumnData::Bit(Some(v)), ColumnBuilder::Boolean(b)) => b.append_value(*v),
        (ColumnData::U8(Some(v)), ColumnBuilder::Int16(b)) => b.append_value(i16::from(*v)),
        (ColumnData::I16(Some(v)), ColumnBuilder::Int16(b)) => b.append_value(*v),
        (ColumnData::I32(Some(v)), ColumnBuilder::Int32(b)) => b.append_value(*v),
        (ColumnData::I64(Some(v)), ColumnBuilder::Int64(b)) => b.append_value(*v),
        (ColumnData::F32(Some(v)), ColumnBuilder::Float32(b)) => b.append_value(*v),
        (ColumnData::F64(Some(v)), ColumnBuilder::Float64(b)) => b.append_value(*v),
        // money arrives as a numeric with scale 4 or as a float, by server version.
        (ColumnData::F64(Some(v)), ColumnBuilder::Decimal(b, p, s)) => b.append_value(
            dataloader_core::decimal::parse_scaled(&format!("{v:.4}"), *p, *s)
                .map_err(|e| e.to_string())?,
        ),
        (ColumnData::Numeric(Some(n)), ColumnBuilder::Decimal(b, p, s)) => {
            let shift = i32::from(*s) - i32::from(n.scale());
            let v = if shift >= 0 {
                n.value()
                    .checked_mul(10i128.pow(shift as u32))
                    .ok_or("decimal out of range")?
            } else {
                let f = 10i128.pow((-shift) as u32);
                if n.value() % f != 0 {
                    return Err(format!("{n} has more than {s} decimal places"));
                }
                n.value() / f
            };
            if v.unsigned_abs() >= 10u128.pow(u32::from(*p)) {
                return Err(format!("{n} does not fit decimal({p},{s})"));
            }
            b.append_value(v)
        }
        (ColumnData::String(Some(s)), ColumnBuilder::Utf8(b)) => b.append_value(s),
        (ColumnData::Xml(Some(x)), ColumnBuilder::Utf8(b)) => b.append_value(x.to_string()),
        (ColumnData::Guid(Some(g)), ColumnBuilder::Utf8(b)) => b.append_value(g.to_string()),
        (ColumnData::Binary(Some(v)), ColumnBuilder::Binary(b)) => b.append_value(v),
        (ColumnData::Date(Some(d)), ColumnBuilder::Date32(b)) => {
            let date = date_from_days(
                NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default(),
                i64::from(d.days()),
            )?;
            b.append_value((date - NaiveDate::default()).num_days() as i32)
        }
        (ColumnData::Time(Some(t)), ColumnBuilder::Utf8(b)) => {
            let nanos = time_nanos(*t);
            let secs = nanos / 1_000_000_000;
            let frac = nanos % 1_000_000_000 / 100;
            let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            b.append_value(if frac > 0 {
                format!("{base}.{frac:07}")
            } else {
                base
            })
        }
        (ColumnData::DateTime(Some(dt)), ColumnBuilder::TimestampMicros(b, _)) => {
            let date = date_from_days(
                NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default(),
                i64::from(dt.days()),
            )?;
            // 1/300 s ticks, rounded to the nearest microsecond.
            let micros = (i64::from(dt.seconds_fragments()) * 10_000 + 1) / 3;
            b.append_value(utc_micros(
                date.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::microseconds(micros),
            )?)
        }
        (ColumnData::SmallDateTime(Some(dt)), ColumnBuilder::TimestampMicros(b, _)) => {
            let date = date_from_days(
                NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default(),
                i64::from(dt.days()),
            )?;
            let t = date.and_hms_opt(0, 0, 0).unwrap_or_default()
                + Duration::minutes(i64::from(dt.seconds_fragments()));
            b.append_value(utc_micros(t)?)
        }
        (ColumnData::DateTime2(Some(dt)), ColumnBuilder::TimestampMicros(b, _)) => {
            let (t, nanos) = datetime2(*dt)?;
            b.append_value(exact_micros(t, nanos % 1_000_000_000)?)
        }
        (ColumnData::DateTime2(Some(dt)), ColumnBuilder::Utf8(b)) if mapping.text_timestamp => {
            b.append_value(text_with_100ns(datetime2(*dt)?.0))
        }
        (ColumnData::DateTimeOffset(Some(dto)), ColumnBuilder::TimestampMicros(b, _)) => {
            // The wire value is the UTC date-time and the offset beside it.
            let (t, nanos) = datetime2(dto.datetime2())?;
            if !nanos.is_multiple_of(1000) {
                return Err(format!(
                    "{} has 100 ns digits a microsecond timestamp would drop",
                    text_with_100ns(t)
                ));
            }
            b.append_value(t.and_utc().timestamp_micros())
        }
        (ColumnData::DateTimeOffset(Some(dto)), ColumnBuilder::Utf8(b))
            if mapping.text_timestamp =>
        {
            b.append_value(format!(
                "{}+00:00",
                text_with_100ns(datetime2(dto.datetime2())?.0)
            ))
        }
        (v, _) => {
            return Err(format!(
                "a {} value does not fit the column's mapping",
                column_type(v)
            ))
        }
    }
    Ok(())
}

fn column_type(v: &ColumnData<'_>) -> &'static str {
    match v {
        ColumnData::U8(_) => "tinyint",
        ColumnData::I16(_) => "smallint",
        ColumnData::I32(_) => "int",
        ColumnData::I64(_) => "bigint",
        ColumnData::F32(_) => "real",
        ColumnData::F64(_) => "float",
        ColumnData::Bit(_) => "bit",
        ColumnData::String(_) => "string",
        ColumnData::Guid(_) => "uniqueidentifier",
        ColumnData::Binary(_) => "binary",
        ColumnData::Numeric(_) => "numeric",
        ColumnData::Xml(_) => "xml",
        ColumnData::DateTime(_) => "datetime",
        ColumnData::SmallDateTime(_) => "smalldatetime",
        ColumnData::Time(_) => "time",
        ColumnData::Date(_) => "date",
        ColumnData::DateTime2(_) => "datetime2",
        ColumnData::DateTimeOffset(_) => "datetimeoffset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, Time};

    fn decode(
        mapping: &Mapping,
        values: &[ColumnData<'_>],
        tz: Option<chrono_tz::Tz>,
    ) -> arrow::array::ArrayRef {
        let mut b = ColumnBuilder::new(&mapping.data_type, 4).unwrap();
        for v in values {
            append(&mut b, v, mapping, tz).unwrap();
        }
        b.finish()
    }

    #[test]
    fn maps_by_precision_and_options() {
        let o = MapOptions::default();
        assert_eq!(
            map("datetime2", None, None, Some(7), &o).unwrap().data_type,
            DataType::Utf8
        );
        assert_eq!(
            map("datetime2", None, None, Some(3), &o).unwrap().data_type,
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        let utc = MapOptions {
            source_timezone: Some(chrono_tz::Europe::Amsterdam),
            datetime2_microseconds: true,
        };
        assert_eq!(
            map("datetime2", None, None, Some(7), &utc)
                .unwrap()
                .data_type,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            map("money", None, None, None, &o).unwrap().data_type,
            DataType::Decimal128(19, 4)
        );
        assert!(map("geography", None, None, None, &o).is_none());
    }

    #[test]
    fn decodes_driver_values() {
        let o = MapOptions::default();
        let dec = map("decimal", Some(12), Some(2), None, &o).unwrap();
        let a = decode(
            &dec,
            &[
                ColumnData::Numeric(Some(Numeric::new_with_scale(-123456, 2))),
                ColumnData::Numeric(None),
            ],
            None,
        );
        assert_eq!(a.as_primitive::<Decimal128Type>().value(0), -123456);
        assert!(a.is_null(1));

        // datetime2(7): 2024-02-29 13:14:15.1234567 kept to 100 ns as text.
        let days = (NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
            - NaiveDate::from_ymd_opt(1, 1, 1).unwrap())
        .num_days() as u32;
        let ticks = (13 * 3600 + 14 * 60 + 15) * 10_000_000u64 + 1_234_567;
        let dt2 = DateTime2::new(Date::new(days), Time::new(ticks, 7));
        let text = map("datetime2", None, None, Some(7), &o).unwrap();
        assert_eq!(
            decode(&text, &[ColumnData::DateTime2(Some(dt2))], None)
                .as_string::<i32>()
                .value(0),
            "2024-02-29 13:14:15.1234567"
        );
        let micro = map("datetime2", None, None, Some(6), &o).unwrap();
        let mut b = ColumnBuilder::new(&micro.data_type, 1).unwrap();
        assert!(
            append(&mut b, &ColumnData::DateTime2(Some(dt2)), &micro, None)
                .unwrap_err()
                .contains("100 ns digits")
        );

        // datetime: 1/300 s ticks; 2024-01-01 00:00:00.003 (one tick) → 3333 µs.
        let days1900 = (NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
            - NaiveDate::from_ymd_opt(1900, 1, 1).unwrap())
        .num_days() as i32;
        let dt = map("datetime", None, None, Some(3), &o).unwrap();
        let a = decode(
            &dt,
            &[ColumnData::DateTime(Some(DateTime::new(days1900, 1)))],
            None,
        );
        let expected = NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_hms_micro_opt(0, 0, 0, 3333)
            .unwrap();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            expected.and_utc().timestamp_micros()
        );

        // A naive value in a source time zone becomes the UTC instant (CET is UTC+1).
        let zoned = MapOptions {
            source_timezone: Some(chrono_tz::Europe::Amsterdam),
            ..o.clone()
        };
        let dtz = map("datetime", None, None, Some(3), &zoned).unwrap();
        let a = decode(
            &dtz,
            &[ColumnData::DateTime(Some(DateTime::new(days1900, 0)))],
            Some(chrono_tz::Europe::Amsterdam),
        );
        let utc = NaiveDate::from_ymd_opt(2023, 12, 31)
            .unwrap()
            .and_hms_opt(23, 0, 0)
            .unwrap();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            utc.and_utc().timestamp_micros()
        );

        // datetimeoffset(3): the wire value is UTC.
        let dto = DateTimeOffset::new(
            DateTime2::new(Date::new(days), Time::new(ticks / 10_000, 3)),
            120,
        );
        let off = map("datetimeoffset", None, None, Some(3), &o).unwrap();
        let a = decode(&off, &[ColumnData::DateTimeOffset(Some(dto))], None);
        let instant = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_milli_opt(13, 14, 15, 123)
            .unwrap();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            instant.and_utc().timestamp_micros()
        );

        let date = map("date", None, None, None, &o).unwrap();
        let d = decode(&date, &[ColumnData::Date(Some(Date::new(719_162)))], None);
        assert_eq!(
            d.as_primitive::<Date32Type>().value(0),
            0,
            "day 719162 after 0001-01-01 is 1970-01-01"
        );
        let time = map("time", None, None, Some(7), &o).unwrap();
        assert_eq!(
            decode(&time, &[ColumnData::Time(Some(Time::new(ticks, 7)))], None)
                .as_string::<i32>()
                .value(0),
            "13:14:15.1234567"
        );
        let guid = map("uniqueidentifier", None, None, None, &o).unwrap();
        let g = tiberius::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(
            decode(&guid, &[ColumnData::Guid(Some(g))], None)
                .as_string::<i32>()
                .value(0),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }
}
