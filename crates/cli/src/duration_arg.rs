//! The parsers of the duration flags (`--lease`, the scheduler's intervals, the secret cache):
//! `90s`, `10m`, or a plain number of seconds. Its own file because both the global flags and
//! `run` use it.

use std::time::Duration;

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    match dataloader_core::Span::parse("duration", text).map_err(|e| e.to_string())? {
        dataloader_core::Span::Duration(us) => Ok(Duration::from_micros(us as u64)),
        dataloader_core::Span::Amount(a) => a
            .parse::<f64>()
            .map(Duration::from_secs_f64)
            .map_err(|_| format!("\"{text}\" is not a duration")),
    }
}

/// A duration that may be zero (`0`, `0s`: turned off), for the secret cache.
pub(crate) fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let zero = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .trim()
        .parse::<f64>()
        .is_ok_and(|n| n == 0.0);
    if zero {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_cache_can_be_turned_off() {
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("0").is_err(), "a lease of 0 stays refused");
        assert!(parse_duration_or_zero("-1s").is_err());
    }
}
