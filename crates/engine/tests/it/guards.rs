//! What a user does that used to lose or duplicate rows, each against the real PostgreSQL:
//! the load now ends with the destination equal to its source, or refuses and changes nothing,
//! and `--full-refresh` (the remedy every refusal names) then makes it equal.

use dataloader_core::{
    DeleteDetection, ErrorKind, LoadStrategy, RunStatus, TableSpec, TargetTable, Trigger,
};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{arrow_rows, pg_rows, Canon};

use crate::{keyed, spec, Harness};

async fn refresh(h: &Harness, dest: &TargetTable) -> dataloader_engine::LoadReport {
    h.engine
        .load(LoadRequest::new(dest, Trigger::Manual).full_refresh(true))
        .await
        .unwrap_or_else(|f| panic!("{}", f.error))
}

/// The refusal's message, after checking that it is a refusal that committed nothing.
async fn refused(h: &Harness, dest: &TargetTable) -> String {
    let version = h.destination(dest).version().await.unwrap();
    let failure = h
        .engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .expect_err("refused");
    assert_eq!(
        failure.error.kind(),
        ErrorKind::Conflict,
        "{}",
        failure.error
    );
    assert_eq!(h.destination(dest).version().await.unwrap(), version);
    failure.error.to_string()
}

/// `id, v` of the destination and of a source query, in id order.
async fn same_rows(h: &Harness, dest: &TargetTable, source_sql: &str) {
    let batches = h.destination(dest).read_all(&["id"]).await.unwrap();
    let delta = arrow_rows(&batches, &["id", "v"], &[Canon::Text, Canon::Text]);
    let source = pg_rows(&h.source.client, source_sql, &[Canon::Text, Canon::Text]).await;
    assert_eq!(delta, source);
}

/// `public.t` with `rows` rows (`id`, `v`, `seq`), loaded once into `bronze.pg.t` by
/// `incremental` (merged by `id`, watermark `seq`).
async fn loaded_incremental(h: &Harness, rows: i32) -> TargetTable {
    h.source
        .client
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text, seq int NOT NULL);
             INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
    let dest = h
        .add_spec(&keyed(
            "public.t",
            "bronze.pg.t",
            LoadStrategy::Incremental,
            "id",
            "seq",
        ))
        .await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    dest
}

