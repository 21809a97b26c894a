//! What a `table_control` row declares: where rows come from, where they go, how and when.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::naming::is_plain_name;
use crate::schedule::{next_occurrence, parse_timezone};
use crate::{
    CheckMode, ColumnNaming, DeleteDetection, Error, LoadStrategy, NullWatermark, Result,
    SchemaEvolution, Span,
};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSpec {
    pub connection: String,
    /// The source table; with `source_query` set, only the name the query's rows go by.
    pub source: SourceTable,
    /// A SELECT read instead of the source table (see [`crate::source_query`]).
    pub source_query: Option<String>,
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
    /// Re-read below the watermark: a duration (`2h`) or an amount (`1000`).
    pub lookback: Option<String>,
    /// `rolling`: the column the window is on.
    pub rolling_column: Option<String>,
    /// `rolling`: the window's length, back from the load's clock (from the newest value in
    /// the source for integer and decimal columns).
    pub rolling_window: Option<String>,
    /// `chunked_backfill`: rows per chunk for integer columns, a duration for dates/timestamps.
    pub chunk_size: Option<String>,
    /// `check_and_load`: what to probe; default `max` with an incremental column, else `row_count`.
    pub check_mode: Option<CheckMode>,
    /// `check_and_load` with `check_mode: query`: SQL returning one value.
    pub check_query: Option<String>,
    /// `check_and_load`: how to load when the probe changed; default `full`.
    pub inner_strategy: Option<LoadStrategy>,
    /// Default: `include` for merging strategies, `skip` for `append_only`.
    pub null_watermark: Option<NullWatermark>,
    pub schema_evolution: SchemaEvolution,
    pub delete_detection: DeleteDetection,
    /// Least time between two primary-key scans; every run when unset.
    pub delete_detection_interval: Option<String>,
    /// Largest share of the table a key scan, or a rolling window moving on, may delete before
    /// the run refuses.
    pub max_delete_ratio: f64,
    /// Reads split into this many primary-key ranges, one connection each: a number, or
    /// `auto`; one read when unset.
    pub parallelism: Option<String>,
    /// Delta partition columns (destination names).
    pub partition_by: Vec<String>,
    /// Data-file size a writer rolls over at, e.g. `128MiB`; default in [`crate::layout::Layout`].
    pub target_file_size: Option<String>,
    /// Parquet codec: `zstd`, `zstd(LEVEL)`, `snappy`, `lz4` or `none`.
    pub compression: Option<String>,
    /// Rows per Parquet row group.
    pub row_group_rows: Option<i64>,
    /// Per-column type overrides: source column name to a type name (see
    /// [`crate::column_types`]).
    #[serde(default)]
    pub column_types: BTreeMap<String, String>,
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
            source_query: None,
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
            lookback: None,
            rolling_column: None,
            rolling_window: None,
            chunk_size: None,
            check_mode: None,
            check_query: None,
            inner_strategy: None,
            null_watermark: None,
            schema_evolution: SchemaEvolution::AddColumns,
            delete_detection: DeleteDetection::None,
            delete_detection_interval: None,
            max_delete_ratio: 0.2,
            parallelism: None,
            partition_by: vec![],
            target_file_size: None,
            compression: None,
            row_group_rows: None,
            column_types: BTreeMap::new(),
        }
    }

    /// The data-file layout this table is written with.
    pub fn layout(&self) -> Result<crate::layout::Layout> {
        crate::layout::layout_from(
            self.effective_strategy().needs_primary_key(),
            &self.partition_by,
            self.target_file_size.as_deref(),
            self.compression.as_deref(),
            self.row_group_rows,
        )
    }

    /// The NULL policy in force (the default depends on the strategy).
    pub fn effective_null_watermark(&self) -> NullWatermark {
        self.null_watermark
            .unwrap_or(match self.effective_strategy() {
                LoadStrategy::AppendOnly => NullWatermark::Skip,
                _ => NullWatermark::Include,
            })
    }

    /// The next scheduled load after `after` (`None` for a table loaded only when asked).
    pub fn next_scheduled(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.schedule
            .as_deref()
            .map(|s| next_occurrence(s, &self.timezone, after))
            .transpose()
    }

    /// `connection:source`, the name a table's origin goes by in listings, plans and
    /// `table_control.loaded_from`.
    pub fn origin(&self) -> String {
        format!("{}:{}", self.connection, self.source)
    }

    /// The strategy that writes: `check_and_load`'s inner strategy, else the strategy itself.
    pub fn effective_strategy(&self) -> LoadStrategy {
        match self.strategy {
            LoadStrategy::CheckAndLoad => self.inner_strategy.unwrap_or(LoadStrategy::Full),
            s => s,
        }
    }

    /// `check_and_load`'s probe in force.
    pub fn effective_check_mode(&self) -> CheckMode {
        self.check_mode
            .unwrap_or(if self.incremental_column.is_some() {
                CheckMode::Max
            } else {
                CheckMode::RowCount
            })
    }

    /// Every rule that can be checked without a database; the first broken one is reported,
    /// naming its field.
    pub fn validate(&self) -> Result<()> {
        let dest = &self.destination;
        let strategy = self.strategy;
        let writes = self.effective_strategy();
        let need = |field: &str, what: &str| {
            Error::config(
                field,
                format!("{dest}: the {strategy} strategy needs {what}"),
            )
        };
        let only = |field: &str, for_what: &str| {
            Error::config(
                field,
                format!("{dest}: {field} only applies to {for_what}, not to {strategy}"),
            )
        };
        if let Some(query) = &self.source_query {
            crate::source_query::validate(query)?;
        }
        if self.primary_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(Error::config(
                "primary_key",
                "a primary key column name is empty",
            ));
        }
        if writes.needs_primary_key() && self.primary_keys.is_empty() {
            return Err(Error::config(
                "primary_key",
                format!("{dest}: the {writes} strategy merges by primary key; give one with --primary-key"),
            ));
        }
        let watermark_needed = matches!(
            writes,
            LoadStrategy::Incremental | LoadStrategy::AppendOnly | LoadStrategy::ChunkedBackfill
        ) || (strategy == LoadStrategy::CheckAndLoad
            && self.effective_check_mode() == CheckMode::Max);
        if watermark_needed && self.incremental_column.is_none() {
            return Err(Error::config(
                "incremental_column",
                format!(
                    "{dest}: the {writes} strategy needs an incremental column (for example updated_at); give one with --incremental-column"
                ),
            ));
        }
        if let Some(lookback) = &self.lookback {
            if !matches!(writes, LoadStrategy::Incremental) {
                return Err(only(
                    "lookback",
                    "incremental loads (append_only would append re-read rows twice)",
                ));
            }
            Span::parse("lookback", lookback)?;
        }
        match (strategy, &self.rolling_column, &self.rolling_window) {
            (LoadStrategy::Rolling, None, _) => {
                return Err(need(
                    "rolling_column",
                    "a rolling column (--rolling-column)",
                ))
            }
            (LoadStrategy::Rolling, _, None) => {
                return Err(need(
                    "rolling_window",
                    "a window (--rolling-window, for example 30 days)",
                ))
            }
            (LoadStrategy::Rolling, _, Some(w)) => {
                Span::parse("rolling_window", w)?;
            }
            (_, Some(_), _) => return Err(only("rolling_column", "the rolling strategy")),
            (_, _, Some(_)) => return Err(only("rolling_window", "the rolling strategy")),
            _ => {}
        }
        match (strategy, &self.chunk_size) {
            (LoadStrategy::ChunkedBackfill, None) => {
                return Err(need("chunk_size", "a chunk size (--chunk-size: rows for an integer column, a duration such as 7 days for dates)"))
            }
            (_, Some(c)) => {
                // Kept after a finished backfill switched the table to incremental.
                if !matches!(strategy, LoadStrategy::ChunkedBackfill | LoadStrategy::Incremental) {
                    return Err(only("chunk_size", "the chunked_backfill strategy"));
                }
                Span::parse("chunk_size", c)?;
            }
            _ => {}
        }
        if strategy == LoadStrategy::CheckAndLoad {
            match self.effective_check_mode() {
                CheckMode::Query if self.check_query.as_deref().unwrap_or("").trim().is_empty() => {
                    return Err(need(
                        "check_query",
                        "a query returning one value with check_mode query (--check-query)",
                    ))
                }
                CheckMode::Query => {
                    crate::check_query::validate(self.check_query.as_deref().unwrap_or(""))?
                }
                CheckMode::Max | CheckMode::RowCount if self.check_query.is_some() => {
                    return Err(Error::config(
                        "check_query",
                        format!("{dest}: check_query is used only with check_mode query"),
                    ))
                }
                _ => {}
            }
            if matches!(
                self.inner_strategy,
                Some(
                    LoadStrategy::CheckAndLoad
                        | LoadStrategy::Rolling
                        | LoadStrategy::ChunkedBackfill
                )
            ) {
                return Err(Error::config(
                    "inner_strategy",
                    format!("{dest}: check_and_load loads with full, incremental or append_only"),
                ));
            }
        } else {
            if self.check_mode.is_some() {
                return Err(only("check_mode", "the check_and_load strategy"));
            }
            if self.check_query.is_some() {
                return Err(only("check_query", "the check_and_load strategy"));
            }
            if self.inner_strategy.is_some() {
                return Err(only("inner_strategy", "the check_and_load strategy"));
            }
        }
        if self.null_watermark == Some(NullWatermark::Include) && writes == LoadStrategy::AppendOnly
        {
            return Err(Error::config(
                "null_watermark",
                format!("{dest}: append_only cannot include NULL watermark rows: it would append them again every run; use skip"),
            ));
        }
        if self.delete_detection == DeleteDetection::PkScan {
            if !matches!(
                strategy,
                LoadStrategy::Incremental | LoadStrategy::ChunkedBackfill
            ) {
                return Err(only("delete_detection", "incremental loads"));
            }
        } else if self.delete_detection_interval.is_some() {
            return Err(Error::config(
                "delete_detection_interval",
                format!("{dest}: set delete_detection: pk_scan to use an interval"),
            ));
        }
        if let Some(interval) = &self.delete_detection_interval {
            if !matches!(
                Span::parse("delete_detection_interval", interval)?,
                Span::Duration(_)
            ) {
                return Err(Error::config(
                    "delete_detection_interval",
                    "must be a duration, for example 1 day",
                ));
            }
        }
        if !(self.max_delete_ratio > 0.0 && self.max_delete_ratio <= 1.0) {
            return Err(Error::config(
                "max_delete_ratio",
                "must be more than 0 and at most 1 (for example 0.2)",
            ));
        }
        if self.parallelism()?.is_some() && self.primary_keys.len() != 1 {
            return Err(Error::config(
                "parallelism",
                format!("{dest}: parallel reads split a single-column primary key into ranges: set one primary_key"),
            ));
        }
        self.layout()?;
        self.column_types()?;
        parse_timezone(&self.timezone)?;
        if let Some(schedule) = &self.schedule {
            // A schedule that never fires would leave each load unable to say when the next
            // one is (`0 0 30 2 *`: February has no 30th).
            next_occurrence(schedule, &self.timezone, chrono::Utc::now())?;
        }
        if self.max_retries < 0 {
            return Err(Error::config("max_retries", "must be 0 or more"));
        }
        if matches!(self.timeout_minutes, Some(t) if t <= 0) {
            return Err(Error::config("timeout_minutes", "must be more than 0"));
        }
        Ok(())
    }
}

