//! `export`: the control tables written as an `apply` file. Values equal to the defaults are
//! left out, so the file stays short and reads like a hand-written one.

use anyhow::Result;
use dataloader_core::{ColumnNaming, DeleteDetection, SchemaEvolution, Store};

use dataloader_core::alert::AlertFormat;
use dataloader_core::secret::SecretSetting;

use super::file::{AlertEntry, ConnectionEntry, OneOrMany, TableEntry, TablesFile};

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
            source_query: s.source_query,
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
            column_types: s.column_types,
        });
    }
    let rules = store.alert_rules().await?;
    if !rules.is_empty() {
        let mut alerts = std::collections::BTreeMap::new();
        let mut left_out = Vec::new();
        for r in rules {
            // A webhook given as a URL is a secret (a Slack webhook's path): it is never
            // written to a file.
            let webhook = match r.webhook() {
                Ok(SecretSetting::Reference(reference)) => reference.to_string(),
                _ => {
                    left_out.push(format!("{} ({})", r.name, r.shown_url()));
                    continue;
                }
            };
            alerts.insert(
                r.name.clone(),
                AlertEntry {
                    on: r.event.as_str().into(),
                    after: r.threshold_minutes.map(|m| format!("{m}m")),
                    tables: r.tables,
                    webhook,
                    format: (r.format != AlertFormat::Json).then(|| r.format.as_str().into()),
                    active: (!r.is_active).then_some(false),
                },
            );
        }
        // A file with some rules would pause the others when applied: all or none.
        if left_out.is_empty() {
            file.alerts = Some(alerts);
        } else {
            eprintln!(
                "export: no alerts written: {} {} a webhook given as a URL, a secret; give those as references (env:, file:, a vault) to export the rules",
                left_out.join(", "),
                if left_out.len() == 1 { "has" } else { "have" }
            );
        }
    }
    Ok(serde_yaml::to_string(&file)?)
}
