//! Each bad input: one clear line naming the field, a non-zero exit, nothing written.

use crate::{dataloader, Run};

fn run(dir: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["--control-db", "sqlite://control.db", "--lake-root", "lake"];
    all.extend_from_slice(args);
    dataloader(dir, &all)
}

const TABLE: [&str; 6] = [
    "table",
    "add",
    "--connection",
    "pg",
    "--source",
    "public.orders",
];

fn table_add(dir: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = TABLE.to_vec();
    args.extend_from_slice(extra);
    run(dir, &args)
}

#[test]
fn bad_table_definitions_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(
        d,
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
            "--user",
            "postgres",
        ],
    )
    .ok();

    run(
        d,
        &[
            "table",
            "add",
            "--connection",
            "nope",
            "--source",
            "public.orders",
            "--dest",
            "bronze.sales.orders",
        ],
    )
    .fails_with("unknown connection \"nope\" (known: pg)");
    table_add(
        d,
        &["--dest", "bronze.sales.orders", "--schedule", "61 * * * *"],
    )
    .fails_with("schedule: \"61 * * * *\" is not a valid cron expression");
    table_add(d, &["--dest", "bronze.sales.orders", "--schedule", "daily"])
        .fails_with("schedule: \"daily\" is not a five-field cron expression");
    table_add(
        d,
        &["--dest", "bronze.sales.orders", "--schedule", "0 0 30 2 *"],
    )
    .fails_with("schedule: \"0 0 30 2 *\" never fires");
    // Spans must be positive: a zero chunk never advances.
    for (flag, value, extra) in [
        (
            "--chunk-size",
            "0",
            [
                "--strategy",
                "chunked_backfill",
                "--incremental-column",
                "id",
            ],
        ),
        (
            "--lookback",
            "0",
            ["--strategy", "incremental", "--incremental-column", "id"],
        ),
        (
            "--rolling-window",
            "0.0",
            ["--strategy", "rolling", "--rolling-column", "id"],
        ),
    ] {
        let mut args = vec![
            "--dest",
            "bronze.sales.orders",
            "--primary-key",
            "id",
            flag,
            value,
        ];
        args.extend_from_slice(&extra);
        table_add(d, &args).fails_with(&format!(
            "{}: \"{value}\" must be more than zero",
            flag.trim_start_matches("--").replace('-', "_")
        ));
    }
    table_add(d, &["--dest", "bronze.sales.orders", "--strategy", "fast"])
        .fails_with("strategy: unknown strategy \"fast\" (valid: full, incremental, append_only, rolling, check_and_load, chunked_backfill)");
    table_add(
        d,
        &[
            "--dest",
            "bronze.sales.orders",
            "--strategy",
            "incremental",
            "--incremental-column",
            "updated_at",
        ],
    )
    .fails_with("primary_key: bronze.sales.orders: the incremental strategy merges by primary key");
    table_add(d, &["--dest", "bronze.sales.orders", "--strategy", "incremental", "--primary-key", "id"])
        .fails_with("incremental_column: bronze.sales.orders: the incremental strategy needs an incremental column");
    table_add(d, &["--dest", "bronze.orders"])
        .fails_with("destination: \"bronze.orders\" has 2 part(s), not 3");
    table_add(d, &["--dest", "../etc.passwd.x"])
        .fails_with("destination: \"../etc.passwd.x\" contains a path character");
    table_add(d, &["--dest", "bronze.sales/x.orders"]).fails_with("contains a path character");
    table_add(
        d,
        &[
            "--dest",
            "bronze.sales.orders",
            "--timezone",
            "Mars/Olympus",
        ],
    )
    .fails_with("timezone: \"Mars/Olympus\" is not an IANA time zone");
    run(d, &["load", "bronze.sales.orders"])
        .fails_with("no table with destination bronze.sales.orders in table_control");
    run(d, &["load", "bronze..orders"]).fails_with("destination:");

    let tables = run(d, &["table", "list", "--json"]).ok().json();
    assert_eq!(tables, serde_json::json!([]), "no table was added");
    assert!(!d.join("lake").exists(), "nothing was written to the lake");
}

