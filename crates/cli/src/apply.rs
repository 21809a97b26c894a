//! `dataloader apply -f tables.yaml` and `dataloader export`: the control tables as code.
//!
//! The file has `connections`, `defaults` and `tables`. Applying makes `table_control` match
//! it: tables in the file are created or changed, active tables missing from it are
//! deactivated (never deleted: their history stays).

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{bail, Result};
use chrono::Utc;
use dataloader_core::{
    CheckMode, ColumnNaming, ConnectionConfig, DbType, DeleteDetection, Error, LoadStrategy,
    NullWatermark, SchemaEvolution, SourceTable, Store, TableSpec, TargetTable,
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
    /// `schema.table` in the source database.
    pub source: String,
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
}

const TABLE_KEYS: &[&str] = &[
    "source",
    "connection",
    "destination",
    "strategy",
    "primary_key",
    "incremental_column",
    "schedule",
    "timezone",
    "active",
    "priority",
    "max_retries",
    "timeout_minutes",
    "column_naming",
    "tags",
    "parallelism",
    "partition_by",
    "target_file_size",
    "compression",
    "row_group_rows",
];
const TOP_KEYS: &[&str] = &["connections", "defaults", "tables"];
const CONNECTION_KEYS: &[&str] = &[
    "type", "host", "port", "database", "user", "password", "options",
];
const DEFAULT_KEYS: &[&str] = &[
    "connection",
    "destination",
    "strategy",
    "schedule",
    "timezone",
    "column_naming",
    "priority",
    "max_retries",
    "timeout_minutes",
    "tags",
];

/// serde's "unknown field" message, with the closest valid key suggested.
fn explain_yaml_error(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg;
    };
    let unknown = rest.split('`').next().unwrap_or("");
    let best = [TABLE_KEYS, TOP_KEYS, CONNECTION_KEYS, DEFAULT_KEYS]
        .concat()
        .into_iter()
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
}

/// Parses and validates the whole file, reporting every problem at once.
pub fn parse(text: &str) -> Result<Desired> {
    let file: TablesFile =
        serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!(explain_yaml_error(&e)))?;
    let mut problems: Vec<String> = Vec::new();
    let mut connections = Vec::new();
    for (name, c) in &file.connections {
        let mut options = c.options.clone();
        let config = DbType::from_str(&c.db_type).map(|db_type| ConnectionConfig {
            name: name.clone(),
            db_type,
            host: c.host.clone(),
            port: c.port,
            database: c.database.clone(),
            user: c.user.clone(),
            password: c.password.clone(),
            options: std::mem::take(&mut options),
            max_connections: c.max_connections,
        });
        match config.and_then(|cfg| cfg.validate().map(|_| cfg)) {
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

#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PlanAction {
    CreateConnection {
        name: String,
    },
    UpdateConnection {
        name: String,
        fields: Vec<String>,
    },
    CreateTable {
        destination: String,
        strategy: String,
        source: String,
    },
    ChangeTable {
        destination: String,
        fields: Vec<FieldChange>,
    },
    DeactivateTable {
        destination: String,
    },
}

#[derive(Debug, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

impl std::fmt::Display for PlanAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanAction::CreateConnection { name } => write!(f, "+ create connection {name}"),
            PlanAction::UpdateConnection { name, fields } => {
                write!(f, "~ change connection {name}: {}", fields.join(", "))
            }
            PlanAction::CreateTable {
                destination,
                strategy,
                source,
            } => {
                write!(f, "+ create table {destination} ({strategy} from {source})")
            }
            PlanAction::ChangeTable {
                destination,
                fields,
            } => {
                write!(f, "~ change table {destination}")?;
                for c in fields {
                    write!(f, "\n    {}: {} → {}", c.field, c.from, c.to)?;
                }
                Ok(())
            }
            PlanAction::DeactivateTable { destination } => {
                write!(f, "- deactivate table {destination} (not in the file)")
            }
        }
    }
}

