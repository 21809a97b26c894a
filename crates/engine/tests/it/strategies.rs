//! The watermark rules and the per-strategy behaviour the differential tests do not pin down.

use dataloader_core::{DeleteDetection, LoadStrategy, NullWatermark, RunStatus, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::connect;

use crate::{keyed, spec, Harness};

async fn count(h: &Harness, dest: &dataloader_core::TargetTable) -> usize {
    h.destination(dest)
        .read_all(&[])
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

/// A row committed after a load, stamped before that load's watermark: the peers' classic
/// lost row. With a lookback the next load reads it; without, it is (documentedly) missed.
#[tokio::test]
async fn lookback_catches_a_row_committed_late_with_an_older_timestamp() {
    let h = Harness::new("late").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE events (id int PRIMARY KEY, body text, updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO events (id, body) VALUES (1, 'first'), (2, 'second');",
        )
        .await
        .unwrap();
    let mut with = keyed(
        "public.events",
        "bronze.pg.with_lookback",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    with.lookback = Some("10 minutes".into());
    let mut without = with.clone();
    without.destination =
        dataloader_core::TargetTable::parse("bronze.pg.without_lookback").unwrap();
    without.lookback = None;
    let with = h.add_spec(&with).await;
    let without = h.add_spec(&without).await;

    // A second connection opens a transaction: its now() is fixed at this moment.
    let slow = connect(&h.source.name).await;
    slow.batch_execute("BEGIN; INSERT INTO events (id, body) VALUES (3, 'late')")
        .await
        .unwrap();
    h.source
        .client
        .batch_execute("INSERT INTO events (id, body) VALUES (4, 'on time')")
        .await
        .unwrap();
    for dest in [&with, &without] {
        let first = h
            .engine
            .load(LoadRequest::new(dest, Trigger::Manual))
            .await
            .unwrap();
        assert_eq!(
            first.rows.read, 3,
            "rows 1, 2 and 4; row 3 is not committed yet"
        );
    }
    slow.batch_execute("COMMIT").await.unwrap();

    let second = h
        .engine
        .load(LoadRequest::new(&with, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        count(&h, &with).await,
        4,
        "the lookback re-read found row 3"
    );
    assert_eq!(second.rows.inserted, 1);
    assert_eq!(
        second.watermark_after, second.watermark_before,
        "a re-read never moves the watermark back"
    );
    h.engine
        .load(LoadRequest::new(&without, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        count(&h, &without).await,
        3,
        "without a lookback the late row is missed"
    );
}

#[tokio::test]
async fn null_watermark_rows_are_included_by_default_and_skipped_on_request() {
    let h = Harness::new("nulls").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamp);
             INSERT INTO t VALUES (1, 'a', '2024-01-01'), (2, 'b', NULL), (3, 'c', NULL);",
        )
        .await
        .unwrap();
    let include = keyed(
        "public.t",
        "bronze.pg.t_include",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    let mut skip = include.clone();
    skip.destination = dataloader_core::TargetTable::parse("bronze.pg.t_skip").unwrap();
    skip.null_watermark = Some(NullWatermark::Skip);
    assert_eq!(
        include.effective_null_watermark(),
        NullWatermark::Include,
        "the default"
    );
    let include = h.add_spec(&include).await;
    let skip = h.add_spec(&skip).await;

    assert_eq!(
        h.engine
            .load(LoadRequest::new(&include, Trigger::Manual))
            .await
            .unwrap()
            .rows
            .read,
        3
    );
    let skipped = h
        .engine
        .load(LoadRequest::new(&skip, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(skipped.rows.read, 1);
    assert!(
        skipped
            .notes
            .iter()
            .any(|n| n == "2 rows with NULL updated_at not loaded (null_watermark: skip)"),
        "{:?}",
        skipped.notes
    );
    let run = h.store.run(skipped.run_id).await.unwrap().unwrap();
    assert!(run.notes.unwrap().contains("2 rows with NULL updated_at"));

    // A NULL row that changes is merged again on the next run.
    h.source
        .client
        .batch_execute("UPDATE t SET v = 'changed' WHERE id = 2")
        .await
        .unwrap();
    let again = h
        .engine
        .load(LoadRequest::new(&include, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((again.rows.read, again.rows.updated), (2, 2));
    let rows = h.destination(&include).read_all(&["id"]).await.unwrap();
    let v = dataloader_testkit::arrow_rows(&rows, &["v"], &[dataloader_testkit::Canon::Text]);
    assert_eq!(v[1][0].as_deref(), Some("changed"));
}

#[tokio::test]
async fn a_source_maximum_below_the_watermark_is_an_error_not_a_reload() {
    let h = Harness::new("regress").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamp NOT NULL);
             INSERT INTO t SELECT g, timestamp '2024-01-01' + g * interval '1 day' FROM generate_series(1, 10) g;",
        )
        .await
        .unwrap();
    let s = keyed(
        "public.t",
        "bronze.pg.t",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    let dest = h.add_spec(&s).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    // The source is restored from an older backup.
    h.source
        .client
        .batch_execute("DELETE FROM t WHERE id > 5")
        .await
        .unwrap();
    let version = h.destination(&dest).version().await.unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        err.contains("the source's MAX(updated_at) is 2024-01-06 00:00:00, below the stored watermark 2024-01-11 00:00:00: the source was reset or restored"),
        "{err}"
    );
    assert!(err.contains("--full-refresh"), "{err}");
    assert_eq!(
        h.destination(&dest).version().await.unwrap(),
        version,
        "nothing written"
    );
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(
        table.incremental_value.unwrap().value,
        "2024-01-11 00:00:00"
    );
}

#[tokio::test]
async fn full_refresh_replaces_the_table_and_moves_the_watermark() {
    let h = Harness::new("refresh").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, seq int NOT NULL);
             INSERT INTO t SELECT g, g FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let mut s = spec("public.t", "bronze.pg.t", LoadStrategy::AppendOnly);
    s.incremental_column = Some("seq".into());
    let dest = h.add_spec(&s).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    h.source
        .client
        .batch_execute("DELETE FROM t WHERE id > 10; INSERT INTO t VALUES (11, 11)")
        .await
        .unwrap();
    let refreshed = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual).full_refresh(true))
        .await
        .unwrap();
    assert_eq!(
        (refreshed.rows.read, refreshed.watermark_after.as_deref()),
        (11, Some("11"))
    );
    assert_eq!(count(&h, &dest).await, 11);
}

#[tokio::test]
async fn chunked_backfill_loads_in_chunks_then_switches_to_incremental_on_record() {
    let h = Harness::new("chunks").await;
    h.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 95) g;")
        .await
        .unwrap();
    let mut s = keyed(
        "public.t",
        "bronze.pg.t",
        LoadStrategy::ChunkedBackfill,
        "id",
        "id",
    );
    s.chunk_size = Some("20".into());
    let dest = h.add_spec(&s).await;
    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(report.rows.read, 95);
    assert_eq!(
        report.delta_version,
        Some(4),
        "five chunks, five commits (versions 0 to 4)"
    );
    assert_eq!(report.strategy, LoadStrategy::Incremental);
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(table.spec.strategy, LoadStrategy::Incremental);
    assert_eq!(table.incremental_value.unwrap().value, "95");
    assert_eq!(table.backfill_cursor, None);
    let switch = h
        .store
        .table_history(table.table_id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| {
            c.new_values
                .as_ref()
                .is_some_and(|v| v["load_strategy"] == "incremental")
        })
        .expect("the switch is in table_control_history");
    assert_eq!(
        switch.old_values.unwrap()["load_strategy"],
        "chunked_backfill"
    );

    h.source
        .client
        .batch_execute("INSERT INTO t VALUES (96, 'new')")
        .await
        .unwrap();
    let next = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        next.rows.read, 1,
        "now incremental from the backfill's upper bound"
    );
    assert_eq!(count(&h, &dest).await, 96);
}

#[tokio::test]
async fn delete_detection_refuses_to_delete_too_much_or_everything() {
    let h = Harness::new("deletes").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamp NOT NULL);
             INSERT INTO t SELECT g, timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let mut s = keyed(
        "public.t",
        "bronze.pg.t",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    s.delete_detection = DeleteDetection::PkScan;
    let dest = h.add_spec(&s).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();

    h.source
        .client
        .batch_execute("DELETE FROM t WHERE id <= 10")
        .await
        .unwrap();
    let ok = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(ok.rows.deleted, 10);
    assert_eq!(count(&h, &dest).await, 90);

    h.source
        .client
        .batch_execute("DELETE FROM t WHERE id <= 50")
        .await
        .unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        err.contains(
            "would delete 40 of 90 rows (44.4%), more than max_delete_ratio 0.2; refusing"
        ),
        "{err}"
    );
    assert_eq!(count(&h, &dest).await, 90, "nothing deleted");

    h.source
        .client
        .batch_execute("DELETE FROM t")
        .await
        .unwrap();
    let mut s = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    s.spec.max_delete_ratio = 1.0;
    h.store
        .update_table_spec(s.table_id, &s.spec, chrono::Utc::now())
        .await
        .unwrap();
    h.store.set_watermark(s.table_id, None).await.unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        err.contains(
            "the source returned no primary keys, which would delete all 90 rows; refusing"
        ),
        "{err}"
    );
    assert_eq!(count(&h, &dest).await, 90);
}