#[test]
fn secrets_are_references_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refused = run(
        d,
        &[
            "connection",
            "add",
            "pg",
            "--type",
            "postgresql",
            "--host",
            "h",
            "--database",
            "db",
            "--password",
            "hunter2",
        ],
    )
    .fails_with("password: must be a reference (env:VAR, file:/path, azure-keyvault://");
    assert!(!refused.stderr.contains("hunter2"));
    run(
        d,
        &[
            "connection",
            "add",
            "pg",
            "--type",
            "postgres",
            "--host",
            "127.0.0.1",
            "--database",
            "test",
            "--user",
            "postgres",
            "--password-env",
            "DL_TEST_PW",
        ],
    )
    .ok();
    let shown = crate::dataloader_env(
        d,
        &[
            "--control-db",
            "sqlite://control.db",
            "connection",
            "show",
            "pg",
        ],
        &[("DL_TEST_PW", "sup3r-secret")],
    )
    .ok();
    assert!(
        shown.stdout.contains("env:DL_TEST_PW (available)"),
        "{}",
        shown.stdout
    );
    assert!(!shown.stdout.contains("sup3r-secret"));
    let export = run(d, &["export"]).ok();
    assert!(
        export.stdout.contains("password: env:DL_TEST_PW"),
        "{}",
        export.stdout
    );
    run(
        d,
        &["connection", "add", "x", "--type", "db2", "--host", "h"],
    )
    .fails_with("type: unknown database type \"db2\"");
    // A secret given as an option's value is refused, and not echoed.
    let refused = run(
        d,
        &[
            "connection",
            "add",
            "erp",
            "--type",
            "mssql",
            "--host",
            "h",
            "--database",
            "db",
            "--option",
            "auth=aad",
            "--option",
            "client_secret=s3cr3t-value",
        ],
    )
    .fails_with("client_secret: --option client_secret= takes a reference");
    assert!(!refused.stderr.contains("s3cr3t-value"));
    // A TLS option the connector does not implement is refused, not ignored.
    run(
        d,
        &[
            "connection",
            "add",
            "tls",
            "--type",
            "postgresql",
            "--host",
            "h",
            "--database",
            "db",
            "--option",
            "sslmode=verify_full",
        ],
    )
    .fails_with("sslmode: sslmode=verify_full is not implemented for postgresql connections");
    // A check query that writes is refused before it can ever run.
    run(
        d,
        &[
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.t",
            "--dest",
            "b.s.t",
            "--strategy",
            "check_and_load",
            "--check-mode",
            "query",
            "--check-query",
            "SELECT 1; INSERT INTO t VALUES (1)",
        ],
    )
    .fails_with("check_query: must be one SELECT (or WITH … SELECT) statement that only reads");
}

/// A connection option its connector does not take (a typo, most often) is refused by
/// `connection add` and `apply`, naming the key, the connection and the options it takes;
/// nothing is saved.
#[test]
fn an_unknown_connection_option_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(
        d,
        &[
            "connection",
            "add",
            "pg",
            "--type",
            "postgresql",
            "--host",
            "h",
            "--database",
            "db",
            "--option",
            "sslmod=disable",
        ],
    )
    .fails_with(
        "error: connection \"pg\": postgresql has no option \"sslmod\" (its options: sslmode, sslrootcert, sslcert, sslkey)",
    );
    std::fs::write(
        d.join("typo.yaml"),
        "connections:\n  my:\n    type: mariadb\n    host: h\n    database: d\n    options:\n      ssl_mode: require\n",
    )
    .unwrap();
    let out = run(d, &["apply", "-f", "typo.yaml"]).fails_with("1 problem(s) in the file");
    assert!(
        out.stderr.contains(
            "connections.my: connection \"my\": mysql has no option \"ssl_mode\" (its options: sslmode, sslrootcert, sslcert, sslkey)"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        run(d, &["connection", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn connection_test_reaches_mariadb() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (host, port) = dataloader_testkit::mysql::host_port();
    run(
        d,
        &[
            "connection",
            "add",
            "my",
            "--type",
            "mariadb",
            "--host",
            &host,
            "--port",
            &port.to_string(),
            "--database",
            "test",
            "--user",
            "root",
        ],
    )
    .ok();
    let out = run(d, &["connection", "test", "my"]).ok();
    assert!(
        out.stdout.contains("connection my: ok") && out.stdout.contains("MariaDB"),
        "{}",
        out.stdout
    );
    let shown = run(d, &["connection", "show", "my", "--json"]).ok().json();
    assert_eq!(shown["db_type"], "mysql");
}

#[test]
fn unreachable_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(
        d,
        &[
            "connection",
            "add",
            "down",
            "--type",
            "postgresql",
            "--host",
            "127.0.0.1",
            "--port",
            "1",
            "--database",
            "x",
        ],
    )
    .ok();
    run(d, &["connection", "test", "down"])
        .fails_with("connection \"down\": cannot reach postgresql at 127.0.0.1:1/x");
    run(d, &["connection", "test", "other"])
        .fails_with("unknown connection \"other\" (known: down)");
}

#[test]
fn settings_precedence_flag_env_file_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["init", "--json"]);
        crate::dataloader_env(d, &all, env).ok().json()["control_db"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(init(&[], &[]), "sqlite://./dataloader.db");
    std::fs::write(
        d.join("dataloader.toml"),
        "control_db = \"sqlite://from-file.db\"\n",
    )
    .unwrap();
    assert_eq!(init(&[], &[]), "sqlite://from-file.db");
    assert_eq!(
        init(&[], &[("DATALOADER_CONTROL_DB", "sqlite://from-env.db")]),
        "sqlite://from-env.db"
    );
    assert_eq!(
        init(
            &["--control-db", "sqlite://from-flag.db"],
            &[("DATALOADER_CONTROL_DB", "sqlite://from-env.db")]
        ),
        "sqlite://from-flag.db"
    );
    std::fs::write(d.join("dataloader.toml"), "control-db = \"x\"\n").unwrap();
    dataloader(d, &["init"]).fails_with("config: dataloader.toml is not valid");
}