fn spec_fields(s: &TableSpec) -> Vec<(&'static str, String)> {
    vec![
        ("connection", s.connection.clone()),
        ("source", s.source.to_string()),
        ("strategy", s.strategy.to_string()),
        ("primary_key", s.primary_keys.join(", ")),
        (
            "incremental_column",
            s.incremental_column.clone().unwrap_or_default(),
        ),
        ("schedule", s.schedule.clone().unwrap_or_default()),
        ("timezone", s.timezone.clone()),
        ("active", s.is_active.to_string()),
        ("priority", s.priority.to_string()),
        ("max_retries", s.max_retries.to_string()),
        (
            "timeout_minutes",
            s.timeout_minutes.map(|t| t.to_string()).unwrap_or_default(),
        ),
        ("column_naming", s.column_naming.as_str().to_string()),
        ("tags", s.tags.join(", ")),
        ("lookback", s.lookback.clone().unwrap_or_default()),
        (
            "rolling_column",
            s.rolling_column.clone().unwrap_or_default(),
        ),
        (
            "rolling_window",
            s.rolling_window.clone().unwrap_or_default(),
        ),
        ("chunk_size", s.chunk_size.clone().unwrap_or_default()),
        (
            "check_mode",
            s.check_mode.map(|m| m.to_string()).unwrap_or_default(),
        ),
        ("check_query", s.check_query.clone().unwrap_or_default()),
        (
            "inner_strategy",
            s.inner_strategy.map(|m| m.to_string()).unwrap_or_default(),
        ),
        (
            "null_watermark",
            s.null_watermark.map(|m| m.to_string()).unwrap_or_default(),
        ),
        ("schema_evolution", s.schema_evolution.to_string()),
        ("delete_detection", s.delete_detection.to_string()),
        (
            "delete_detection_interval",
            s.delete_detection_interval.clone().unwrap_or_default(),
        ),
        ("max_delete_ratio", s.max_delete_ratio.to_string()),
        ("parallelism", s.parallelism.clone().unwrap_or_default()),
        ("partition_by", s.partition_by.join(", ")),
        (
            "target_file_size",
            s.target_file_size.clone().unwrap_or_default(),
        ),
        ("compression", s.compression.clone().unwrap_or_default()),
        (
            "row_group_rows",
            s.row_group_rows.map(|r| r.to_string()).unwrap_or_default(),
        ),
    ]
}

fn connection_fields(c: &ConnectionConfig) -> Vec<(&'static str, String)> {
    let c = &c.masked();
    vec![
        ("type", c.db_type.to_string()),
        ("host", c.host.clone().unwrap_or_default()),
        ("port", c.port.map(|p| p.to_string()).unwrap_or_default()),
        ("database", c.database.clone().unwrap_or_default()),
        ("user", c.user.clone().unwrap_or_default()),
        ("password", c.password.clone().unwrap_or_default()),
        ("options", format!("{:?}", c.options)),
        (
            "max_connections",
            c.max_connections.map(|m| m.to_string()).unwrap_or_default(),
        ),
    ]
}

pub struct Plan {
    pub changes: Vec<PlanAction>,
    connections: Vec<ConnectionConfig>,
    creates: Vec<TableSpec>,
    updates: Vec<(i64, TableSpec)>,
}

pub async fn plan(store: &dyn Store, desired: Desired) -> Result<Plan> {
    let mut changes = Vec::new();
    let mut connections = Vec::new();
    let known: BTreeMap<String, ConnectionConfig> = store
        .connections()
        .await?
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    for c in desired.connections {
        match known.get(&c.name) {
            None => {
                changes.push(PlanAction::CreateConnection {
                    name: c.name.clone(),
                });
                connections.push(c);
            }
            Some(old) if old != &c => {
                let fields = connection_fields(old)
                    .into_iter()
                    .zip(connection_fields(&c))
                    .filter(|(a, b)| a.1 != b.1)
                    .map(|(a, _)| a.0.to_string())
                    .collect();
                changes.push(PlanAction::UpdateConnection {
                    name: c.name.clone(),
                    fields,
                });
                connections.push(c);
            }
            Some(_) => {}
        }
    }
    let all_connections: Vec<String> = known
        .keys()
        .cloned()
        .chain(connections.iter().map(|c| c.name.clone()))
        .collect();
    let mut missing = Vec::new();
    for t in &desired.tables {
        if !all_connections.contains(&t.connection) {
            missing.push(format!(
                "{}: {}",
                t.destination,
                Error::UnknownConnection {
                    name: t.connection.clone(),
                    known: all_connections.clone()
                }
            ));
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} problem(s) in the file:\n  {}",
            missing.len(),
            missing.join("\n  ")
        );
    }
    let existing = store.tables().await?;
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for spec in &desired.tables {
        let found = existing
            .iter()
            .find(|t| t.spec.destination == spec.destination);
        // A finished backfill switched itself to incremental: the file still saying
        // chunked_backfill is not a change (applying it would start the backfill again).
        let spec = &match found {
            Some(t) if backfill_finished(t, spec) => TableSpec {
                strategy: LoadStrategy::Incremental,
                ..spec.clone()
            },
            _ => spec.clone(),
        };
        match found {
            None => {
                changes.push(PlanAction::CreateTable {
                    destination: spec.destination.to_string(),
                    strategy: spec.strategy.to_string(),
                    source: spec.origin(),
                });
                creates.push(spec.clone());
            }
            Some(t) if &t.spec != spec => {
                let fields = spec_fields(&t.spec)
                    .into_iter()
                    .zip(spec_fields(spec))
                    .filter(|(a, b)| a.1 != b.1)
                    .map(|(a, b)| FieldChange {
                        field: a.0.to_string(),
                        from: if a.1.is_empty() { "(none)".into() } else { a.1 },
                        to: if b.1.is_empty() { "(none)".into() } else { b.1 },
                    })
                    .collect();
                changes.push(PlanAction::ChangeTable {
                    destination: spec.destination.to_string(),
                    fields,
                });
                updates.push((t.table_id, spec.clone()));
            }
            Some(_) => {}
        }
    }
    for t in existing.iter().filter(|t| t.spec.is_active) {
        if !desired
            .tables
            .iter()
            .any(|s| s.destination == t.spec.destination)
        {
            changes.push(PlanAction::DeactivateTable {
                destination: t.spec.destination.to_string(),
            });
            let mut spec = t.spec.clone();
            spec.is_active = false;
            updates.push((t.table_id, spec));
        }
    }
    Ok(Plan {
        changes,
        connections,
        creates,
        updates,
    })
}

