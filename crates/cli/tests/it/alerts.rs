//! Alerts end to end through the binary: rules from an apply file, `alert list` and `export`
//! never showing the webhook's secret path, and `run --once` delivering a failed load's alert
//! to a local HTTP receiver once, however often it runs.

use dataloader_testkit::http_mock::HttpMock;
use dataloader_testkit::PgTestDb;

use crate::{dataloader_env, pg_connection_args};

// Multi-threaded: the receiver answers while a blocking command runs the scheduler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_is_alerted_once_to_a_webhook_from_an_apply_file() {
    let db = PgTestDb::create("cli_alerts").await;
    let receiver = HttpMock::start(|_| (200, "ok".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        dataloader_env(
            dir.path(),
            args,
            &[("DATALOADER_CONTROL_DB", "sqlite://control.db")],
        )
    };
    run(&["init"]).ok();
    let add: Vec<String> = pg_connection_args("pg", &db.name);
    run(&add.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let secret_path = "/services/T0/B0/XXXXSECRET";
    let file = format!(
        "tables:\n  - connection: pg\n    source: public.missing_table\n    destination: bronze.alerts.missing\n    schedule: \"0 3 * * *\"\n\
         alerts:\n  oncall:\n    on: failure\n    tables: bronze.alerts.*\n    webhook: {}{secret_path}\n    format: slack\n  slow:\n    on: long_run\n    after: 2h\n    webhook: env:SLOW_WEBHOOK\n",
        receiver.url()
    );
    std::fs::write(dir.path().join("tables.yaml"), &file).unwrap();
    let applied = run(&["apply", "-f", "tables.yaml"]).ok();
    for said in [
        "+ create alert oncall",
        "+ create alert slow",
        "+ create table bronze.alerts.missing",
    ] {
        assert!(applied.stdout.contains(said), "{said}:\n{}", applied.stdout);
    }
    let listed = run(&["alert", "list"]).ok();
    assert!(
        listed.stdout.contains("http://127.0.0.1") && listed.stdout.contains("env:SLOW_WEBHOOK"),
        "{}",
        listed.stdout
    );
    let exported = run(&["export"]).ok();
    assert!(
        exported
            .stderr
            .contains("no alerts written: oncall (http://127.0.0.1:"),
        "{}",
        exported.stderr
    );
    for shown in [&listed.stdout, &exported.stdout] {
        assert!(
            !shown.contains("XXXXSECRET"),
            "the webhook's path was shown:\n{shown}"
        );
    }
    // A file without the rule pauses it; applying the first file again changes nothing.
    let replan = run(&["apply", "-f", "tables.yaml", "--dry-run"]).ok();
    assert!(!replan.stdout.contains("alert"), "{}", replan.stdout);

    // The load fails (no such source table); its alert goes out once.
    for _ in 0..2 {
        let once = run(&["run", "--once"]);
        assert_eq!(once.code, 0, "{}{}", once.stdout, once.stderr);
    }
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, secret_path);
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("bronze.alerts.missing failed"), "{text}");
    let deliveries = run(&["alert", "deliveries", "--json"]).ok().json();
    assert_eq!(deliveries[0]["status"], "delivered", "{deliveries}");
    assert_eq!(deliveries[0]["rule"], "oncall");

    let without = file.split("  slow:").next().unwrap().to_string();
    std::fs::write(dir.path().join("fewer.yaml"), without).unwrap();
    let paused = run(&["apply", "-f", "fewer.yaml"]).ok();
    assert!(
        paused.stdout.contains("- pause alert slow"),
        "{}",
        paused.stdout
    );
    let listed = run(&["alert", "list", "--json"]).ok().json();
    let slow = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "slow")
        .unwrap()
        .clone();
    assert_eq!(slow["is_active"], false, "{listed}");
}
