//! `dataloader run` as processes: many workers on one PostgreSQL control plane, a worker
//! killed mid-load, one scheduler at a time on SQLite, and `status`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataloader_core::RunStatus;
use dataloader_testkit::PgTestDb;

use crate::{dataloader_env, pg_connection_args, PgControl};

fn spawn_run(dir: &std::path::Path, control: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dataloader"))
        .current_dir(dir)
        .env("DATALOADER_CONTROL_DB", control)
        .env_remove("DATALOADER_FAULT")
        .args([
            "run",
            "--poll-interval",
            "500ms",
            "--failed-monitor-interval",
            "1h",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dataloader run")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn stop(mut child: Child) {
    signal(&child, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "dataloader run exits 0 on SIGTERM: {status}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dataloader run did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn two_workers_load_200_tables_exactly_once_between_them() {
    let source = PgTestDb::create("two_src").await;
    let control = PgTestDb::create("two_ctl").await;
    let ddl: String = (0..200)
        .map(|i| format!("CREATE TABLE t{i} (id int PRIMARY KEY, v text); INSERT INTO t{i} VALUES (1, 'a'), (2, 'b');"))
        .collect();
    source.client.batch_execute(&ddl).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = control.url();
    let env = [("DATALOADER_CONTROL_DB", url.as_str())];
    let args = pg_connection_args("pg", &source.name);
    dataloader_env(
        d,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
    )
    .ok();
    let mut yaml = String::from("defaults:\n  connection: pg\n  destination: bronze.many.{table}\n  strategy: full\n  schedule: \"0 0 1 1 *\"\ntables:\n");
    for i in 0..200 {
        yaml.push_str(&format!("  - source: public.t{i}\n"));
    }
    std::fs::write(d.join("tables.yaml"), yaml).unwrap();
    dataloader_env(d, &["apply", "-f", "tables.yaml"], &env).ok();

    let a = spawn_run(d, &url, &["--max-concurrent-loads", "3"]);
    let b = spawn_run(d, &url, &["--max-concurrent-loads", "3"]);
    let store = dataloader_store::open(&url).await.unwrap();
    wait_for("200 tables loaded", Duration::from_secs(240), async || {
        let tables = store.tables().await.unwrap();
        tables
            .iter()
            .all(|t| t.status == Some(RunStatus::Succeeded))
    })
    .await;
    stop(a);
    stop(b);

    let runs = store.runs(None, 10_000).await.unwrap();
    assert_eq!(runs.len(), 200, "one run per table and due time, no more");
    assert!(runs
        .iter()
        .all(|r| r.status == RunStatus::Succeeded && r.trigger == "schedule"));
    let mut tables: Vec<i64> = runs.iter().map(|r| r.table_id).collect();
    tables.sort();
    tables.dedup();
    assert_eq!(tables.len(), 200, "every table exactly once");
    let workers: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(|r| r.worker.as_deref()).collect();
    assert_eq!(workers.len(), 2, "both processes did work: {workers:?}");
}

#[tokio::test]
async fn a_killed_worker_loses_its_lease_and_the_survivor_loads_the_table() {
    let pg = PgControl::new(
        "kill",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
         CREATE VIEW slow AS SELECT t.id, t.v FROM t CROSS JOIN (SELECT pg_sleep(3)) s;",
    )
    .await;
    let (source, d, url) = (&pg.source, pg.dir.path(), pg.url.clone());
    let env = [("DATALOADER_CONTROL_DB", url.as_str())];
    dataloader_env(
        d,
        &[
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.slow",
            "--dest",
            "bronze.pg.slow",
            "--schedule",
            "0 0 1 1 *",
        ],
        &env,
    )
    .ok();
    let store = dataloader_store::open(&url).await.unwrap();
    let a = spawn_run(d, &url, &["--lease", "2s"]);
    wait_for(
        "the first worker to start the load",
        Duration::from_secs(30),
        async || store.tables().await.unwrap()[0].status == Some(RunStatus::InProgress),
    )
    .await;
    signal(&a, "-KILL");
    let mut a = a;
    let _ = a.wait();
    let b = spawn_run(d, &url, &["--lease", "2s"]);
    wait_for(
        "the survivor to load the table",
        Duration::from_secs(40),
        async || store.tables().await.unwrap()[0].status == Some(RunStatus::Succeeded),
    )
    .await;
    stop(b);

    let runs = store.runs(None, 10).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].status, RunStatus::Failed);
    assert_eq!(runs[1].error_class.as_deref(), Some("WorkerLost"));
    assert!(runs[1]
        .error_text
        .as_deref()
        .unwrap()
        .starts_with("worker lost"));
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_ne!(runs[0].worker, runs[1].worker);
    let batches = dataloader_lake::DeltaDestination::new(
        &format!("file://{}/lakehouse/bronze/pg/slow", d.display()),
        "bronze.pg.slow",
    )
    .unwrap()
    .read_all(&["id"])
    .await
    .unwrap();
    let rows = dataloader_testkit::arrow_rows(
        &batches,
        &["id", "v"],
        &[dataloader_testkit::Canon::Text; 2],
    );
    let source_rows = dataloader_testkit::pg_rows(
        &source.client,
        "SELECT id::text, v FROM t ORDER BY t.id",
        &[dataloader_testkit::Canon::Text; 2],
    )
    .await;
    assert_eq!(rows, source_rows, "destination == source");
}

#[tokio::test]
async fn on_sqlite_one_scheduler_at_a_time_and_status_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let control = "sqlite://control.db";
    let env = [("DATALOADER_CONTROL_DB", control)];
    dataloader_env(
        d,
        &[
            "connection",
            "add",
            "down",
            "--type",
            "postgresql",
            "--host",
            "127.0.0.1",
            "--port",
            "1",
            "--database",
            "x",
        ],
        &env,
    )
    .ok();
    dataloader_env(
        d,
        &[
            "table",
            "add",
            "--connection",
            "down",
            "--source",
            "public.t",
            "--dest",
            "bronze.pg.t",
            "--schedule",
            "0 0 1 1 *",
        ],
        &env,
    )
    .ok();
    let once = dataloader_env(d, &["run", "--once", "--json"], &env)
        .ok()
        .json();
    assert_eq!(once[0]["status"], "Failed");

    let status = dataloader_env(d, &["status", "--json"], &env).ok().json();
    assert_eq!(status[0]["table"], "bronze.pg.t");
    assert_eq!(status[0]["status"], "Failed");
    assert!(status[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("cannot reach postgresql"));
    assert!(
        status[0]["recommendation"]
            .as_str()
            .unwrap()
            .starts_with("retry_with_backoff: the database could not be reached"),
        "{status}"
    );
    let text = dataloader_env(d, &["status"], &env).ok().stdout;
    assert!(
        text.contains("bronze.pg.t") && text.contains("retry_with_backoff"),
        "{text}"
    );

    let first = spawn_run(d, control, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    dataloader_env(d, &["run", "--once"], &env)
        .fails_with("another `dataloader run` is already using sqlite://control.db; on SQLite one scheduler runs at a time");
    stop(first);
}

/// A `dataloader load` killed at every fault point while a scheduler worker runs beside it on
/// the same PostgreSQL control plane: the worker fails the dead run when its lease runs out,
/// loads the table, and the append_only table holds each source row exactly once every time.
#[tokio::test]
async fn a_load_killed_at_every_fault_point_is_finished_by_another_worker_exactly_once() {
    let pg = PgControl::new(
        "killpt",
        "CREATE TABLE events (id int PRIMARY KEY, body text);
         INSERT INTO events SELECT g, 'event ' || g FROM generate_series(1, 50) g;",
    )
    .await;
    let (source, d, url) = (&pg.source, pg.dir.path(), pg.url.clone());
    let env = [("DATALOADER_CONTROL_DB", url.as_str())];
    dataloader_env(
        d,
        &[
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.events",
            "--dest",
            "bronze.pg.events",
            "--strategy",
            "append_only",
            "--incremental-column",
            "id",
            "--schedule",
            "0 0 1 1 *",
        ],
        &env,
    )
    .ok();
    let store = dataloader_store::open(&url).await.unwrap();
    let last_run = || async {
        let table = store.tables().await.unwrap().remove(0);
        (table.status, table.last_run_id)
    };
    let worker = spawn_run(d, &url, &["--lease", "2s"]);
    wait_for(
        "the worker's first load",
        Duration::from_secs(30),
        async || last_run().await.0 == Some(RunStatus::Succeeded),
    )
    .await;
    let destination = dataloader_lake::DeltaDestination::new(
        &format!("file://{}/lakehouse/bronze/pg/events", d.display()),
        "bronze.pg.events",
    )
    .unwrap();
    let mut next = 51;
    for point in ["before_read", "mid_stream", "after_commit"] {
        source
            .client
            .batch_execute(&format!(
                "INSERT INTO events SELECT g, 'event ' || g FROM generate_series({next}, {}) g",
                next + 24
            ))
            .await
            .unwrap();
        next += 25;
        let killed = dataloader_env(
            d,
            &["--lease", "2s", "load", "bronze.pg.events"],
            &[
                ("DATALOADER_CONTROL_DB", url.as_str()),
                ("DATALOADER_BATCH_SIZE", "10"),
                ("DATALOADER_FAULT", point),
            ],
        );
        assert!(
            killed.stderr.contains(&format!("aborting at {point}")),
            "{point}: {}",
            killed.stderr
        );
        let (_, dead_run) = last_run().await;
        wait_for(
            "the worker to finish the table after the kill",
            Duration::from_secs(30),
            async || {
                let (status, run) = last_run().await;
                status == Some(RunStatus::Succeeded) && run > dead_run
            },
        )
        .await;
        let batches = destination.read_all(&["id"]).await.unwrap();
        let rows = dataloader_testkit::arrow_rows(
            &batches,
            &["id", "body"],
            &[dataloader_testkit::Canon::Text; 2],
        );
        let source_rows = dataloader_testkit::pg_rows(
            &source.client,
            "SELECT id::text, body FROM events ORDER BY events.id",
            &[dataloader_testkit::Canon::Text; 2],
        )
        .await;
        assert_eq!(rows, source_rows, "{point}: each row once");
        let dead = store.run(dead_run.unwrap()).await.unwrap().unwrap();
        assert_ne!(dead.status, RunStatus::InProgress, "{point}: {dead:?}");
    }
    stop(worker);
}
