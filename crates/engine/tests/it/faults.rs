//! Faults our promise must survive, against the real PostgreSQL for both the source and the
//! control database, with a TCP proxy the test controls between a worker and the control
//! database: a worker cut off mid-load stops before its lease runs out and commits nothing; a
//! worker whose lease ran out while it stalled has its commit refused; either way the table
//! ends with each source row exactly once after another worker loads it.

use std::sync::Arc;
use std::time::Duration;

use dataloader_core::{
    ConnectionConfig, ErrorKind, LoadStrategy, RunStatus, Store, SystemClock, TargetTable, Trigger,
};
use dataloader_engine::{Engine, Lease, LoadRequest};
use dataloader_lake::{DeltaDestination, PathCatalog};
use dataloader_testkit::proxy::FaultProxy;
use dataloader_testkit::{connect, pg_host_port, pg_user, PgTestDb};

use crate::{connection, spec};

/// An append_only table of five events on a PostgreSQL source, a PostgreSQL control database
/// reached directly and through a proxy, and a lake.
struct Faulty {
    source: PgTestDb,
    _control: PgTestDb,
    direct: Arc<dyn Store>,
    proxy: FaultProxy,
    proxied_url: String,
    lake: tempfile::TempDir,
    dest: TargetTable,
}

impl Faulty {
    async fn new(prefix: &str) -> Faulty {
        let source = PgTestDb::create(prefix).await;
        source
            .client
            .batch_execute(
                "CREATE TABLE events (id int PRIMARY KEY, at int NOT NULL);
                 INSERT INTO events SELECT g, g FROM generate_series(1, 5) g;",
            )
            .await
            .unwrap();
        let control = PgTestDb::create(&format!("{prefix}_ctl")).await;
        let direct = dataloader_store::open(&control.url()).await.unwrap();
        direct.migrate().await.unwrap();
        let (host, port) = pg_host_port();
        let pg: ConnectionConfig = connection(
            "pg",
            "postgresql".parse().unwrap(),
            host,
            port,
            &source.name,
            &pg_user(),
        );
        direct.upsert_connection(&pg).await.unwrap();
        let mut events = spec(
            "public.events",
            "bronze.pg.events",
            LoadStrategy::AppendOnly,
        );
        events.incremental_column = Some("at".into());
        // Scheduled, so the sensor's claim finds it due at once.
        events.schedule = Some("0 0 1 1 *".into());
        direct
            .insert_table(&events, chrono::Utc::now())
            .await
            .unwrap();
        let proxy = FaultProxy::to_postgres().await;
        let proxied_url = format!(
            "postgres://{}@127.0.0.1:{}/{}",
            pg_user(),
            proxy.port(),
            control.name
        );
        Faulty {
            source,
            _control: control,
            direct,
            proxy,
            proxied_url,
            lake: tempfile::tempdir().unwrap(),
            dest: events.destination,
        }
    }

    fn engine(&self, store: Arc<dyn Store>, worker: &str, lease: Duration) -> Engine {
        let catalog = PathCatalog::new(&self.lake.path().display().to_string()).unwrap();
        Engine::new(store, Arc::new(catalog), Arc::new(SystemClock))
            .with_worker(worker)
            .with_lease(lease)
    }

    fn destination(&self) -> DeltaDestination {
        crate::Lake::destination_in(&self.lake.path().display().to_string(), &self.dest)
    }

    /// A session holding the source table locked, so a load reading it waits.
    async fn hold_source(&self) -> tokio_postgres::Client {
        let locker = connect(&self.source.name).await;
        locker
            .batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        locker
    }

