//! Every strategy option through `table add` / `table update` and `apply -f`, each validated
//! with a message naming the field; `table show --json` reports the strategy and its state.

use crate::{dataloader, Run};

fn run(dir: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["--control-db", "sqlite://control.db"];
    all.extend_from_slice(args);
    dataloader(dir, &all)
}

fn add(dir: &std::path::Path, dest: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.t",
        "--dest",
        dest,
    ];
    args.extend_from_slice(extra);
    run(dir, &args)
}

/// Applies `yaml` and returns `table list --json`.
fn apply_and_list(dir: &std::path::Path, yaml: &str) -> serde_json::Value {
    std::fs::write(dir.join("tables.yaml"), yaml).unwrap();
    run(dir, &["apply", "-f", "tables.yaml"]).ok();
    run(dir, &["table", "list", "--json"]).ok().json()
}

/// The listed table loaded into `destination`.
fn table_named(tables: &serde_json::Value, destination: &str) -> serde_json::Value {
    tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["destination"] == destination)
        .unwrap_or_else(|| panic!("{destination} is not listed: {tables}"))
        .clone()
}

/// The connection `pg` every table here reads.
fn add_pg_connection(dir: &std::path::Path) {
    run(
        dir,
        &[
            "connection",
            "add",
            "pg",
            "--type",
            "postgresql",
            "--host",
            "127.0.0.1",
            "--database",
            "test",
        ],
    )
    .ok();
}

