//! DataLoader's control plane: the control tables (named as in the loader it replaces) on
//! SQLite (embedded default) and PostgreSQL ("Lakebase"). Both backends run the same SQL; the
//! migrations differ only where the databases do (identity columns, trigger language).

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dataloader_core::store::HistoryRecord;
use dataloader_core::{
    Claim, ColumnNaming, ConnectionConfig, DbType, DeleteDetection, Error, InvalidTable,
    LoadStrategy, LostRun, NewRun, Result, RetryVerdict, RunOwner, RunRecord, RunStatus, RunUpdate,
    RunningRun, SchemaEvolution, SourceTable, Store, TableControl, TableSpec, TargetTable,
    Watermark, WatermarkKind,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Pool, Postgres, Row, SqlStr, Sqlite};

/// Opens the control store a URL names: `sqlite://path` (created if missing) or
/// `postgres://…`. The returned store is not migrated: call [`Store::migrate`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        if path.is_empty() {
            return Err(Error::config(
                "control_db",
                "sqlite URL needs a file path, for example sqlite://./dataloader.db",
            ));
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| Error::config("control_db", e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                Error::store("open the SQLite control database", format!("{path}: {e}"))
            })?;
        Ok(Arc::new(SqlStore {
            pool,
            location: format!("sqlite://{path}"),
        }))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::config("control_db", redact_url(&e.to_string(), url)))?;
        let location = redact_url(url, url);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| {
                Error::store(
                    "connect to the PostgreSQL control database",
                    format!("{location}: {}", redact_url(&e.to_string(), url)),
                )
            })?;
        Ok(Arc::new(SqlStore { pool, location }))
    } else {
        Err(Error::config(
            "control_db",
            format!(
                "\"{}\" is not a sqlite:// or postgres:// URL",
                redact_url(url, url)
            ),
        ))
    }
}

/// The `LAKEBASE_*` variables (as the Databricks loader DataLoader replaces names them) as a
/// PostgreSQL URL, when `LAKEBASE_HOST` is set.
pub fn lakebase_url_from_env() -> Option<String> {
    let host = std::env::var("LAKEBASE_HOST").ok()?;
    let port = std::env::var("LAKEBASE_PORT").unwrap_or_else(|_| "5432".into());
    let db = std::env::var("LAKEBASE_DATABASE").unwrap_or_else(|_| "dataloader".into());
    let user = std::env::var("LAKEBASE_USER").unwrap_or_else(|_| "postgres".into());
    let url = match std::env::var("LAKEBASE_PASSWORD") {
        Ok(pw) => format!(
            "postgres://{}:{}@{host}:{port}/{db}",
            url_escape(&user),
            url_escape(&pw)
        ),
        Err(_) => format!("postgres://{}@{host}:{port}/{db}", url_escape(&user)),
    };
    Some(url)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Removes the password of `url` from `text` (and from the URL form itself). The URL is read
/// by a URL parser, so a password holding `@`, `:` or `/` is found whole; both its written
/// (percent-encoded) and its decoded forms are masked.
pub fn redact_url(text: &str, url: &str) -> String {
    // As a URL parser reads it (a valid URL), and as written up to the last `@` (a password
    // that holds an unescaped `/` or `@` makes the URL invalid, and still must not show).
    let parsed = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
        .unwrap_or_default();
    let decoded = percent_decoded(&parsed);
    let written = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut masked = text.to_string();
    // Longest first, so a form that contains another is masked whole.
    let mut forms = [written, parsed, decoded];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for form in forms.iter().filter(|f| !f.is_empty()) {
        masked = masked.replace(form.as_str(), "***");
    }
    masked
}

/// `%XX` sequences as the bytes they stand for (a URL's userinfo carries no other escape).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct SqlStore<DB: sqlx::Database> {
    pool: Pool<DB>,
    location: String,
}

