//! The scheduler in one process against the real PostgreSQL: sensor and monitors, with short
//! intervals and thresholds. Multi-process behaviour is tested through the binary in the CLI
//! crate.

mod alerts;
use std::sync::Arc;
use std::time::Duration;

use dataloader_core::{
    ConnectionConfig, LoadStrategy, RunStatus, SourceTable, Store, SystemClock, TableSpec,
    TargetTable,
};
use dataloader_engine::Engine;
use dataloader_lake::PathCatalog;
use dataloader_scheduler::{LlmConfig, Scheduler, SchedulerConfig};
use dataloader_testkit::http_mock::HttpMock;
use dataloader_testkit::{free_port, pg_host_port, pg_user, start_pg_proxy, PgTestDb};

struct Setup {
    source: PgTestDb,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(prefix: &str) -> Setup {
        let source = PgTestDb::create(prefix).await;
        let dir = tempfile::tempdir().unwrap();
        let store =
            dataloader_store::open(&format!("sqlite://{}/control.db", dir.path().display()))
                .await
                .unwrap();
        store.migrate().await.unwrap();
        let catalog = PathCatalog::new(&dir.path().join("lake").display().to_string()).unwrap();
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::new(catalog),
            Arc::new(SystemClock),
        ));
        let setup = Setup {
            source,
            store,
            engine,
            dir,
        };
        let (_, port) = pg_host_port();
        setup.connection("pg", port, &pg_user()).await;
        setup
    }

    async fn connection(&self, name: &str, port: u16, user: &str) {
        self.store
            .upsert_connection(&ConnectionConfig {
                name: name.into(),
                db_type: "postgresql".parse().unwrap(),
                host: Some("127.0.0.1".into()),
                port: Some(port),
                database: Some(self.source.name.clone()),
                user: Some(user.into()),
                password: None,
                options: Default::default(),
                max_connections: None,
            })
            .await
            .unwrap();
    }

    /// A scheduled table, due now.
    async fn table(&self, connection: &str, source: &str, dest: &str) -> i64 {
        let mut spec = TableSpec::new(
            connection,
            SourceTable::parse(source).unwrap(),
            TargetTable::parse(dest).unwrap(),
        );
        spec.strategy = LoadStrategy::Full;
        spec.schedule = Some("0 0 1 1 *".into());
        self.store
            .insert_table(&spec, chrono::Utc::now())
            .await
            .unwrap()
    }

    fn scheduler(&self, config: SchedulerConfig) -> Arc<Scheduler> {
        Arc::new(Scheduler::new(
            self.engine.clone(),
            Arc::new(SystemClock),
            SchedulerConfig {
                schemas_dir: self.dir.path().join("schemas"),
                ..config
            },
        ))
    }

    async fn last_run(&self, table_id: i64) -> dataloader_core::RunRecord {
        let t = self.store.table(table_id).await.unwrap().unwrap();
        self.store
            .run(t.last_run_id.unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

fn fast() -> SchedulerConfig {
    SchedulerConfig {
        poll_interval: Duration::from_millis(300),
        lease: Duration::from_millis(1500),
        queued_monitor_interval: Duration::from_millis(300),
        running_monitor_interval: Duration::from_millis(300),
        failed_monitor_interval: Duration::from_millis(300),
        landing_monitor_interval: Duration::from_secs(3600),
        grace_period: Duration::from_millis(500),
        retry_base: Duration::from_millis(300),
        retry_max: Duration::from_secs(2),
        ..SchedulerConfig::default()
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_with_backoff_until_the_server_is_back() {
    let s = Setup::new("sched_retry").await;
    s.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let port = free_port();
    s.connection("flaky", port, &pg_user()).await;
    let table = s.table("flaky", "public.t", "bronze.pg.t").await;
    let scheduler = s.scheduler(SchedulerConfig {
        max_concurrent_loads: 2,
        ..fast()
    });

    let first = scheduler.run_once().await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(first[0]
        .as_ref()
        .unwrap_err()
        .error
        .to_string()
        .contains("cannot reach postgresql"));
    assert_eq!(scheduler.failed().await.unwrap().len(), 1);
    let run = s.last_run(table).await;
    assert_eq!(run.retry_category.as_deref(), Some("network"));
    assert_eq!(
        run.retry_recommendation.as_deref(),
        Some("retry_with_backoff")
    );
    let t = s.store.table(table).await.unwrap().unwrap();
    assert_eq!(t.retry_count, 1);
    let retry_at = t.next_load_date_time.unwrap();
    assert!(
        retry_at > chrono::Utc::now() - chrono::Duration::seconds(1)
            && retry_at < chrono::Utc::now() + chrono::Duration::seconds(2),
        "{retry_at}"
    );

    // The server comes back; the retry (at its backoff time) succeeds.
    let _proxy = start_pg_proxy(port).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = scheduler.run_once().await.unwrap();
    let report = second[0].as_ref().unwrap();
    assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 2));
    let t = s.store.table(table).await.unwrap().unwrap();
    assert_eq!(t.retry_count, 0, "a success resets the retries");
    assert!(
        t.next_load_date_time.unwrap() > chrono::Utc::now() + chrono::Duration::days(1),
        "back on its schedule"
    );
}

#[tokio::test]
async fn a_wrong_user_is_not_retried_and_says_what_to_do() {
    let s = Setup::new("sched_auth").await;
    s.source
        .client
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    let (_, port) = pg_host_port();
    s.connection("ghost", port, "ghost_user_that_does_not_exist")
        .await;
    let table = s.table("ghost", "public.t", "bronze.pg.t").await;
    let scheduler = s.scheduler(fast());
    let results = scheduler.run_once().await.unwrap();
    assert!(
        results[0]
            .as_ref()
            .unwrap_err()
            .error
            .to_string()
            .contains("authentication failed"),
        "{:?}",
        results[0].as_ref().err()
    );
    scheduler.failed().await.unwrap();
    let run = s.last_run(table).await;
    assert_eq!(run.retry_category.as_deref(), Some("authentication"));
    assert_eq!(run.retry_recommendation.as_deref(), Some("do_not_retry"));
    assert!(run
        .retry_explanation
        .unwrap()
        .contains("check the user and the password reference"));
    let t = s.store.table(table).await.unwrap().unwrap();
    assert_eq!(t.retry_count, 0);
    assert!(
        t.next_load_date_time.unwrap() > chrono::Utc::now() + chrono::Duration::days(1),
        "left to its schedule"
    );
    assert!(
        scheduler.run_once().await.unwrap().is_empty(),
        "not claimed again"
    );
}

#[tokio::test]
async fn an_llm_endpoint_words_the_explanation_and_the_rules_stand_when_it_fails() {
    let s = Setup::new("sched_llm").await;
    let (_, port) = pg_host_port();
    s.connection("ghost", port, "ghost_user_that_does_not_exist")
        .await;
    let table = s.table("ghost", "public.t", "bronze.pg.t").await;

    let server = HttpMock::start(|_| {
        (200, r#"{"choices":[{"message":{"role":"assistant","content":"The user ghost does not exist on the server: create it or fix the connection."}}]}"#.into())
    })
    .await;
    let llm = LlmConfig {
        url: server.url(),
        api_key: Some("sk-test".into()),
        model: "test-model".into(),
        timeout: Duration::from_secs(5),
    };
    let scheduler = s.scheduler(SchedulerConfig {
        llm: Some(llm),
        ..fast()
    });
    scheduler.run_once().await.unwrap();
    scheduler.failed().await.unwrap();
    let run = s.last_run(table).await;
    assert_eq!(
        run.retry_explanation.as_deref(),
        Some("The user ghost does not exist on the server: create it or fix the connection.")
    );
    assert_eq!(
        run.retry_recommendation.as_deref(),
        Some("do_not_retry"),
        "the rules decide"
    );
    let requests = server.requests();
    assert!(
        requests[0].method == "POST" && requests[0].target.starts_with("/chat/completions"),
        "{:?}",
        requests[0]
    );
    assert!(requests[0]
        .header("authorization")
        .is_some_and(|a| a.eq_ignore_ascii_case("bearer sk-test")));
    assert!(requests[0].body.contains("\"model\":\"test-model\""));

    // A failing endpoint: the rules' explanation.
    let server = HttpMock::start(|_| (500, "{}".into())).await;
    let llm = LlmConfig {
        url: server.url(),
        api_key: None,
        model: "m".into(),
        timeout: Duration::from_secs(5),
    };
    s.store
        .set_next_load(table, Some(chrono::Utc::now()))
        .await
        .unwrap();
    let scheduler = s.scheduler(SchedulerConfig {
        llm: Some(llm),
        ..fast()
    });
    scheduler.run_once().await.unwrap();
    scheduler.failed().await.unwrap();
    let run = s.last_run(table).await;
    assert!(run
        .retry_explanation
        .unwrap()
        .starts_with("the database refused the credentials"));
}

#[tokio::test]
async fn a_load_running_too_long_is_cancelled_and_commits_nothing() {
    let s = Setup::new("sched_slow").await;
    s.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE VIEW slow AS SELECT t.id FROM t CROSS JOIN (SELECT pg_sleep(30)) s;",
        )
        .await
        .unwrap();
    let table = s.table("pg", "public.slow", "bronze.pg.slow").await;
    let scheduler = s.scheduler(SchedulerConfig {
        running_threshold: Duration::from_secs(2),
        ..fast()
    });
    let started = std::time::Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(scheduler.clone().run(async move {
        let _ = stopped.await;
    }));
    let mut status = None;
    while started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let run = s.store.table(table).await.unwrap().unwrap().last_run_id;
        if let Some(run) = run {
            let r = s.store.run(run).await.unwrap().unwrap();
            if r.status == RunStatus::Cancelled {
                status = Some(r);
                break;
            }
        }
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let run = status.expect("the slow load was cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cancelled well before the 30 s query ended"
    );
    assert_eq!(run.delta_version, None);
    assert!(
        !s.dir.path().join("lake/bronze/pg/slow/_delta_log").exists(),
        "nothing committed"
    );
}

#[tokio::test]
async fn a_tick_claims_only_as_many_tables_as_there_are_free_slots() {
    let s = Setup::new("sched_fair").await;
    s.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let tables = [
        s.table("pg", "public.t", "bronze.pg.a").await,
        s.table("pg", "public.t", "bronze.pg.b").await,
        s.table("pg", "public.t", "bronze.pg.c").await,
    ];
    let scheduler = s.scheduler(SchedulerConfig {
        max_concurrent_loads: 2,
        ..fast()
    });
    let claims = scheduler.tick().await.unwrap();
    assert_eq!(claims.len(), 2, "two free slots, two claims");
    let mut waiting = 0;
    for t in tables {
        let table = s.store.table(t).await.unwrap().unwrap();
        if table.status.is_none() {
            waiting += 1;
            assert!(
                table.due_since(chrono::Utc::now()).is_some(),
                "the unclaimed table stays due for any worker"
            );
        }
    }
    assert_eq!(waiting, 1);
}

#[tokio::test]
async fn a_claim_cancelled_for_waiting_is_claimed_again_and_shutdown_is_graceful() {
    let s = Setup::new("sched_queue").await;
    s.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE VIEW slow1 AS SELECT t.id FROM t CROSS JOIN (SELECT pg_sleep(20)) s;
             CREATE VIEW slow2 AS SELECT t.id FROM t CROSS JOIN (SELECT pg_sleep(20)) s;",
        )
        .await
        .unwrap();
    // One connection slot for two loads: the second claim waits behind the first.
    let mut limited = s.store.connection("pg").await.unwrap().unwrap();
    limited.max_connections = Some(1);
    s.store.upsert_connection(&limited).await.unwrap();
    let a = s.table("pg", "public.slow1", "bronze.pg.slow1").await;
    let b = s.table("pg", "public.slow2", "bronze.pg.slow2").await;
    let scheduler = s.scheduler(SchedulerConfig {
        max_concurrent_loads: 2,
        queued_threshold: Duration::from_secs(2),
        ..fast()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(scheduler.clone().run(async move {
        let _ = stopped.await;
    }));
    let started = std::time::Instant::now();
    let mut queued_out = None;
    while started.elapsed() < Duration::from_secs(15) && queued_out.is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for run in s.store.runs(None, 20).await.unwrap() {
            if run.status == RunStatus::Cancelled {
                queued_out = Some(run);
            }
        }
    }
    let run = queued_out.expect("one load waited for the only connection and was cancelled");
    assert!(
        run.error_text.unwrap().contains("queued for more than"),
        "long-queued monitor"
    );
    assert!(run.started_at.is_none(), "it never started");
    // Late, not skipped: the next tick claims the table again.
    let mut again = None;
    while started.elapsed() < Duration::from_secs(20) && again.is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let table = s.store.table(run.table_id).await.unwrap().unwrap();
        if table.last_run_id.is_some_and(|last| last > run.run_id) {
            again = Some(table);
        }
    }
    let table = again.expect("claimed again at a later tick");
    assert!(
        table.next_load_date_time.unwrap() < chrono::Utc::now(),
        "it kept its due time"
    );

    // SIGTERM-like shutdown: the running load gets the grace period, then is cancelled cleanly.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("shut down in time")
        .unwrap()
        .unwrap();
    for t in [a, b] {
        let last = s.last_run(t).await;
        assert_eq!(last.status, RunStatus::Cancelled, "{last:?}");
    }
    assert!(!s
        .dir
        .path()
        .join("lake/bronze/pg/slow1/_delta_log")
        .exists());
}

#[tokio::test]
async fn the_landing_monitor_writes_schema_files_and_dbt_sources() {
    let s = Setup::new("sched_landing").await;
    s.source
        .client
        .batch_execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2), at timestamptz); INSERT INTO orders VALUES (1, 2.5, now())")
        .await
        .unwrap();
    s.table("pg", "public.orders", "bronze.sales.orders").await;
    let scheduler = s.scheduler(fast());
    scheduler.run_once().await.unwrap().remove(0).unwrap();
    assert_eq!(
        scheduler.landing().await.unwrap(),
        2,
        "the table's file and its schema's sources.yml"
    );
    assert_eq!(
        scheduler.landing().await.unwrap(),
        0,
        "unchanged: nothing rewritten"
    );
    let dir = s.dir.path().join("schemas/bronze/sales");
    let table: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("orders.yml")).unwrap()).unwrap();
    assert_eq!(table["table"], "bronze.sales.orders");
    assert_eq!(table["source"]["table"], "public.orders");
    assert_eq!(table["columns"][1]["name"], "amount");
    assert_eq!(table["columns"][1]["type"], "decimal(10,2)");
    assert_eq!(table["columns"][2]["type"], "timestamp");
    let sources: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("sources.yml")).unwrap()).unwrap();
    assert_eq!(sources["version"], 2);
    assert_eq!(sources["sources"][0]["name"], "sales");
    assert_eq!(sources["sources"][0]["database"], "bronze");
    assert_eq!(sources["sources"][0]["tables"][0]["name"], "orders");
    assert_eq!(
        sources["sources"][0]["tables"][0]["columns"][0]["data_type"],
        "long"
    );

    s.source
        .client
        .batch_execute("ALTER TABLE orders ADD COLUMN note text")
        .await
        .unwrap();
    let t = s.store.tables().await.unwrap().remove(0);
    s.store
        .set_next_load(t.table_id, Some(chrono::Utc::now()))
        .await
        .unwrap();
    scheduler.run_once().await.unwrap().remove(0).unwrap();
    assert_eq!(
        scheduler.landing().await.unwrap(),
        2,
        "a schema change rewrites the files"
    );
    assert!(std::fs::read_to_string(dir.join("orders.yml"))
        .unwrap()
        .contains("name: note"));
}

