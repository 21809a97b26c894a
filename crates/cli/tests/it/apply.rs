use crate::{dataloader, Run};

const FILE: &str = r#"
connections:
  pg:
    type: postgresql
    host: 127.0.0.1
    database: test
    user: postgres
    password: env:PGPASSWORD
defaults:
  connection: pg
  destination: bronze.sales.{table}
  strategy: incremental
  schedule: "0 2 * * *"
tables:
  - source: public.Orders
    primary_key: [OrderID]
    incremental_column: ModifiedAt
  - source: public.countries
    strategy: full
    schedule: "0 3 * * 0"
"#;

fn run(dir: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["--control-db", "sqlite://control.db"];
    all.extend_from_slice(args);
    dataloader(dir, &all)
}

#[test]
fn apply_plans_creates_changes_deactivates_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tables.yaml"), FILE).unwrap();

    let dry = run(d, &["apply", "-f", "tables.yaml", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains("+ create connection pg"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("+ create table bronze.sales.orders (incremental from pg:public.Orders)"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("Plan: 3 to create, 0 to change, 0 to deactivate."),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("Dry run: nothing was changed."));
    assert_eq!(
        run(d, &["table", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );

    run(d, &["apply", "-f", "tables.yaml"]).ok();
    let tables = run(d, &["table", "list", "--json"]).ok().json();
    assert_eq!(tables.as_array().unwrap().len(), 2);
    let again = run(d, &["apply", "-f", "tables.yaml"]).ok();
    assert!(
        again
            .stdout
            .contains("Plan: 0 to create, 0 to change, 0 to deactivate."),
        "{}",
        again.stdout
    );

    // export → apply is a no-op.
    let exported = run(d, &["export"]).ok().stdout;
    std::fs::write(d.join("exported.yaml"), &exported).unwrap();
    let round = run(d, &["apply", "-f", "exported.yaml", "--dry-run"]).ok();
    assert!(
        round
            .stdout
            .contains("Plan: 0 to create, 0 to change, 0 to deactivate."),
        "{exported}\n{}",
        round.stdout
    );

    // A changed schedule and a table dropped from the file.
    let changed = FILE
        .replace("    schedule: \"0 3 * * 0\"\n", "    schedule: \"0 4 * * 0\"\n")
        .replace("  - source: public.Orders\n    primary_key: [OrderID]\n    incremental_column: ModifiedAt\n", "");
    std::fs::write(d.join("tables.yaml"), changed).unwrap();
    let plan = run(d, &["apply", "-f", "tables.yaml", "--json"])
        .ok()
        .json();
    let actions: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, vec!["change_table", "deactivate_table"], "{plan}");
    assert_eq!(plan["changes"][0]["fields"][0]["field"], "schedule");
    assert_eq!(plan["changes"][0]["fields"][0]["from"], "0 3 * * 0");
    let tables = run(d, &["table", "list", "--json"]).ok().json();
    let orders = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["destination"] == "bronze.sales.orders")
        .unwrap();
    assert_eq!(orders["is_active"], false);

    // The audit trail shows the change.
    let changes = run(d, &["history", "bronze.sales.countries", "--changes"]).ok();
    assert!(
        changes
            .stdout
            .contains("schedule: \"0 3 * * 0\" → \"0 4 * * 0\""),
        "{}",
        changes.stdout
    );
}

#[test]
fn apply_reports_every_problem_with_its_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = FILE
        .replace("    primary_key: [OrderID]\n", "")
        .replace("\"0 3 * * 0\"", "\"0 3 * * 8\"");
    std::fs::write(d.join("bad.yaml"), bad).unwrap();
    let out = run(d, &["apply", "-f", "bad.yaml"]).fails_with("2 problem(s) in the file");
    assert!(
        out.stderr
            .contains("line 15: tables[0] (public.Orders): primary_key:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("line 17: tables[1] (public.countries): schedule:"),
        "{}",
        out.stderr
    );

    std::fs::write(
        d.join("typo.yaml"),
        "tables:\n  - source: a\n    incremental_colum: x\n",
    )
    .unwrap();
    run(d, &["apply", "-f", "typo.yaml"]).fails_with(
        "line 3: unknown key \"incremental_colum\" (did you mean \"incremental_column\"?)",
    );

    std::fs::write(
        d.join("noconn.yaml"),
        "tables:\n  - source: a\n    connection: ghost\n    destination: a.b.c\n",
    )
    .unwrap();
    run(d, &["apply", "-f", "noconn.yaml"]).fails_with("unknown connection \"ghost\"");
    assert_eq!(
        run(d, &["table", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        run(d, &["connection", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}
