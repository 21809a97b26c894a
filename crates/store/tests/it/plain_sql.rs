//! The control tables edited with plain SQL, on both backends: what a person may leave out
//! (defaults), what the database refuses (named CHECK constraints that accept exactly what the
//! Rust enums read), `updated_at`, and the `schedule_changed` flag of a plain-SQL reschedule.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use dataloader_core::{
    CheckMode, ColumnNaming, DeleteDetection, LoadStrategy, NullWatermark, RunStatus,
    SchemaEvolution, Store, WatermarkKind,
};
use dataloader_testkit::PgTestDb;

/// The control database as a SQL client reaches it, beside the store.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// `$body` on the pool of either backend (their types differ, the code does not).
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    /// Runs `sql`; the database's error as text.
    async fn exec(&self, sql: impl Into<String>) -> Result<(), String> {
        let sql = sqlx::AssertSqlSafe(sql.into());
        with_pool!(self, pool => sqlx::query(sql).execute(pool).await.map(drop))
            .map_err(|e| e.to_string())
    }

    async fn ok(&self, sql: impl Into<String>) {
        let sql = sql.into();
        if let Err(e) = self.exec(sql.clone()).await {
            panic!("{sql}: {e}");
        }
    }

    /// Runs `sql`, which the rule `rule` names must refuse.
    async fn refuses(&self, sql: impl Into<String>, rule: &str) {
        let sql = sql.into();
        match self.exec(sql.clone()).await {
            Ok(()) => panic!("{sql}: accepted; {rule} should refuse it"),
            Err(e) => assert!(e.contains(rule), "{sql}: {e}"),
        }
    }

    /// The count `sql` selects, with `$1` bound to `at` if given.
    async fn count(&self, sql: &str, at: Option<DateTime<Utc>>) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        with_pool!(self, pool => {
            let query = sqlx::query_scalar::<_, i64>(sql);
            match at {
                Some(at) => query.bind(at),
                None => query,
            }
            .fetch_one(pool)
            .await
        })
        .unwrap()
    }

    async fn flagged(&self) -> i64 {
        self.count(
            "SELECT COUNT(*) FROM table_control WHERE schedule_changed",
            None,
        )
        .await
    }
}

async fn sqlite() -> (Arc<dyn Store>, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("control.db").display());
    let store = dataloader_store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    (store, Db::Sqlite(pool), dir)
}

async fn postgres() -> (Arc<dyn Store>, Db, PgTestDb) {
    let pg = PgTestDb::create("plain_sql").await;
    let store = dataloader_store::open(&pg.url()).await.unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    (store, Db::Postgres(pool), pg)
}

/// A connection and a table with only what a person must type.
async fn minimal_rows(db: &Db) {
    db.ok("INSERT INTO table_control_dbconfig (connection_name, db_type) VALUES ('erp', 'postgresql')")
        .await;
    db.ok(
        "INSERT INTO table_control (connection_name, source_schema, source_table, \
         destination_catalog, destination_schema, destination_table) \
         VALUES ('erp', 'public', 'orders', 'bronze', 'erp', 'orders')",
    )
    .await;
}

async fn defaults(store: Arc<dyn Store>, db: Db) {
    let before = Utc::now();
    minimal_rows(&db).await;
    let after = Utc::now();
    assert!(store.connection("erp").await.unwrap().is_some());
    let tables = store.tables().await.unwrap();
    let [t] = tables.as_slice() else {
        panic!("{tables:?}")
    };
    assert_eq!(t.spec.strategy, LoadStrategy::Full);
    assert_eq!(t.spec.source.to_string(), "public.orders");
    assert!(t.spec.is_active && t.spec.primary_keys.is_empty() && t.spec.schedule.is_none());
    assert_eq!((t.spec.timezone.as_str(), t.status), ("UTC", None));
    // SQLite keeps milliseconds.
    let fresh = |at: DateTime<Utc>| at >= before - Duration::milliseconds(1) && at <= after;
    assert!(
        fresh(t.created_at),
        "{} not in {before}..{after}",
        t.created_at
    );
    assert_eq!(t.updated_at, t.created_at);
    if let Db::Sqlite(pool) = &db {
        // The text sqlx writes for the same instant, so both sort as the instants do.
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT created_at FROM table_control UNION ALL SELECT updated_at FROM table_control \
             UNION ALL SELECT created_at FROM table_control_dbconfig",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for text in stored {
            let at = DateTime::parse_from_rfc3339(&text).unwrap().to_utc();
            assert_eq!(text, at.to_rfc3339_opts(SecondsFormat::AutoSi, false));
        }
    }
    // Compared with a bound instant as the due query compares `next_load_date_time`.
    let created = t.created_at;
    let at_or_before = "SELECT COUNT(*) FROM table_control WHERE created_at <= $1";
    assert_eq!(db.count(at_or_before, Some(created)).await, 1);
    let nanosecond = Duration::nanoseconds(1);
    assert_eq!(db.count(at_or_before, Some(created - nanosecond)).await, 0);

    // updated_at follows a plain-SQL change of the declaration, not bookkeeping or the
    // watermark (as the store sets it).
    let long_ago = Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap();
    db.ok("UPDATE table_control SET updated_at = '2020-01-02T03:04:05+00:00'")
        .await;
    db.ok("UPDATE table_control SET status = 'Failed', incremental_value = '7'")
        .await;
    let t = store.table(t.table_id).await.unwrap().unwrap();
    assert_eq!(t.updated_at, long_ago);
    let edited = Utc::now();
    db.ok("UPDATE table_control SET priority = 5").await;
    let t = store.table(t.table_id).await.unwrap().unwrap();
    assert!(t.updated_at >= edited - Duration::milliseconds(1) && t.updated_at <= Utc::now());
    assert_eq!(t.created_at, created);
    // So does a connection's.
    db.ok("UPDATE table_control_dbconfig SET updated_at = '2020-01-02T03:04:05+00:00'")
        .await;
    let changed_since = "SELECT COUNT(*) FROM table_control_dbconfig WHERE updated_at > $1";
    assert_eq!(db.count(changed_since, Some(long_ago)).await, 0);
    db.ok("UPDATE table_control_dbconfig SET host = 'db2.internal'")
        .await;
    assert_eq!(db.count(changed_since, Some(edited)).await, 1);
}