#[tokio::test]
async fn check_and_load_with_a_check_query() {
    let h = Harness::new("checkq").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);
             CREATE TABLE releases (version int); INSERT INTO releases VALUES (7);",
        )
        .await
        .unwrap();
    let mut s = spec("public.t", "bronze.pg.t", LoadStrategy::CheckAndLoad);
    s.check_mode = Some(dataloader_core::CheckMode::Query);
    s.check_query = Some("SELECT max(version) FROM releases".into());
    let dest = h.add_spec(&s).await;
    assert_eq!(
        h.engine
            .load(LoadRequest::new(&dest, Trigger::Manual))
            .await
            .unwrap()
            .status,
        RunStatus::Succeeded
    );
    h.source
        .client
        .batch_execute("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    let skipped = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (skipped.status, skipped.rows.read),
        (RunStatus::Skipped, 0),
        "the release did not change"
    );
    assert_eq!(count(&h, &dest).await, 2);
    h.source
        .client
        .batch_execute("UPDATE releases SET version = 8")
        .await
        .unwrap();
    let loaded = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((loaded.status, loaded.rows.read), (RunStatus::Succeeded, 3));
    let table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(table.last_check_value.as_deref(), Some("8"));
}

#[tokio::test]
async fn delete_detection_runs_at_most_once_per_interval() {
    let h = Harness::new("delete_interval").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamp NOT NULL);
             INSERT INTO t SELECT g, timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let mut s = keyed(
        "public.t",
        "bronze.pg.t",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    s.delete_detection = DeleteDetection::PkScan;
    s.delete_detection_interval = Some("1 day".into());
    let dest = h.add_spec(&s).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    let scanned = h
        .store
        .table_by_destination(&dest)
        .await
        .unwrap()
        .unwrap()
        .last_delete_scan_at;
    assert!(scanned.is_some(), "the first load scanned the keys");

    h.source
        .client
        .batch_execute("DELETE FROM t WHERE id = 1")
        .await
        .unwrap();
    let within = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(within.rows.deleted, 0, "not due again within the interval");
    assert_eq!(count(&h, &dest).await, 20);

    // Two days later, the scan runs again.
    struct Later;
    impl dataloader_core::Clock for Later {
        fn now(&self) -> chrono::DateTime<chrono::Utc> {
            chrono::Utc::now() + chrono::Duration::days(2)
        }
    }
    let catalog = dataloader_lake::PathCatalog::new(&h.lake.path().display().to_string()).unwrap();
    let later = dataloader_engine::Engine::new(
        h.store.clone(),
        std::sync::Arc::new(catalog),
        std::sync::Arc::new(Later),
    );
    let due = later
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(due.rows.deleted, 1);
    assert_eq!(count(&h, &dest).await, 19);
}

/// A check query that would write through a function (which no statement check can see) fails
/// in its read-only transaction, and writes nothing.
#[tokio::test]
async fn a_check_query_runs_read_only() {
    let h = Harness::new("checkq_ro").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE SEQUENCE s;",
        )
        .await
        .unwrap();
    let mut s = spec("public.t", "bronze.pg.t", LoadStrategy::CheckAndLoad);
    s.check_mode = Some(dataloader_core::CheckMode::Query);
    s.check_query = Some("SELECT nextval('s')".into());
    let dest = h.add_spec(&s).await;
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(err.contains("read-only transaction"), "{err}");
    let value: i64 = h
        .source
        .client
        .query_one("SELECT last_value FROM s", &[])
        .await
        .unwrap()
        .get(0);
    let called: bool = h
        .source
        .client
        .query_one("SELECT is_called FROM s", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((value, called), (1, false), "the sequence never moved");
    assert_eq!(h.destination(&dest).version().await.unwrap(), None);
}
