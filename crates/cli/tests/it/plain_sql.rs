//! Tables defined and changed with plain SQL in the control database (psql, not the CLI), the
//! way the system DataLoader replaces let people work: the defaults fill in what a person
//! should not type, the scheduler loads them, follows a schedule changed by UPDATE, and skips
//! one broken row among ten while the other nine load.

use chrono::{DateTime, Timelike, Utc};

use crate::PgControl;

/// The ten tables' rows as a person would type them: no timestamps, no strategy.
const DEFINE_TEN: &str = "
    INSERT INTO table_control (connection_name, source_schema, source_table,
        destination_catalog, destination_schema, destination_table, schedule)
    SELECT 'pg', 'public', 't', 'bronze', 'sql', 't' || g, '*/5 * * * *'
    FROM generate_series(1, 10) g;";

/// Runs `sql` with the psql client, as a person editing the control tables would.
fn psql(pg: &PgControl, sql: &str) {
    let out = std::process::Command::new("psql")
        .args([pg.url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql, the PostgreSQL client (Debian: postgresql-client), runs");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn loaded(pg: &PgControl, table: &str) -> bool {
    pg.dir
        .path()
        .join(format!("lakehouse/bronze/sql/{table}/_delta_log"))
        .exists()
}

async fn next_load(pg: &PgControl, table: &str) -> (Option<DateTime<Utc>>, bool) {
    let row = pg
        .control
        .client
        .query_one(
            "SELECT next_load_date_time, schedule_changed FROM table_control WHERE destination_table = $1",
            &[&table],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn tables_defined_with_psql_load_and_one_broken_row_holds_back_no_other() {
    let pg = PgControl::new(
        "cli_plainsql",
        "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 3) g;",
    )
    .await;
    psql(&pg, DEFINE_TEN);
    // A schedule that never fires: a value the database accepts and DataLoader cannot use.
    psql(
        &pg,
        "UPDATE table_control SET schedule = '0 0 30 2 *' WHERE destination_table = 't7'",
    );

    let listed = pg.run(&["table", "list", "--json"]).ok().json();
    let strategies: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["strategy"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(strategies, ["full"; 10], "{listed}");

    let invalid = pg.run(&["validate", "--json"]);
    assert_ne!(invalid.code, 0, "{}", invalid.stdout);
    let problems = invalid.json();
    assert_eq!(problems.as_array().unwrap().len(), 1, "{problems}");
    assert_eq!(problems[0]["table"], "bronze.sql.t7");
    let problem = problems[0]["problem"].as_str().unwrap();
    assert!(problem.contains("schedule"), "{problem}");
    assert!(
        invalid
            .stderr
            .contains("1 table_control row(s) cannot be loaded"),
        "{}",
        invalid.stderr
    );

    // One tick claims as many tables as there are free slots: room for all ten.
    let tick = ["run", "--once", "--max-concurrent-loads", "10"];
    pg.run(&tick).ok();
    for i in (1..=10).filter(|i| *i != 7) {
        assert!(loaded(&pg, &format!("t{i}")), "t{i} loaded");
    }
    assert!(!loaded(&pg, "t7"), "the broken row is not loaded");
    let history = pg.run(&["history", "bronze.sql.t7", "--json"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(
        (&history[0]["status"], &history[0]["error_class"]),
        (&serde_json::json!("Failed"), &serde_json::json!("Config")),
        "{history}"
    );
    // It waits an hour instead of failing at every tick.
    let (next, _) = next_load(&pg, "t7").await;
    assert!(
        next.unwrap() > Utc::now() + chrono::Duration::minutes(50),
        "{next:?}"
    );
    pg.run(&tick).ok();
    let history = pg.run(&["history", "bronze.sql.t7", "--json"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");

    // Mended with SQL, and made due now in the same statement: it loads, and all is valid.
    psql(&pg, "UPDATE table_control SET schedule = '*/5 * * * *', next_load_date_time = now() WHERE destination_table = 't7'");
    pg.run(&tick).ok();
    assert!(loaded(&pg, "t7"));
    let valid = pg.run(&["validate"]).ok();
    assert!(
        valid
            .stdout
            .contains("every table_control row is valid (10 tables)"),
        "{}",
        valid.stdout
    );
    let rows = pg.run(&["load", "bronze.sql.t7", "--json"]).ok().json();
    assert_eq!(rows["rows_read"], 3, "{rows}");
}

#[tokio::test]
async fn a_schedule_changed_with_psql_moves_the_next_load() {
    let pg = PgControl::new(
        "cli_plainsched",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    psql(&pg, DEFINE_TEN);
    let tick = ["run", "--once", "--max-concurrent-loads", "10"];
    pg.run(&tick).ok();
    let runs = |table: &str| {
        pg.run(&["history", &format!("bronze.sql.{table}"), "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((runs("t1"), runs("t2"), runs("t3")), (1, 1, 1));

    // A new schedule and time zone, a table paused and resumed, and an unrelated change.
    for update in [
        "UPDATE table_control SET schedule = '0 3 * * *' WHERE destination_table = 't1'",
        "UPDATE table_control SET timezone = 'Asia/Tokyo', schedule = '30 4 * * *' WHERE destination_table = 't2'",
        "UPDATE table_control SET is_active = FALSE WHERE destination_table = 't3'",
        "UPDATE table_control SET is_active = TRUE WHERE destination_table = 't3'",
        "UPDATE table_control SET priority = 5 WHERE destination_table = 't4'",
    ] {
        psql(&pg, update);
    }
    assert!(next_load(&pg, "t1").await.1, "the trigger flags the row");
    assert!(
        !next_load(&pg, "t4").await.1,
        "an unrelated change is not flagged"
    );
    let before = next_load(&pg, "t4").await.0;

    pg.run(&tick).ok();
    let now = Utc::now();
    let (t1, flagged) = next_load(&pg, "t1").await;
    let t1 = t1.unwrap();
    assert!(!flagged, "the scheduler clears the flag");
    assert!(t1 > now && t1 <= now + chrono::Duration::days(1), "{t1}");
    assert_eq!((t1.hour(), t1.minute()), (3, 0), "03:00 UTC: {t1}");
    let t2 = next_load(&pg, "t2").await.0.unwrap();
    assert_eq!((t2.hour(), t2.minute()), (19, 30), "04:30 in Tokyo: {t2}");
    let t3 = next_load(&pg, "t3").await.0.unwrap();
    assert!(t3 > now, "resumed: waits for its schedule ({t3})");
    assert_eq!(next_load(&pg, "t4").await.0, before);
    assert_eq!(
        (runs("t1"), runs("t2"), runs("t3")),
        (1, 1, 1),
        "none of them loaded again"
    );
}

#[tokio::test]
async fn a_connection_whose_secret_cannot_be_read_holds_back_no_other_table() {
    let pg = PgControl::new(
        "cli_badsecret",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    psql(&pg, DEFINE_TEN);
    // A second connection to the same database whose password names a variable nobody set.
    let broken = format!(
        "INSERT INTO table_control_dbconfig (connection_name, db_type, host, port, database_name, username, password_ref)
         VALUES ('broken', 'postgresql', '127.0.0.1', 5432, '{}', 'postgres', 'env:DATALOADER_TEST_UNSET_PASSWORD');
         UPDATE table_control SET connection_name = 'broken' WHERE destination_table = 't3';",
        pg.source.name
    );
    psql(&pg, &broken);
    pg.run(&["run", "--once", "--max-concurrent-loads", "10"])
        .ok();
    for i in (1..=10).filter(|i| *i != 3) {
        assert!(loaded(&pg, &format!("t{i}")), "t{i} loaded");
    }
    assert!(!loaded(&pg, "t3"));
    let history = pg.run(&["history", "bronze.sql.t3", "--json"]).ok().json();
    let error = history[0]["error"].as_str().unwrap_or_default().to_string()
        + history[0]["error_text"].as_str().unwrap_or_default();
    assert!(
        error.contains("env:DATALOADER_TEST_UNSET_PASSWORD") && error.contains("not set"),
        "{history}"
    );
}