/// Every run status. A new one fails to compile here: list it, and allow it in a migration.
fn run_statuses() -> [RunStatus; 6] {
    use RunStatus::*;
    let all = [Queued, InProgress, Succeeded, Failed, Cancelled, Skipped];
    match all[0] {
        Queued | InProgress | Succeeded | Failed | Cancelled | Skipped => all,
    }
}

/// Every watermark kind, held to the enum as [`run_statuses`] is.
fn watermark_kinds() -> [WatermarkKind; 6] {
    use WatermarkKind::*;
    let all = [Integer, Decimal, Date, Timestamp, TimestampTz, Text];
    match all[0] {
        Integer | Decimal | Date | Timestamp | TimestampTz | Text => all,
    }
}

/// Each enumerated column and every value Rust reads in it.
fn enumerations() -> Vec<(&'static str, Vec<&'static str>)> {
    let strategies: Vec<&str> = LoadStrategy::ALL.iter().map(|v| v.as_str()).collect();
    vec![
        ("load_strategy", strategies.clone()),
        ("inner_strategy", strategies),
        (
            "check_mode",
            CheckMode::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "null_watermark",
            NullWatermark::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "schema_evolution",
            SchemaEvolution::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "delete_detection",
            DeleteDetection::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "column_naming",
            ColumnNaming::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        ("status", run_statuses().map(|v| v.as_str()).to_vec()),
        (
            "incremental_value_type",
            watermark_kinds().map(|v| v.as_str()).to_vec(),
        ),
    ]
}

/// Values the rules let through: limits, NULL where a column may be unset, spans and JSON.
const ALLOWED: &[&str] = &[
    "inner_strategy = NULL, check_mode = NULL, null_watermark = NULL, status = NULL",
    "incremental_value_type = NULL, timeout_minutes = NULL, row_group_rows = NULL",
    "max_retries = 0, retry_count = 0, timeout_minutes = 1, row_group_rows = 1",
    "max_delete_ratio = 1, priority = -5",
    "chunk_size = '7 days', lookback = ' 2h', rolling_window = '30', delete_detection_interval = '1d'",
    "primary_keys = ' [\"id\"] ', tags = '[]', partition_by = '[\"region\"]'",
    "column_types = '{\"Notes\": \"string\"}'",
];

/// Values refused, each with the rule its error names.
const REFUSED: &[(&str, &str)] = &[
    (
        "load_strategy = 'Incremental'",
        "table_control_load_strategy_check",
    ),
    (
        "load_strategy = 'fulll'",
        "table_control_load_strategy_check",
    ),
    (
        "inner_strategy = 'Full'",
        "table_control_inner_strategy_check",
    ),
    ("check_mode = 'MAX'", "table_control_check_mode_check"),
    (
        "null_watermark = 'exclude'",
        "table_control_null_watermark_check",
    ),
    (
        "schema_evolution = 'add_column'",
        "table_control_schema_evolution_check",
    ),
    (
        "delete_detection = 'pk'",
        "table_control_delete_detection_check",
    ),
    (
        "column_naming = 'camelCase'",
        "table_control_column_naming_check",
    ),
    ("status = 'in progress'", "table_control_status_check"),
    (
        "incremental_value_type = 'bigint'",
        "table_control_incremental_value_type_check",
    ),
    ("max_retries = -1", "table_control_max_retries_check"),
    ("retry_count = -1", "table_control_retry_count_check"),
    ("timeout_minutes = 0", "table_control_timeout_minutes_check"),
    ("row_group_rows = 0", "table_control_row_group_rows_check"),
    (
        "max_delete_ratio = 0",
        "table_control_max_delete_ratio_check",
    ),
    (
        "max_delete_ratio = 1.5",
        "table_control_max_delete_ratio_check",
    ),
    ("destination_table = ''", "table_control_destination_check"),
    ("primary_keys = 'id'", "table_control_primary_keys_check"),
    (
        "primary_keys = '{\"id\": 1}'",
        "table_control_primary_keys_check",
    ),
    ("tags = '\"finance\"'", "table_control_tags_check"),
    ("partition_by = 'null'", "table_control_partition_by_check"),
    ("column_types = '[]'", "table_control_column_types_check"),
    ("column_types = '{'", "table_control_column_types_check"),
    ("lookback = ''", "table_control_lookback_check"),
    (
        "rolling_window = '   '",
        "table_control_rolling_window_check",
    ),
    ("chunk_size = '-1'", "table_control_chunk_size_check"),
    (
        "delete_detection_interval = ' -1 day'",
        "table_control_delete_detection_interval_check",
    ),
];

async fn rules(store: Arc<dyn Store>, db: Db) {
    minimal_rows(&db).await;
    let id = store.tables().await.unwrap()[0].table_id;
    for (column, values) in enumerations() {
        for value in values {
            db.ok(format!("UPDATE table_control SET {column} = '{value}'"))
                .await;
            // What the database takes, the store reads.
            store.table(id).await.unwrap().unwrap();
        }
    }
    for allowed in ALLOWED {
        db.ok(format!("UPDATE table_control SET {allowed}")).await;
        store.table(id).await.unwrap().unwrap();
    }
    for (assignment, rule) in REFUSED {
        db.refuses(format!("UPDATE table_control SET {assignment}"), rule)
            .await;
    }
    for (assignment, rule) in [
        ("options = '[]'", "table_control_dbconfig_options_check"),
        ("port = 70000", "table_control_dbconfig_port_check"),
        (
            "max_connections = -1",
            "table_control_dbconfig_max_connections_check",
        ),
    ] {
        db.refuses(
            format!("UPDATE table_control_dbconfig SET {assignment}"),
            rule,
        )
        .await;
    }
    // A new row is held to them too.
    db.refuses(
        "INSERT INTO table_control (connection_name, source_table, destination_catalog, \
         destination_schema, destination_table, load_strategy) \
         VALUES ('erp', 'lines', 'bronze', 'erp', 'lines', 'Incremental')",
        "table_control_load_strategy_check",
    )
    .await;
    assert_eq!(store.tables().await.unwrap().len(), 1);
    assert!(store.invalid_tables().await.unwrap().is_empty());
}

async fn schedule_flag(store: Arc<dyn Store>, db: Db) {
    minimal_rows(&db).await;
    db.ok("UPDATE table_control SET schedule = '0 2 * * *', next_load_date_time = '2026-01-01T02:00:00+00:00'")
        .await;
    let id = store.tables().await.unwrap()[0].table_id;
    assert_eq!(
        db.flagged().await,
        0,
        "the writer said when the table loads next"
    );
    let audited = store.table_history(id).await.unwrap().len();
    for change in [
        "schedule = '30 4 * * *'",
        "timezone = 'Europe/Amsterdam'",
        "is_active = FALSE",
    ] {
        db.ok(format!("UPDATE table_control SET {change}")).await;
        assert_eq!(db.flagged().await, 1, "{change}");
        // As the scheduler clears it.
        db.ok("UPDATE table_control SET next_load_date_time = '2026-01-02T02:00:00+00:00', schedule_changed = FALSE")
            .await;
        assert_eq!(db.flagged().await, 0);
    }
    // Each change is audited once; the flag, set or cleared, is not.
    let history = store.table_history(id).await.unwrap();
    assert_eq!(history.len(), audited + 3, "{history:#?}");
    assert!(history
        .iter()
        .filter_map(|h| h.new_values.as_ref())
        .all(|values| values.get("schedule_changed").is_none()));
    for unflagged in [
        // The writer said when the table loads next.
        "schedule = '0 5 * * *', next_load_date_time = NULL",
        "is_active = TRUE, next_load_date_time = '2026-02-01T00:00:00+00:00'",
        "schedule = schedule, timezone = timezone",
        "priority = 7",
        "status = 'Failed'",
    ] {
        db.ok(format!("UPDATE table_control SET {unflagged}")).await;
        assert_eq!(db.flagged().await, 0, "{unflagged}");
    }
    store.set_next_load(id, Some(Utc::now())).await.unwrap();
    assert_eq!(db.flagged().await, 0);
}

/// A test of `suite` on each backend.
macro_rules! on_both_backends {
    ($suite:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let (store, db, _dir) = sqlite().await;
            $suite(store, db).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let (store, db, _pg) = postgres().await;
            $suite(store, db).await;
        }
    };
}

on_both_backends!(defaults: sqlite_plain_sql_rows_take_defaults, postgres_plain_sql_rows_take_defaults);
on_both_backends!(rules: sqlite_refuses_what_rust_cannot_read, postgres_refuses_what_rust_cannot_read);
on_both_backends!(schedule_flag: sqlite_plain_sql_reschedule_is_flagged, postgres_plain_sql_reschedule_is_flagged);
