//! Watermarks are kept as the source printed them, with their kind: exact at the source's
//! native precision, never through a float.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use std::cmp::Ordering;

use chrono::{Duration, NaiveDate, NaiveDateTime};

use crate::{Error, Result, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkKind {
    Integer,
    Decimal,
    Date,
    /// Naive timestamp, `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    Timestamp,
    /// Timestamp with time zone, printed in UTC with its offset.
    TimestampTz,
    Text,
}

impl WatermarkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WatermarkKind::Integer => "integer",
            WatermarkKind::Decimal => "decimal",
            WatermarkKind::Date => "date",
            WatermarkKind::Timestamp => "timestamp",
            WatermarkKind::TimestampTz => "timestamptz",
            WatermarkKind::Text => "text",
        }
    }
}

impl FromStr for WatermarkKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "integer" => WatermarkKind::Integer,
            "decimal" => WatermarkKind::Decimal,
            "date" => WatermarkKind::Date,
            "timestamp" => WatermarkKind::Timestamp,
            "timestamptz" => WatermarkKind::TimestampTz,
            "text" => WatermarkKind::Text,
            other => {
                return Err(Error::config(
                    "incremental_value_type",
                    format!("unknown watermark type \"{other}\""),
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub kind: WatermarkKind,
    pub value: String,
}

impl Watermark {
    pub fn new(kind: WatermarkKind, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let ok = match kind {
            WatermarkKind::Integer => {
                let digits = value.strip_prefix('-').unwrap_or(&value);
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
            }
            WatermarkKind::Decimal => crate::decimal::is_decimal_literal(&value),
            WatermarkKind::Date | WatermarkKind::Timestamp | WatermarkKind::TimestampTz => {
                !value.is_empty()
                    && value.chars().all(|c| {
                        c.is_ascii_digit() || matches!(c, '-' | ':' | ' ' | '.' | '+' | 'T' | 'Z')
                    })
            }
            WatermarkKind::Text => true,
        };
        if !ok {
            return Err(Error::config(
                "incremental_value",
                format!("\"{value}\" is not a valid {} watermark", kind.as_str()),
            ));
        }
        Ok(Watermark { kind, value })
    }
}

/// A watermark's value parsed for arithmetic and comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Integer(i128),
    /// Unscaled digits at scale 18.
    Decimal(i128),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    Text(String),
}

const DECIMAL_SCALE: i8 = 18;

fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ]
    .iter()
    .find_map(|f| {
        NaiveDateTime::parse_from_str(t, f).ok().or_else(|| {
            NaiveDate::parse_from_str(t, f)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
    })
}

/// `2024-01-02 03:04:05.123456+05:30` (or `+00`, `Z`) as UTC.
fn parse_timestamptz(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    if let Some(naive) = t.strip_suffix('Z') {
        return parse_timestamp(naive);
    }
    let sign_at = t.rfind(['+', '-']).filter(|&i| i > 10)?;
    let (naive, offset) = t.split_at(sign_at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| c.is_ascii_digit()).collect();
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    let local = parse_timestamp(naive)?;
    local.checked_sub_signed(Duration::minutes(sign * (h * 60 + m)))
}

impl Watermark {
    fn value(&self) -> Result<Value> {
        let bad = || {
            Error::config(
                "incremental_value",
                format!(
                    "\"{}\" is not a valid {} watermark",
                    self.value,
                    self.kind.as_str()
                ),
            )
        };
        Ok(match self.kind {
            WatermarkKind::Integer => Value::Integer(self.value.trim().parse().map_err(|_| bad())?),
            WatermarkKind::Decimal => Value::Decimal(
                crate::decimal::parse_scaled(&self.value, 38, DECIMAL_SCALE).map_err(|_| bad())?,
            ),
            WatermarkKind::Date => Value::Date(
                NaiveDate::parse_from_str(self.value.trim(), "%Y-%m-%d").map_err(|_| bad())?,
            ),
            WatermarkKind::Timestamp => {
                Value::Timestamp(parse_timestamp(&self.value).ok_or_else(bad)?)
            }
            WatermarkKind::TimestampTz => {
                Value::Timestamp(parse_timestamptz(&self.value).ok_or_else(bad)?)
            }
            WatermarkKind::Text => Value::Text(self.value.clone()),
        })
    }

    fn from_value(kind: WatermarkKind, value: Value) -> Watermark {
        let text = match value {
            Value::Integer(i) => i.to_string(),
            Value::Decimal(d) => {
                let scale = 10i128.pow(DECIMAL_SCALE as u32);
                let sign = if d < 0 { "-" } else { "" };
                let frac = format!("{:018}", (d % scale).abs());
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    format!("{sign}{}", (d / scale).abs())
                } else {
                    format!("{sign}{}.{frac}", (d / scale).abs())
                }
            }
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Timestamp(t) if kind == WatermarkKind::TimestampTz => {
                t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
            }
            Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            Value::Text(s) => s,
        };
        Watermark { kind, value: text }
    }

    /// Microseconds since 1970 (UTC) of a timestamp watermark.
    pub fn timestamp_micros(&self) -> Result<i64> {
        match self.value()? {
            Value::Timestamp(t) => Ok(t.and_utc().timestamp_micros()),
            _ => Err(Error::config(
                "incremental_value",
                format!("\"{}\" is not a timestamp", self.value),
            )),
        }
    }

    /// Days since 1970-01-01 of a date watermark.
    pub fn date_days(&self) -> Result<i32> {
        match self.value()? {
            Value::Date(d) => Ok((d - NaiveDate::default()).num_days() as i32),
            _ => Err(Error::config(
                "incremental_value",
                format!("\"{}\" is not a date", self.value),
            )),
        }
    }

    /// Orders two watermarks by value (`None` for different kinds). Text compares bytewise,
    /// which may differ from the source's collation.
    pub fn compare(&self, other: &Watermark) -> Result<Option<Ordering>> {
        if self.kind != other.kind {
            return Ok(None);
        }
        Ok(Some(self.value()?.cmp(&other.value()?)))
    }

    /// `self + span` (`forward`) or `self − span`: lookbacks, windows, chunk bounds.
    pub fn shifted(&self, field: &str, span: &Span, forward: bool) -> Result<Watermark> {
        let sign: i128 = if forward { 1 } else { -1 };
        let mismatch = |what: &str| {
            Error::config(
                field,
                format!(
                    "a {what} cannot be applied to a {} column",
                    self.kind.as_str()
                ),
            )
        };
        let overflow = || {
            Error::config(
                field,
                format!("{} shifted by it is out of range", self.value),
            )
        };
        let value = match (self.value()?, span) {
            (Value::Integer(i), Span::Amount(a)) => {
                let amount: i128 = a.parse().map_err(|_| {
                    Error::config(
                        field,
                        format!("\"{a}\" must be a whole number for an integer column"),
                    )
                })?;
                Value::Integer(i.checked_add(sign * amount).ok_or_else(overflow)?)
            }
            (Value::Decimal(d), Span::Amount(a)) => {
                let amount = crate::decimal::parse_scaled(a, 38, DECIMAL_SCALE)
                    .map_err(|e| Error::config(field, e.to_string()))?;
                Value::Decimal(d.checked_add(sign * amount).ok_or_else(overflow)?)
            }
            (Value::Date(d), Span::Duration(us)) => {
                if us % 86_400_000_000 != 0 {
                    return Err(Error::config(
                        field,
                        "a date column moves by whole days (for example 7 days)",
                    ));
                }
                let days = Duration::days(us / 86_400_000_000);
                Value::Date(
                    if forward {
                        d.checked_add_signed(days)
                    } else {
                        d.checked_sub_signed(days)
                    }
                    .ok_or_else(overflow)?,
                )
            }
            (Value::Timestamp(t), Span::Duration(us)) => {
                let d = Duration::microseconds(*us);
                Value::Timestamp(
                    if forward {
                        t.checked_add_signed(d)
                    } else {
                        t.checked_sub_signed(d)
                    }
                    .ok_or_else(overflow)?,
                )
            }
            (Value::Text(_), _) => return Err(mismatch("length")),
            (_, Span::Duration(_)) => return Err(mismatch("duration")),
            (_, Span::Amount(_)) => {
                return Err(mismatch("plain amount (use a duration such as 2h)"))
            }
        };
        Ok(Watermark::from_value(self.kind, value))
    }
}

