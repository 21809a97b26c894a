//! Watermarks are kept as the source printed them, with their kind: exact at the source's
//! native precision, never through a float.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
}
