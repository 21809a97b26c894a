use dataloader_testkit::PgTestDb;

use crate::{dataloader_env, pg_connection_args, PgControl};

#[tokio::test]
async fn connection_table_load_and_history_through_the_cli() {
    let db = PgTestDb::create("cli").await;
    db.client
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL);
             INSERT INTO orders SELECT g, g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour' FROM generate_series(1, 40) g;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [
        ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
        ("PGPASSWORD_FOR_TEST", "not-needed-with-trust"),
    ];
    let run = |args: &[&str]| dataloader_env(d, args, &env);
    run(&["init"]).ok();
    let mut args = pg_connection_args("pg", &db.name);
    args.extend(["--password-env".into(), "PGPASSWORD_FOR_TEST".into()]);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let test = run(&["connection", "test", "pg"]).ok();
    assert!(
        test.stdout.contains("connection pg: ok") && test.stdout.contains("PostgreSQL 1"),
        "{}",
        test.stdout
    );
    assert!(!test.stdout.contains("not-needed-with-trust"));
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.orders",
        "--dest",
        "bronze.sales.orders",
        "--strategy",
        "incremental",
        "--primary-key",
        "id",
        "--incremental-column",
        "updated_at",
        "--schedule",
        "0 2 * * *",
    ])
    .ok();
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.orders",
        "--dest",
        "bronze.sales.orders",
    ])
    .fails_with("destination: bronze.sales.orders is already in table_control");

    let first = run(&["load", "bronze.sales.orders", "--json"]).ok().json();
    assert_eq!(first["rows_read"], 40);
    assert_eq!(first["status"], "Succeeded");
    assert_eq!(first["watermark_after"], "2024-01-02 16:00:00+00");
    db.client
        .batch_execute("UPDATE orders SET amount = 0, updated_at = updated_at + interval '1 year' WHERE id <= 3")
        .await
        .unwrap();
    let second = run(&["load", "bronze.sales.orders"]).ok();
    assert!(
        second.stdout.contains("bronze.sales.orders: Succeeded")
            && second.stdout.contains("3 rows read, 3 written (0 inserted, 3 updated), watermark 2024-01-02 16:00:00+00 → 2025-01-01 03:00:00+00; Delta version 1"),
        "{}",
        second.stdout
    );
    let history = run(&["history", "bronze.sales.orders", "--json"])
        .ok()
        .json();
    let rows: Vec<i64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rows_read"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, vec![3, 40], "newest first");
    let text = run(&["history", "bronze.sales.orders"]).ok();
    assert!(
        text.stdout.lines().count() == 3 && text.stdout.contains("Succeeded"),
        "{}",
        text.stdout
    );
    let list = run(&["table", "list"]).ok();
    assert!(
        list.stdout.contains("2025-01-01 03:00:00+00"),
        "{}",
        list.stdout
    );
    assert!(
        d.join("lakehouse/bronze/sales/orders/_delta_log").exists(),
        "default lake root ./lakehouse"
    );
}

/// A control row edited with plain SQL to a schedule that never fires: the load is refused
/// before it reads or commits anything, and its run ends `Failed` (never stays In Progress).
#[tokio::test]
async fn a_row_edited_to_a_schedule_that_never_fires_ends_its_run() {
    let pg = PgControl::new(
        "cli_cron",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    let run = |args: &[&str]| pg.run(args);
    let (control, d) = (&pg.control, pg.dir.path());
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.t",
        "--dest",
        "bronze.pg.t",
        "--schedule",
        "0 2 * * *",
    ])
    .ok();
    control
        .client
        .batch_execute("UPDATE table_control SET schedule = '0 0 30 2 *'")
        .await
        .unwrap();
    let refused = run(&["load", "bronze.pg.t"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("error: schedule: \"0 0 30 2 *\" never fires"),
        "{}",
        refused.stderr
    );
    let history = run(&["history", "bronze.pg.t", "--json"]).ok().json();
    assert_eq!(history[0]["status"], "Failed", "{history}");
    assert!(
        !d.join("lakehouse/bronze/pg/t/_delta_log").exists(),
        "nothing committed"
    );
}

/// A connection option edited with plain SQL to a key its connector does not take: the load
/// refuses it before reading, naming the key, instead of ignoring it.
#[tokio::test]
async fn a_connection_option_edited_to_a_typo_stops_the_load() {
    let pg = PgControl::new("cli_optkey", "CREATE TABLE t (id int PRIMARY KEY);").await;
    let run = |args: &[&str]| pg.run(args);
    let (control, d) = (&pg.control, pg.dir.path());
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.t",
        "--dest",
        "bronze.pg.t",
    ])
    .ok();
    control
        .client
        .batch_execute("UPDATE table_control_dbconfig SET options = '{\"sslmod\": \"disable\"}'")
        .await
        .unwrap();
    let expected = "connection \"pg\": postgresql has no option \"sslmod\" (its options: sslmode, sslrootcert, sslcert, sslkey)";
    run(&["connection", "test", "pg"]).fails_with(expected);
    let refused = run(&["load", "bronze.pg.t"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(&format!("error: {expected}")),
        "{}",
        refused.stderr
    );
    assert!(
        !d.join("lakehouse/bronze/pg/t/_delta_log").exists(),
        "nothing committed"
    );
}

/// One control row edited with plain SQL to a value DataLoader cannot read: the sensor skips
/// it and records why, every other due table loads, and `table list`, `status` and `history`
/// still work and name it.
#[tokio::test]
async fn one_unreadable_row_stops_nothing_else() {
    let pg = PgControl::new(
        "cli_badrow",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    let run = |args: &[&str]| pg.run(args);
    let (control, d) = (&pg.control, pg.dir.path());
    for dest in ["bronze.pg.good", "bronze.pg.bad"] {
        run(&[
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.t",
            "--dest",
            dest,
            "--schedule",
            "0 2 * * *",
        ])
        .ok();
    }
    // A watermark set by hand that is not of its type: the CHECK constraints refuse an
    // unknown strategy, but not this.
    control
        .client
        .batch_execute(
            "UPDATE table_control SET incremental_value = 'yesterday', \
             incremental_value_type = 'integer' WHERE destination_table = 'bad'",
        )
        .await
        .unwrap();

    run(&["run", "--once"]).ok();
    assert!(
        d.join("lakehouse/bronze/pg/good/_delta_log").exists(),
        "the good table loaded"
    );
    assert!(!d.join("lakehouse/bronze/pg/bad").exists());

    let list = run(&["table", "list"]).ok();
    assert!(list.stdout.contains("bronze.pg.good"), "{}", list.stdout);
    assert!(
        list.stderr
            .contains("the table_control row of bronze.pg.bad")
            && list
                .stderr
                .contains("\"yesterday\" is not a valid integer watermark"),
        "{}",
        list.stderr
    );
    let listed = run(&["table", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let status = run(&["status", "--json"]).ok().json();
    let bad = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "bronze.pg.bad")
        .expect("status names the bad row");
    assert_eq!(bad["status"], "Invalid");
    let history = run(&["history", "bronze.pg.bad", "--json"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["status"], "Failed");
    assert_eq!(history[0]["error_class"], "Config");
    // It waits for its next scheduled time instead of failing at every tick.
    run(&["run", "--once"]).ok();
    let history = run(&["history", "bronze.pg.bad", "--json"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}