/// How many key ranges a whole-table read is split into, each read on its own connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// As many ranges as the machine has cores (at most 8), for tables whose key spans at
    /// least [`Parallelism::AUTO_MIN_SPAN`] values; one read for smaller ones.
    Auto,
    Ranges(u32),
}

impl Parallelism {
    pub const AUTO_MIN_SPAN: i128 = 1_000_000;
    pub const MAX_RANGES: u32 = 64;
}

impl TableSpec {
    /// The configured parallelism; `None` for one plain read.
    pub fn parallelism(&self) -> Result<Option<Parallelism>> {
        let Some(p) = self.parallelism.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if p.eq_ignore_ascii_case("auto") {
            return Ok(Some(Parallelism::Auto));
        }
        match p.parse::<u32>() {
            Ok(1) => Ok(None),
            Ok(n) if (2..=Parallelism::MAX_RANGES).contains(&n) => Ok(Some(Parallelism::Ranges(n))),
            _ => Err(Error::config(
                "parallelism",
                format!(
                    "\"{p}\" is not a parallelism: use auto or a number from 1 to {}",
                    Parallelism::MAX_RANGES
                ),
            )),
        }
    }
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
        spec.schedule = Some("0 0 30 2 *".into());
        let never = spec.validate().unwrap_err().to_string();
        assert!(
            never.starts_with("schedule:") && never.contains("never fires"),
            "{never}"
        );
        spec.schedule = Some("0 0 29 2 *".into());
        spec.validate().expect("29 February comes in leap years");
        spec.chunk_size = Some("0".into());
        spec.strategy = LoadStrategy::ChunkedBackfill;
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("chunk_size:"));
    }
}
