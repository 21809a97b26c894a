//! One conformance suite for every `Store` backend: SQLite in a temp folder and PostgreSQL on
//! the real server (a fresh database per test).

mod plain_sql;
mod tls;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use dataloader_core::{
    ConnectionConfig, ErrorKind, LoadStrategy, NewRun, RowCounts, RunOwner, RunStatus, RunUpdate,
    SourceTable, StateUpdate, Store, TableSpec, TargetTable, Trigger, Watermark, WatermarkKind,
};
use dataloader_testkit::PgTestDb;

fn connection(name: &str) -> ConnectionConfig {
    ConnectionConfig {
        name: name.into(),
        db_type: "postgresql".parse().unwrap(),
        host: Some("db.internal".into()),
        port: Some(5432),
        database: Some("erp".into()),
        user: Some("loader".into()),
        password: Some("env:ERP_PASSWORD".into()),
        options: [("sslmode".to_string(), "disable".to_string())].into(),
        max_connections: Some(4),
    }
}

fn spec(dest: &str) -> TableSpec {
    let mut s = TableSpec::new(
        "erp",
        SourceTable::parse("dbo.Orders").unwrap(),
        TargetTable::parse(dest).unwrap(),
    );
    s.strategy = LoadStrategy::Incremental;
    s.primary_keys = vec!["OrderID".into(), "LineNo".into()];
    s.incremental_column = Some("ModifiedAt".into());
    s.schedule = Some("0 2 * * *".into());
    s.timezone = "Europe/Amsterdam".into();
    s.tags = vec!["finance".into()];
    s.partition_by = vec!["region".into(), "order_date".into()];
    s.target_file_size = Some("64MiB".into());
    s.compression = Some("zstd(3)".into());
    s.row_group_rows = Some(262_144);
    s.column_types = [
        ("Amount".to_string(), "decimal(38,6)".to_string()),
        ("Notes".to_string(), "string".to_string()),
    ]
    .into();
    s.source_query =
        Some("SELECT OrderID, LineNo, ModifiedAt FROM dbo.Orders WHERE Open = 1".into());
    s
}

