//! The parser of the duration flags (`--lease`, the scheduler's intervals): `90s`, `10m`, or a
//! plain number of seconds. Its own file because both the global flags and `run` use it.

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
