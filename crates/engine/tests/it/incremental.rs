use dataloader_core::{LoadStrategy, RunStatus, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{arrow_rows, assert_same_rows, pg_rows, Canon};

use crate::Harness;

const COLUMNS: [&str; 4] = ["id", "customer", "amount", "updated_at"];
const KINDS: [Canon; 4] = [Canon::Text, Canon::Text, Canon::Decimal, Canon::Text];

async fn compare(h: &Harness, dest: &dataloader_core::TargetTable) {
    let source = pg_rows(
        &h.source.client,
        "SELECT id::text, customer, amount::text, (extract(epoch from updated_at) * 1000000)::bigint::text FROM orders ORDER BY orders.id",
        &KINDS,
    )
    .await;
    let batches = h.destination(dest).read_all(&["id"]).await.unwrap();
    assert_same_rows(&source, &arrow_rows(&batches, &COLUMNS, &KINDS), &COLUMNS);
}

/// Runs `sql` on the source (it creates `orders`) and adds `orders` loaded incrementally by
/// `id` on `updated_at`.
async fn incremental_orders(h: &Harness, sql: &str) -> dataloader_core::TargetTable {
    h.source.client.batch_execute(sql).await.unwrap();
    h.add_table(
        "public.orders",
        "bronze.pg.orders",
        LoadStrategy::Incremental,
        &["id"],
        Some("updated_at"),
    )
    .await
}

#[tokio::test]
async fn incremental_reads_only_changed_rows_and_merges_them() {
    let h = Harness::new("incr").await;
    let dest = incremental_orders(
        &h,
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(10,2), updated_at timestamp(6) NOT NULL);
             INSERT INTO orders SELECT g, 'customer ' || g, g * 1.5, timestamp '2024-01-01' + g * interval '1.000001 second'
             FROM generate_series(1, 1000) g;",
    )
    .await;

    let first = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((first.rows.read, first.rows.inserted), (1000, 1000));
    assert_eq!(
        first.watermark_after.as_deref(),
        Some("2024-01-01 00:16:40.001")
    );
    compare(&h, &dest).await;

    h.source
        .client
        .batch_execute(
            "INSERT INTO orders SELECT g, 'new ' || g, g, timestamp '2024-02-01' + g * interval '1 second' FROM generate_series(1001, 1100) g;
             UPDATE orders SET amount = amount + 0.01, customer = customer || ' (moved)', updated_at = timestamp '2024-03-01 00:00:00.000007'
             WHERE id % 20 = 0;",
        )
        .await
        .unwrap();
    let second = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        second.rows.read, 150,
        "only the 100 new and 50 updated rows are read"
    );
    assert_eq!((second.rows.inserted, second.rows.updated), (100, 50));
    assert_eq!(
        second.watermark_after.as_deref(),
        Some("2024-03-01 00:00:00.000007")
    );
    compare(&h, &dest).await;

    let runs = h.store.runs(None, 10).await.unwrap();
    assert_eq!(runs[0].rows_read, Some(150), "history records rows read");
    assert_eq!(
        runs[0].watermark_before.as_deref(),
        Some("2024-01-01 00:16:40.001")
    );
    assert_eq!(
        runs[0].watermark_after.as_deref(),
        Some("2024-03-01 00:00:00.000007")
    );
    assert_eq!(runs[0].status, RunStatus::Succeeded);

    // Nothing new: nothing read, no commit, watermark kept.
    let version = h.destination(&dest).version().await.unwrap();
    let third = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(third.rows.read, 0);
    assert_eq!(third.delta_version, None);
    assert_eq!(h.destination(&dest).version().await.unwrap(), version);
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(
        table.incremental_value.unwrap().value,
        "2024-03-01 00:00:00.000007"
    );
    assert_eq!(table.status, Some(RunStatus::Succeeded));
}

#[tokio::test]
async fn a_failed_load_keeps_the_watermark() {
    let h = Harness::new("incr_fail").await;
    let dest = incremental_orders(
        &h,
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric, updated_at timestamptz NOT NULL);
             INSERT INTO orders VALUES (1, 1, '2024-01-01 00:00:00+00');",
    )
    .await;
    let first = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        first.watermark_after.as_deref(),
        Some("2024-01-01 00:00:00+00")
    );
    h.source
        .client
        .batch_execute("INSERT INTO orders VALUES (2, 'NaN', '2024-01-02 00:00:00+00')")
        .await
        .unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err();
    assert!(err.error.to_string().contains("NaN"), "{}", err.error);
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(
        table.incremental_value.unwrap().value,
        "2024-01-01 00:00:00+00"
    );
    assert_eq!(table.status, Some(RunStatus::Failed));
    assert_eq!(h.destination(&dest).version().await.unwrap(), Some(0));
}

/// A change set at the newest keys reads and rewrites only the file that holds those keys: the
/// merge reads only files whose key statistics can hold a changed key. Incremental loads
/// depend on it to stay fast on large tables.
#[tokio::test]
async fn a_merge_at_the_newest_keys_leaves_older_files_untouched() {
    let h = Harness::new("prune").await;
    let dest = incremental_orders(
        &h,
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(10,2), updated_at timestamp(6) NOT NULL)",
    )
    .await;
    let files = || async {
        let table = h.destination(&dest).open().await.unwrap().unwrap();
        table
            .get_file_uris()
            .unwrap()
            .collect::<std::collections::BTreeSet<String>>()
    };
    // Four loads of 1000 new rows each: four files with disjoint key ranges.
    for part in 0..4 {
        h.source
            .client
            .batch_execute(&format!(
                "INSERT INTO orders SELECT g, 'customer ' || g, g * 1.5, timestamp '2024-01-01' + g * interval '1 second'
                 FROM generate_series({} + 1, {} + 1000) g",
                part * 1000,
                part * 1000
            ))
            .await
            .unwrap();
        h.engine
            .load(LoadRequest::new(&dest, Trigger::Manual))
            .await
            .unwrap();
    }
    let before = files().await;
    assert_eq!(before.len(), 4, "{before:?}");

    h.source
        .client
        .batch_execute(
            "UPDATE orders SET amount = amount + 1, updated_at = timestamp '2025-01-01' + id * interval '1 second' WHERE id > 3990",
        )
        .await
        .unwrap();
    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((report.rows.read, report.rows.updated), (10, 10));
    let after = files().await;
    assert_eq!(
        before.intersection(&after).count(),
        3,
        "the three files of older keys stay as they were: {before:?} → {after:?}"
    );
    let table = h.destination(&dest).open().await.unwrap().unwrap();
    let commit = futures::StreamExt::next(&mut table.history(Some(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(commit.operation.as_deref(), Some("MERGE"));
    let metrics = &commit.info["operationMetrics"];
    assert_eq!(
        (
            metrics["num_target_files_scanned"].as_u64(),
            metrics["num_target_files_skipped_during_scan"].as_u64()
        ),
        (Some(1), Some(3)),
        "the merge reads only the file whose key range meets the changes: {metrics}"
    );
    compare(&h, &dest).await;
}