/// Runs `sql` against the store's database directly, as a user with a SQL client would.
type RawSql = Box<dyn Fn(&'static str) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

async fn conformance(store: Arc<dyn Store>, raw: RawSql) {
    // Migrations are idempotent.
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    // Connections round-trip, with the password only as a reference.
    store.upsert_connection(&connection("erp")).await.unwrap();
    assert_eq!(
        store.connection("erp").await.unwrap(),
        Some(connection("erp"))
    );
    let mut changed = connection("erp");
    changed.host = Some("db2.internal".into());
    store.upsert_connection(&changed).await.unwrap();
    assert_eq!(store.connections().await.unwrap(), vec![changed]);
    let mut plain = connection("bad");
    plain.password = Some("hunter2".into());
    assert!(
        store.upsert_connection(&plain).await.is_err(),
        "a plain password is refused"
    );
    assert!(store.connection("bad").await.unwrap().is_none());

    // Tables.
    let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
    let id = store
        .insert_table(&spec("bronze.erp.orders"), now)
        .await
        .unwrap();
    let t = store.table(id).await.unwrap().unwrap();
    assert_eq!(t.spec, spec("bronze.erp.orders"));
    assert_eq!(
        t.next_load_date_time,
        Some(now),
        "a scheduled table is due at once"
    );
    assert_eq!(t.status, None);
    let by_dest = store
        .table_by_destination(&TargetTable::parse("bronze.erp.orders").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_dest.table_id, id);
    assert!(
        store
            .insert_table(&spec("bronze.erp.orders"), now)
            .await
            .is_err(),
        "destinations are unique"
    );
    let mut no_key = spec("bronze.erp.other");
    no_key.primary_keys.clear();
    assert!(
        store.insert_table(&no_key, now).await.is_err(),
        "specs are validated"
    );

    // A connection in use cannot be removed.
    assert!(store.delete_connection("erp").await.is_err());

    // A run: Queued → In Progress → Succeeded moves the watermark with it, in one step.
    let new_run = |queued_at, worker: &str| NewRun {
        table_id: id,
        trigger: Trigger::Manual,
        queued_at,
        watermark_before: None,
        worker: worker.into(),
        lease_until: queued_at + Duration::seconds(60),
    };
    let run_id = store.create_run(&new_run(now, "test")).await.unwrap();
    assert_eq!(
        store.table(id).await.unwrap().unwrap().status,
        Some(RunStatus::Queued)
    );
    // While its lease is live, a second load of the table is refused, naming the first.
    let refused = store
        .create_run(&new_run(now + Duration::seconds(30), "other"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("run {run_id} (test) is loading this table now")),
        "{refused}"
    );
    assert_eq!(
        store.run(run_id).await.unwrap().unwrap().destination,
        "bronze.erp.orders"
    );
    // Every update of a run is its owner's: another worker can neither start it nor end it.
    assert!(!store
        .start_run(run_id, "other", now + Duration::seconds(1))
        .await
        .unwrap());
    assert!(store
        .start_run(run_id, "test", now + Duration::seconds(1))
        .await
        .unwrap());
    // The fence: the owner's lease holds until it runs out, for nobody else.
    assert!(store
        .lease_holds(run_id, "test", now + Duration::seconds(59))
        .await
        .unwrap());
    assert!(!store
        .lease_holds(run_id, "other", now + Duration::seconds(1))
        .await
        .unwrap());
    assert!(!store
        .lease_holds(run_id, "test", now + Duration::seconds(61))
        .await
        .unwrap());
    // A renewal by another worker is refused (it must stop); the owner's extends the lease.
    assert!(store
        .renew_lease(run_id, "other", now + Duration::seconds(300))
        .await
        .unwrap());
    assert!(!store
        .renew_lease(run_id, "test", now + Duration::seconds(90))
        .await
        .unwrap());
    assert!(store
        .lease_holds(run_id, "test", now + Duration::seconds(89))
        .await
        .unwrap());
    assert_eq!(
        store.table(id).await.unwrap().unwrap().status,
        Some(RunStatus::InProgress)
    );
    let watermark = Watermark::new(WatermarkKind::Timestamp, "2026-01-10 11:59:59.123456").unwrap();
    let next = now + Duration::hours(14);
    let failed_by_other = RunUpdate::ended(
        RunStatus::Failed,
        now,
        ErrorKind::Internal,
        "not mine",
        None,
    );
    assert!(
        !store
            .finish_run(run_id, RunOwner::Worker("other"), &failed_by_other)
            .await
            .unwrap(),
        "only the run's owner ends it"
    );
    assert_eq!(
        store.run(run_id).await.unwrap().unwrap().status,
        RunStatus::InProgress
    );
    let succeeded = RunUpdate {
        status: RunStatus::Succeeded,
        finished_at: now + Duration::seconds(5),
        rows: RowCounts {
            read: 150,
            written: 150,
            ..RowCounts::default()
        },
        bytes_written: 0,
        watermark_after: Some(watermark.clone()),
        delta_version: Some(3),
        error_class: None,
        error_text: None,
        next_load_date_time: Some(next),
        schema_changes: Some("added column note (Utf8)".into()),
        notes: None,
        state: StateUpdate {
            check_value: Some("42".into()),
            backfill_cursor: Some(Some("{\"next\":\"7\"}".into())),
            loaded_from: Some("erp:dbo.Orders".into()),
            ..StateUpdate::default()
        },
    };
    assert!(store
        .finish_run(run_id, RunOwner::Worker("test"), &succeeded)
        .await
        .unwrap());
    // Once ended, a run is not ended again, by its owner either (a late second record).
    assert!(!store
        .finish_run(run_id, RunOwner::Worker("test"), &failed_by_other)
        .await
        .unwrap());
    let t = store.table(id).await.unwrap().unwrap();
    assert_eq!(t.loaded_from.as_deref(), Some("erp:dbo.Orders"));
    assert_eq!(t.status, Some(RunStatus::Succeeded));
    assert_eq!(t.incremental_value, Some(watermark.clone()));
    assert_eq!(t.next_load_date_time, Some(next));
    assert_eq!(t.last_run_id, Some(run_id));
    assert_eq!(t.last_check_value.as_deref(), Some("42"));
    assert_eq!(t.backfill_cursor.as_deref(), Some("{\"next\":\"7\"}"));
    assert_eq!(
        store
            .run(run_id)
            .await
            .unwrap()
            .unwrap()
            .schema_changes
            .as_deref(),
        Some("added column note (Utf8)")
    );
    let run = store.run(run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.rows_read, run.delta_version, run.status),
        (Some(150), Some(3), RunStatus::Succeeded)
    );
    assert_eq!(
        run.watermark_after.as_deref(),
        Some("2026-01-10 11:59:59.123456")
    );
    assert_eq!(run.started_at, Some(now + Duration::seconds(1)));

    // Runs list newest first, per table or all.
    let second = store
        .create_run(&NewRun {
            table_id: id,
            trigger: Trigger::Schedule,
            queued_at: now,
            watermark_before: Some(watermark.clone()),
            worker: "test".into(),
            // Its process died: nothing renewed the lease.
            lease_until: now - Duration::seconds(1),
        })
        .await
        .unwrap();
    // A second run left behind (its process died) is closed by the next load.
    let abandoned = store
        .abandon_runs(id, None, "process stopped", now)
        .await
        .unwrap();
    assert_eq!(abandoned, vec![second]);
    let closed = store.run(second).await.unwrap().unwrap();
    assert_eq!(
        (closed.status, closed.error_text.as_deref()),
        (RunStatus::Failed, Some("process stopped"))
    );
    // A recovery may still record a run closed that way (it had committed to Delta)...
    let recovered = RunUpdate {
        delta_version: Some(4),
        error_class: None,
        error_text: None,
        ..RunUpdate::ended(
            RunStatus::Succeeded,
            now,
            ErrorKind::Internal,
            "",
            Some(next),
        )
    };
    assert!(store
        .finish_run(second, RunOwner::Recovery, &recovered)
        .await
        .unwrap());
    // ...but not a run that ended normally.
    assert!(!store
        .finish_run(run_id, RunOwner::Recovery, &recovered)
        .await
        .unwrap());
    // A backfill cursor is saved by its open run's owner only: a closed run cannot set it back.
    assert!(!store
        .save_backfill_cursor(run_id, "test", None)
        .await
        .unwrap());
    assert_eq!(
        store
            .table(id)
            .await
            .unwrap()
            .unwrap()
            .backfill_cursor
            .as_deref(),
        Some("{\"next\":\"7\"}")
    );
    let runs = store.runs(Some(id), 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![second, run_id]
    );
    assert_eq!(store.runs(None, 1).await.unwrap().len(), 1);
    assert_eq!(store.runs(Some(id + 1000), 10).await.unwrap().len(), 0);

    // Changing the incremental column resets the watermark; changing the source query does
    // not (as a changed table definition does not: see docs/configuration.md).
    let mut respec = spec("bronze.erp.orders");
    respec.priority = 5;
    respec.source_query = Some("SELECT OrderID, LineNo, ModifiedAt FROM dbo.Orders".into());
    store.update_table_spec(id, &respec, now).await.unwrap();
    let t = store.table(id).await.unwrap().unwrap();
    assert_eq!(t.incremental_value, Some(watermark));
    assert_eq!(t.spec.source_query, respec.source_query);
    respec.incremental_column = Some("UpdatedAt".into());
    store.update_table_spec(id, &respec, now).await.unwrap();
    let t = store.table(id).await.unwrap().unwrap();
    assert_eq!(t.incremental_value, None);
    assert_eq!(t.spec, respec);

    // A watermark set by hand is audited; a finished backfill's strategy switch too.
    let manual = Watermark::new(WatermarkKind::Integer, "5").unwrap();
    store.set_watermark(id, Some(&manual)).await.unwrap();
    assert_eq!(
        store.table(id).await.unwrap().unwrap().incremental_value,
        Some(manual.clone())
    );
    // Another source makes the watermark meaningless too.
    let mut moved = respec.clone();
    moved.source = SourceTable::parse("dbo.OrdersArchive").unwrap();
    store.update_table_spec(id, &moved, now).await.unwrap();
    assert_eq!(
        store.table(id).await.unwrap().unwrap().incremental_value,
        None
    );
    store.set_watermark(id, Some(&manual)).await.unwrap();
    store.set_watermark(id, None).await.unwrap();

    // The audit trail: triggers record every change, even one made with plain SQL, but not
    // run bookkeeping.
    let before = store.table_history(id).await.unwrap();
    raw("UPDATE table_control SET status = 'Failed', last_run_id = 99").await;
    assert_eq!(
        store.table_history(id).await.unwrap().len(),
        before.len(),
        "bookkeeping is not audited"
    );
    raw("UPDATE table_control SET schedule = '30 4 * * *'").await;
    let history = store.table_history(id).await.unwrap();
    assert_eq!(history.len(), before.len() + 1);
    let last = &history[0];
    assert_eq!(last.operation, "UPDATE");
    assert_eq!(last.old_values.as_ref().unwrap()["schedule"], "0 2 * * *");
    assert_eq!(last.new_values.as_ref().unwrap()["schedule"], "30 4 * * *");
    assert!(last.changed_by.is_some());
    assert_eq!(history.last().unwrap().operation, "INSERT");
    // INSERT, the run's watermark, priority, column change (+ watermark reset), a manual
    // watermark, the source change (+ reset), two more manual watermarks, the schedule.
    let operations: Vec<&str> = history.iter().map(|h| h.operation.as_str()).collect();
    let mut expected = vec!["UPDATE"; 8];
    expected.push("INSERT");
    assert_eq!(operations, expected, "{history:#?}");
    // The layout settings are audited too.
    raw("UPDATE table_control SET compression = 'snappy'").await;
    let history = store.table_history(id).await.unwrap();
    assert_eq!(history.len(), before.len() + 2);
    let last = &history[0];
    assert_eq!(last.old_values.as_ref().unwrap()["compression"], "zstd(3)");
    assert_eq!(last.new_values.as_ref().unwrap()["compression"], "snappy");
    assert_eq!(last.new_values.as_ref().unwrap()["row_group_rows"], 262_144);
    // So are the column type overrides, a JSON object people may edit with SQL.
    raw(r#"UPDATE table_control SET column_types = '{"Notes": "string"}'"#).await;
    let history = store.table_history(id).await.unwrap();
    assert_eq!(history.len(), before.len() + 3);
    let last = &history[0];
    assert_eq!(
        last.old_values.as_ref().unwrap()["column_types"],
        r#"{"Amount":"decimal(38,6)","Notes":"string"}"#
    );
    let edited = store.table(id).await.unwrap().unwrap().spec.column_types;
    assert_eq!(edited, [("Notes".to_string(), "string".to_string())].into());
    raw("DELETE FROM table_control").await;
    assert_eq!(
        store.table_history(id).await.unwrap()[0].operation,
        "DELETE"
    );
    assert!(store.delete_connection("erp").await.unwrap());
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.db");
    let store = dataloader_store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let url = format!("sqlite://{}", path.display());
    let raw: RawSql = Box::new(move |sql| {
        let url = url.clone();
        Box::pin(async move {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        })
    });
    conformance(store, raw).await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    let db = Arc::new(PgTestDb::create("store").await);
    let store = dataloader_store::open(&db.url()).await.unwrap();
    let raw_db = db.clone();
    let raw: RawSql = Box::new(move |sql| {
        let db = raw_db.clone();
        Box::pin(async move {
            db.client.batch_execute(sql).await.unwrap();
        })
    });
    conformance(store, raw).await;
}

#[tokio::test]
async fn unreachable_postgres_control_db_is_a_clear_error_without_the_password() {
    let err = match dataloader_store::open("postgres://loader:s3cret@127.0.0.1:1/dataloader").await
    {
        Ok(_) => panic!("port 1 has no server"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("control store: connect to the PostgreSQL control database failed"),
        "{err}"
    );
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
