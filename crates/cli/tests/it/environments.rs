//! The two environments of the loader DataLoader replaces, `dataloader` and `dataloader_test`
//! on one Lakebase server: the LAKEBASE_* variables choose the control database, and a flag
//! wins over them.

use crate::dataloader_env;

#[tokio::test]
async fn the_lakebase_variables_choose_the_control_database() {
    let db = dataloader_testkit::PgTestDb::create("cli_lakebase").await;
    let dir = tempfile::tempdir().unwrap();
    // Trust authentication here accepts any password; it must never be printed.
    let lakebase = [
        ("LAKEBASE_HOST", "127.0.0.1"),
        ("LAKEBASE_PORT", "5432"),
        ("LAKEBASE_DATABASE", db.name.as_str()),
        ("LAKEBASE_USER", "postgres"),
        ("LAKEBASE_PASSWORD", "lakebase-secret-value"),
    ];
    let init = dataloader_env(dir.path(), &["init", "--json"], &lakebase).ok();
    let shown = init.json()["control_db"].as_str().unwrap().to_string();
    assert!(
        shown.contains(&db.name) && shown.contains("127.0.0.1"),
        "{shown}"
    );
    assert!(
        !init.stdout.contains("lakebase-secret-value")
            && !init.stderr.contains("lakebase-secret-value"),
        "{}{}",
        init.stdout,
        init.stderr
    );
    let tables: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'table_control'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 1,
        "the control tables were made in LAKEBASE_DATABASE"
    );

    // A flag names another database outright, whatever the variables say.
    let sqlite = dir.path().join("other.db");
    let flag = format!("sqlite://{}", sqlite.display());
    let init = dataloader_env(
        dir.path(),
        &["--control-db", &flag, "init", "--json"],
        &lakebase,
    )
    .ok();
    assert!(
        init.json()["control_db"]
            .as_str()
            .unwrap()
            .contains("other.db"),
        "{}",
        init.stdout
    );
}
