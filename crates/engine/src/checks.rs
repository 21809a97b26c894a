//! Checks of a loaded table, for orchestrators that show them next to the table (Dagster's
//! asset checks): its primary key is unique, and where the strategy makes the table a copy of
//! the whole source, it holds as many rows as the source.

use dataloader_core::{Error, LoadStrategy, Probe, Result, TableControl, TableSpec, TargetTable};
use serde::Serialize;

use crate::Engine;

/// The Delta table holds each primary-key value once.
pub const PRIMARY_KEY_UNIQUE: &str = "primary_key_unique";
/// The Delta table holds as many rows as the source (tables loaded whole only).
pub const ROW_COUNT_MATCHES_SOURCE: &str = "row_count_matches_source";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// The table is wrong.
    Error,
    /// The table may be right: the source can change between the load and the count.
    Warn,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub passed: bool,
    pub severity: Severity,
    pub description: String,
    /// Figures behind the verdict, by name.
    pub figures: Vec<(&'static str, u64)>,
}

/// What the checks found, with the Delta table's row count they measured on the way.
#[derive(Debug, Clone, Serialize)]
pub struct TableChecks {
    pub delta_rows: u64,
    pub results: Vec<CheckResult>,
}

/// The checks that apply to a table: the key check when it has a primary key, the row count
/// when every load replaces the whole table (an incremental table keeps rows the source deleted
/// until a delete scan, so its count may differ rightly).
pub fn checks_for(spec: &TableSpec) -> Vec<&'static str> {
    let mut checks = Vec::new();
    if !spec.primary_keys.is_empty() {
        checks.push(PRIMARY_KEY_UNIQUE);
    }
    if spec.effective_strategy() == LoadStrategy::Full {
        checks.push(ROW_COUNT_MATCHES_SOURCE);
    }
    checks
}

impl Engine {
    /// The Delta table's current version (`None` before its first load).
    pub async fn table_version(&self, destination: &TargetTable) -> Result<Option<i64>> {
        self.destination(destination)?.version().await
    }

    /// Runs the `wanted` checks among [`checks_for`] the table against its Delta table (and
    /// its source).
    pub async fn check(&self, table: &TableControl, wanted: &[&str]) -> Result<TableChecks> {
        let spec = &table.spec;
        let destination = &spec.destination;
        let wanted: Vec<&str> = checks_for(spec)
            .into_iter()
            .filter(|c| wanted.contains(c))
            .collect();
        let delta = self.destination(destination)?;
        let connection = self.store.require_connection(&spec.connection).await?;
        let source = dataloader_sources::connect(&connection).await?;
        let object = spec.source_object();
        let schema = source.describe(&object).await?;
        // Grouping by key reads the whole key columns: only for the key check.
        let keys = if wanted.contains(&PRIMARY_KEY_UNIQUE) {
            let dest_names = spec
                .column_naming
                .apply_all(&spec.source.to_string(), &schema.column_names())?;
            spec.primary_keys
                .iter()
                .map(|k| {
                    crate::dest_name(&spec.source, &schema, &dest_names, k, "primary key")
                        .map(str::to_string)
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let counts = delta.key_counts(&keys).await?.ok_or_else(|| Error::Write {
            table: destination.to_string(),
            step: "check the table",
            message: "the Delta table does not exist yet: load it first".into(),
            source: None,
        })?;
        let mut results = Vec::new();
        if wanted.contains(&PRIMARY_KEY_UNIQUE) {
            results.push(CheckResult {
                name: PRIMARY_KEY_UNIQUE,
                passed: counts.duplicated_keys == 0,
                severity: Severity::Error,
                description: format!(
                    "{} of ({}) held more than once in {} rows",
                    counts.duplicated_keys,
                    keys.join(", "),
                    counts.rows
                ),
                figures: vec![
                    ("duplicated_keys", counts.duplicated_keys),
                    ("delta_rows", counts.rows),
                ],
            });
        }
        if wanted.contains(&ROW_COUNT_MATCHES_SOURCE) {
            let source_rows = source
                .probe(&object, &schema, &Probe::RowCount)
                .await?
                .and_then(|w| w.value.parse::<u64>().ok())
                .ok_or_else(|| Error::SourceQuery {
                    connection: spec.connection.clone(),
                    table: object.to_string(),
                    step: "count the source rows",
                    message: "the count returned no number".into(),
                    source: None,
                })?;
            results.push(CheckResult {
                name: ROW_COUNT_MATCHES_SOURCE,
                passed: source_rows == counts.rows,
                severity: Severity::Warn,
                description: format!(
                    "{} rows in the Delta table, {source_rows} in {object}",
                    counts.rows
                ),
                figures: vec![("delta_rows", counts.rows), ("source_rows", source_rows)],
            });
        }
        Ok(TableChecks {
            delta_rows: counts.rows,
            results,
        })
    }
}
