//! Lengths written in configuration: `2h`, `30 days`, `90 minutes` (a duration) or `1000`
//! (an amount, for integer and decimal columns).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Span {
    /// Microseconds.
    Duration(i64),
    /// A non-negative decimal number, as written.
    Amount(String),
}

impl Span {
    pub fn parse(field: &str, text: &str) -> Result<Span> {
        let t = text.trim();
        let bad = || {
            Error::config(
                field,
                format!("\"{text}\" is neither a duration (2h, 30 minutes, 7 days) nor an amount (1000)"),
            )
        };
        if crate::decimal::is_decimal_literal(t) && !t.starts_with('-') {
            let amount = Span::Amount(t.trim_start_matches('+').to_string());
            // A zero chunk never advances and a zero window or lookback means nothing.
            if !amount.is_positive() {
                return Err(Error::config(
                    field,
                    format!("\"{text}\" must be more than zero"),
                ));
            }
            return Ok(amount);
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = t.split_at(split);
        let n: i64 = number.parse().map_err(|_| bad())?;
        let micros_per = match unit.trim().to_ascii_lowercase().as_str() {
            "us" | "microsecond" | "microseconds" => 1,
            "ms" | "millisecond" | "milliseconds" => 1_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000,
            "d" | "day" | "days" => 86_400_000_000,
            "w" | "week" | "weeks" => 604_800_000_000,
            _ => return Err(bad()),
        };
        let micros = n.checked_mul(micros_per).ok_or_else(bad)?;
        if micros <= 0 {
            return Err(Error::config(
                field,
                format!("\"{text}\" must be more than zero"),
            ));
        }
        Ok(Span::Duration(micros))
    }

    pub fn is_positive(&self) -> bool {
        match self {
            Span::Duration(us) => *us > 0,
            Span::Amount(a) => a
                .trim_start_matches(['0', '.'])
                .chars()
                .any(|c| c.is_ascii_digit() && c != '0'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_amounts() {
        assert_eq!(
            Span::parse("lookback", "2h").unwrap(),
            Span::Duration(7_200_000_000)
        );
        assert_eq!(
            Span::parse("lookback", "30 days").unwrap(),
            Span::Duration(2_592_000_000_000)
        );
        assert_eq!(
            Span::parse("lookback", "1000").unwrap(),
            Span::Amount("1000".into())
        );
        assert_eq!(
            Span::parse("lookback", "0.5").unwrap(),
            Span::Amount("0.5".into())
        );
        for bad in ["", "h", "2 fortnights", "-3h", "0s", "1.5h"] {
            assert!(Span::parse("lookback", bad).is_err(), "{bad}");
        }
        for zero in ["0", "000", "0.0", "+0", "0.000"] {
            let err = Span::parse("chunk_size", zero).unwrap_err().to_string();
            assert!(err.contains("more than zero"), "{zero}: {err}");
        }
        assert!(Span::parse("chunk_size", "0.001").is_ok());
        assert!(Span::parse("chunk_size", "10").is_ok());
    }
}