#[test]
fn table_add_and_update_take_every_strategy_option() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_pg_connection(d);

    add(
        d,
        "b.s.rolling",
        &["--strategy", "rolling", "--primary-key", "id"],
    )
    .fails_with("rolling_column: b.s.rolling: the rolling strategy needs a rolling column");
    add(
        d,
        "b.s.rolling",
        &[
            "--strategy",
            "rolling",
            "--primary-key",
            "id",
            "--rolling-column",
            "day",
        ],
    )
    .fails_with("rolling_window: b.s.rolling: the rolling strategy needs a window");
    add(
        d,
        "b.s.rolling",
        &[
            "--strategy",
            "rolling",
            "--primary-key",
            "id",
            "--rolling-column",
            "day",
            "--rolling-window",
            "thirty days",
        ],
    )
    .fails_with("rolling_window: \"thirty days\" is neither a duration");
    add(
        d,
        "b.s.rolling",
        &[
            "--strategy",
            "rolling",
            "--primary-key",
            "id",
            "--rolling-column",
            "day",
            "--rolling-window",
            "30 days",
        ],
    )
    .ok();
    add(
        d,
        "b.s.chunks",
        &[
            "--strategy",
            "chunked_backfill",
            "--primary-key",
            "id",
            "--incremental-column",
            "id",
        ],
    )
    .fails_with("chunk_size: b.s.chunks: the chunked_backfill strategy needs a chunk size");
    add(
        d,
        "b.s.check",
        &["--strategy", "check_and_load", "--check-mode", "query"],
    )
    .fails_with("check_query: b.s.check: the check_and_load strategy needs a query");
    add(
        d,
        "b.s.check",
        &["--strategy", "check_and_load", "--check-mode", "sometimes"],
    )
    .fails_with("check_mode: unknown check mode \"sometimes\" (valid: max, row_count, query)");
    add(
        d,
        "b.s.append",
        &[
            "--strategy",
            "append_only",
            "--incremental-column",
            "seq",
            "--lookback",
            "2h",
        ],
    )
    .fails_with("lookback: b.s.append: lookback only applies to incremental loads");
    add(
        d,
        "b.s.append",
        &[
            "--strategy",
            "append_only",
            "--incremental-column",
            "seq",
            "--null-watermark",
            "include",
        ],
    )
    .fails_with("null_watermark: b.s.append: append_only cannot include NULL watermark rows");
    add(d, "b.s.full", &["--delete-detection", "pk_scan"]).fails_with(
        "delete_detection: b.s.full: delete_detection only applies to incremental loads",
    );
    add(
        d,
        "b.s.incr",
        &[
            "--strategy",
            "incremental",
            "--primary-key",
            "id",
            "--incremental-column",
            "updated_at",
            "--max-delete-ratio",
            "3",
        ],
    )
    .fails_with("max_delete_ratio: must be more than 0 and at most 1");
    add(d, "b.s.par", &["--primary-key", "id", "--parallelism", "0"])
        .fails_with("parallelism: \"0\" is not a parallelism: use auto or a number from 1 to 64");
    add(d, "b.s.par", &["--parallelism", "4"]).fails_with(
        "parallelism: b.s.par: parallel reads split a single-column primary key into ranges: set one primary_key",
    );
    add(
        d,
        "b.s.par",
        &["--primary-key", "id", "--parallelism", "auto"],
    )
    .ok();
    assert_eq!(
        run(d, &["table", "show", "b.s.par"]).ok().json()["parallelism"],
        "auto"
    );
    add(
        d,
        "b.s.incr",
        &[
            "--strategy",
            "incremental",
            "--primary-key",
            "id",
            "--incremental-column",
            "updated_at",
            "--schema-evolution",
            "loose",
        ],
    )
    .fails_with(
        "schema_evolution: unknown schema evolution \"loose\" (valid: add_columns, strict)",
    );
    add(
        d,
        "b.s.incr",
        &[
            "--strategy",
            "incremental",
            "--primary-key",
            "id",
            "--incremental-column",
            "updated_at",
            "--lookback",
            "2h",
            "--null-watermark",
            "skip",
            "--schema-evolution",
            "strict",
            "--delete-detection",
            "pk_scan",
            "--delete-detection-interval",
            "1 day",
            "--max-delete-ratio",
            "0.05",
        ],
    )
    .ok();
    let shown = run(d, &["table", "show", "b.s.incr"]).ok().json();
    for (field, value) in [
        ("strategy", "incremental"),
        ("lookback", "2h"),
        ("null_watermark", "skip"),
        ("schema_evolution", "strict"),
        ("delete_detection", "pk_scan"),
        ("delete_detection_interval", "1 day"),
    ] {
        assert_eq!(shown[field], value, "{field}: {shown}");
    }
    assert_eq!(shown["max_delete_ratio"], 0.05);
    assert!(
        shown.get("backfill_cursor").is_some() && shown.get("incremental_value").is_some(),
        "{shown}"
    );

    run(
        d,
        &[
            "table",
            "update",
            "b.s.incr",
            "--lookback",
            "none",
            "--strategy",
            "append_only",
            "--primary-key",
            "none",
            "--delete-detection",
            "none",
            "--delete-detection-interval",
            "none",
        ],
    )
    .ok();
    let shown = run(d, &["table", "show", "b.s.incr"]).ok().json();
    assert_eq!(shown["strategy"], "append_only");
    assert!(shown["lookback"].is_null());
    run(
        d,
        &["table", "update", "b.s.incr", "--rolling-window", "1 day"],
    )
    .fails_with("rolling_window: b.s.incr: rolling_window only applies to the rolling strategy");
    run(d, &["table", "update", "b.s.nope", "--priority", "1"])
        .fails_with("no table with destination b.s.nope");
}

#[test]
fn apply_takes_the_strategy_options_and_round_trips_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = r#"
connections:
  pg: {type: postgresql, host: 127.0.0.1, database: test}
defaults:
  connection: pg
  destination: bronze.pg.{table}
  schema_evolution: strict
  lookback: 1h
tables:
  - source: public.orders
    strategy: incremental
    primary_key: id
    incremental_column: updated_at
    delete_detection: pk_scan
    max_delete_ratio: 0.1
  - source: public.events
    strategy: append_only
    incremental_column: seq
    null_watermark: skip
  - source: public.metrics
    strategy: rolling
    primary_key: [id]
    rolling_column: day
    rolling_window: 30 days
  - source: public.prices
    strategy: check_and_load
    primary_key: id
    parallelism: 4
    check_mode: query
    check_query: SELECT max(version) FROM price_lists
  - source: public.history
    strategy: chunked_backfill
    primary_key: id
    incremental_column: id
    chunk_size: 100000
