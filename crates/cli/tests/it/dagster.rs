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

    // With the checks turned off, none is reported.
    pipes(json!({"data": {"extras": {"table": "bronze.shop.items", "checks": false}}})).ok();
    let all = messages(&sent);
    assert!(with_method(&all, "report_asset_check").is_empty());
    assert_eq!(
        with_method(&all, "report_asset_materialization")[0]["params"]["data_version"],
        "2"
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
