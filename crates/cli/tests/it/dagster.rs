//! `dataloader load` under Dagster Pipes, spoken to here as a Pipes client would (the real
//! Dagster runs in integrations/dagster's tests), and the commands a Dagster sensor reads:
//! `due`, `table list --json`, `analyze`.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use dataloader_testkit::PgTestDb;
use serde_json::{json, Value};

use crate::{dataloader_env, pg_connection_args, Run};

/// base64(zlib(JSON)), as Dagster encodes the Pipes bootstrap parameters.
fn pipes_param(value: &Value) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(value.to_string().as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap())
}

fn messages(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .inspect(|m| assert_eq!(m["__dagster_pipes_version"], "0.1", "{m}"))
        .collect()
}

fn with_method<'a>(all: &'a [Value], method: &str) -> Vec<&'a Value> {
    all.iter().filter(|m| m["method"] == method).collect()
}

async fn source_with_items() -> PgTestDb {
    let db = PgTestDb::create("dagster").await;
    db.client
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, label text);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 30) g;",
        )
        .await
        .unwrap();
    db
}

fn add_connection(run: &dyn Fn(&[&str]) -> Run, name: &str, database: &str) {
    let args = pg_connection_args(name, database);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
}

/// `table add` of the source's `items` as a full load to `dest`, with `extra` options.
fn add_items_table(run: &dyn Fn(&[&str]) -> Run, dest: &str, connection: &str, extra: &[&str]) {
    let mut args = vec![
        "table",
        "add",
        "--connection",
        connection,
        "--source",
        "public.items",
        "--dest",
        dest,
        "--strategy",
        "full",
    ];
    args.extend_from_slice(extra);
    run(&args).ok();
}