"#;
    let tables = apply_and_list(d, file);
    let find = |name: &str| table_named(&tables, name);
    assert_eq!(
        find("bronze.pg.orders")["lookback"],
        "1h",
        "defaults apply where they fit"
    );
    assert!(
        find("bronze.pg.events")["lookback"].is_null(),
        "and not where they do not (append_only)"
    );
    assert_eq!(
        find("bronze.pg.prices")["check_query"],
        "SELECT max(version) FROM price_lists"
    );
    assert_eq!(find("bronze.pg.history")["chunk_size"], "100000");
    assert_eq!(find("bronze.pg.prices")["parallelism"], "4");
    assert_eq!(find("bronze.pg.orders")["schema_evolution"], "strict");

    let exported = run(d, &["export"]).ok().stdout;
    std::fs::write(d.join("exported.yaml"), &exported).unwrap();
    let again = run(d, &["apply", "-f", "exported.yaml", "--dry-run"]).ok();
    assert!(
        again
            .stdout
            .contains("Plan: 0 to create, 0 to change, 0 to deactivate."),
        "{exported}\n{}",
        again.stdout
    );

    std::fs::write(
        d.join("bad.yaml"),
        file.replace("    rolling_window: 30 days\n", "")
            .replace("chunk_size: 100000", "chunk_size: lots"),
    )
    .unwrap();
    let out = run(d, &["apply", "-f", "bad.yaml"]).fails_with("2 problem(s)");
    assert!(
        out.stderr
            .contains("tables[2] (public.metrics): rolling_window:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("tables[4] (public.history): chunk_size: \"lots\""),
        "{}",
        out.stderr
    );
}

#[test]
fn layout_settings_through_flags_show_export_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_pg_connection(d);

    add(d, "b.s.lay", &["--compression", "brotli"]).fails_with(
        "compression: \"brotli\" is not a codec: use zstd, zstd(LEVEL) with LEVEL from 1 to 22, snappy, lz4 or none",
    );
    add(d, "b.s.lay", &["--target-file-size", "12 parsecs"])
        .fails_with("target_file_size: \"12 parsecs\" is not a size");
    add(d, "b.s.lay", &["--target-file-size", "8GiB"])
        .fails_with("target_file_size: \"8GiB\" is outside 1MiB to 4GiB");
    add(d, "b.s.lay", &["--row-group-rows", "5"])
        .fails_with("row_group_rows: 5 is outside 1024 to 16777216");
    add(d, "b.s.lay", &["--row-group-rows", "lots"])
        .fails_with("row_group_rows: must be a whole number of rows");
    add(d, "b.s.lay", &["--partition-by", "a-b"])
        .fails_with("partition_by: \"a-b\" is not a plain column name");
    add(d, "b.s.lay", &["--partition-by", "day,day"])
        .fails_with("partition_by: column \"day\" is named twice");

    add(
        d,
        "b.s.lay",
        &[
            "--partition-by",
            "region,day",
            "--target-file-size",
            "64MiB",
            "--compression",
            "zstd(3)",
            "--row-group-rows",
            "131072",
        ],
    )
    .ok();
    let shown = run(d, &["table", "show", "b.s.lay"]).ok().json();
    assert_eq!(
        shown["partition_by"],
        serde_json::json!(["region", "day"]),
        "{shown}"
    );
    assert_eq!(shown["target_file_size"], "64MiB", "{shown}");
    assert_eq!(shown["compression"], "zstd(3)", "{shown}");
    assert_eq!(shown["row_group_rows"], 131072, "{shown}");

    // `none` is a codec (uncompressed), not "clear"; the other settings clear with `none`.
    run(
        d,
        &[
            "table",
            "update",
            "b.s.lay",
            "--compression",
            "none",
            "--partition-by",
            "none",
            "--target-file-size",
            "none",
            "--row-group-rows",
            "none",
        ],
    )
    .ok();
    let shown = run(d, &["table", "show", "b.s.lay"]).ok().json();
    assert_eq!(shown["compression"], "none", "{shown}");
    assert_eq!(shown["partition_by"], serde_json::json!([]), "{shown}");
    assert!(shown["target_file_size"].is_null(), "{shown}");
    assert!(shown["row_group_rows"].is_null(), "{shown}");
    run(
        d,
        &[
            "table",
            "update",
            "b.s.lay",
            "--compression",
            "",
            "--partition-by",
            "region",
        ],
    )
    .ok();
    let shown = run(d, &["table", "show", "b.s.lay"]).ok().json();
    assert!(shown["compression"].is_null(), "{shown}");
    assert_eq!(
        shown["partition_by"],
        serde_json::json!(["region"]),
        "{shown}"
    );
    run(
        d,
        &["table", "update", "b.s.lay", "--compression", "brotli"],
    )
    .fails_with("compression: \"brotli\" is not a codec");

    let file = r#"
