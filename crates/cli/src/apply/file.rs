//! The `apply` file's format (`connections`, `defaults`, `tables` and their entry types) and how
//! its text becomes validated connections and table specs, with every problem reported at once.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{bail, Result};
use dataloader_core::alert::{AlertEvent, AlertFormat, AlertRule};
use dataloader_core::{
    CheckMode, ColumnNaming, ConnectionConfig, DeleteDetection, Error, LoadStrategy, NullWatermark,
    SchemaEvolution, SourceTable, TableSpec, TargetTable,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TablesFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, ConnectionEntry>,
    #[serde(default, skip_serializing_if = "Defaults::is_empty")]
    pub defaults: Defaults,
    #[serde(default)]
    pub tables: Vec<TableEntry>,
    /// Alert rules by name; when the file has this key, rules it leaves out are paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<BTreeMap<String, AlertEntry>>,
}

/// An alert rule, as `dataloader alert add` takes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertEntry {
    /// `failure`, `recovery`, `long_run` or `freshness`.
    pub on: String,
    /// `long_run` and `freshness`: a duration such as `90m` or `26h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A destination, or a prefix ending in `*`; every table when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<String>,
    /// The URL, or a reference to it (keep a Slack webhook's URL in a vault).
    pub webhook: String,
    /// `json` (default) or `slack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl AlertEntry {
    fn rule(&self, name: &str) -> std::result::Result<AlertRule, String> {
        let minutes = match &self.after {
            Some(text) => Some(
                AlertRule::minutes(crate::duration_arg::parse_duration(text)?)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let rule = AlertRule {
            name: name.to_string(),
            event: self.on.parse::<AlertEvent>().map_err(|e| e.to_string())?,
            threshold_minutes: minutes,
            tables: self.tables.clone(),
            url: self.webhook.clone(),
            format: self
                .format
                .as_deref()
                .unwrap_or("json")
                .parse::<AlertFormat>()
                .map_err(|e| e.to_string())?,
            is_active: self.active.unwrap_or(true),
        };
        rule.validate().map_err(|e| e.to_string())?;
        Ok(rule)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionEntry {
    #[serde(rename = "type")]
    pub db_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `env:NAME` or `file:/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// A template: `{table}`, `{schema}` and `{connection}` are replaced (normalised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_naming: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_watermark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_detection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_detection_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delete_ratio: Option<f64>,
}

impl Defaults {
    fn is_empty(&self) -> bool {
        self == &Defaults::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => vec![],
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
    fn is_none(&self) -> bool {
        matches!(self, OneOrMany::None)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    /// `schema.table` in the source database; with `source_query`, the name its rows go by.
    pub source: String,
    /// A SELECT read instead of the source table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "OneOrMany::is_none")]
    pub primary_key: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_naming: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_watermark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_detection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_detection_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delete_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<String>,
    /// Delta partition columns (destination names): one or a list.
    #[serde(default, skip_serializing_if = "OneOrMany::is_none")]
    pub partition_by: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group_rows: Option<i64>,
    /// Per-column type overrides: source column name to type (`free_num: string`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub column_types: BTreeMap<String, String>,
}

/// serde's "unknown field" message, with the closest valid key suggested. serde names the keys
/// the entry accepts after the unknown one (`unknown field `x`, expected one of `a`, `b``), so
/// the suggestions come from the entry types themselves and cannot fall behind them.
fn explain_yaml_error(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg;
    };
    // Between backticks: the unknown key first, then every key the entry accepts.
    let mut quoted = rest.split('`');
    let unknown = quoted.next().unwrap_or("");
    let best = quoted
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::levenshtein(unknown, k), k))
        .min();
    let location = e
        .location()
        .map(|l| format!("line {}: ", l.line()))
        .unwrap_or_default();
    match best {
        Some((d, k)) if d <= 3 => {
            format!("{location}unknown key \"{unknown}\" (did you mean \"{k}\"?)")
        }
        _ => format!("{location}unknown key \"{unknown}\""),
    }
}

fn normalise_for_destination(s: &str) -> String {
    ColumnNaming::SnakeCase.apply(s)
}

/// The line of the `source:` that starts table `source`, for messages.
fn line_of(text: &str, source: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix("source:")
                .map(|v| v.trim().trim_matches(['"', '\'']) == source)
                .unwrap_or(false)
        })
        .map(|i| i + 1)
}

