//! Credentials read from AWS Secrets Manager (moto; scripts/test.sh starts it and sets
//! `DATALOADER_TEST_SECRETS_MANAGER`): a PostgreSQL source's password, the PostgreSQL control
//! database's password and the Unity Catalog token.
//!
//! The main test server trusts every login, so the source's reference is shown to be resolved
//! another way: one to a missing secret fails the connection and names it, one to an existing
//! secret loads. The control database's password is checked for real, by a role of the TLS
//! cluster that must give one; the token, by what a loopback catalog receives.

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

#[tokio::test]
async fn the_control_database_password_is_read_from_aws_secrets_manager() {
    if !secrets_manager() {
        return;
    }
    let Ok(url) = std::env::var("DATALOADER_TEST_PG_TLS_URL") else {
        eprintln!("NOTICE: DATALOADER_TEST_PG_TLS_URL is not set: skipping (scripts/test.sh starts the TLS cluster)");
        return;
    };
    // A role of the TLS cluster that must give its password (pg_hba: +password_login).
    let (secret, password) = unique("control");
    let role = format!("pw_{}", std::process::id());
    let database = format!("dl_vault_control_{}", std::process::id());
    let admin = format!("{url}?sslmode=require");
    for sql in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}' IN ROLE password_login"),
        format!("CREATE DATABASE {database} OWNER {role}"),
    ] {
        let out = std::process::Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
            .output()
            .expect("psql, the PostgreSQL client, runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    put_secret(&secret, format!(r#"{{"password":"{password}"}}"#)).await;
    let (wrong_secret, wrong) = unique("wrong");
    put_secret(&wrong_secret, format!(r#"{{"password":"{wrong}"}}"#)).await;

    let host_port = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut env = vec![
            ("LAKEBASE_HOST", host),
            ("LAKEBASE_PORT", port),
            ("LAKEBASE_DATABASE", database.as_str()),
            ("LAKEBASE_USER", role.as_str()),
        ];
        env.extend_from_slice(extra);
        let run = dataloader_env(dir.path(), &["init", "--json"], &env);
        for shown in [&password, &wrong] {
            assert!(
                !run.stdout.contains(shown.as_str()) && !run.stderr.contains(shown.as_str()),
                "a password was shown:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
        run
    };

    let good = format!("aws-sm://{secret}#password");
    let init = run(&[("LAKEBASE_PASSWORD", &good)]).ok();
    assert!(
        init.json()["control_db"]
            .as_str()
            .unwrap()
            .contains(&database),
        "{}",
        init.stdout
    );
    // The role needs its password: the wrong one is refused by the server...
    let refused = run(&[(
        "LAKEBASE_PASSWORD",
        &format!("aws-sm://{wrong_secret}#password"),
    )]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("password authentication failed"),
        "{}",
        refused.stderr
    );
    // ...a missing secret is named...
    let missing = format!("aws-sm://{secret}-missing#password");
    let failed = run(&[("LAKEBASE_PASSWORD", &missing)]);
    assert!(
        failed
            .stderr
            .contains(&format!("secret {missing}: not found")),
        "{}",
        failed.stderr
    );
    // ...and a URL given another way takes DATALOADER_CONTROL_DB_PASSWORD, not LAKEBASE_*'s.
    let control_db = format!("postgres://{role}@{host_port}/{database}");
    let flag = dataloader_env(
        dir.path(),
        &["--control-db", &control_db, "table", "list"],
        &[
            ("DATALOADER_CONTROL_DB_PASSWORD", good.as_str()),
            ("LAKEBASE_PASSWORD", "not-this-one"),
        ],
    );
    flag.ok();
    let without = dataloader_env(
        dir.path(),
        &["--control-db", &control_db, "table", "list"],
        &[("LAKEBASE_PASSWORD", good.as_str())],
    );
    assert_ne!(
        without.code, 0,
        "LAKEBASE_PASSWORD went to a URL it was not for"
    );
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