/// Embedded migrations, in order; one list per backend.
const SQLITE_MIGRATIONS: &[(&str, &str)] = &[
    (
        "control tables",
        include_str!("migrations/sqlite/0001_control_tables.sql"),
    ),
    (
        "strategy options",
        include_str!("migrations/sqlite/0002_strategy_options.sql"),
    ),
    (
        "scheduler",
        include_str!("migrations/sqlite/0003_scheduler.sql"),
    ),
    (
        "parallel reads",
        include_str!("migrations/sqlite/0004_parallel_reads.sql"),
    ),
    ("layout", include_str!("migrations/sqlite/0005_layout.sql")),
    (
        "loaded from",
        include_str!("migrations/sqlite/0006_loaded_from.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(&str, &str)] = &[
    (
        "control tables",
        include_str!("migrations/postgres/0001_control_tables.sql"),
    ),
    (
        "strategy options",
        include_str!("migrations/postgres/0002_strategy_options.sql"),
    ),
    (
        "scheduler",
        include_str!("migrations/postgres/0003_scheduler.sql"),
    ),
    (
        "parallel reads",
        include_str!("migrations/postgres/0004_parallel_reads.sql"),
    ),
    (
        "layout",
        include_str!("migrations/postgres/0005_layout.sql"),
    ),
    (
        "loaded from",
        include_str!("migrations/postgres/0006_loaded_from.sql"),
    ),
];

fn migrations(sqlite: bool) -> Migrator {
    let scripts = if sqlite {
        SQLITE_MIGRATIONS
    } else {
        POSTGRES_MIGRATIONS
    };
    let mut migrator = Migrator::with_migrations(
        scripts
            .iter()
            .enumerate()
            .map(|(i, (name, sql))| {
                Migration::new(
                    i as i64 + 1,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    );
    migrator.table_name = Cow::Borrowed("_dataloader_migrations");
    migrator
}

const TABLE_COLUMNS: &str = "table_id, connection_name, source_schema, source_table, \
    destination_catalog, destination_schema, destination_table, load_strategy, primary_keys, \
    incremental_column, incremental_value, incremental_value_type, schedule, timezone, \
    next_load_date_time, is_active, status, last_run_id, timeout_minutes, max_retries, priority, \
    column_naming, tags, lookback, rolling_column, rolling_window, chunk_size, check_mode, \
    check_query, inner_strategy, null_watermark, schema_evolution, delete_detection, \
    delete_detection_interval, max_delete_ratio, backfill_cursor, last_check_value, \
    last_delete_scan_at, retry_count, created_at, updated_at, parallelism, partition_by, \
    target_file_size, compression, row_group_rows, loaded_from";

const CONNECTION_COLUMNS: &str = "connection_name, db_type, host, port, database_name, username, \
    password_ref, options, max_connections";

const RUN_COLUMNS: &str = "run_id, table_id, destination, trigger_type, status, queued_at, \
    started_at, finished_at, rows_read, rows_written, rows_deleted, bytes_written, \
    watermark_before, watermark_after, delta_version, worker, error_class, error_text, \
    schema_changes, notes, retry_category, retry_recommendation, retry_explanation";

/// Due tables, most urgent first; PostgreSQL skips rows another claimer holds.
/// A scheduled table with no `next_load_date_time` (added with plain SQL) is due at once.
const CLAIM_DUE_SQLITE: &str = "SELECT table_id FROM table_control WHERE is_active = TRUE \
    AND (next_load_date_time <= $1 OR (next_load_date_time IS NULL AND schedule IS NOT NULL)) \
    AND (status IS NULL OR status NOT IN ('Queued', 'In Progress')) \
    ORDER BY priority, COALESCE(next_load_date_time, $1), table_id LIMIT $2";
const CLAIM_DUE_POSTGRES: &str = "SELECT table_id FROM table_control WHERE is_active = TRUE \
    AND (next_load_date_time <= $1 OR (next_load_date_time IS NULL AND schedule IS NOT NULL)) \
    AND (status IS NULL OR status NOT IN ('Queued', 'In Progress')) \
    ORDER BY priority, COALESCE(next_load_date_time, $1), table_id LIMIT $2 FOR UPDATE SKIP LOCKED";

fn decode_err(e: impl std::fmt::Display) -> Error {
    Error::store("read a control row", e)
}

fn parse_opt<T: FromStr<Err = Error>>(text: Option<String>) -> Result<Option<T>> {
    text.as_deref().map(T::from_str).transpose()
}

fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

fn parse_json_list(column: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        Error::store(
            "read a control row",
            format!("{column} is not a JSON list of strings: {e}"),
        )
    })
}

/// An unreadable row asked for by id or destination: a configuration error naming it.
fn unreadable(invalid: InvalidTable) -> Error {
    Error::config(
        "table_control",
        format!(
            "the row of {} (table_id {}) cannot be read: {}; correct it with `dataloader table update` or SQL",
            invalid.destination, invalid.table_id, invalid.problem
        ),
    )
}

/// One body for both backends: the SQL is shared, only the pool type differs.
macro_rules! sql_store {
    ($db:ty, $sqlite:expr, $history_select:expr, $claim_due:expr) => {
        impl SqlStore<$db> {
            fn connection_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ConnectionConfig> {
                let options: String = row.try_get("options").map_err(decode_err)?;
                let db_type: String = row.try_get("db_type").map_err(decode_err)?;
                let port: Option<i64> = row.try_get("port").map_err(decode_err)?;
                Ok(ConnectionConfig {
                    name: row.try_get("connection_name").map_err(decode_err)?,
                    db_type: DbType::from_str(&db_type)?,
                    host: row.try_get("host").map_err(decode_err)?,
                    port: port.map(|p| p as u16),
                    database: row.try_get("database_name").map_err(decode_err)?,
                    user: row.try_get("username").map_err(decode_err)?,
                    password: row.try_get("password_ref").map_err(decode_err)?,
                    options: serde_json::from_str(&options).map_err(decode_err)?,
                    max_connections: row
                        .try_get::<Option<i64>, _>("max_connections")
                        .map_err(decode_err)?
                        .map(|m| m.clamp(0, i64::from(u32::MAX)) as u32),
                })
            }

            fn table_from_row(row: &<$db as sqlx::Database>::Row) -> Result<TableControl> {
                let strategy: String = row.try_get("load_strategy").map_err(decode_err)?;
                let keys: String = row.try_get("primary_keys").map_err(decode_err)?;
                let tags: String = row.try_get("tags").map_err(decode_err)?;
                let partition_by: String = row.try_get("partition_by").map_err(decode_err)?;
                let naming: String = row.try_get("column_naming").map_err(decode_err)?;
                let status: Option<String> = row.try_get("status").map_err(decode_err)?;
                let wm_value: Option<String> = row.try_get("incremental_value").map_err(decode_err)?;
                let wm_kind: Option<String> = row.try_get("incremental_value_type").map_err(decode_err)?;
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
                let schema: Option<String> = row.try_get("source_schema").map_err(decode_err)?;
                let table: Option<String> = row.try_get("source_table").map_err(decode_err)?;
                let destination = TargetTable {
                    catalog: row.try_get("destination_catalog").map_err(decode_err)?,
                    schema: row.try_get("destination_schema").map_err(decode_err)?,
                    table: row.try_get("destination_table").map_err(decode_err)?,
                };
                Ok(TableControl {
                    table_id: row.try_get("table_id").map_err(decode_err)?,
                    spec: TableSpec {
                        connection: row.try_get("connection_name").map_err(decode_err)?,
                        source: SourceTable {
                            schema,
                            name: table.unwrap_or_default(),
                        },
                        destination,
                        strategy: LoadStrategy::from_str(&strategy)?,
                        primary_keys: parse_json_list("primary_keys", &keys)?,
                        incremental_column: row.try_get("incremental_column").map_err(decode_err)?,
                        schedule: row.try_get("schedule").map_err(decode_err)?,
                        timezone: row.try_get("timezone").map_err(decode_err)?,
                        is_active: row.try_get("is_active").map_err(decode_err)?,
                        timeout_minutes: row.try_get("timeout_minutes").map_err(decode_err)?,
                        max_retries: row.try_get("max_retries").map_err(decode_err)?,
                        priority: row.try_get("priority").map_err(decode_err)?,
                        column_naming: ColumnNaming::from_str(&naming)?,
                        tags: parse_json_list("tags", &tags)?,
                        lookback: row.try_get("lookback").map_err(decode_err)?,
                        rolling_column: row.try_get("rolling_column").map_err(decode_err)?,
                        rolling_window: row.try_get("rolling_window").map_err(decode_err)?,
                        chunk_size: row.try_get("chunk_size").map_err(decode_err)?,
                        check_mode: parse_opt(row.try_get("check_mode").map_err(decode_err)?)?,
                        check_query: row.try_get("check_query").map_err(decode_err)?,
                        inner_strategy: parse_opt(row.try_get("inner_strategy").map_err(decode_err)?)?,
                        null_watermark: parse_opt(row.try_get("null_watermark").map_err(decode_err)?)?,
                        schema_evolution: SchemaEvolution::from_str(
                            &row.try_get::<String, _>("schema_evolution").map_err(decode_err)?,
                        )?,
                        delete_detection: DeleteDetection::from_str(
                            &row.try_get::<String, _>("delete_detection").map_err(decode_err)?,
                        )?,
                        delete_detection_interval: row.try_get("delete_detection_interval").map_err(decode_err)?,
                        max_delete_ratio: row.try_get("max_delete_ratio").map_err(decode_err)?,
                        parallelism: row.try_get("parallelism").map_err(decode_err)?,
                        partition_by: parse_json_list("partition_by", &partition_by)?,
                        target_file_size: row.try_get("target_file_size").map_err(decode_err)?,
                        compression: row.try_get("compression").map_err(decode_err)?,
                        row_group_rows: row.try_get("row_group_rows").map_err(decode_err)?,
                    },
                    incremental_value,
                    next_load_date_time: row.try_get("next_load_date_time").map_err(decode_err)?,
                    status: status.as_deref().map(RunStatus::from_str).transpose()?,
                    last_run_id: row.try_get("last_run_id").map_err(decode_err)?,
                    backfill_cursor: row.try_get("backfill_cursor").map_err(decode_err)?,
                    last_check_value: row.try_get("last_check_value").map_err(decode_err)?,
                    last_delete_scan_at: row.try_get("last_delete_scan_at").map_err(decode_err)?,
                    retry_count: row.try_get("retry_count").map_err(decode_err)?,
                    loaded_from: row.try_get("loaded_from").map_err(decode_err)?,
                    created_at: row.try_get("created_at").map_err(decode_err)?,
                    updated_at: row.try_get("updated_at").map_err(decode_err)?,
                })
            }

            async fn all_tables(&self) -> Result<Vec<std::result::Result<TableControl, InvalidTable>>> {
                let sql = format!(
                    "SELECT {TABLE_COLUMNS} FROM table_control ORDER BY destination_catalog, \
                     destination_schema, destination_table"
                );
                Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| Error::store("list the tables", e))?
                    .iter()
                    .map(Self::read_table)
                    .collect())
            }

            /// A row as a table, or what makes it unreadable (named by its id and destination).
            fn read_table(row: &<$db as sqlx::Database>::Row) -> std::result::Result<TableControl, InvalidTable> {
                Self::table_from_row(row).map_err(|e| {
                    let part = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten().unwrap_or_else(|| "?".into());
                    InvalidTable {
                        table_id: row.try_get("table_id").unwrap_or(-1),
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

            fn run_from_row(row: &<$db as sqlx::Database>::Row) -> Result<RunRecord> {
                let status: String = row.try_get("status").map_err(decode_err)?;
                Ok(RunRecord {
                    run_id: row.try_get("run_id").map_err(decode_err)?,
                    table_id: row.try_get("table_id").map_err(decode_err)?,
                    destination: row.try_get("destination").map_err(decode_err)?,
                    trigger: row.try_get("trigger_type").map_err(decode_err)?,
                    status: RunStatus::from_str(&status)?,
                    queued_at: row.try_get("queued_at").map_err(decode_err)?,
                    started_at: row.try_get("started_at").map_err(decode_err)?,
                    finished_at: row.try_get("finished_at").map_err(decode_err)?,
                    rows_read: row.try_get("rows_read").map_err(decode_err)?,
                    rows_written: row.try_get("rows_written").map_err(decode_err)?,
                    rows_deleted: row.try_get("rows_deleted").map_err(decode_err)?,
                    bytes_written: row.try_get("bytes_written").map_err(decode_err)?,
                    watermark_before: row.try_get("watermark_before").map_err(decode_err)?,
                    watermark_after: row.try_get("watermark_after").map_err(decode_err)?,
                    delta_version: row.try_get("delta_version").map_err(decode_err)?,
                    worker: row.try_get("worker").map_err(decode_err)?,
                    error_class: row.try_get("error_class").map_err(decode_err)?,
                    error_text: row.try_get("error_text").map_err(decode_err)?,
                    schema_changes: row.try_get("schema_changes").map_err(decode_err)?,
                    notes: row.try_get("notes").map_err(decode_err)?,
                    retry_category: row.try_get("retry_category").map_err(decode_err)?,
                    retry_recommendation: row.try_get("retry_recommendation").map_err(decode_err)?,
                    retry_explanation: row.try_get("retry_explanation").map_err(decode_err)?,
                })
            }
        }

        #[async_trait]
        impl Store for SqlStore<$db> {
            async fn migrate(&self) -> Result<()> {
                migrations($sqlite)
                    .run(&self.pool)
                    .await
                    .map_err(|e| Error::store("migrate the control tables", e))
            }

            fn describe(&self) -> String {
                self.location.clone()
            }

            async fn upsert_connection(&self, c: &ConnectionConfig) -> Result<()> {
                c.validate()?;
                let options = serde_json::to_string(&c.options).map_err(|e| Error::Internal(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO table_control_dbconfig (connection_name, db_type, host, port, \
                     database_name, username, password_ref, options, created_at, updated_at, max_connections) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
                     ON CONFLICT (connection_name) DO UPDATE SET db_type = excluded.db_type, \
                     host = excluded.host, port = excluded.port, database_name = excluded.database_name, \
                     username = excluded.username, password_ref = excluded.password_ref, \
                     options = excluded.options, updated_at = excluded.updated_at, \
                     max_connections = excluded.max_connections",
                )
                .bind(&c.name)
                .bind(c.db_type.as_str())
                .bind(&c.host)
                .bind(c.port.map(i64::from))
                .bind(&c.database)
                .bind(&c.user)
                .bind(&c.password)
                .bind(options)
                .bind(Utc::now())
                .bind(c.max_connections.map(i64::from))
                .execute(&self.pool)
                .await
                .map_err(|e| Error::store("save the connection", e))?;
                Ok(())
            }

            async fn connection(&self, name: &str) -> Result<Option<ConnectionConfig>> {
                let sql = format!("SELECT {CONNECTION_COLUMNS} FROM table_control_dbconfig WHERE connection_name = $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| Error::store("read the connection", e))?
                    .map(|r| Self::connection_from_row(&r))
                    .transpose()
            }

            async fn connections(&self) -> Result<Vec<ConnectionConfig>> {
                let sql = format!("SELECT {CONNECTION_COLUMNS} FROM table_control_dbconfig ORDER BY connection_name");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| Error::store("list the connections", e))?
                    .iter()
                    .map(Self::connection_from_row)
                    .collect()
            }

            async fn delete_connection(&self, name: &str) -> Result<bool> {
                let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM table_control WHERE connection_name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| Error::store("check the connection's tables", e))?;
                if users > 0 {
                    return Err(Error::config(
                        "connection",
                        format!("\"{name}\" is used by {users} table(s); move or remove them first"),
                    ));
                }
                let done = sqlx::query("DELETE FROM table_control_dbconfig WHERE connection_name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| Error::store("remove the connection", e))?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_table(&self, spec: &TableSpec, now: DateTime<Utc>) -> Result<i64> {
                spec.validate()?;
                // A scheduled table is due at once; one without a schedule waits to be asked.
                let next = spec.schedule.as_ref().map(|_| now);
                sqlx::query_scalar(
                    "INSERT INTO table_control (connection_name, source_schema, source_table, \
                     destination_catalog, destination_schema, destination_table, load_strategy, \
                     primary_keys, incremental_column, schedule, timezone, is_active, \
                     timeout_minutes, max_retries, priority, column_naming, tags, \
                     next_load_date_time, created_at, updated_at, lookback, rolling_column, \
                     rolling_window, chunk_size, check_mode, check_query, inner_strategy, \
                     null_watermark, schema_evolution, delete_detection, delete_detection_interval, \
                     max_delete_ratio, parallelism, partition_by, target_file_size, compression, \
                     row_group_rows) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, \
                     $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36) \
                     RETURNING table_id",
                )
                .bind(&spec.connection)
                .bind(&spec.source.schema)
                .bind(&spec.source.name)
                .bind(&spec.destination.catalog)
                .bind(&spec.destination.schema)
                .bind(&spec.destination.table)
                .bind(spec.strategy.as_str())
                .bind(json_list(&spec.primary_keys))
                .bind(&spec.incremental_column)
                .bind(&spec.schedule)
                .bind(&spec.timezone)
                .bind(spec.is_active)
                .bind(spec.timeout_minutes)
                .bind(spec.max_retries)
                .bind(spec.priority)
                .bind(spec.column_naming.as_str())
                .bind(json_list(&spec.tags))
                .bind(next)
                .bind(now)
                .bind(&spec.lookback)
                .bind(&spec.rolling_column)
                .bind(&spec.rolling_window)
                .bind(&spec.chunk_size)
                .bind(spec.check_mode.map(|m| m.as_str()))
                .bind(&spec.check_query)
                .bind(spec.inner_strategy.map(|m| m.as_str()))
                .bind(spec.null_watermark.map(|m| m.as_str()))
                .bind(spec.schema_evolution.as_str())
                .bind(spec.delete_detection.as_str())
                .bind(&spec.delete_detection_interval)
                .bind(spec.max_delete_ratio)
                .bind(&spec.parallelism)
                .bind(json_list(&spec.partition_by))
                .bind(&spec.target_file_size)
                .bind(&spec.compression)
                .bind(spec.row_group_rows)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| Error::store("add the table", e))
            }

            async fn update_table_spec(&self, table_id: i64, spec: &TableSpec, now: DateTime<Utc>) -> Result<()> {
                spec.validate()?;
                // A watermark of another column, strategy or source means nothing: it is reset
                // (a load then refuses to put another source's rows beside the old ones, see
                // `loaded_from`). A new schedule takes effect at once.
                sqlx::query(
                    "UPDATE table_control SET connection_name = $2, source_schema = $3, source_table = $4, \
                     destination_catalog = $5, destination_schema = $6, destination_table = $7, \
                     incremental_value = CASE WHEN incremental_column IS DISTINCT FROM $9 \
                         OR load_strategy IS DISTINCT FROM $8 OR connection_name IS DISTINCT FROM $2 \
                         OR source_schema IS DISTINCT FROM $3 OR source_table IS DISTINCT FROM $4 \
                         THEN NULL ELSE incremental_value END, \
                     incremental_value_type = CASE WHEN incremental_column IS DISTINCT FROM $9 \
                         OR load_strategy IS DISTINCT FROM $8 OR connection_name IS DISTINCT FROM $2 \
                         OR source_schema IS DISTINCT FROM $3 OR source_table IS DISTINCT FROM $4 \
                         THEN NULL ELSE incremental_value_type END, \
                     backfill_cursor = CASE WHEN load_strategy IS DISTINCT FROM $8 \
                         OR incremental_column IS DISTINCT FROM $9 OR connection_name IS DISTINCT FROM $2 \
                         OR source_schema IS DISTINCT FROM $3 OR source_table IS DISTINCT FROM $4 \
                         THEN NULL ELSE backfill_cursor END, \
                     last_check_value = CASE WHEN load_strategy IS DISTINCT FROM $8 \
                         OR check_mode IS DISTINCT FROM $25 OR check_query IS DISTINCT FROM $26 \
                         OR connection_name IS DISTINCT FROM $2 OR source_schema IS DISTINCT FROM $3 \
                         OR source_table IS DISTINCT FROM $4 THEN NULL ELSE last_check_value END, \
                     next_load_date_time = CASE WHEN schedule IS DISTINCT FROM $10 THEN $18 ELSE next_load_date_time END, \
                     load_strategy = $8, incremental_column = $9, schedule = $10, timezone = $11, \
                     is_active = $12, timeout_minutes = $13, max_retries = $14, priority = $15, \
                     column_naming = $16, tags = $17, primary_keys = $19, updated_at = $20, \
                     lookback = $21, rolling_column = $22, rolling_window = $23, chunk_size = $24, \
                     check_mode = $25, check_query = $26, inner_strategy = $27, null_watermark = $28, \
                     schema_evolution = $29, delete_detection = $30, delete_detection_interval = $31, \
                     max_delete_ratio = $32, parallelism = $33, partition_by = $34, \
                     target_file_size = $35, compression = $36, row_group_rows = $37 \
                     WHERE table_id = $1",
                )
                .bind(table_id)
                .bind(&spec.connection)
                .bind(&spec.source.schema)
                .bind(&spec.source.name)
                .bind(&spec.destination.catalog)
                .bind(&spec.destination.schema)
                .bind(&spec.destination.table)
                .bind(spec.strategy.as_str())
                .bind(&spec.incremental_column)
                .bind(&spec.schedule)
                .bind(&spec.timezone)
                .bind(spec.is_active)
                .bind(spec.timeout_minutes)
                .bind(spec.max_retries)
                .bind(spec.priority)
                .bind(spec.column_naming.as_str())
                .bind(json_list(&spec.tags))
                .bind(spec.schedule.as_ref().map(|_| now))
                .bind(json_list(&spec.primary_keys))
                .bind(now)
                .bind(&spec.lookback)
                .bind(&spec.rolling_column)
                .bind(&spec.rolling_window)
                .bind(&spec.chunk_size)
                .bind(spec.check_mode.map(|m| m.as_str()))
                .bind(&spec.check_query)
                .bind(spec.inner_strategy.map(|m| m.as_str()))
                .bind(spec.null_watermark.map(|m| m.as_str()))
                .bind(spec.schema_evolution.as_str())
                .bind(spec.delete_detection.as_str())
                .bind(&spec.delete_detection_interval)
                .bind(spec.max_delete_ratio)
                .bind(&spec.parallelism)
                .bind(json_list(&spec.partition_by))
                .bind(&spec.target_file_size)
                .bind(&spec.compression)
                .bind(spec.row_group_rows)
                .execute(&self.pool)
                .await
                .map_err(|e| Error::store("update the table", e))?;
                Ok(())
            }

            async fn table(&self, table_id: i64) -> Result<Option<TableControl>> {
                let sql = format!("SELECT {TABLE_COLUMNS} FROM table_control WHERE table_id = $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(table_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| Error::store("read the table", e))?
                    .map(|r| Self::read_table(&r).map_err(unreadable))
                    .transpose()
            }

            async fn table_by_destination(&self, d: &TargetTable) -> Result<Option<TableControl>> {
                let sql = format!(
                    "SELECT {TABLE_COLUMNS} FROM table_control WHERE destination_catalog = $1 \
                     AND destination_schema = $2 AND destination_table = $3"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&d.catalog)
                    .bind(&d.schema)
                    .bind(&d.table)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| Error::store("read the table", e))?
                    .map(|r| Self::read_table(&r).map_err(unreadable))
                    .transpose()
            }

            async fn tables(&self) -> Result<Vec<TableControl>> {
                Ok(self
                    .all_tables()
                    .await?
                    .into_iter()
                    .filter_map(|t| match t {
                        Ok(table) => Some(table),
                        Err(invalid) => {
                            tracing::warn!(table_id = invalid.table_id, destination = %invalid.destination, problem = %invalid.problem, "a table_control row cannot be read: skipped");
                            None
                        }
                    })
                    .collect())
            }

            async fn invalid_tables(&self) -> Result<Vec<InvalidTable>> {
                Ok(self.all_tables().await?.into_iter().filter_map(|t| t.err()).collect())
            }

            async fn create_run(&self, run: &NewRun) -> Result<i64> {
                // SQLite: take the write lock at once, so that a second load waits for the first
                // and then sees its run, instead of failing to upgrade a read lock.
                let mut tx = if $sqlite {
                    self.pool.begin_with("BEGIN IMMEDIATE").await
                } else {
                    self.pool.begin().await
                }
                .map_err(|e| Error::store("queue the run", e))?;
                let destination: String = {
                    // PostgreSQL: the row lock makes two loads starting at once take turns here.
                    let row = sqlx::query(if $sqlite {
                        "SELECT destination_catalog, destination_schema, destination_table \
                         FROM table_control WHERE table_id = $1"
                    } else {
                        "SELECT destination_catalog, destination_schema, destination_table \
                         FROM table_control WHERE table_id = $1 FOR UPDATE"
                    })
                    .bind(run.table_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| Error::store("queue the run", e))?
                    .ok_or_else(|| Error::store("queue the run", format!("no table with id {}", run.table_id)))?;
                    let c: String = row.try_get(0).map_err(decode_err)?;
                    let s: String = row.try_get(1).map_err(decode_err)?;
                    let t: String = row.try_get(2).map_err(decode_err)?;
                    format!("{c}.{s}.{t}")
                };
                let live: Option<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT run_id, worker FROM historical_metadata WHERE table_id = $1 \
                     AND status IN ('Queued', 'In Progress') AND lease_expires_at >= $2 LIMIT 1",
                )
                .bind(run.table_id)
                .bind(run.queued_at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| Error::store("queue the run", e))?;
                if let Some((live_run, worker)) = live {
                    return Err(Error::Conflict {
                        table: destination,
                        message: format!(
                            "run {live_run} ({}) is loading this table now; wait for it to finish, or cancel it, then load again",
                            worker.unwrap_or_else(|| "unknown worker".into())
                        ),
                    });
                }
                let run_id: i64 = sqlx::query_scalar(
                    "INSERT INTO historical_metadata (table_id, destination, trigger_type, status, \
                     queued_at, watermark_before, worker, lease_owner, lease_expires_at) \
                     VALUES ($1, $2, $3, 'Queued', $4, $5, $6, $6, $7) RETURNING run_id",
                )
                .bind(run.table_id)
                .bind(destination)
                .bind(run.trigger.as_str())
                .bind(run.queued_at)
                .bind(run.watermark_before.as_ref().map(|w| w.value.clone()))
                .bind(&run.worker)
                .bind(run.lease_until)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| Error::store("queue the run", e))?;
                sqlx::query("UPDATE table_control SET status = 'Queued', last_run_id = $2 WHERE table_id = $1")
                    .bind(run.table_id)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| Error::store("queue the run", e))?;
                tx.commit().await.map_err(|e| Error::store("queue the run", e))?;
                Ok(run_id)
            }

            async fn start_run(&self, run_id: i64, worker: &str, started_at: DateTime<Utc>) -> Result<bool> {
                let mut tx = self.pool.begin().await.map_err(|e| Error::store("start the run", e))?;
                let started = sqlx::query(
                    "UPDATE historical_metadata SET status = 'In Progress', started_at = $2 \
                     WHERE run_id = $1 AND status = 'Queued' AND lease_owner = $3",
                )
                .bind(run_id)
                .bind(started_at)
                .bind(worker)
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::store("start the run", e))?
                .rows_affected();
                if started == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE table_control SET status = 'In Progress' \
                     WHERE table_id = (SELECT table_id FROM historical_metadata WHERE run_id = $1)",
                )
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::store("start the run", e))?;
                tx.commit().await.map_err(|e| Error::store("start the run", e))?;
                Ok(true)
            }

            async fn finish_run(&self, run_id: i64, owner: RunOwner<'_>, u: &RunUpdate) -> Result<bool> {
                let mut tx = self.pool.begin().await.map_err(|e| Error::store("record the run", e))?;
                // The owner's guard ($14: the worker, or NULL for a recovery): a worker ends only
                // its own open run; a recovery ends an open run, or one closed as lost or
                // cancelled before its commit was recorded.
                let worker = match owner {
                    RunOwner::Worker(worker) => Some(worker),
                    RunOwner::Recovery => None,
                };
                let ended = sqlx::query(
                    "UPDATE historical_metadata SET status = $2, finished_at = $3, rows_read = $4, \
                     rows_written = $5, rows_deleted = $6, bytes_written = $7, watermark_after = $8, \
                     delta_version = $9, error_class = $10, error_text = $11, schema_changes = $12, \
                     notes = $13, lease_expires_at = NULL WHERE run_id = $1 AND (\
                     (lease_owner = $14 AND status IN ('Queued', 'In Progress')) OR \
                     ($14 IS NULL AND (status IN ('Queued', 'In Progress') OR (status IN ('Failed', 'Cancelled') \
                     AND delta_version IS NULL AND error_class IN ('WorkerLost', 'Cancelled')))))",
                )
                .bind(run_id)
                .bind(u.status.as_str())
                .bind(u.finished_at)
                .bind(u.rows_read)
                .bind(u.rows_written)
                .bind(u.rows_deleted)
                .bind(u.bytes_written)
                .bind(u.watermark_after.as_ref().map(|w| w.value.clone()))
                .bind(u.delta_version)
                .bind(&u.error_class)
                .bind(&u.error_text)
                .bind(&u.schema_changes)
                .bind(&u.notes)
                .bind(worker)
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::store("record the run", e))?
                .rows_affected();
                if ended == 0 {
                    tx.rollback().await.map_err(|e| Error::store("record the run", e))?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE table_control SET status = $2, next_load_date_time = $3, \
                     incremental_value = COALESCE($4, incremental_value), \
                     incremental_value_type = COALESCE($5, incremental_value_type), \
                     backfill_cursor = CASE WHEN $6 THEN $7 ELSE backfill_cursor END, \
                     last_check_value = COALESCE($8, last_check_value), \
                     last_delete_scan_at = COALESCE($9, last_delete_scan_at), \
                     load_strategy = COALESCE($10, load_strategy), \
                     loaded_from = COALESCE($11, loaded_from), \
                     retry_count = CASE WHEN $2 = 'Succeeded' THEN 0 ELSE retry_count END \
                     WHERE table_id = (SELECT table_id FROM historical_metadata WHERE run_id = $1)",
                )
                .bind(run_id)
                .bind(u.status.as_str())
                .bind(u.next_load_date_time)
                .bind(u.watermark_after.as_ref().map(|w| w.value.clone()))
                .bind(u.watermark_after.as_ref().map(|w| w.kind.as_str()))
                .bind(u.state.backfill_cursor.is_some())
                .bind(u.state.backfill_cursor.clone().flatten())
                .bind(&u.state.check_value)
                .bind(u.state.delete_scan_at)
                .bind(u.state.strategy.map(|s| s.as_str()))
                .bind(&u.state.loaded_from)
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::store("record the run", e))?;
                tx.commit().await.map_err(|e| Error::store("record the run", e))?;
                Ok(true)
            }

            async fn lease_holds(&self, run_id: i64, worker: &str, until: DateTime<Utc>) -> Result<bool> {
                let held: Option<i64> = sqlx::query_scalar(
                    "SELECT run_id FROM historical_metadata WHERE run_id = $1 AND status = 'In Progress' \
                     AND lease_owner = $2 AND lease_expires_at > $3 AND cancel_requested = FALSE",
                )
                .bind(run_id)
                .bind(worker)
                .bind(until)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| Error::store("check the run's lease", e))?;
                Ok(held.is_some())
            }

            async fn set_watermark(&self, table_id: i64, watermark: Option<&Watermark>) -> Result<()> {
                sqlx::query("UPDATE table_control SET incremental_value = $2, incremental_value_type = $3 WHERE table_id = $1")
                    .bind(table_id)
                    .bind(watermark.map(|w| w.value.clone()))
                    .bind(watermark.map(|w| w.kind.as_str()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| Error::store("set the watermark", e))?;
                Ok(())
            }

            async fn save_backfill_cursor(&self, run_id: i64, worker: &str, cursor: Option<&str>) -> Result<bool> {
                // The run's owner only: a worker that lost its run must not set a cursor back.
                let saved = sqlx::query(
                    "UPDATE table_control SET backfill_cursor = $3 WHERE table_id = \
                     (SELECT table_id FROM historical_metadata WHERE run_id = $1 AND lease_owner = $2 \
                     AND status = 'In Progress')",
                )
                .bind(run_id)
                .bind(worker)
                .bind(cursor)
                .execute(&self.pool)
                .await
                .map_err(|e| Error::store("save the backfill cursor", e))?
                .rows_affected();
                Ok(saved > 0)
            }

            async fn abandon_runs(&self, table_id: i64, except_run: Option<i64>, reason: &str, at: DateTime<Utc>) -> Result<Vec<i64>> {
                sqlx::query_scalar(
                    "UPDATE historical_metadata SET status = 'Failed', finished_at = $4, \
                     error_class = 'Cancelled', error_text = $3 \
                     WHERE table_id = $1 AND ($2 IS NULL OR run_id <> $2) AND status IN ('Queued', 'In Progress') \
                     AND (lease_expires_at IS NULL OR lease_expires_at < $4) \
                     RETURNING run_id",
                )
                .bind(table_id)
                .bind(except_run)
                .bind(reason)
                .bind(at)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| Error::store("close abandoned runs", e))
            }

            async fn claim_due(&self, now: DateTime<Utc>, limit: i64, worker: &str, lease_until: DateTime<Utc>) -> Result<Vec<Claim>> {
                let err = |e| Error::store("claim due tables", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                let ids: Vec<i64> = sqlx::query_scalar($claim_due)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?;
                if ids.is_empty() {
                    tx.commit().await.map_err(err)?;
                    return Ok(vec![]);
                }
                // Ids come from the database as integers: safe to list in the SQL.
                let list = |ids: &[i64]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
                let read: Vec<std::result::Result<TableControl, InvalidTable>> = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TABLE_COLUMNS} FROM table_control WHERE table_id IN ({})", list(&ids)
                )))
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?
                .iter()
                .map(Self::read_table)
                .collect();
                let (tables, invalid): (Vec<_>, Vec<_>) = read.into_iter().partition(|t| t.is_ok());
                let tables: Vec<TableControl> = tables.into_iter().filter_map(|t| t.ok()).collect();
                // One unreadable row holds nothing else back: it gets a failed run saying why,
                // and waits for its next scheduled time (an hour when even that cannot be read).
                for bad in invalid.into_iter().filter_map(|t| t.err()) {
                    tracing::warn!(table_id = bad.table_id, destination = %bad.destination, problem = %bad.problem, "a due table_control row cannot be read: not loaded");
                    let (schedule, timezone): (Option<String>, Option<String>) = sqlx::query_as(
                        "SELECT schedule, timezone FROM table_control WHERE table_id = $1",
                    )
                    .bind(bad.table_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                    let next = schedule
                        .map(|s| {
                            dataloader_core::schedule::next_occurrence(&s, timezone.as_deref().unwrap_or("UTC"), now)
                                .unwrap_or(now + chrono::Duration::hours(1))
                        });
                    let run_id: i64 = sqlx::query_scalar(
                        "INSERT INTO historical_metadata (table_id, destination, trigger_type, status, \
                         queued_at, finished_at, worker, error_class, error_text) \
                         VALUES ($1, $2, 'schedule', 'Failed', $3, $3, $4, 'Config', $5) RETURNING run_id",
                    )
                    .bind(bad.table_id)
                    .bind(&bad.destination)
                    .bind(now)
                    .bind(worker)
                    .bind(format!("this table_control row cannot be read: {}; correct it (dataloader table update, or SQL)", bad.problem))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                    sqlx::query(
                        "UPDATE table_control SET status = 'Failed', last_run_id = $2, next_load_date_time = $3 \
                         WHERE table_id = $1",
                    )
                    .bind(bad.table_id)
                    .bind(run_id)
                    .bind(next)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                let good: Vec<i64> = tables.iter().map(|t| t.table_id).collect();
                if good.is_empty() {
                    tx.commit().await.map_err(err)?;
                    return Ok(vec![]);
                }
                let id_list = list(&good);
                let runs: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO historical_metadata (table_id, destination, trigger_type, status, queued_at, \
                     watermark_before, worker, lease_owner, lease_expires_at) \
                     SELECT table_id, destination_catalog || '.' || destination_schema || '.' || destination_table, \
                     'schedule', 'Queued', $1, incremental_value, $2, $2, $3 FROM table_control \
                     WHERE table_id IN ({id_list}) RETURNING run_id, table_id"
                )))
                .bind(now)
                .bind(worker)
                .bind(lease_until)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE table_control SET status = 'Queued', last_run_id = \
                     (SELECT MAX(h.run_id) FROM historical_metadata h WHERE h.table_id = table_control.table_id) \
                     WHERE table_id IN ({id_list})"
                )))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                tx.commit().await.map_err(err)?;
                let mut claims: Vec<Claim> = runs
                    .into_iter()
                    .filter_map(|(run_id, table_id)| {
                        tables.iter().find(|t| t.table_id == table_id).map(|t| Claim { run_id, table: t.clone() })
                    })
                    .collect();
                // Most urgent first, as claimed.
                claims.sort_by_key(|c| ids.iter().position(|i| *i == c.table.table_id));
                Ok(claims)
            }

            async fn renew_lease(&self, run_id: i64, worker: &str, lease_until: DateTime<Utc>) -> Result<bool> {
                let cancel: Option<bool> = sqlx::query_scalar(
                    "UPDATE historical_metadata SET lease_expires_at = $2 \
                     WHERE run_id = $1 AND status IN ('Queued', 'In Progress') AND lease_owner = $3 \
                     RETURNING cancel_requested",
                )
                .bind(run_id)
                .bind(lease_until)
                .bind(worker)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| Error::store("renew the lease", e))?;
                // No open run: a monitor closed it (its lease ran out while this process was
                // stalled), and another load may own the table now. Stop.
                Ok(cancel.unwrap_or(true))
            }

            async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostRun>> {
                let err = |e| Error::store("expire leases", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                let lost: Vec<(i64, i64)> = sqlx::query_as(
                    "UPDATE historical_metadata SET status = 'Failed', finished_at = $1, error_class = 'WorkerLost', \
                     error_text = 'worker lost: ' || COALESCE(lease_owner, '?') || ' stopped renewing its lease', \
                     lease_expires_at = NULL, retry_analyzed = TRUE, retry_category = 'worker lost', \
                     retry_recommendation = 'retry_now', \
                     retry_explanation = 'the process running the load stopped (killed or its machine lost); the table is loaded again at once' \
                     WHERE status IN ('Queued', 'In Progress') AND lease_expires_at IS NOT NULL AND lease_expires_at < $1 \
                     RETURNING run_id, table_id",
                )
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
                let mut out = Vec::with_capacity(lost.len());
                for (run_id, table_id) in lost {
                    // Due again at once while retries remain; the caller reschedules the rest.
                    let counts: Option<(i64, i64)> = sqlx::query_as(
                        "UPDATE table_control SET status = 'Failed', retry_count = retry_count + 1, \
                         next_load_date_time = CASE WHEN retry_count < max_retries THEN $3 ELSE next_load_date_time END \
                         WHERE table_id = $1 AND last_run_id = $2 RETURNING retry_count, max_retries",
                    )
                    .bind(table_id)
                    .bind(run_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    let retries_exhausted = counts.is_some_and(|(count, max)| count > max);
                    if let Some((count, max)) = counts.filter(|_| retries_exhausted) {
                        sqlx::query(
                            "UPDATE historical_metadata SET retry_recommendation = 'do_not_retry', \
                             retry_explanation = $2 WHERE run_id = $1",
                        )
                        .bind(run_id)
                        .bind(format!(
                            "the process running the load stopped {count} times in a row (max_retries {max}): the table waits for its next scheduled time"
                        ))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    }
                    out.push(LostRun { run_id, table_id, retries_exhausted });
                }
                tx.commit().await.map_err(err)?;
                Ok(out)
            }

            async fn cancel_queued(&self, queued_before: DateTime<Utc>, now: DateTime<Utc>, reason: &str) -> Result<Vec<i64>> {
                let err = |e| Error::store("cancel queued runs", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                let cancelled: Vec<(i64, i64)> = sqlx::query_as(
                    "UPDATE historical_metadata SET status = 'Cancelled', finished_at = $2, error_class = 'Cancelled', \
                     error_text = $3, lease_expires_at = NULL, retry_analyzed = TRUE \
                     WHERE status = 'Queued' AND queued_at < $1 RETURNING run_id, table_id",
                )
                .bind(queued_before)
                .bind(now)
                .bind(reason)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
                for (run_id, table_id) in &cancelled {
                    sqlx::query("UPDATE table_control SET status = 'Cancelled' WHERE table_id = $1 AND last_run_id = $2")
                        .bind(table_id)
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                tx.commit().await.map_err(err)?;
                Ok(cancelled.into_iter().map(|(_, t)| t).collect())
            }

            async fn running_runs(&self) -> Result<Vec<RunningRun>> {
                let rows: Vec<(i64, i64, Option<DateTime<Utc>>, Option<i64>)> = sqlx::query_as(
                    "SELECT h.run_id, h.table_id, h.started_at, t.timeout_minutes FROM historical_metadata h \
                     JOIN table_control t ON t.table_id = h.table_id \
                     WHERE h.status = 'In Progress' AND h.cancel_requested = FALSE",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| Error::store("list running runs", e))?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(run_id, table_id, started, timeout_minutes)| {
                        started.map(|started_at| RunningRun { run_id, table_id, started_at, timeout_minutes })
                    })
                    .collect())
            }

            async fn request_cancel(&self, run_id: i64) -> Result<()> {
                sqlx::query("UPDATE historical_metadata SET cancel_requested = TRUE WHERE run_id = $1")
                    .bind(run_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| Error::store("request a cancel", e))?;
                Ok(())
            }

            async fn set_next_load(&self, table_id: i64, at: Option<DateTime<Utc>>) -> Result<()> {
                sqlx::query("UPDATE table_control SET next_load_date_time = $2 WHERE table_id = $1")
                    .bind(table_id)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| Error::store("reschedule the table", e))?;
                Ok(())
            }

            async fn runs_to_analyze(&self, limit: i64) -> Result<Vec<RunRecord>> {
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM historical_metadata WHERE status = 'Failed' \
                     AND retry_analyzed = FALSE ORDER BY run_id LIMIT $1"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| Error::store("list failed runs", e))?
                    .iter()
                    .map(Self::run_from_row)
                    .collect()
            }

            async fn record_verdict(&self, run_id: i64, v: &RetryVerdict) -> Result<()> {
                let err = |e| Error::store("record the retry analysis", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                sqlx::query(
                    "UPDATE historical_metadata SET retry_category = $2, retry_recommendation = $3, \
                     retry_explanation = $4, retry_recommended = $5, retry_analyzed = TRUE WHERE run_id = $1",
                )
                .bind(run_id)
                .bind(&v.category)
                .bind(&v.recommendation)
                .bind(&v.explanation)
                .bind(v.retry_at.is_some())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                if let Some(at) = v.retry_at {
                    sqlx::query(
                        "UPDATE table_control SET next_load_date_time = $2, retry_count = retry_count + 1 \
                         WHERE last_run_id = $1",
                    )
                    .bind(run_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }

            async fn run(&self, run_id: i64) -> Result<Option<RunRecord>> {
                let sql = format!("SELECT {RUN_COLUMNS} FROM historical_metadata WHERE run_id = $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| Error::store("read the run", e))?
                    .map(|r| Self::run_from_row(&r))
                    .transpose()
            }

            async fn runs(&self, table_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>> {
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM historical_metadata \
                     WHERE ($1 IS NULL OR table_id = $1) ORDER BY run_id DESC LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(table_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| Error::store("list the runs", e))?
                    .iter()
                    .map(Self::run_from_row)
                    .collect()
            }

            async fn table_history(&self, table_id: i64) -> Result<Vec<HistoryRecord>> {
                let rows = sqlx::query($history_select)
                    .bind(table_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| Error::store("read the table's history", e))?;
                rows.iter()
                    .map(|row| {
                        let old: Option<String> = row.try_get("old_values").map_err(decode_err)?;
                        let new: Option<String> = row.try_get("new_values").map_err(decode_err)?;
                        let parse = |s: Option<String>| -> Result<Option<serde_json::Value>> {
                            s.map(|s| serde_json::from_str(&s).map_err(decode_err)).transpose()
                        };
                        Ok(HistoryRecord {
                            history_id: row.try_get("history_id").map_err(decode_err)?,
                            table_id: row.try_get("table_id").map_err(decode_err)?,
                            operation: row.try_get("operation").map_err(decode_err)?,
                            changed_at: row.try_get("changed_at").map_err(decode_err)?,
                            changed_by: row.try_get("changed_by").map_err(decode_err)?,
                            old_values: parse(old)?,
                            new_values: parse(new)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

sql_store!(
    Sqlite,
    true,
    "SELECT history_id, table_id, operation, changed_at, changed_by, old_values, new_values \
     FROM table_control_history WHERE table_id = $1 ORDER BY history_id DESC",
    CLAIM_DUE_SQLITE
);
sql_store!(
    Postgres,
    false,
    "SELECT history_id, table_id, operation, changed_at, changed_by, old_values::text AS old_values, \
     new_values::text AS new_values FROM table_control_history WHERE table_id = $1 ORDER BY history_id DESC",
    CLAIM_DUE_POSTGRES
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let url = "postgres://u:s3cret@h:5432/db";
        assert_eq!(redact_url(url, url), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("error at s3cret", url), "error at ***");
        // A password holding `@` (written raw, or percent-encoded) is masked whole.
        let raw = "postgres://u:p@ss:w/rd@h:5432/db";
        let redacted = redact_url(&format!("cannot reach {raw}: p@ss:w/rd rejected"), raw);
        assert!(
            !redacted.contains("ss:w") && !redacted.contains("rd@"),
            "{redacted}"
        );
        assert!(redacted.contains("@h:5432/db"), "{redacted}");
        let encoded = "postgres://u:p%40ss%2Fx@h/db";
        let redacted = redact_url(&format!("{encoded} said p@ss/x is wrong"), encoded);
        assert_eq!(redacted, "postgres://u:***@h/db said *** is wrong");
        assert_eq!(redact_url("no secret", "postgres://u@h/db"), "no secret");
    }
}
