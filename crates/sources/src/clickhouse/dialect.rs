//! ClickHouse's SQL: identifiers in backticks, string literals with backslash escapes, and
//! watermark values as `toDate`/`toDateTime`/`toDateTime64` in UTC.

use dataloader_core::{Error, Result, Watermark, WatermarkKind};

use crate::dialect::{number_literal, SqlDialect};

pub struct ClickHouseDialect;

/// ClickHouse string literals take backslash escapes.
fn ch_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl SqlDialect for ClickHouseDialect {
    fn text(&self, expr: &str) -> String {
        format!("toString({expr})")
    }

    fn quote_ident(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('\\', "\\\\").replace('`', "\\`"))
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        Ok(match value.kind {
            WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value)?,
            WatermarkKind::Date => format!("toDate({})", ch_string(&value.value)),
            WatermarkKind::Timestamp | WatermarkKind::TimestampTz => {
                let micros = value.timestamp_micros()?;
                let utc = chrono::DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| {
                        Error::config("incremental_value", format!("{value} is out of range"))
                    })?
                    .naive_utc();
                if micros % 1_000_000 == 0 {
                    format!(
                        "toDateTime({}, 'UTC')",
                        ch_string(&utc.format("%Y-%m-%d %H:%M:%S").to_string())
                    )
                } else {
                    format!(
                        "toDateTime64({}, 6, 'UTC')",
                        ch_string(&utc.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                    )
                }
            }
            WatermarkKind::Text => ch_string(&value.value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::comparisons;

    #[test]
    fn renders_clickhouse_sql() {
        let p = comparisons(&[
            (
                ">",
                "ts",
                WatermarkKind::TimestampTz,
                "2024-01-02 03:04:05+00",
            ),
            (
                "<=",
                "ts",
                WatermarkKind::TimestampTz,
                "2024-01-02 03:04:05.25+00",
            ),
            (">", "name", WatermarkKind::Text, "it's \\ here"),
            (">=", "day", WatermarkKind::Date, "2024-01-01"),
        ]);
        assert_eq!(
            ClickHouseDialect.render(&p).unwrap(),
            "(`ts` > toDateTime('2024-01-02 03:04:05', 'UTC')) AND (`ts` <= toDateTime64('2024-01-02 03:04:05.250000', 6, 'UTC')) \
             AND (`name` > 'it\\'s \\\\ here') AND (`day` >= toDate('2024-01-01'))"
        );
        assert_eq!(ClickHouseDialect.quote_ident("a`b"), "`a\\`b`");
    }
}