#[tokio::test]
async fn load_under_pipes_reports_the_materialization_checks_and_logs() {
    let db = source_with_items().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("DATALOADER_CONTROL_DB", "sqlite://control.db")];
    let run = |args: &[&str]| dataloader_env(d, args, &env);
    add_connection(&run, "pg", &db.name);
    add_items_table(&run, "bronze.shop.items", "pg", &["--primary-key", "id"]);

    let context = d.join("context.json");
    std::fs::write(
        &context,
        json!({"asset_keys": ["bronze/shop/items"], "run_id": "dagster-run-7", "extras": {}})
            .to_string(),
    )
    .unwrap();
    let sent = d.join("messages.jsonl");
    let pipes = |context: Value| {
        let _ = std::fs::remove_file(&sent);
        dataloader_env(
            d,
            &["load"],
            &[
                ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
                ("DAGSTER_PIPES_CONTEXT", &pipes_param(&context)),
                (
                    "DAGSTER_PIPES_MESSAGES",
                    &pipes_param(&json!({"path": sent.to_str().unwrap()})),
                ),
            ],
        )
    };

    // The table comes from the context's asset key; the load reports and closes cleanly.
    let out = pipes(json!({"path": context.to_str().unwrap()})).ok();
    assert!(
        out.stdout.contains("bronze.shop.items: Succeeded"),
        "{}",
        out.stdout
    );
    let all = messages(&sent);
    assert_eq!(all.first().unwrap()["method"], "opened");
    assert_eq!(all.last().unwrap()["method"], "closed");
    assert_eq!(all.last().unwrap()["params"], json!({}));
    let logs: Vec<&str> = with_method(&all, "log")
        .iter()
        .map(|m| m["params"]["message"].as_str().unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("loading bronze.shop.items for Dagster run dagster-run-7")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.starts_with("load finished")),
        "{logs:?}"
    );
    let materialized = with_method(&all, "report_asset_materialization");
    assert_eq!(materialized.len(), 1);
    let m = &materialized[0]["params"];
    assert_eq!(m["asset_key"], "bronze/shop/items");
    assert_eq!(m["data_version"], "0");
    assert_eq!(
        m["metadata"]["rows_written"],
        json!({"raw_value": 30, "type": "int"})
    );
    assert_eq!(m["metadata"]["dagster/row_count"]["raw_value"], 30);
    assert_eq!(m["metadata"]["strategy"]["raw_value"], "full");
    assert_eq!(m["metadata"]["watermark_after"]["type"], "null");
    assert_eq!(m["metadata"]["delta_version"]["raw_value"], 0);
    let checks: Vec<(&str, bool, &str)> = with_method(&all, "report_asset_check")
        .iter()
        .map(|c| {
            let p = &c["params"];
            assert_eq!(p["asset_key"], "bronze/shop/items");
            (
                p["check_name"].as_str().unwrap(),
                p["passed"].as_bool().unwrap(),
                p["severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        checks,
        vec![
            ("primary_key_unique", true, "ERROR"),
            ("row_count_matches_source", true, "WARN")
        ]
    );
    let history = run(&["history", "bronze.shop.items", "--json"]).ok().json();
    assert_eq!(history[0]["trigger"], "dagster");

    // A second load with the context inline and the table as an extra: a new data version.
    db.client
        .batch_execute("DELETE FROM items WHERE id > 20")
        .await
        .unwrap();
    pipes(json!({"data": {"extras": {"table": "bronze.shop.items"}, "run_id": "r2"}})).ok();
    let all = messages(&sent);
    let m = &with_method(&all, "report_asset_materialization")[0]["params"];
    assert_eq!(m["asset_key"], "bronze/shop/items");
    assert_eq!(m["data_version"], "1");
    assert_eq!(m["metadata"]["dagster/row_count"]["raw_value"], 20);

    // The checks the asset declared, exactly: one it declared that no longer applies says so.
    pipes(json!({"data": {"extras": {"table": "bronze.shop.items",
        "checks": ["primary_key_unique", "row_count_matches_source", "retired_check"]}}}))
    .ok();
    let all = messages(&sent);
    let reported: Vec<(&str, bool)> = with_method(&all, "report_asset_check")
        .iter()
        .map(|c| {
            (
                c["params"]["check_name"].as_str().unwrap(),
                c["params"]["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reported,
        vec![
            ("primary_key_unique", true),
            ("row_count_matches_source", true),
            ("retired_check", false)
        ]
    );
    let retired = &with_method(&all, "report_asset_check")[2]["params"];
    assert_eq!(retired["severity"], "WARN");
    assert!(retired["metadata"]["not_run"]["raw_value"]
        .as_str()
        .unwrap()
        .contains("no longer applies"));
    let order: Vec<&str> = all
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .filter(|m| *m != "log")
        .collect();
    assert_eq!(
        order,
        [
            "opened",
            "report_asset_materialization",
            "report_asset_check",
            "report_asset_check",
            "report_asset_check",
            "closed"
        ]
    );

    // With the checks turned off, none is reported.
    pipes(json!({"data": {"extras": {"table": "bronze.shop.items", "checks": false}}})).ok();
    let all = messages(&sent);
    assert!(with_method(&all, "report_asset_check").is_empty());
    assert_eq!(
        with_method(&all, "report_asset_materialization")[0]["params"]["data_version"],
        "3"
    );

    // Messages on stdout (as Kubernetes clients read them): stdout holds nothing else.
    let out = dataloader_env(
        d,
        &["load", "bronze.shop.items"],
        &[
            ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
            ("DAGSTER_PIPES_CONTEXT", &pipes_param(&json!({"data": {}}))),
            (
                "DAGSTER_PIPES_MESSAGES",
                &pipes_param(&json!({"stdio": "stdout"})),
            ),
        ],
    )
    .ok();
    let on_stdout: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(on_stdout.first().unwrap()["method"], "opened");
    assert_eq!(on_stdout.last().unwrap()["method"], "closed");
    assert_eq!(
        with_method(&on_stdout, "report_asset_materialization").len(),
        1
    );

    // An unknown table: the session closes with the error, and the process fails.
    pipes(json!({"data": {"extras": {"table": "bronze.shop.nothing"}}}))
        .fails_with("bronze.shop.nothing");
    let all = messages(&sent);
    let closed = &all.last().unwrap()["params"]["exception"];
    assert_eq!(closed["name"], "Config", "{closed}");
    assert!(closed["message"]
        .as_str()
        .unwrap()
        .contains("bronze.shop.nothing"));
    assert!(with_method(&all, "report_asset_materialization").is_empty());

    // Half a Pipes environment is a mistake, not a plain load.
    dataloader_env(
        d,
        &["load", "bronze.shop.items"],
        &[
            ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
            ("DAGSTER_PIPES_CONTEXT", &pipes_param(&json!({"data": {}}))),
        ],
    )
    .fails_with("DAGSTER_PIPES_CONTEXT is set but DAGSTER_PIPES_MESSAGES is not");
}

#[tokio::test]
async fn due_lists_what_the_sensor_would_claim_and_analyze_judges_failures() {
    let db = source_with_items().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("DATALOADER_CONTROL_DB", "sqlite://control.db")];
    let run = |args: &[&str]| dataloader_env(d, args, &env);
    add_connection(&run, "pg", &db.name);
    add_connection(&run, "gone", "no_such_database_for_dataloader");
    let add = |dest: &str, connection: &str, extra: &[&str]| {
        add_items_table(&run, dest, connection, extra)
    };
    add(
        "bronze.shop.due",
        "pg",
        &["--schedule", "*/5 * * * *", "--primary-key", "id"],
    );
    add("bronze.shop.on_demand", "pg", &[]);
    add(
        "bronze.shop.paused",
        "pg",
        &["--schedule", "*/5 * * * *", "--inactive"],
    );
    add("bronze.shop.loaded", "pg", &["--schedule", "*/5 * * * *"]);
    add("bronze.shop.broken", "gone", &[]);
    run(&["load", "bronze.shop.loaded"]).ok();

    let due = run(&["due", "--json"]).ok().json();
    let tables: Vec<&str> = due
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, vec!["bronze.shop.due"]);
    let key = due[0]["run_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("bronze.shop.due@"), "{key}");
    assert_eq!(
        run(&["due", "--json"]).ok().json()[0]["run_key"],
        key.as_str(),
        "stable across ticks"
    );
    assert!(run(&["due"]).ok().stdout.contains("bronze.shop.due"));

    let listed = run(&["table", "list", "--json"]).ok().json();
    let due_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["destination"] == "bronze.shop.due")
        .unwrap();
    assert_eq!(due_row["source_type"], "postgresql");
    assert_eq!(due_row["asset_key"], json!(["bronze", "shop", "due"]));
    assert_eq!(
        due_row["asset_checks"],
        json!(["primary_key_unique", "row_count_matches_source"])
    );
    assert_eq!(run(&["tables", "--json"]).ok().json(), listed);

    let failed = run(&["load", "bronze.shop.broken"]);
    assert!(
        failed.code != 0 && failed.stderr.contains("no_such_database_for_dataloader"),
        "{}",
        failed.stderr
    );
    let verdicts = run(&["analyze", "--json"]).ok().json();
    let verdicts = verdicts.as_array().unwrap();
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0]["table"], "bronze.shop.broken");
    assert!(verdicts[0]["recommendation"].is_string() && verdicts[0]["explanation"].is_string());
    assert_eq!(
        run(&["analyze", "--json"]).ok().json(),
        json!([]),
        "each failure is judged once"
    );
    let history = run(&["history", "bronze.shop.broken", "--json"])
        .ok()
        .json();
    assert_eq!(
        history[0]["retry_recommendation"],
        verdicts[0]["recommendation"]
    );
}

/// A source view that yields a row every 10 ms: a load of it runs for 30 s unless stopped.
async fn slow_source() -> PgTestDb {
    let db = PgTestDb::create("dagster_slow").await;
    db.client
        .batch_execute(
            "CREATE FUNCTION slow_id(int) RETURNS int LANGUAGE sql AS 'SELECT $1 FROM pg_sleep(0.01)';
             CREATE VIEW slow AS SELECT slow_id(g) AS id FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    db
}

fn history_of(d: &Path, table: &str) -> Value {
    dataloader_env(
        d,
        &["history", table, "--json"],
        &[("DATALOADER_CONTROL_DB", "sqlite://control.db")],
    )
    .ok()
    .json()
}

#[tokio::test]
async fn a_second_load_is_refused_while_one_runs_and_a_stopped_load_is_recorded_cancelled() {
    let db = slow_source().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("DATALOADER_CONTROL_DB", "sqlite://control.db")];
    let run = |args: &[&str]| dataloader_env(d, args, &env);
    add_connection(&run, "pg", &db.name);
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.slow",
        "--dest",
        "bronze.shop.slow",
        "--strategy",
        "full",
        "--schedule",
        "0 2 * * *",
    ])
    .ok();
    let sent = d.join("messages.jsonl");
    let mut load = std::process::Command::new(env!("CARGO_BIN_EXE_dataloader"))
        .current_dir(d)
        .args(["load"])
        .env("DATALOADER_CONTROL_DB", "sqlite://control.db")
        .env(
            "DAGSTER_PIPES_CONTEXT",
            pipes_param(
                &json!({"data": {"extras": {"table": "bronze.shop.slow"}, "run_id": "r9"}}),
            ),
        )
        .env(
            "DAGSTER_PIPES_MESSAGES",
            pipes_param(&json!({"path": sent.to_str().unwrap()})),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while history_of(d, "bronze.shop.slow")[0]["status"] != "In Progress" {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let first = history_of(d, "bronze.shop.slow")[0].clone();
    assert!(
        first["worker"]
            .as_str()
            .unwrap()
            .ends_with("for Dagster run r9"),
        "{first}"
    );

    // While it runs, a second load of the same table is refused, naming the first.
    let second = run(&["load", "bronze.shop.slow"]);
    assert!(
        second.code != 0
            && second.stderr.contains(&format!(
                "run {} ({}) is loading this table now",
                first["run_id"],
                first["worker"].as_str().unwrap()
            )),
        "{}",
        second.stderr
    );

    // SIGTERM (as Dagster stops a run): the load stops, is recorded Cancelled, and the session
    // closes with that error.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &load.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = load.wait().unwrap();
    assert!(!status.success());
    let runs = history_of(d, "bronze.shop.slow");
    assert_eq!(runs[0]["run_id"], first["run_id"]);
    assert_eq!(runs[0]["status"], "Cancelled", "{}", runs[0]);
    let all = messages(&sent);
    let closed = &all.last().unwrap()["params"]["exception"];
    assert_eq!(closed["name"], "Cancelled", "{all:?}");
    assert!(with_method(&all, "report_asset_materialization").is_empty());
    assert_eq!(with_method(&all, "closed").len(), 1);
}

#[tokio::test]
async fn a_load_killed_outright_loses_its_lease_and_its_table_is_due_again() {
    let db = source_with_items().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [
        ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
        ("DATALOADER_LEASE", "1s"),
    ];
    let run = |args: &[&str]| dataloader_env(d, args, &env);
    add_connection(&run, "pg", &db.name);
    add_items_table(
        &run,
        "bronze.shop.items",
        "pg",
        &["--schedule", "0 2 * * *", "--max-retries", "1"],
    );
    run(&["load", "bronze.shop.items"]).ok();
    assert!(run(&["due", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .is_empty());

    let kill = || {
        let env = [&env[..], &[("DATALOADER_FAULT", "before_read")]].concat();
        assert_ne!(
            dataloader_env(d, &["load", "bronze.shop.items"], &env).code,
            0
        );
    };
    // Killed as a SIGKILL would: the run stays In Progress and the table is not due...
    kill();
    assert_eq!(
        history_of(d, "bronze.shop.items")[0]["status"],
        "In Progress"
    );
    // ...until its lease runs out: then `due` (as the master sensor) fails it, and the table is due.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let due = run(&["due", "--json"]).ok().json();
    assert_eq!(due[0]["table"], "bronze.shop.items", "{due}");
    let lost = &history_of(d, "bronze.shop.items")[0];
    assert_eq!(lost["status"], "Failed");
    assert_eq!(lost["retry_category"], "worker lost");
    assert_eq!(lost["retry_recommendation"], "retry_now");

    // Lost again, past max_retries (1): not relaunched forever, the table waits for 02:00.
    kill();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(run(&["due", "--json"]).ok().json(), json!([]));
    let lost = &history_of(d, "bronze.shop.items")[0];
    assert_eq!(lost["retry_recommendation"], "do_not_retry", "{lost}");
    assert!(lost["retry_explanation"]
        .as_str()
        .unwrap()
        .contains("stopped 2 times in a row (max_retries 1)"));
    let table = run(&["table", "show", "bronze.shop.items", "--json"])
        .ok()
        .json();
    assert!(
        table["next_load_date_time"]
            .as_str()
            .unwrap()
            .contains("T02:00:00"),
        "{table}"
    );
    run(&["load", "bronze.shop.items"]).ok();
}
