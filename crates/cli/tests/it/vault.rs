//! Credentials read from AWS Secrets Manager (moto; scripts/test.sh starts it and sets
//! `DATALOADER_TEST_SECRETS_MANAGER`): a PostgreSQL source's password and the Unity Catalog
//! token.
//!
//! The main test server trusts every login, so the source's reference is shown to be resolved
//! another way: one to a missing secret fails the connection and names it, one to an existing
//! secret loads. The token is checked by what a loopback catalog receives.

use dataloader_testkit::http_mock::HttpMock;
use dataloader_testkit::PgTestDb;

use crate::{dataloader_env, pg_connection_args};

/// Whether moto runs; says so when it does not.
fn secrets_manager() -> bool {
    let set = std::env::var_os("DATALOADER_TEST_SECRETS_MANAGER").is_some();
    if !set {
        eprintln!("NOTICE: DATALOADER_TEST_SECRETS_MANAGER is not set: skipping (scripts/test.sh starts moto)");
    }
    set
}

/// A fresh name, and a value no other run has.
fn unique(what: &str) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{what}-{}-{nanos}", std::process::id());
    (format!("dataloader-test/{id}"), format!("value-{id}"))
}

/// Stores `json` as the secret `name` in Secrets Manager.
async fn put_secret(name: &str, json: String) {
    let admin = aws_sdk_secretsmanager::Client::new(
        &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    );
    admin
        .create_secret()
        .name(name)
        .secret_string(json)
        .send()
        .await
        .unwrap();
}

/// A source database whose `public.items` holds `rows` rows.
async fn items(prefix: &str, rows: i32) -> PgTestDb {
    let db = PgTestDb::create(prefix).await;
    db.client
        .batch_execute(&format!("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, {rows}) g;"))
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_load_reads_its_password_from_aws_secrets_manager() {
    if !secrets_manager() {
        return;
    }
    let db = items("vault", 25).await;
    let (secret, value) = unique("cli");
    put_secret(
        &secret,
        format!(r#"{{"username":"loader","password":"{value}"}}"#),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let run = dataloader_env(
            dir.path(),
            args,
            &[("DATALOADER_CONTROL_DB", "sqlite://control.db")],
        );
        assert!(
            !run.stdout.contains(&value) && !run.stderr.contains(&value),
            "the value was shown:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    };
    run(&["init"]).ok();
    let add = |name: &str, reference: &str| {
        let mut args = pg_connection_args(name, &db.name);
        args.extend(["--password".into(), reference.into()]);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    };
    let missing = format!("aws-sm://{secret}-missing#password");
    add("pg_missing", &missing);
    let good = format!("aws-sm://{secret}#password");
    add("pg", &good);

    let failed = run(&["connection", "test", "pg_missing"])
        .fails_with(&format!("secret {missing}: not found"));
    assert!(
        failed.stderr.contains("ResourceNotFoundException"),
        "{}",
        failed.stderr
    );
    let shown = run(&["connection", "show", "pg_missing"]).ok();
    assert!(
        shown
            .stdout
            .contains(&format!("{missing} (NOT available here: not found")),
        "{}",
        shown.stdout
    );
    let shown = run(&["connection", "show", "pg"]).ok();
    assert!(
        shown.stdout.contains(&format!("{good} (available)")),
        "{}",
        shown.stdout
    );
    run(&["connection", "test", "pg"]).ok();

    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.items",
        "--dest",
        "bronze.vault.items",
    ])
    .ok();
    let load = run(&["load", "bronze.vault.items", "--json"]).ok().json();
    assert_eq!(load["status"], "Succeeded");
    assert_eq!(load["rows_read"], 25);

    // A load through the missing reference fails and its history names the reference.
    run(&[
        "table",
        "add",
        "--connection",
        "pg_missing",
        "--source",
        "public.items",
        "--dest",
        "bronze.vault.missing",
    ])
    .ok();
    let failed = run(&["load", "bronze.vault.missing"]);
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert!(
        failed
            .stderr
            .contains(&format!("error: secret {missing}: not found")),
        "{}",
        failed.stderr
    );
    let history = run(&["history", "bronze.vault.missing", "--json"]).ok();
    assert!(history.stdout.contains(&missing), "{}", history.stdout);
    let export = run(&["export"]).ok();
    assert!(export.stdout.contains(&good), "{}", export.stdout);
}

// Multi-threaded: the loopback catalog answers while a blocking command runs the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unity_catalog_token_is_read_from_aws_secrets_manager_by_a_mock_catalog() {
    if !secrets_manager() {
        return;
    }
    let db = items("vault_unity", 5).await;
    let (secret, token) = unique("dbx");
    put_secret(&secret, format!(r#"{{"token":"{token}"}}"#)).await;
    // No Databricks runs here: a loopback catalog that refuses everything records what it got.
    let catalog = HttpMock::start(|_| (404, r#"{"error_code":"NOT_FOUND"}"#.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let unity = format!("unity:{}", catalog.url());
    let reference = format!("aws-sm://{secret}#token");
    let run = |args: &[&str]| {
        let run = dataloader_env(
            dir.path(),
            args,
            &[
                ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
                ("DATALOADER_CATALOG", unity.as_str()),
                ("DATABRICKS_TOKEN", reference.as_str()),
            ],
        );
        assert!(
            !run.stdout.contains(&token) && !run.stderr.contains(&token),
            "the token was shown:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    };
    run(&["init"]).ok();
    run(&pg_connection_args("pg", &db.name)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>())
    .ok();
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.items",
        "--dest",
        "main.vault.items",
    ])
    .ok();
    run(&["load", "main.vault.items"]);
    let seen = catalog.requests();
    assert!(!seen.is_empty(), "the catalog was never called");
    let bearer = format!("Bearer {token}");
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some(bearer.as_str()),
            "{request:?}"
        );
    }
}
