//! A PostgreSQL source whose password is an `aws-sm://` reference, read from AWS Secrets
//! Manager (moto; scripts/test.sh starts it and sets `DATALOADER_TEST_SECRETS_MANAGER`).
//! The test server trusts every login, so the reference is shown to be resolved another way:
//! one to a missing secret fails the connection and names it, one to an existing secret loads.

use dataloader_testkit::PgTestDb;

use crate::{dataloader_env, pg_connection_args};

#[tokio::test]
async fn a_load_reads_its_password_from_aws_secrets_manager() {
    if std::env::var_os("DATALOADER_TEST_SECRETS_MANAGER").is_none() {
        eprintln!("NOTICE: DATALOADER_TEST_SECRETS_MANAGER is not set: skipping the Secrets Manager load test (scripts/test.sh starts moto)");
        return;
    }
    let db = PgTestDb::create("vault").await;
    db.client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 25) g;")
        .await
        .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!("dataloader-test/cli-{}-{nanos}", std::process::id());
    let value = format!("pw-{nanos}");
    let admin = aws_sdk_secretsmanager::Client::new(
        &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    );
    admin
        .create_secret()
        .name(&secret)
        .secret_string(format!(r#"{{"username":"loader","password":"{value}"}}"#))
        .send()
        .await
        .unwrap();

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
