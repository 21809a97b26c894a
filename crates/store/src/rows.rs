//! The control tables' rows as the core's types, on either backend: their column lists, and
//! [`ControlRow`], which reads a row. A row that does not read names its column; an unreadable
//! `table_control` row becomes an [`InvalidTable`] (the sensor reports it and loads the rest).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use dataloader_core::store::HistoryRecord;
use dataloader_core::{
    ColumnNaming, ConnectionConfig, DbType, DeleteDetection, Error, InvalidTable, LoadStrategy,
    Result, RunRecord, RunStatus, SchemaEvolution, SourceTable, TableControl, TableSpec,
    TargetTable, Watermark, WatermarkKind,
};
use sqlx::{ColumnIndex, Row};

use crate::backend::Value;

pub(crate) const TABLE_COLUMNS: &str = "table_id, connection_name, source_schema, source_table, \
    source_query, destination_catalog, destination_schema, destination_table, load_strategy, primary_keys, \
    incremental_column, incremental_value, incremental_value_type, schedule, timezone, \
    next_load_date_time, is_active, status, last_run_id, timeout_minutes, max_retries, priority, \
    column_naming, tags, lookback, rolling_column, rolling_window, chunk_size, check_mode, \
    check_query, inner_strategy, null_watermark, schema_evolution, delete_detection, \
    delete_detection_interval, max_delete_ratio, backfill_cursor, last_check_value, \
    last_delete_scan_at, retry_count, created_at, updated_at, parallelism, partition_by, \
    target_file_size, compression, row_group_rows, loaded_from, column_types";

pub(crate) const CONNECTION_COLUMNS: &str =
    "connection_name, db_type, host, port, database_name, username, \
    password_ref, options, max_connections";

pub(crate) const RUN_COLUMNS: &str =
    "run_id, table_id, destination, trigger_type, status, queued_at, \
    started_at, finished_at, rows_read, rows_written, rows_deleted, bytes_written, \
    watermark_before, watermark_after, delta_version, worker, error_class, error_text, \
    schema_changes, notes, retry_category, retry_recommendation, retry_explanation";

pub(crate) fn decode_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::store("read a control row", e)
}

pub(crate) fn parse_opt<T: FromStr<Err = Error>>(text: Option<String>) -> Result<Option<T>> {
    text.as_deref().map(T::from_str).transpose()
}

pub(crate) fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn json_map(values: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn parse_json_map(
    column: &str,
    text: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| Error::Store {
        step: "read a control row",
        message: format!("{column} is not a JSON object of strings: {e}"),
        source: Some(e.into()),
    })
}

pub(crate) fn parse_json_list(column: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| Error::Store {
        step: "read a control row",
        message: format!("{column} is not a JSON list of strings: {e}"),
        source: Some(e.into()),
    })
}

/// An unreadable row asked for by id or destination: a configuration error naming it.
pub(crate) fn unreadable(invalid: InvalidTable) -> Error {
    Error::config(
        "table_control",
        format!(
            "the row of {} (table_id {}) cannot be read: {}; correct it with `dataloader table update` or SQL",
            invalid.destination, invalid.table_id, invalid.problem
        ),
    )
}

/// Reads a control row into the core's types: `table_control`, `table_control_dbconfig`,
/// `historical_metadata` and `table_control_history`, selected with the columns above.
pub(crate) trait ControlRow {
    fn connection_config(&self) -> Result<ConnectionConfig>;
    fn table_control(&self) -> Result<TableControl>;
    /// The row as a table, or what makes it unreadable (named by its id and destination).
    fn read_table(&self) -> std::result::Result<TableControl, InvalidTable>;
    fn run_record(&self) -> Result<RunRecord>;
    fn history_record(&self) -> Result<HistoryRecord>;
}