    /// Waits until the table's latest run is `In Progress`; returns it.
    async fn running_run(&self) -> i64 {
        for _ in 0..100 {
            if let Some(run) = self.direct.runs(None, 1).await.unwrap().first() {
                if run.status == RunStatus::InProgress {
                    return run.run_id;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the load never started");
    }

    /// Fails runs whose lease ran out, as the master sensor does, until `run_id` is one.
    async fn expire(&self, run_id: i64) {
        for _ in 0..100 {
            let lost = self.direct.expire_leases(chrono::Utc::now()).await.unwrap();
            if lost.iter().any(|l| l.run_id == run_id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {run_id}'s lease never ran out");
    }

    /// Another worker loads the table; it must then hold each source row once.
    async fn load_elsewhere_and_check(&self) {
        let other = self.engine(self.direct.clone(), "worker-b", Duration::from_secs(60));
        let report = other
            .load(LoadRequest::new(&self.dest, Trigger::Manual))
            .await
            .unwrap_or_else(|f| panic!("{}", f.error));
        assert_eq!(report.rows.written, 5);
        let batches = self.destination().read_all(&["id"]).await.unwrap();
        let ids: Vec<Option<String>> =
            dataloader_testkit::arrow_rows(&batches, &["id"], &[dataloader_testkit::Canon::Text])
                .into_iter()
                .map(|mut row| row.remove(0))
                .collect();
        let expected: Vec<Option<String>> = (1..=5).map(|i| Some(i.to_string())).collect();
        assert_eq!(ids, expected, "each event once");
    }
}

#[tokio::test]
async fn a_worker_cut_off_from_the_control_database_stops_before_its_lease_ends() {
    let f = Faulty::new("fault_cut").await;
    let proxied = dataloader_store::open(&f.proxied_url).await.unwrap();
    let worker_a = f.engine(proxied, "worker-a", Duration::from_secs(2));
    let locker = f.hold_source().await;
    let dest = f.dest.clone();
    let load = tokio::spawn(async move {
        worker_a
            .load(LoadRequest::new(&dest, Trigger::Manual))
            .await
    });
    let run_a = f.running_run().await;
    f.proxy.cut();
    let failure = tokio::time::timeout(Duration::from_secs(20), load)
        .await
        .expect("the cut-off worker stops by itself")
        .unwrap()
        .expect_err("it cannot finish without its lease");
    assert_eq!(
        failure.error.kind(),
        ErrorKind::WorkerLost,
        "{}",
        failure.error
    );
    let message = failure.error.to_string();
    assert!(
        message.contains("could not renew its lease before it ran out"),
        "{message}"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(f.destination().version().await.unwrap(), None, "no commit");

    // Its lease runs out: the sensor fails its run, and another worker loads the table.
    f.expire(run_a).await;
    f.load_elsewhere_and_check().await;
    let lost = f.direct.run(run_a).await.unwrap().unwrap();
    assert_eq!(
        (lost.status, lost.error_class.as_deref()),
        (RunStatus::Failed, Some("WorkerLost"))
    );
    f.proxy.restore();
}

#[tokio::test]
async fn a_commit_after_the_lease_ran_out_is_refused() {
    let f = Faulty::new("fault_fence").await;
    // Claimed with a short lease that nothing renews: the worker's process stalls.
    let now = chrono::Utc::now();
    let claims = f
        .direct
        .claim_due(now, 1, "worker-a", now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let worker_a = f.engine(f.direct.clone(), "worker-a", Duration::from_secs(1));
    let locker = f.hold_source().await;
    let claim = claims[0].clone();
    let load = tokio::spawn(async move {
        worker_a
            .load(LoadRequest::claimed(
                &claim,
                Lease::new(Duration::from_secs(1)),
            ))
            .await
    });
    let run_a = f.running_run().await;
    f.expire(run_a).await;
    // The stalled worker wakes up, reads and reaches its commit: refused.
    locker.batch_execute("ROLLBACK").await.unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .expect("the load ends")
        .unwrap()
        .expect_err("its commit is refused");
    assert_eq!(
        failure.error.kind(),
        ErrorKind::WorkerLost,
        "{}",
        failure.error
    );
    assert!(
        failure.error.to_string().contains("commit was refused"),
        "{}",
        failure.error
    );
    assert_eq!(f.destination().version().await.unwrap(), None, "no commit");
    // The monitor's record stands: the late worker did not overwrite it.
    let lost = f.direct.run(run_a).await.unwrap().unwrap();
    assert_eq!(
        (lost.status, lost.error_class.as_deref()),
        (RunStatus::Failed, Some("WorkerLost"))
    );
    f.load_elsewhere_and_check().await;
}

#[tokio::test]
async fn a_slow_control_database_delays_a_load_but_changes_nothing() {
    let f = Faulty::new("fault_slow").await;
    let proxied = dataloader_store::open(&f.proxied_url).await.unwrap();
    let worker_a = f.engine(proxied, "worker-a", Duration::from_secs(6));
    f.proxy.delay(Duration::from_millis(60));
    let report = worker_a
        .load(LoadRequest::new(&f.dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(
        (report.status, report.rows.written),
        (RunStatus::Succeeded, 5)
    );
    f.proxy.restore();
    let again = worker_a
        .load(LoadRequest::new(&f.dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(again.rows.written, 0, "nothing appended twice");
    assert_eq!(
        f.destination().key_counts(&[]).await.unwrap().unwrap().rows,
        5
    );
}

#[tokio::test]
async fn a_source_connection_cut_mid_read_commits_nothing_and_the_next_load_is_exact() {
    let f = Faulty::new("fault_source").await;
    // The source is reached through a proxy that the test cuts while the read waits.
    let source_proxy = FaultProxy::to_postgres().await;
    let mut through = f.direct.connection("pg").await.unwrap().unwrap();
    through.port = Some(source_proxy.port());
    f.direct.upsert_connection(&through).await.unwrap();
    let worker = f.engine(f.direct.clone(), "worker-a", Duration::from_secs(60));
    let locker = f.hold_source().await;
    let dest = f.dest.clone();
    let load =
        tokio::spawn(async move { worker.load(LoadRequest::new(&dest, Trigger::Manual)).await });
    f.running_run().await;
    // Let the read reach the lock, then cut the source away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    source_proxy.cut();
    let failure = tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .expect("the load ends")
        .unwrap()
        .expect_err("a read cut off fails");
    assert!(
        matches!(
            failure.error.kind(),
            ErrorKind::SourceQuery | ErrorKind::Connect
        ),
        "{}",
        failure.error
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(f.destination().version().await.unwrap(), None, "no commit");
    let run = f
        .direct
        .run(failure.run_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    source_proxy.restore();
    f.load_elsewhere_and_check().await;
}