#[derive(Debug)]
pub struct Desired {
    pub connections: Vec<ConnectionConfig>,
    pub tables: Vec<TableSpec>,
    /// `None` when the file has no `alerts` key: the rules are left as they are.
    pub alerts: Option<Vec<AlertRule>>,
}

/// Parses and validates the whole file, reporting every problem at once.
pub fn parse(text: &str) -> Result<Desired> {
    let file: TablesFile =
        serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!(explain_yaml_error(&e)))?;
    let mut problems: Vec<String> = Vec::new();
    let mut connections = Vec::new();
    for (name, c) in &file.connections {
        let config = dataloader_sources::db_type(&c.db_type).map(|db_type| ConnectionConfig {
            name: name.clone(),
            db_type,
            host: c.host.clone(),
            port: c.port,
            database: c.database.clone(),
            user: c.user.clone(),
            password: c.password.clone(),
            options: c.options.clone(),
            max_connections: c.max_connections,
        });
        match config.and_then(|cfg| dataloader_sources::validate(&cfg).map(|_| cfg)) {
            Ok(cfg) => connections.push(cfg),
            Err(e) => problems.push(format!("connections.{name}: {e}")),
        }
    }
    let d = &file.defaults;
    let mut tables = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, t) in file.tables.iter().enumerate() {
        let at = match line_of(text, &t.source) {
            Some(line) => format!("line {line}: tables[{i}] ({})", t.source),
            None => format!("tables[{i}] ({})", t.source),
        };
        match entry_to_spec(t, d) {
            Ok(spec) => {
                if let Some(j) = seen.insert(spec.destination.to_string(), i) {
                    problems.push(format!(
                        "{at}: destination {} is also used by tables[{j}]",
                        spec.destination
                    ));
                } else {
                    tables.push(spec);
                }
            }
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    let alerts = file.alerts.as_ref().map(|entries| {
        entries
            .iter()
            .filter_map(|(name, entry)| match entry.rule(name) {
                Ok(rule) => Some(rule),
                Err(e) => {
                    problems.push(format!("alerts.{name}: {e}"));
                    None
                }
            })
            .collect()
    });
    if !problems.is_empty() {
        bail!(
            "{} problem(s) in the file:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(Desired {
        connections,
        tables,
        alerts,
    })
}

fn entry_to_spec(t: &TableEntry, d: &Defaults) -> std::result::Result<TableSpec, Error> {
    let source = SourceTable::parse(&t.source)?;
    let connection = t
        .connection
        .clone()
        .or_else(|| d.connection.clone())
        .ok_or_else(|| {
            Error::config(
                "connection",
                "no connection (set it on the table or in defaults)",
            )
        })?;
    let destination = match (&t.destination, &d.destination) {
        (Some(dest), _) => TargetTable::parse(dest)?,
        (None, Some(template)) => TargetTable::parse(
            &template
                .replace("{table}", &normalise_for_destination(&source.name))
                .replace("{schema}", &normalise_for_destination(source.schema.as_deref().unwrap_or("")))
                .replace("{connection}", &normalise_for_destination(&connection)),
        )?,
        (None, None) => {
            return Err(Error::config(
                "destination",
                "no destination (set it on the table, or a template such as bronze.erp.{table} in defaults)",
            ))
        }
    };
    let mut spec = TableSpec::new(connection, source, destination);
    spec.source_query = t.source_query.clone();
    if let Some(s) = t.strategy.as_ref().or(d.strategy.as_ref()) {
        spec.strategy = LoadStrategy::from_str(s)?;
    }
    spec.primary_keys = t.primary_key.clone().into_vec();
    spec.incremental_column = t.incremental_column.clone();
    spec.schedule = t.schedule.clone().or_else(|| d.schedule.clone());
    if let Some(tz) = t.timezone.as_ref().or(d.timezone.as_ref()) {
        spec.timezone = tz.clone();
    }
    spec.is_active = t.active.unwrap_or(true);
    if let Some(p) = t.priority.or(d.priority) {
        spec.priority = p;
    }
    if let Some(r) = t.max_retries.or(d.max_retries) {
        spec.max_retries = r;
    }
    spec.timeout_minutes = t.timeout_minutes.or(d.timeout_minutes);
    if let Some(n) = t.column_naming.as_ref().or(d.column_naming.as_ref()) {
        spec.column_naming = ColumnNaming::from_str(n)?;
    }
    spec.tags = t
        .tags
        .clone()
        .or_else(|| d.tags.clone())
        .unwrap_or_default();
    spec.lookback = t.lookback.clone().or_else(|| d.lookback.clone());
    spec.rolling_column = t.rolling_column.clone();
    spec.rolling_window = t.rolling_window.clone();
    spec.chunk_size = t.chunk_size.clone();
    spec.check_mode = t
        .check_mode
        .as_deref()
        .map(CheckMode::from_str)
        .transpose()?;
    spec.check_query = t.check_query.clone();
    spec.inner_strategy = t
        .inner_strategy
        .as_deref()
        .map(LoadStrategy::from_str)
        .transpose()?;
    spec.null_watermark = t
        .null_watermark
        .as_ref()
        .or(d.null_watermark.as_ref())
        .map(|n| NullWatermark::from_str(n))
        .transpose()?;
    if let Some(s) = t.schema_evolution.as_ref().or(d.schema_evolution.as_ref()) {
        spec.schema_evolution = SchemaEvolution::from_str(s)?;
    }
    if let Some(s) = t.delete_detection.as_ref().or(d.delete_detection.as_ref()) {
        spec.delete_detection = DeleteDetection::from_str(s)?;
    }
    spec.delete_detection_interval = t
        .delete_detection_interval
        .clone()
        .or_else(|| d.delete_detection_interval.clone());
    if let Some(r) = t.max_delete_ratio.or(d.max_delete_ratio) {
        spec.max_delete_ratio = r;
    }
    spec.parallelism = t.parallelism.clone();
    spec.partition_by = t.partition_by.clone().into_vec();
    spec.target_file_size = t.target_file_size.clone();
    spec.compression = t.compression.clone();
    spec.row_group_rows = t.row_group_rows;
    spec.column_types = t.column_types.clone();
    // A default that does not apply to this table's strategy is not an error.
    if t.lookback.is_none() && spec.effective_strategy() != LoadStrategy::Incremental {
        spec.lookback = None;
    }
    if t.delete_detection.is_none()
        && !matches!(
            spec.strategy,
            LoadStrategy::Incremental | LoadStrategy::ChunkedBackfill
        )
    {
        spec.delete_detection = DeleteDetection::None;
        spec.delete_detection_interval = None;
    }
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_templates() {
        let d = parse(
            "connections:\n  erp:\n    type: postgresql\n    host: h\n    database: d\n    password: env:X\n\
             defaults:\n  connection: erp\n  destination: bronze.erp.{table}\n  strategy: incremental\n\
             tables:\n  - source: dbo.OrderLines\n    primary_key: [Id]\n    incremental_column: ModifiedAt\n\
             \x20 - source: dbo.Countries\n    strategy: full\n",
        )
        .unwrap();
        assert_eq!(
            d.tables[0].destination.to_string(),
            "bronze.erp.order_lines"
        );
        assert_eq!(d.tables[1].strategy, LoadStrategy::Full);
    }

    #[test]
    fn every_problem_at_once_with_lines() {
        let err = parse(
            "defaults:\n  connection: erp\n  destination: bronze.erp.{table}\n\
             tables:\n  - source: a\n    strategy: incremental\n  - source: b\n    schedule: \"99 * * * *\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("2 problem(s)"), "{err}");
        assert!(err.contains("line 5: tables[0] (a): primary_key:"), "{err}");
        assert!(err.contains("line 7: tables[1] (b): schedule:"), "{err}");
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let err = parse("tables:\n  - source: a\n    primary_keys: [id]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key \"primary_keys\" (did you mean \"primary_key\"?)"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn every_key_of_every_entry_is_suggested() {
        for (yaml, key) in [
            (
                "tables:\n  - source: a\n    check_mod: rows\n",
                "check_mode",
            ),
            (
                "tables:\n  - source: a\n    max_delete_ration: 0.5\n",
                "max_delete_ratio",
            ),
            ("defaults:\n  null_watermarks: skip\n", "null_watermark"),
            (
                "connections:\n  erp:\n    type: sqlite\n    max_connection: 2\n",
                "max_connections",
            ),
            ("table:\n  - source: a\n", "tables"),
        ] {
            let err = parse(yaml).unwrap_err().to_string();
            assert!(err.contains(&format!("(did you mean \"{key}\"?)")), "{err}");
        }
    }
}