connections:
  pg: {type: postgresql, host: 127.0.0.1, database: test}
defaults:
  connection: pg
  destination: bronze.pg.{table}
tables:
  - source: public.orders
    primary_key: id
    partition_by: [region, order_date]
    target_file_size: 256MB
    compression: zstd(9)
    row_group_rows: 262144
  - source: public.events
    partition_by: day
    compression: none
  - source: public.plain
"#;
    let tables = apply_and_list(d, file);
    let find = |name: &str| table_named(&tables, name);
    let orders = find("bronze.pg.orders");
    assert_eq!(
        orders["partition_by"],
        serde_json::json!(["region", "order_date"]),
        "{orders}"
    );
    assert_eq!(orders["target_file_size"], "256MB", "{orders}");
    assert_eq!(orders["compression"], "zstd(9)", "{orders}");
    assert_eq!(orders["row_group_rows"], 262144, "{orders}");
    let events = find("bronze.pg.events");
    assert_eq!(
        events["partition_by"],
        serde_json::json!(["day"]),
        "{events}"
    );
    assert_eq!(events["compression"], "none", "{events}");
    let plain = find("bronze.pg.plain");
    assert_eq!(plain["partition_by"], serde_json::json!([]), "{plain}");
    assert!(plain["compression"].is_null(), "{plain}");

    let exported = run(d, &["export"]).ok().stdout;
    for key in [
        "partition_by:",
        "target_file_size: 256MB",
        "compression: zstd(9)",
        "row_group_rows: 262144",
    ] {
        assert!(exported.contains(key), "{key} in {exported}");
    }
    std::fs::write(d.join("exported.yaml"), &exported).unwrap();
    let again = run(d, &["apply", "-f", "exported.yaml", "--dry-run"]).ok();
    assert!(
        again
            .stdout
            .contains("Plan: 0 to create, 0 to change, 0 to deactivate."),
        "{exported}\n{}",
        again.stdout
    );

    // A change of layout shows field by field in the plan.
    std::fs::write(
        d.join("changed.yaml"),
        file.replace("compression: zstd(9)", "compression: snappy"),
    )
    .unwrap();
    let plan = run(d, &["apply", "-f", "changed.yaml", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains("compression: zstd(9) → snappy"),
        "{}",
        plan.stdout
    );

    std::fs::write(
        d.join("bad.yaml"),
        file.replace("target_file_size: 256MB", "target_file_size: 12 parsecs")
            .replace("partition_by: day", "partition_by: a-b")
            .replace(
                "  - source: public.plain\n",
                "  - source: public.plain\n    row_group_rows: 5\n",
            ),
    )
    .unwrap();
    let out = run(d, &["apply", "-f", "bad.yaml"]).fails_with("3 problem(s)");
    for expected in [
        "tables[0] (public.orders): target_file_size: \"12 parsecs\" is not a size",
        "tables[1] (public.events): partition_by: \"a-b\" is not a plain column name",
        "tables[2] (public.plain): row_group_rows: 5 is outside 1024 to 16777216",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
    std::fs::write(
        d.join("bad.yaml"),
        file.replace("compression: none", "compression: brotli"),
    )
    .unwrap();
    run(d, &["apply", "-f", "bad.yaml"])
        .fails_with("tables[1] (public.events): compression: \"brotli\" is not a codec");
}
