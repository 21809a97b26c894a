//! Migration 0008 on databases rows older than it fill, some breaking its rules: it runs at
//! every command's start, so it must not fail on them. What they hold is kept; a row that
//! breaks a rule is set inactive, so that no write to it holds the claim of the others back;
//! SQLite's rebuilt tables keep their ids, keys, index, triggers and a user's view.
//! Here, not in `tests/it`: they stop the migrator at 0007, which the crate keeps to itself.

use std::str::FromStr;

use chrono::{Duration, TimeZone, Utc};
use dataloader_core::{SourceTable, Store, TableSpec, TargetTable};
use dataloader_testkit::PgTestDb;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Executor};

use super::{migrator, POSTGRES, SQLITE};
use crate::{PostgresBackend, SqlStore, SqliteBackend};

/// Rows as 0007 left them, all scheduled and never loaded (due): one good, one Rust cannot
/// read, one it reads but that breaks a rule, and one with the highest id, deleted.
const ROWS_0007: &str = "
INSERT INTO table_control_dbconfig (connection_name, db_type, created_at, updated_at)
VALUES ('erp', 'postgresql', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00');
INSERT INTO table_control (connection_name, source_table, destination_catalog,
    destination_schema, destination_table, load_strategy, schedule, created_at, updated_at)
VALUES
    ('erp', 'orders', 'bronze', 'erp', 'good', 'full', '0 2 * * *', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'),
    ('erp', 'orders', 'bronze', 'erp', 'unreadable', 'Incremental', '0 2 * * *', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'),
    ('erp', 'orders', 'bronze', 'erp', 'negative', 'full', '0 2 * * *', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'),
    ('erp', 'orders', 'bronze', 'erp', 'deleted', 'full', '0 2 * * *', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00');
UPDATE table_control SET max_retries = -1 WHERE destination_table = 'negative';
DELETE FROM table_control WHERE destination_table = 'deleted';
";

/// What 0008 made of [`ROWS_0007`], the same on both backends.
async fn upgraded(store: &dyn Store) {
    let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
    // The claim takes the good table, and is not held back by the others
    // (on PostgreSQL no row that breaks a rule takes a write).
    let claims = store
        .claim_due(now, 10, "worker", now + Duration::seconds(60))
        .await
        .unwrap();
    let claimed: Vec<&str> = claims
        .iter()
        .map(|c| c.table.spec.destination.table.as_str())
        .collect();
    assert_eq!(claimed, ["good"]);

    let tables = store.tables().await.unwrap();
    let active: Vec<(&str, bool)> = tables
        .iter()
        .map(|t| (t.spec.destination.table.as_str(), t.spec.is_active))
        .collect();
    assert!(active.contains(&("good", true)), "{active:?}");
    // Kept as it was, set inactive.
    let negative = tables
        .iter()
        .find(|t| t.spec.destination.table == "negative")
        .unwrap();
    assert_eq!(
        (negative.spec.max_retries, negative.spec.is_active),
        (-1, false)
    );
    let invalid = store.invalid_tables().await.unwrap();
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(
        invalid[0].problem.contains("\"Incremental\""),
        "{invalid:?}"
    );
    // The audit trail says so.
    let history = store.table_history(negative.table_id).await.unwrap();
    let set_inactive = history[0].new_values.as_ref().unwrap()["is_active"].clone();
    assert!(set_inactive == false || set_inactive == 0, "{history:#?}");

    // Ids are not reused: the deleted row's id was the highest.
    let spec = TableSpec::new(
        "erp",
        SourceTable::parse("lines").unwrap(),
        TargetTable::parse("bronze.erp.lines").unwrap(),
    );
    assert_eq!(store.insert_table(&spec, now).await.unwrap(), 5);
    store.migrate().await.unwrap();
}

/// A write's result: refused by the rule or key `named`.
fn refused_by<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, named: &str) {
    match result {
        Ok(done) => panic!("accepted ({done:?}); {named} should refuse it"),
        Err(error) => assert!(error.to_string().contains(named), "{error}"),
    }
}

#[tokio::test]
async fn sqlite_0008_keeps_old_rows_and_the_schema_around_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("control.db").display());
    let store = SqlStore::<SqliteBackend>::connect(&url, None)
        .await
        .unwrap();
    migrator(SQLITE).run_to(7, &store.pool).await.unwrap();
    store.pool.execute(ROWS_0007).await.unwrap();
    store
        .pool
        .execute(
            "CREATE VIEW loads AS SELECT t.destination_table, d.db_type \
             FROM table_control t JOIN table_control_dbconfig d USING (connection_name)",
        )
        .await
        .unwrap();
    // A row of a connection that does not exist, written with foreign keys off (the sqlite3
    // shell's default); its id below the others'.
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .foreign_keys(false);
    let mut unchecked = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    unchecked
        .execute(
            "INSERT INTO table_control (table_id, connection_name, source_table, \
             destination_catalog, destination_schema, destination_table, load_strategy, \
             created_at, updated_at) VALUES (0, 'gone', 'orders', 'bronze', 'gone', 'orders', \
             'full', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
        )
        .await
        .unwrap();
    unchecked.close().await.unwrap();

    store.migrate().await.unwrap();
    upgraded(&store).await;

    let schema: Vec<String> = sqlx::query_scalar(
        "SELECT type || ' ' || name FROM sqlite_master WHERE tbl_name IN \
         ('table_control', 'table_control_dbconfig', 'loads') AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        schema,
        [
            "view loads",
            "table table_control",
            "trigger table_control_audit_delete",
            "trigger table_control_audit_insert",
            "trigger table_control_audit_update",
            "table table_control_dbconfig",
            "trigger table_control_dbconfig_updated_at",
            "index table_control_due",
            "trigger table_control_schedule_changed",
            "trigger table_control_updated_at",
        ]
    );
    let loads: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM loads")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(loads, 4, "the view reads the rebuilt tables");
    // The orphan is kept; a new one is refused.
    let orphans: Vec<(String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(table, rowid, _parent, _fk): (String, i64, String, i64)| (table, rowid))
        .collect();
    assert_eq!(orphans, [("table_control".to_string(), 0)]);
    refused_by(
        store
            .pool
            .execute(
                "INSERT INTO table_control (connection_name, destination_catalog, \
                 destination_schema, destination_table) \
                 VALUES ('gone', 'bronze', 'gone', 'lines')",
            )
            .await,
        "FOREIGN KEY",
    );
    // The rules hold for new writes, and the copy's pragmas did not stay on.
    refused_by(
        store
            .pool
            .execute("UPDATE table_control SET load_strategy = 'fulll'")
            .await,
        "table_control_load_strategy_check",
    );
}

#[tokio::test]
async fn postgres_0008_keeps_old_rows_and_marks_the_rules_they_break() {
    let pg = PgTestDb::create("upgrade").await;
    let store = SqlStore::<PostgresBackend>::connect(&pg.url(), None)
        .await
        .unwrap();
    migrator(POSTGRES).run_to(7, &store.pool).await.unwrap();
    sqlx::raw_sql(ROWS_0007).execute(&store.pool).await.unwrap();

    store.migrate().await.unwrap();
    upgraded(&store).await;

    // A rule old rows break stays NOT VALID; the others are validated.
    let unvalidated: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'c' AND NOT convalidated \
         AND conrelid IN ('table_control'::regclass, 'table_control_dbconfig'::regclass) \
         ORDER BY conname",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        unvalidated,
        [
            "table_control_load_strategy_check",
            "table_control_max_retries_check"
        ]
    );
    // A row breaking one takes no write until it is corrected, and then is active again.
    refused_by(
        store
            .pool
            .execute(
                "UPDATE table_control SET is_active = TRUE WHERE destination_table = 'negative'",
            )
            .await,
        "table_control_max_retries_check",
    );
    store
        .pool
        .execute(
            "UPDATE table_control SET is_active = TRUE, max_retries = 3 \
             WHERE destination_table = 'negative'",
        )
        .await
        .unwrap();
}