/// Changes the table's spec as `table update` and `apply` do.
async fn update(h: &Harness, dest: &TargetTable, change: impl FnOnce(&mut TableSpec)) {
    let mut table = h.store.table_by_destination(dest).await.unwrap().unwrap();
    change(&mut table.spec);
    h.store
        .update_table_spec(table.table_id, &table.spec, chrono::Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_delta_table_with_a_stored_watermark_is_refused_until_a_full_refresh() {
    let h = Harness::new("guard_gone").await;
    let dest = loaded_incremental(&h, 4).await;
    // The folder is removed: a load from the stored watermark would keep 0 of 4 rows.
    let folder = url::Url::parse(h.destination(&dest).url().as_str())
        .unwrap()
        .to_file_path()
        .unwrap();
    std::fs::remove_dir_all(&folder).unwrap();
    let message = refused(&h, &dest).await;
    assert!(
        message.contains("but its watermark 4 is stored")
            && message.contains(&format!("dataloader load {dest} --full-refresh")),
        "{message}"
    );
    assert!(!folder.join("_delta_log").exists());
    let report = refresh(&h, &dest).await;
    assert_eq!(report.rows.written, 4);
    same_rows(&h, &dest, "SELECT id::text AS k, v FROM t ORDER BY id").await;
}

#[tokio::test]
async fn append_only_after_a_strategy_change_is_refused_not_appended_twice() {
    let h = Harness::new("guard_append").await;
    let dest = loaded_incremental(&h, 3).await;
    update(&h, &dest, |s| s.strategy = LoadStrategy::AppendOnly).await;
    let message = refused(&h, &dest).await;
    assert!(
        message.contains("it would append every source row again beside the 3 rows"),
        "{message}"
    );
    assert_eq!(
        h.destination(&dest)
            .key_counts(&[])
            .await
            .unwrap()
            .unwrap()
            .rows,
        3
    );
    refresh(&h, &dest).await;
    h.source
        .client
        .batch_execute("INSERT INTO t VALUES (4, 'v4', 4)")
        .await
        .unwrap();
    let next = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(next.rows.written, 1, "only the new row is appended");
    same_rows(&h, &dest, "SELECT id::text AS k, v FROM t ORDER BY id").await;
}

#[tokio::test]
async fn pointing_a_table_at_another_source_is_refused_until_a_full_refresh() {
    let h = Harness::new("guard_source").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, v text, seq int NOT NULL);
             INSERT INTO a SELECT g, 'a' || g, 100 + g FROM generate_series(1, 3) g;
             CREATE TABLE b (id int PRIMARY KEY, v text, seq int NOT NULL);
             INSERT INTO b SELECT g, 'b' || g, g FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    let dest = h
        .add_spec(&keyed(
            "public.a",
            "bronze.pg.t",
            LoadStrategy::Incremental,
            "id",
            "seq",
        ))
        .await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(table.loaded_from.as_deref(), Some("pg:public.a"));
    update(&h, &dest, |s| {
        s.source = dataloader_core::SourceTable::parse("public.b").unwrap()
    })
    .await;
    let message = refused(&h, &dest).await;
    assert!(
        message
            .contains("its rows were loaded from pg:public.a, but its source is now pg:public.b"),
        "{message}"
    );
    refresh(&h, &dest).await;
    same_rows(&h, &dest, "SELECT id::text AS k, v FROM b ORDER BY id").await;
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(table.loaded_from.as_deref(), Some("pg:public.b"));
    assert_eq!(table.incremental_value.unwrap().value, "5");
}

#[tokio::test]
async fn a_row_dated_in_the_future_does_not_move_the_rolling_window() {
    let h = Harness::new("guard_roll").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, at timestamptz NOT NULL);
             INSERT INTO t SELECT g, 'v' || g, now() - g * interval '1 hour' FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let mut s = spec("public.t", "bronze.pg.t", LoadStrategy::Rolling);
    s.primary_keys = vec!["id".into()];
    s.rolling_column = Some("at".into());
    s.rolling_window = Some("3 days".into());
    let dest = h.add_spec(&s).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    h.source
        .client
        .batch_execute("INSERT INTO t VALUES (21, 'bad', '2099-01-01')")
        .await
        .unwrap();
    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(report.rows.deleted, 0);
    same_rows(&h, &dest, "SELECT id::text AS k, v FROM t ORDER BY id").await;

    // A window that moves past most of the table is refused before anything is written.
    update(&h, &dest, |s| s.rolling_window = Some("5 hours".into())).await;
    let message = refused(&h, &dest).await;
    assert!(
        message.contains("would delete 16 of 21 rows") && message.contains("max_delete_ratio 0.2"),
        "{message}"
    );
    update(&h, &dest, |s| s.max_delete_ratio = 1.0).await;
    let rolled = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(rolled.rows.deleted, 16);
    same_rows(
        &h,
        &dest,
        "SELECT id::text AS k, v FROM t WHERE at > now() - interval '5 hours' ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn a_key_held_twice_on_the_first_load_is_kept_once_the_newest() {
    let h = Harness::new("guard_dups").await;
    // A view enforces no key: it can hold one twice.
    h.source
        .client
        .batch_execute(
            "CREATE TABLE raw (id int, v text, seq int NOT NULL);
             INSERT INTO raw VALUES (1, 'old', 1), (1, 'new', 5), (2, 'only', 2), (NULL, 'n1', 3), (NULL, 'n2', 4);
             CREATE VIEW t AS SELECT * FROM raw;",
        )
        .await
        .unwrap();
    let dest = h
        .add_spec(&keyed(
            "public.t",
            "bronze.pg.t",
            LoadStrategy::Incremental,
            "id",
            "seq",
        ))
        .await;
    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    let batches = h.destination(&dest).read_all(&["id"]).await.unwrap();
    let rows = arrow_rows(&batches, &["id", "v"], &[Canon::Text, Canon::Text]);
    let expected = vec![
        vec![Some("1".to_string()), Some("new".to_string())],
        vec![Some("2".to_string()), Some("only".to_string())],
        vec![None, Some("n2".to_string())],
    ];
    let mut sorted = rows.clone();
    sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted, "one row per key, the newest");
    assert_eq!(
        h.destination(&dest)
            .key_counts(&["id".into()])
            .await
            .unwrap()
            .unwrap()
            .duplicated_keys,
        0
    );
}

#[tokio::test]
async fn a_key_scan_keeps_rows_whose_key_is_null() {
    let h = Harness::new("guard_nullkey").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE raw (id int, v text, seq int NOT NULL);
             INSERT INTO raw SELECT g, 'v' || g, g FROM generate_series(1, 10) g;
             INSERT INTO raw VALUES (NULL, 'no key', 11);
             CREATE VIEW t AS SELECT * FROM raw;",
        )
        .await
        .unwrap();
    let mut s = keyed(
        "public.t",
        "bronze.pg.t",
        LoadStrategy::Incremental,
        "id",
        "seq",
    );
    s.delete_detection = DeleteDetection::PkScan;
    let dest = h.add_spec(&s).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    h.source
        .client
        .batch_execute("DELETE FROM raw WHERE id = 3")
        .await
        .unwrap();
    let scan = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(scan.rows.deleted, 1, "only the row gone from the source");
    let again = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        again.rows.deleted, 0,
        "the NULL-key row stays, scan after scan"
    );
    same_rows(
        &h,
        &dest,
        "SELECT id::text AS k, v FROM raw ORDER BY id NULLS LAST",
    )
    .await;
}

#[tokio::test]
async fn a_backfill_with_delete_detection_ends_equal_to_its_source() {
    let h = Harness::new("guard_backfill_deletes").await;
    let dest = loaded_incremental(&h, 10).await;
    h.source
        .client
        .batch_execute("DELETE FROM t WHERE id IN (2, 7)")
        .await
        .unwrap();
    update(&h, &dest, |s| {
        s.strategy = LoadStrategy::ChunkedBackfill;
        s.chunk_size = Some("3".into());
        s.delete_detection = DeleteDetection::PkScan;
        s.max_delete_ratio = 0.5;
    })
    .await;
    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        report.rows.deleted, 2,
        "the rows gone from the source go at once"
    );
    same_rows(&h, &dest, "SELECT id::text AS k, v FROM t ORDER BY id").await;
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(table.spec.strategy, LoadStrategy::Incremental);
    assert!(table.last_delete_scan_at.is_some());
}