fn backfill_finished(existing: &dataloader_core::TableControl, desired: &TableSpec) -> bool {
    desired.strategy == LoadStrategy::ChunkedBackfill
        && existing.spec.strategy == LoadStrategy::Incremental
        && existing.backfill_cursor.is_none()
        && existing.spec.chunk_size == desired.chunk_size
}

impl Plan {
    pub fn summary(&self) -> String {
        let count = |f: fn(&PlanAction) -> bool| self.changes.iter().filter(|c| f(c)).count();
        format!(
            "Plan: {} to create, {} to change, {} to deactivate.",
            count(|c| matches!(
                c,
                PlanAction::CreateConnection { .. } | PlanAction::CreateTable { .. }
            )),
            count(|c| matches!(
                c,
                PlanAction::UpdateConnection { .. } | PlanAction::ChangeTable { .. }
            )),
            count(|c| matches!(c, PlanAction::DeactivateTable { .. })),
        )
    }

    pub async fn execute(&self, store: &dyn Store) -> Result<()> {
        let now = Utc::now();
        for c in &self.connections {
            store.upsert_connection(c).await?;
        }
        for spec in &self.creates {
            store.insert_table(spec, now).await?;
        }
        for (id, spec) in &self.updates {
            store.update_table_spec(*id, spec, now).await?;
        }
        Ok(())
    }
}

/// The control tables as a file that `apply` turns back into the same tables.
pub async fn export(store: &dyn Store) -> Result<String> {
    let mut file = TablesFile::default();
    for c in store.connections().await?.iter().map(|c| c.masked()) {
        file.connections.insert(
            c.name.clone(),
            ConnectionEntry {
                db_type: c.db_type.to_string(),
                host: c.host,
                port: c.port,
                database: c.database,
                user: c.user,
                password: c.password,
                options: c.options,
                max_connections: c.max_connections,
            },
        );
    }
    for t in store.tables().await? {
        let s = t.spec;
        file.tables.push(TableEntry {
            source: s.source.to_string(),
            connection: Some(s.connection),
            destination: Some(s.destination.to_string()),
            strategy: Some(s.strategy.to_string()),
            primary_key: match s.primary_keys.len() {
                0 => OneOrMany::None,
                _ => OneOrMany::Many(s.primary_keys),
            },
            incremental_column: s.incremental_column,
            schedule: s.schedule,
            timezone: (s.timezone != "UTC").then_some(s.timezone),
            active: (!s.is_active).then_some(false),
            priority: (s.priority != 100).then_some(s.priority),
            max_retries: (s.max_retries != 3).then_some(s.max_retries),
            timeout_minutes: s.timeout_minutes,
            column_naming: (s.column_naming != ColumnNaming::SnakeCase)
                .then(|| s.column_naming.as_str().to_string()),
            tags: (!s.tags.is_empty()).then_some(s.tags),
            lookback: s.lookback,
            rolling_column: s.rolling_column,
            rolling_window: s.rolling_window,
            chunk_size: s.chunk_size,
            check_mode: s.check_mode.map(|m| m.to_string()),
            check_query: s.check_query,
            inner_strategy: s.inner_strategy.map(|m| m.to_string()),
            null_watermark: s.null_watermark.map(|m| m.to_string()),
            schema_evolution: (s.schema_evolution != SchemaEvolution::AddColumns)
                .then(|| s.schema_evolution.to_string()),
            delete_detection: (s.delete_detection != DeleteDetection::None)
                .then(|| s.delete_detection.to_string()),
            delete_detection_interval: s.delete_detection_interval,
            max_delete_ratio: (s.max_delete_ratio != 0.2).then_some(s.max_delete_ratio),
            parallelism: s.parallelism,
            partition_by: match s.partition_by.len() {
                0 => OneOrMany::None,
                _ => OneOrMany::Many(s.partition_by),
            },
            target_file_size: s.target_file_size,
            compression: s.compression,
            row_group_rows: s.row_group_rows,
        });
    }
    Ok(serde_yaml::to_string(&file)?)
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
}
