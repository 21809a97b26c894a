//! A lakehouse on S3 (moto's S3 server, started by `scripts/test.sh`, which sets
//! `DATALOADER_TEST_S3_BUCKET` and the `AWS_*` variables); without it the test prints a notice
//! and skips.

use dataloader_core::{LoadStrategy, RunStatus, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{assert_same_rows, pg_rows, Canon};

use crate::{keyed, Harness, Lake};

#[tokio::test]
async fn full_and_incremental_loads_into_an_s3_lakehouse() {
    let Ok(bucket) = std::env::var("DATALOADER_TEST_S3_BUCKET") else {
        eprintln!("NOTICE: DATALOADER_TEST_S3_BUCKET is not set: skipping the S3 lakehouse test (scripts/test.sh starts moto)");
        return;
    };
    let h = Harness::new("s3").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamp NOT NULL);
             INSERT INTO t SELECT g, 'v' || g, timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let root = format!("s3://{bucket}/run-{}", std::process::id());
    let s3 = Lake::with_root(
        h.store.connection("pg").await.unwrap().unwrap(),
        tempfile::tempdir().unwrap(),
        &root,
    )
    .await;
    let dest = s3
        .add_spec(&keyed(
            "public.t",
            "bronze.pg.t",
            LoadStrategy::Incremental,
            "id",
            "updated_at",
        ))
        .await;
    let first = s3
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!((first.status, first.rows.read), (RunStatus::Succeeded, 50));
    assert!(
        first.table_url.starts_with(&format!("s3://{bucket}/")),
        "{}",
        first.table_url
    );
    h.source
        .client
        .batch_execute("UPDATE t SET v = 'changed', updated_at = '2025-01-01' WHERE id <= 5")
        .await
        .unwrap();
    let second = s3
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (second.rows.read, second.rows.updated, second.delta_version),
        (5, 5, Some(1))
    );
    let kinds = [Canon::Text, Canon::Text];
    let source = pg_rows(
        &h.source.client,
        "SELECT id::text, v FROM t ORDER BY t.id",
        &kinds,
    )
    .await;
    assert_same_rows(
        &source,
        &s3.delta_rows(&dest, &["id", "v"], &kinds).await,
        &["id", "v"],
    );
}
