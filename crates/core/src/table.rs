//! What a `table_control` row declares: where rows come from, where they go, how and when.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ColumnNaming, Error, LoadStrategy, Result};

/// Letters, digits, `_` and `-`, starting with a letter or `_`: safe as a path segment and as
/// a catalog identifier.
pub fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A destination table, `catalog.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetTable {
    pub catalog: String,
    pub schema: String,
    pub table: String,
}

impl TargetTable {
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('.').collect();
        let bad = |why: &str| {
            Error::config(
                "destination",
                format!("\"{s}\" {why}; write it as catalog.schema.table, for example bronze.sales.orders"),
            )
        };
        if s.contains('/') || s.contains('\\') || s.contains("..") {
            return Err(bad("contains a path character ('/', '\\' or '..')"));
        }
        if parts.len() != 3 {
            return Err(bad(&format!("has {} part(s), not 3", parts.len())));
        }
        if let Some(p) = parts.iter().find(|p| !is_plain_name(p)) {
            return Err(bad(&format!(
                "has the part \"{p}\", which is not letters, digits, '_' or '-'"
            )));
        }
        Ok(TargetTable {
            catalog: parts[0].to_string(),
            schema: parts[1].to_string(),
            table: parts[2].to_string(),
        })
    }
}

impl std::fmt::Display for TargetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.catalog, self.schema, self.table)
    }
}

impl FromStr for TargetTable {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TargetTable::parse(s)
    }
}

impl TryFrom<String> for TargetTable {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        TargetTable::parse(&s)
    }
}

impl From<TargetTable> for String {
    fn from(t: TargetTable) -> String {
        t.to_string()
    }
}

/// A source table, `schema.table` or `table` (the connection's default schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceTable {
    pub schema: Option<String>,
    pub name: String,
}

impl SourceTable {
    /// Splits on the first dot. Names are used as identifiers (quoted), never pasted into SQL.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::config("source", "the source table name is empty"));
        }
        Ok(match s.split_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => SourceTable {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            },
            Some(_) => {
                return Err(Error::config(
                    "source",
                    format!("\"{s}\" is not schema.table or table"),
                ))
            }
            None => SourceTable {
                schema: None,
                name: s.to_string(),
            },
        })
    }
}

impl std::fmt::Display for SourceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The declared part of a `table_control` row: everything a user writes, nothing a load
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    pub connection: String,
    pub source: SourceTable,
    pub destination: TargetTable,
    pub strategy: LoadStrategy,
    pub primary_keys: Vec<String>,
    pub incremental_column: Option<String>,
    /// Five-field cron; `None` means "only when asked".
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    pub timezone: String,
    pub is_active: bool,
    pub timeout_minutes: Option<i64>,
    pub max_retries: i64,
    pub priority: i64,
    pub column_naming: ColumnNaming,
    pub tags: Vec<String>,
}

impl TableSpec {
    /// A spec with the defaults a user gets when they name only the essentials.
    pub fn new(
        connection: impl Into<String>,
        source: SourceTable,
        destination: TargetTable,
    ) -> Self {
        TableSpec {
            connection: connection.into(),
            source,
            destination,
            strategy: LoadStrategy::Full,
            primary_keys: vec![],
            incremental_column: None,
            schedule: None,
            timezone: "UTC".into(),
            is_active: true,
            timeout_minutes: None,
            max_retries: 3,
            priority: 100,
            column_naming: ColumnNaming::SnakeCase,
            tags: vec![],
        }
    }

    /// Every rule that can be checked without a database.
    pub fn validate(&self) -> Result<()> {
        if self.strategy.needs_primary_key() && self.primary_keys.is_empty() {
            return Err(Error::config(
                "primary_key",
                format!(
                    "{}: the {} strategy merges by primary key; give one with --primary-key",
                    self.destination, self.strategy
                ),
            ));
        }
        if self.primary_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(Error::config(
                "primary_key",
                "a primary key column name is empty",
            ));
        }
        if self.strategy.uses_watermark() && self.incremental_column.is_none() {
            return Err(Error::config(
                "incremental_column",
                format!(
                    "{}: the {} strategy needs an incremental column (for example updated_at); give one with --incremental-column",
                    self.destination, self.strategy
                ),
            ));
        }
        if let Some(schedule) = &self.schedule {
            parse_cron(schedule)?;
        }
        parse_timezone(&self.timezone)?;
        if self.max_retries < 0 {
            return Err(Error::config("max_retries", "must be 0 or more"));
        }
        if matches!(self.timeout_minutes, Some(t) if t <= 0) {
            return Err(Error::config("timeout_minutes", "must be more than 0"));
        }
        Ok(())
    }
}

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
        .map_err(|e| Error::config("schedule", format!("\"{schedule}\" never fires: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert!(TargetTable::parse("bronze.sales.orders").is_ok());
        for bad in [
            "bronze.orders",
            "a.b.c.d",
            "../x/y",
            "a.b/c.d",
            "a.b. c",
            "a..b",
        ] {
            let err = TargetTable::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("destination:"), "{bad}: {err}");
        }
    }

    #[test]
    fn incremental_needs_key_and_column() {
        let mut spec = TableSpec::new(
            "pg",
            SourceTable::parse("public.orders").unwrap(),
            TargetTable::parse("bronze.sales.orders").unwrap(),
        );
        spec.strategy = LoadStrategy::Incremental;
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("primary_key:"));
        spec.primary_keys = vec!["id".into()];
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("incremental_column:"));
        spec.incremental_column = Some("updated_at".into());
        spec.validate().unwrap();
        spec.schedule = Some("61 * * * *".into());
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("schedule:"));
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
