//! Schedules: five-field cron expressions read in an IANA time zone, and their next time.

use std::str::FromStr;

use crate::{Error, Result};

pub fn parse_cron(schedule: &str) -> Result<croner::Cron> {
    if schedule.split_whitespace().count() != 5 {
        return Err(Error::config(
            "schedule",
            format!("\"{schedule}\" is not a five-field cron expression (minute hour day-of-month month day-of-week), for example \"0 2 * * *\""),
        ));
    }
    croner::Cron::from_str(schedule).map_err(|e| {
        Error::config(
            "schedule",
            format!("\"{schedule}\" is not a valid cron expression: {e}"),
        )
    })
}

pub fn parse_timezone(tz: &str) -> Result<chrono_tz::Tz> {
    tz.parse::<chrono_tz::Tz>().map_err(|_| {
        Error::config(
            "timezone",
            format!("\"{tz}\" is not an IANA time zone (for example UTC or Europe/Amsterdam)"),
        )
    })
}

/// The next time `schedule` fires after `after`, in the schedule's time zone.
pub fn next_occurrence(
    schedule: &str,
    timezone: &str,
    after: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>> {
    let cron = parse_cron(schedule)?;
    let tz = parse_timezone(timezone)?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            Error::config(
                "schedule",
                format!("\"{schedule}\" never fires ({e}): check its day of month and month"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    /// Europe/Amsterdam springs forward on 2026-03-29 (02:00 → 03:00) and falls back on
    /// 2026-10-25 (03:00 → 02:00).
    #[test]
    fn daylight_saving_transitions() {
        // A time that does not exist that night runs at the first minute after the gap.
        let skipped =
            next_occurrence("30 2 * * *", "Europe/Amsterdam", at("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            skipped.to_rfc3339(),
            "2026-03-29T01:00:00+00:00",
            "03:00 CEST, once"
        );
        let after = next_occurrence("30 2 * * *", "Europe/Amsterdam", skipped).unwrap();
        assert_eq!(
            after.to_rfc3339(),
            "2026-03-30T00:30:00+00:00",
            "back to 02:30 CEST"
        );
        // A time that happens twice runs once, at its first occurrence.
        let repeated =
            next_occurrence("30 2 * * *", "Europe/Amsterdam", at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(
            repeated.to_rfc3339(),
            "2026-10-25T00:30:00+00:00",
            "02:30 CEST"
        );
        let after = next_occurrence("30 2 * * *", "Europe/Amsterdam", repeated).unwrap();
        assert_eq!(
            after.to_rfc3339(),
            "2026-10-26T01:30:00+00:00",
            "not again at 02:30 CET the same night"
        );
        // Hourly schedules keep firing every real hour through both transitions.
        let hourly =
            next_occurrence("0 * * * *", "Europe/Amsterdam", at("2026-03-29T00:30:00Z")).unwrap();
        assert_eq!(hourly.to_rfc3339(), "2026-03-29T01:00:00+00:00");
        // Other zones and UTC.
        let ny = next_occurrence(
            "0 9 * * 1-5",
            "America/New_York",
            at("2026-11-27T15:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            ny.to_rfc3339(),
            "2026-11-30T14:00:00+00:00",
            "Friday 10:00 EST → Monday 09:00 EST"
        );
        let utc = next_occurrence("*/15 * * * *", "UTC", at("2026-01-01T00:07:00Z")).unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-01-01T00:15:00+00:00");
    }

    #[test]
    fn next_occurrence_in_zone() {
        let after = chrono::DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let next = next_occurrence("0 2 * * *", "Europe/Amsterdam", after).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-01-11T01:00:00+00:00");
    }
}