impl Watermark {
    /// The instant `at` as a watermark of `kind`: UTC for timestamps (naive ones too), its
    /// UTC date for dates; `None` for kinds that are not times.
    pub fn at_time(kind: WatermarkKind, at: chrono::DateTime<chrono::Utc>) -> Option<Watermark> {
        let value = match kind {
            WatermarkKind::Date => Value::Date(at.date_naive()),
            WatermarkKind::Timestamp | WatermarkKind::TimestampTz => {
                Value::Timestamp(at.naive_utc())
            }
            _ => return None,
        };
        Some(Watermark::from_value(kind, value))
    }
}

impl std::fmt::Display for Watermark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_by_kind() {
        assert!(Watermark::new(WatermarkKind::Integer, "-42").is_ok());
        assert!(Watermark::new(WatermarkKind::Integer, "4.2").is_err());
        assert!(Watermark::new(WatermarkKind::Timestamp, "2024-01-02 03:04:05.123456").is_ok());
        assert!(Watermark::new(WatermarkKind::Timestamp, "x'; drop table").is_err());
        assert!(Watermark::new(WatermarkKind::Decimal, "12.50").is_ok());
    }

    fn w(kind: WatermarkKind, v: &str) -> Watermark {
        Watermark::new(kind, v).unwrap()
    }

    #[test]
    fn times_as_watermarks() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07.5+01:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let ts = Watermark::at_time(WatermarkKind::TimestampTz, at).unwrap();
        assert_eq!(ts.value, "2026-03-04 04:06:07.500000+00");
        let naive = Watermark::at_time(WatermarkKind::Timestamp, at).unwrap();
        assert_eq!(naive.value, "2026-03-04 04:06:07.500000");
        let date = Watermark::at_time(WatermarkKind::Date, at).unwrap();
        assert_eq!(date.value, "2026-03-04");
        assert!(Watermark::at_time(WatermarkKind::Integer, at).is_none());
    }

    #[test]
    fn shifts_by_kind() {
        let two_hours = Span::Duration(7_200_000_000);
        let ts = w(WatermarkKind::Timestamp, "2024-01-01 01:00:00.5");
        assert_eq!(
            ts.shifted("lookback", &two_hours, false).unwrap().value,
            "2023-12-31 23:00:00.500000"
        );
        let tz = w(WatermarkKind::TimestampTz, "2024-01-01 01:00:00+02");
        assert_eq!(
            tz.shifted("lookback", &two_hours, true).unwrap().value,
            "2024-01-01 01:00:00.000000+00"
        );
        let id = w(WatermarkKind::Integer, "100");
        assert_eq!(
            id.shifted("chunk_size", &Span::Amount("25".into()), true)
                .unwrap()
                .value,
            "125"
        );
        let dec = w(WatermarkKind::Decimal, "10.5");
        assert_eq!(
            dec.shifted("lookback", &Span::Amount("0.75".into()), false)
                .unwrap()
                .value,
            "9.75"
        );
        let day = w(WatermarkKind::Date, "2024-03-01");
        assert_eq!(
            day.shifted("rolling_window", &Span::Duration(86_400_000_000), false)
                .unwrap()
                .value,
            "2024-02-29"
        );
        assert!(day.shifted("rolling_window", &two_hours, false).is_err());
        assert!(id.shifted("lookback", &two_hours, false).is_err());
        assert!(w(WatermarkKind::Text, "x")
            .shifted("lookback", &two_hours, false)
            .is_err());
    }

    #[test]
    fn compares_by_value() {
        let a = w(WatermarkKind::Integer, "9");
        let b = w(WatermarkKind::Integer, "10");
        assert_eq!(a.compare(&b).unwrap(), Some(Ordering::Less));
        let x = w(WatermarkKind::TimestampTz, "2024-01-01 02:00:00+02");
        let y = w(WatermarkKind::TimestampTz, "2024-01-01 00:00:00.000001+00");
        assert_eq!(x.compare(&y).unwrap(), Some(Ordering::Less));
        let d1 = w(WatermarkKind::Decimal, "2.50");
        let d2 = w(WatermarkKind::Decimal, "2.5");
        assert_eq!(d1.compare(&d2).unwrap(), Some(Ordering::Equal));
    }
}
