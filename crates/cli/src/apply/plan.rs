//! The plan of `apply`: what would change in the control database to match the file (printed
//! first), and carrying it out.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use chrono::Utc;
use dataloader_core::alert::AlertRule;
use dataloader_core::{ConnectionConfig, Error, LoadStrategy, Store, TableSpec};
use serde::Serialize;

use super::file::Desired;

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
    CreateAlert {
        name: String,
    },
    ChangeAlert {
        name: String,
    },
    PauseAlert {
        name: String,
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
            PlanAction::CreateAlert { name } => write!(f, "+ create alert {name}"),
            PlanAction::ChangeAlert { name } => write!(f, "~ change alert {name}"),
            PlanAction::PauseAlert { name } => {
                write!(f, "- pause alert {name} (not in the file)")
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
        ("source_query", s.source_query.clone().unwrap_or_default()),
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
        (
            "column_types",
            s.column_types
                .iter()
                .map(|(c, t)| format!("{c}: {t}"))
                .collect::<Vec<_>>()
                .join(", "),
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
    alerts: Vec<AlertRule>,
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
                    source: format!("{}:{}", spec.connection, spec.source_object()),
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
    let alerts = match &desired.alerts {
        Some(wanted) => plan_alerts(store, wanted, &mut changes).await?,
        None => Vec::new(),
    };
    Ok(Plan {
        changes,
        connections,
        creates,
        updates,
        alerts,
    })
}

/// The rules to save so that the stored ones match `wanted`: new and changed ones, and those
/// the file leaves out, paused (never deleted: their deliveries stay meaningful).
async fn plan_alerts(
    store: &dyn Store,
    wanted: &[AlertRule],
    changes: &mut Vec<PlanAction>,
) -> Result<Vec<AlertRule>> {
    let stored = store.alert_rules().await?;
    let mut save = Vec::new();
    for rule in wanted {
        let name = rule.name.clone();
        match stored.iter().find(|r| r.name == rule.name) {
            None => changes.push(PlanAction::CreateAlert { name }),
            Some(old) if old != rule => changes.push(PlanAction::ChangeAlert { name }),
            Some(_) => continue,
        }
        save.push(rule.clone());
    }
    for old in stored.iter().filter(|r| r.is_active) {
        if !wanted.iter().any(|r| r.name == old.name) {
            changes.push(PlanAction::PauseAlert {
                name: old.name.clone(),
            });
            save.push(AlertRule {
                is_active: false,
                ..old.clone()
            });
        }
    }
    Ok(save)
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

    /// Carries the plan out; with `changed_by`, the audit rows name it (the console's caller)
    /// instead of the database's user.
    pub async fn execute(&self, store: &dyn Store, changed_by: Option<&str>) -> Result<()> {
        let now = Utc::now();
        for c in &self.connections {
            match changed_by {
                Some(by) => store.upsert_connection_by(c, by).await?,
                None => store.upsert_connection(c).await?,
            }
        }
        for spec in &self.creates {
            match changed_by {
                Some(by) => store.insert_table_by(spec, now, by).await?,
                None => store.insert_table(spec, now).await?,
            };
        }
        for (id, spec) in &self.updates {
            match changed_by {
                Some(by) => store.update_table_spec_by(*id, spec, now, by).await?,
                None => store.update_table_spec(*id, spec, now).await?,
            }
        }
        for rule in &self.alerts {
            store.save_alert_rule(rule, now).await?;
        }
        Ok(())
    }
}
