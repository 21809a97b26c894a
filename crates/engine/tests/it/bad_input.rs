//! Bad configuration fails with a message naming the problem, records a Failed run, and
//! commits nothing to Delta.

use dataloader_core::{ConnectionConfig, LoadStrategy, RunStatus, Trigger};
use dataloader_engine::LoadRequest;

use crate::Harness;

async fn assert_fails_without_commit(
    h: &Harness,
    dest: &dataloader_core::TargetTable,
    expected: &str,
) {
    let err = h
        .engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .unwrap_err();
    let message = err.error.to_string();
    assert!(
        message.contains(expected),
        "expected {expected:?} in: {message}"
    );
    assert_eq!(
        h.destination(dest).version().await.unwrap(),
        None,
        "nothing may be committed"
    );
    let run = h
        .store
        .run(err.run_id.expect("the failed run is recorded"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error_text.as_deref(), Some(message.as_str()));
}

#[tokio::test]
async fn missing_source_table() {
    let h = Harness::new("bad_table").await;
    let dest = h
        .add_table(
            "public.nope",
            "bronze.pg.nope",
            LoadStrategy::Full,
            &[],
            None,
        )
        .await;
    assert_fails_without_commit(
        &h,
        &dest,
        "connection \"pg\": source table public.nope not found",
    )
    .await;
}

#[tokio::test]
async fn missing_incremental_and_key_columns() {
    let h = Harness::new("bad_column").await;
    h.source
        .client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamp)")
        .await
        .unwrap();
    let dest = h
        .add_table(
            "public.orders",
            "bronze.pg.orders",
            LoadStrategy::Incremental,
            &["id"],
            Some("updated"),
        )
        .await;
    assert_fails_without_commit(
        &h,
        &dest,
        "incremental column \"updated\" not found in public.orders (columns: id, updated_at)",
    )
    .await;
    let dest = h
        .add_table(
            "public.orders",
            "bronze.pg.orders2",
            LoadStrategy::Incremental,
            &["order_id"],
            Some("updated_at"),
        )
        .await;
    assert_fails_without_commit(
        &h,
        &dest,
        "primary key column \"order_id\" not found in public.orders",
    )
    .await;
}

#[tokio::test]
async fn unsupported_column_type() {
    let h = Harness::new("bad_type").await;
    h.source
        .client
        .batch_execute("CREATE TABLE shapes (id int, p point)")
        .await
        .unwrap();
    let dest = h
        .add_table(
            "public.shapes",
            "bronze.pg.shapes",
            LoadStrategy::Full,
            &[],
            None,
        )
        .await;
    assert_fails_without_commit(&h, &dest, "public.shapes: column \"p\" has type point").await;
}

#[tokio::test]
async fn unreachable_database() {
    let h = Harness::new("bad_host").await;
    h.store
        .upsert_connection(&ConnectionConfig {
            name: "pg".into(),
            db_type: "postgresql".parse().unwrap(),
            host: Some("127.0.0.1".into()),
            port: Some(1),
            database: Some("nowhere".into()),
            user: Some("postgres".into()),
            password: None,
            options: Default::default(),
            max_connections: None,
        })
        .await
        .unwrap();
    let dest = h
        .add_table("public.t", "bronze.pg.t", LoadStrategy::Full, &[], None)
        .await;
    assert_fails_without_commit(
        &h,
        &dest,
        "connection \"pg\": cannot reach postgresql at 127.0.0.1:1/nowhere",
    )
    .await;
}

#[tokio::test]
async fn missing_password_variable_is_named_not_shown() {
    let h = Harness::new("bad_secret").await;
    let mut conn = h.store.connection("pg").await.unwrap().unwrap();
    conn.password = Some("env:DATALOADER_TEST_SURELY_UNSET".into());
    h.store.upsert_connection(&conn).await.unwrap();
    let dest = h
        .add_table("public.t", "bronze.pg.t", LoadStrategy::Full, &[], None)
        .await;
    assert_fails_without_commit(
        &h,
        &dest,
        "secret env:DATALOADER_TEST_SURELY_UNSET: environment variable DATALOADER_TEST_SURELY_UNSET is not set",
    )
    .await;
}

#[tokio::test]
async fn unknown_table_records_no_run() {
    let h = Harness::new("bad_dest").await;
    let dest = dataloader_core::TargetTable::parse("bronze.pg.unknown").unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err();
    assert_eq!(
        err.error.to_string(),
        "no table with destination bronze.pg.unknown in table_control"
    );
    assert!(err.run_id.is_none());
    assert!(h.store.runs(None, 10).await.unwrap().is_empty());
}
