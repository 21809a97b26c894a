//! SQLite, the embedded default: one file, one writer at a time (WAL, so readers do not wait).

use std::str::FromStr;

use dataloader_core::secret::SecretSetting;
use dataloader_core::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::{Backend, Connected, RowsAffected};
use crate::migrations;

pub struct SqliteBackend;

impl Backend for SqliteBackend {
    type Db = sqlx::Sqlite;

    const MIGRATIONS: &'static [(&'static str, &'static str)] = migrations::SQLITE;

    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");

    const TABLE_FOR_RUN: &'static str =
        "SELECT destination_catalog, destination_schema, destination_table \
         FROM table_control WHERE table_id = $1";

    /// A scheduled table with no `next_load_date_time` (added with plain SQL) is due at once.
    const CLAIM_DUE: &'static str = "SELECT table_id FROM table_control WHERE is_active = TRUE \
         AND (next_load_date_time <= $1 OR (next_load_date_time IS NULL AND schedule IS NOT NULL)) \
         AND (status IS NULL OR status NOT IN ('Queued', 'In Progress')) \
         ORDER BY priority, COALESCE(next_load_date_time, $1), table_id LIMIT $2";

    const RESCHEDULE: &'static str =
        "SELECT table_id, schedule, timezone FROM table_control WHERE schedule_changed";

    const HISTORY: &'static str =
        "SELECT history_id, table_id, operation, changed_at, changed_by, old_values, new_values \
         FROM table_control_history WHERE table_id = $1 ORDER BY history_id DESC";

    /// Timestamps are RFC 3339 text, which unixepoch reads; `subsec` keeps the milliseconds
    /// (julianday's day fractions lose tens of microseconds).
    const RUN_SECONDS: &'static str =
        "(unixepoch(finished_at, 'subsec') - unixepoch(started_at, 'subsec'))";

    /// `sqlite://path` (or `sqlite:path`), created if missing. SQLite has no password:
    /// [`crate::open_with_password`] refuses one before this.
    async fn connect(url: &str, _: Option<SecretSetting>) -> Result<Connected<sqlx::Sqlite>> {
        let rest = url.strip_prefix("sqlite:").unwrap_or(url);
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
            .map_err(|e| Error::Store {
                step: "open the SQLite control database",
                message: format!("{path}: {e}"),
                source: Some(e.into()),
            })?;
        Ok((pool, format!("sqlite://{path}"), None))
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}