#[tokio::test]
async fn a_connection_at_its_limit_makes_loads_wait() {
    let s = Setup::new("sched_limit").await;
    s.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE VIEW slow1 AS SELECT t.id FROM t CROSS JOIN (SELECT pg_sleep(1)) s;
             CREATE VIEW slow2 AS SELECT t.id FROM t CROSS JOIN (SELECT pg_sleep(1)) s;
             CREATE VIEW slow3 AS SELECT t.id FROM t CROSS JOIN (SELECT pg_sleep(1)) s;",
        )
        .await
        .unwrap();
    let mut limited = s.store.connection("pg").await.unwrap().unwrap();
    limited.max_connections = Some(1);
    s.store.upsert_connection(&limited).await.unwrap();
    for i in 1..=3 {
        s.table(
            "pg",
            &format!("public.slow{i}"),
            &format!("bronze.pg.slow{i}"),
        )
        .await;
    }
    let scheduler = s.scheduler(SchedulerConfig {
        max_concurrent_loads: 4,
        ..fast()
    });
    let results = scheduler.run_once().await.unwrap();
    assert_eq!(results.len(), 3);
    let mut spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = Vec::new();
    for r in s.store.runs(None, 10).await.unwrap() {
        assert_eq!(r.status, RunStatus::Succeeded);
        spans.push((r.started_at.unwrap(), r.finished_at.unwrap()));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "with max_connections 1 the loads ran one after the other: {spans:?}"
        );
    }
}

#[tokio::test]
async fn a_scheduled_table_without_a_next_load_is_due_at_once() {
    let s = Setup::new("sched_null").await;
    s.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let id = s.table("pg", "public.t", "bronze.pg.t").await;
    s.store.set_next_load(id, None).await.unwrap();
    let mut unscheduled = TableSpec::new(
        "pg",
        SourceTable::parse("public.t").unwrap(),
        TargetTable::parse("bronze.pg.on_demand").unwrap(),
    );
    unscheduled.schedule = None;
    s.store
        .insert_table(&unscheduled, chrono::Utc::now())
        .await
        .unwrap();
    let scheduler = s.scheduler(fast());
    let results = scheduler.run_once().await.unwrap();
    assert_eq!(
        results.len(),
        1,
        "the scheduled one only; a table without a schedule loads on demand"
    );
    assert_eq!(results[0].as_ref().unwrap().table, "bronze.pg.t");
}