impl<R: Row> ControlRow for R
where
    for<'a> &'a str: ColumnIndex<R>,
    bool: Value<R::Database>,
    i64: Value<R::Database>,
    f64: Value<R::Database>,
    String: Value<R::Database>,
    DateTime<Utc>: Value<R::Database>,
{
    fn connection_config(&self) -> Result<ConnectionConfig> {
        let options: String = self.try_get("options").map_err(decode_err)?;
        let db_type: String = self.try_get("db_type").map_err(decode_err)?;
        let port: Option<i64> = self.try_get("port").map_err(decode_err)?;
        Ok(ConnectionConfig {
            name: self.try_get("connection_name").map_err(decode_err)?,
            db_type: DbType::from_str(&db_type)?,
            host: self.try_get("host").map_err(decode_err)?,
            port: port.map(|p| p as u16),
            database: self.try_get("database_name").map_err(decode_err)?,
            user: self.try_get("username").map_err(decode_err)?,
            password: self.try_get("password_ref").map_err(decode_err)?,
            options: serde_json::from_str(&options).map_err(decode_err)?,
            max_connections: self
                .try_get::<Option<i64>, _>("max_connections")
                .map_err(decode_err)?
                .map(|m| m.clamp(0, i64::from(u32::MAX)) as u32),
        })
    }

    fn table_control(&self) -> Result<TableControl> {
        let strategy: String = self.try_get("load_strategy").map_err(decode_err)?;
        let keys: String = self.try_get("primary_keys").map_err(decode_err)?;
        let tags: String = self.try_get("tags").map_err(decode_err)?;
        let partition_by: String = self.try_get("partition_by").map_err(decode_err)?;
        let column_types: String = self.try_get("column_types").map_err(decode_err)?;
        let naming: String = self.try_get("column_naming").map_err(decode_err)?;
        let status: Option<String> = self.try_get("status").map_err(decode_err)?;
        let wm_value: Option<String> = self.try_get("incremental_value").map_err(decode_err)?;
        let wm_kind: Option<String> = self.try_get("incremental_value_type").map_err(decode_err)?;
        let incremental_value = match wm_value {
            None => None,
            Some(v) => {
                // A value set by hand with plain SQL may have no type: treat it as text,
                // which the source renders as a quoted literal of the column's type.
                let kind = wm_kind
                    .as_deref()
                    .map(WatermarkKind::from_str)
                    .transpose()?
                    .unwrap_or(WatermarkKind::Text);
                Some(Watermark::new(kind, v)?)
            }
        };
        let schema: Option<String> = self.try_get("source_schema").map_err(decode_err)?;
        let table: Option<String> = self.try_get("source_table").map_err(decode_err)?;
        let destination = TargetTable {
            catalog: self.try_get("destination_catalog").map_err(decode_err)?,
            schema: self.try_get("destination_schema").map_err(decode_err)?,
            table: self.try_get("destination_table").map_err(decode_err)?,
        };
        Ok(TableControl {
            table_id: self.try_get("table_id").map_err(decode_err)?,
            spec: TableSpec {
                connection: self.try_get("connection_name").map_err(decode_err)?,
                source: SourceTable {
                    schema,
                    name: table.unwrap_or_default(),
                },
                source_query: self.try_get("source_query").map_err(decode_err)?,
                destination,
                strategy: LoadStrategy::from_str(&strategy)?,
                primary_keys: parse_json_list("primary_keys", &keys)?,
                incremental_column: self.try_get("incremental_column").map_err(decode_err)?,
                schedule: self.try_get("schedule").map_err(decode_err)?,
                timezone: self.try_get("timezone").map_err(decode_err)?,
                is_active: self.try_get("is_active").map_err(decode_err)?,
                timeout_minutes: self.try_get("timeout_minutes").map_err(decode_err)?,
                max_retries: self.try_get("max_retries").map_err(decode_err)?,
                priority: self.try_get("priority").map_err(decode_err)?,
                column_naming: ColumnNaming::from_str(&naming)?,
                tags: parse_json_list("tags", &tags)?,
                lookback: self.try_get("lookback").map_err(decode_err)?,
                rolling_column: self.try_get("rolling_column").map_err(decode_err)?,
                rolling_window: self.try_get("rolling_window").map_err(decode_err)?,
                chunk_size: self.try_get("chunk_size").map_err(decode_err)?,
                check_mode: parse_opt(self.try_get("check_mode").map_err(decode_err)?)?,
                check_query: self.try_get("check_query").map_err(decode_err)?,
                inner_strategy: parse_opt(self.try_get("inner_strategy").map_err(decode_err)?)?,
                null_watermark: parse_opt(self.try_get("null_watermark").map_err(decode_err)?)?,
                schema_evolution: SchemaEvolution::from_str(
                    &self
                        .try_get::<String, _>("schema_evolution")
                        .map_err(decode_err)?,
                )?,
                delete_detection: DeleteDetection::from_str(
                    &self
                        .try_get::<String, _>("delete_detection")
                        .map_err(decode_err)?,
                )?,
                delete_detection_interval: self
                    .try_get("delete_detection_interval")
                    .map_err(decode_err)?,
                max_delete_ratio: self.try_get("max_delete_ratio").map_err(decode_err)?,
                parallelism: self.try_get("parallelism").map_err(decode_err)?,
                partition_by: parse_json_list("partition_by", &partition_by)?,
                target_file_size: self.try_get("target_file_size").map_err(decode_err)?,
                compression: self.try_get("compression").map_err(decode_err)?,
                row_group_rows: self.try_get("row_group_rows").map_err(decode_err)?,
                column_types: parse_json_map("column_types", &column_types)?,
            },
            incremental_value,
            next_load_date_time: self.try_get("next_load_date_time").map_err(decode_err)?,
            status: status.as_deref().map(RunStatus::from_str).transpose()?,
            last_run_id: self.try_get("last_run_id").map_err(decode_err)?,
            backfill_cursor: self.try_get("backfill_cursor").map_err(decode_err)?,
            last_check_value: self.try_get("last_check_value").map_err(decode_err)?,
            last_delete_scan_at: self.try_get("last_delete_scan_at").map_err(decode_err)?,
            retry_count: self.try_get("retry_count").map_err(decode_err)?,
            loaded_from: self.try_get("loaded_from").map_err(decode_err)?,
            created_at: self.try_get("created_at").map_err(decode_err)?,
            updated_at: self.try_get("updated_at").map_err(decode_err)?,
        })
    }

    fn read_table(&self) -> std::result::Result<TableControl, InvalidTable> {
        self.table_control().map_err(|e| {
            let part = |c: &str| {
                self.try_get::<Option<String>, _>(c)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into())
            };
            InvalidTable {
                table_id: self.try_get("table_id").unwrap_or(-1),
                destination: format!(
                    "{}.{}.{}",
                    part("destination_catalog"),
                    part("destination_schema"),
                    part("destination_table")
                ),
                problem: e.to_string(),
            }
        })
    }

    fn run_record(&self) -> Result<RunRecord> {
        let status: String = self.try_get("status").map_err(decode_err)?;
        Ok(RunRecord {
            run_id: self.try_get("run_id").map_err(decode_err)?,
            table_id: self.try_get("table_id").map_err(decode_err)?,
            destination: self.try_get("destination").map_err(decode_err)?,
            trigger: self.try_get("trigger_type").map_err(decode_err)?,
            status: RunStatus::from_str(&status)?,
            queued_at: self.try_get("queued_at").map_err(decode_err)?,
            started_at: self.try_get("started_at").map_err(decode_err)?,
            finished_at: self.try_get("finished_at").map_err(decode_err)?,
            rows_read: self.try_get("rows_read").map_err(decode_err)?,
            rows_written: self.try_get("rows_written").map_err(decode_err)?,
            rows_deleted: self.try_get("rows_deleted").map_err(decode_err)?,
            bytes_written: self.try_get("bytes_written").map_err(decode_err)?,
            watermark_before: self.try_get("watermark_before").map_err(decode_err)?,
            watermark_after: self.try_get("watermark_after").map_err(decode_err)?,
            delta_version: self.try_get("delta_version").map_err(decode_err)?,
            worker: self.try_get("worker").map_err(decode_err)?,
            error_class: self.try_get("error_class").map_err(decode_err)?,
            error_text: self.try_get("error_text").map_err(decode_err)?,
            schema_changes: self.try_get("schema_changes").map_err(decode_err)?,
            notes: self.try_get("notes").map_err(decode_err)?,
            retry_category: self.try_get("retry_category").map_err(decode_err)?,
            retry_recommendation: self.try_get("retry_recommendation").map_err(decode_err)?,
            retry_explanation: self.try_get("retry_explanation").map_err(decode_err)?,
        })
    }

    fn history_record(&self) -> Result<HistoryRecord> {
        let old: Option<String> = self.try_get("old_values").map_err(decode_err)?;
        let new: Option<String> = self.try_get("new_values").map_err(decode_err)?;
        let parse = |s: Option<String>| -> Result<Option<serde_json::Value>> {
            s.map(|s| serde_json::from_str(&s).map_err(decode_err))
                .transpose()
        };
        Ok(HistoryRecord {
            history_id: self.try_get("history_id").map_err(decode_err)?,
            table_id: self.try_get("table_id").map_err(decode_err)?,
            operation: self.try_get("operation").map_err(decode_err)?,
            changed_at: self.try_get("changed_at").map_err(decode_err)?,
            changed_by: self.try_get("changed_by").map_err(decode_err)?,
            old_values: parse(old)?,
            new_values: parse(new)?,
        })
    }
}
