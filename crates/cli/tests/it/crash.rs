//! A `dataloader load` killed at any point leaves no partial data visible in Delta, never moves
//! the watermark past committed data, and the next run ends with destination == source and no
//! duplicates. The child process aborts at a named point (`DATALOADER_FAULT`), as a SIGKILL
//! would stop it: no cleanup, no bookkeeping.

use dataloader_lake::DeltaDestination;
use dataloader_testkit::workload::assert_same_checksum;
use dataloader_testkit::{arrow_rows, pg_rows, Canon, PgTestDb};

use crate::{dataloader_env, pg_connection_args, Run};

struct Setup {
    db: PgTestDb,
    dir: tempfile::TempDir,
}

const DEST: &str = "bronze.pg.events";

impl Setup {
    async fn new(prefix: &str, table_args: &[&str]) -> Setup {
        let db = PgTestDb::create(prefix).await;
        db.client
            .batch_execute(
                "CREATE TABLE events (id int PRIMARY KEY, seq int NOT NULL, body text);
                 INSERT INTO events SELECT g, g, 'event ' || g FROM generate_series(1, 95) g;",
            )
            .await
            .unwrap();
        let setup = Setup {
            db,
            dir: tempfile::tempdir().unwrap(),
        };
        let args = pg_connection_args("pg", &setup.db.name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        setup.run(&args, None).ok();
        let mut args = vec![
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.events",
            "--dest",
            DEST,
        ];
        args.extend_from_slice(table_args);
        setup.run(&args, None).ok();
        setup
    }

    fn run(&self, args: &[&str], fault: Option<&str>) -> Run {
        let mut env = vec![
            ("DATALOADER_CONTROL_DB", "sqlite://control.db"),
            ("DATALOADER_BATCH_SIZE", "10"),
        ];
        if let Some(f) = fault {
            env.push(("DATALOADER_FAULT", f));
        }
        dataloader_env(self.dir.path(), args, &env)
    }

    fn crash(&self, point: &str) {
        let out = self.run(&["load", DEST], Some(point));
        assert_ne!(out.code, 0, "the load should have been stopped at {point}");
        let name = point.split(':').next().unwrap();
        assert!(
            out.stderr
                .contains(&format!("DATALOADER_FAULT: aborting at {name}")),
            "{}",
            out.stderr
        );
    }

    fn destination(&self) -> DeltaDestination {
        let url = format!(
            "file://{}/lakehouse/bronze/pg/events",
            self.dir.path().display()
        );
        DeltaDestination::new(&url, DEST).unwrap()
    }

    async fn assert_equal(&self, context: &str) {
        let kinds = [Canon::Text, Canon::Text, Canon::Text];
        let source = pg_rows(
            &self.db.client,
            "SELECT id::text, seq::text, body FROM events ORDER BY events.id",
            &kinds,
        )
        .await;
        let batches = self.destination().read_all(&["id"]).await.unwrap();
        assert_same_checksum(
            &source,
            &arrow_rows(&batches, &["id", "seq", "body"], &kinds),
            context,
        );
    }

    async fn add_rows(&self, from: i32, to: i32) {
        self.db
            .client
            .batch_execute(&format!(
                "INSERT INTO events SELECT g, g, 'event ' || g FROM generate_series({from}, {to}) g"
            ))
            .await
            .unwrap();
    }

    fn history(&self) -> serde_json::Value {
        self.run(&["history", DEST, "--json"], None).ok().json()
    }
}

#[tokio::test]
async fn append_only_survives_a_kill_at_every_point_without_duplicates() {
    let s = Setup::new(
        "crash_append",
        &["--strategy", "append_only", "--incremental-column", "seq"],
    )
    .await;
    s.run(&["load", DEST], None).ok();
    let mut next = 96;
    for point in ["before_read", "mid_stream", "after_commit"] {
        s.add_rows(next, next + 24).await;
        next += 25;
        let before = s.destination().version().await.unwrap();
        s.crash(point);
        let after = s.destination().version().await.unwrap();
        if point == "after_commit" {
            assert_eq!(after, before.map(|v| v + 1), "{point}: the commit happened");
        } else {
            assert_eq!(after, before, "{point}: nothing visible in Delta");
        }
        let resumed = s.run(&["load", DEST, "--json"], None).ok().json();
        s.assert_equal(&format!("append_only after a kill at {point}"))
            .await;
        if point == "after_commit" {
            assert_eq!(
                resumed["rows_read"], 0,
                "the recovered commit is not appended again"
            );
            assert!(
                resumed["notes"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("recovered run"),
                "{resumed}"
            );
        } else {
            assert_eq!(resumed["rows_read"], 25);
        }
    }
    let runs = s.history();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    // Newest first: the load after the recovered run, the recovered run, and before them each
    // kill that committed nothing, a Failed run closed by the load that followed it.
    let expected = [
        "Succeeded",
        "Succeeded",
        "Succeeded",
        "Failed",
        "Succeeded",
        "Failed",
        "Succeeded",
    ];
    assert_eq!(statuses, expected, "{runs}");
    assert!(runs[1]["notes"]
        .as_str()
        .unwrap()
        .contains("bookkeeping recovered from the Delta log"));
    assert_eq!(runs[1]["watermark_after"], "170");
    assert_eq!(
        runs[3]["error_text"],
        "the process running this load stopped before it committed anything"
    );
}

#[tokio::test]
async fn incremental_survives_a_kill_mid_stream_and_after_commit() {
    let s = Setup::new(
        "crash_incr",
        &[
            "--strategy",
            "incremental",
            "--primary-key",
            "id",
            "--incremental-column",
            "seq",
        ],
    )
    .await;
    s.run(&["load", DEST], None).ok();
    let mut next = 96;
    for point in ["mid_stream", "after_commit"] {
        s.add_rows(next, next + 24).await;
        s.db.client
            .batch_execute(&format!(
                "UPDATE events SET body = 'changed', seq = {} WHERE id = {}",
                next + 24,
                next - 5
            ))
            .await
            .unwrap();
        next += 25;
        s.crash(point);
        let table = s.run(&["table", "show", DEST], None).ok().json();
        let watermark: i64 = table["incremental_value"]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            watermark < (next - 1) as i64,
            "{point}: the watermark did not move with the crashed run"
        );
        s.run(&["load", DEST], None).ok();
        s.assert_equal(&format!("incremental after a kill at {point}"))
            .await;
    }
}

#[tokio::test]
async fn chunked_backfill_resumes_after_a_kill_between_commit_and_cursor() {
    let s = Setup::new(
        "crash_chunks",
        &[
            "--strategy",
            "chunked_backfill",
            "--primary-key",
            "id",
            "--incremental-column",
            "id",
            "--chunk-size",
            "20",
        ],
    )
    .await;
    s.crash("after_chunk_commit:2");
    assert_eq!(
        s.destination().version().await.unwrap(),
        Some(1),
        "two chunks committed"
    );
    let table = s.run(&["table", "show", DEST], None).ok().json();
    assert_eq!(table["strategy"], "chunked_backfill");
    assert!(
        table["backfill_cursor"]
            .as_str()
            .unwrap()
            .contains("\"next\":\"21\""),
        "{table}"
    );

    let resumed = s.run(&["load", DEST, "--json"], None).ok().json();
    assert_eq!(
        resumed["rows_read"], 55,
        "chunks 3 to 5 only: resumed from the cursor the crashed run committed"
    );
    assert_eq!(resumed["strategy"], "incremental");
    s.assert_equal("chunked_backfill after a kill between commit and cursor")
        .await;
    let table = s.run(&["table", "show", DEST], None).ok().json();
    assert_eq!(table["strategy"], "incremental");
    assert_eq!(table["incremental_value"]["value"], "95");
    assert!(table["backfill_cursor"].is_null());
}

#[tokio::test]
async fn a_run_failed_as_lost_after_its_commit_is_recovered_not_loaded_twice() {
    let s = Setup::new(
        "crash_lost",
        &[
            "--strategy",
            "append_only",
            "--incremental-column",
            "seq",
            "--schedule",
            "0 2 * * *",
        ],
    )
    .await;
    s.run(&["load", DEST], None).ok();
    s.add_rows(96, 120).await;
    // Killed after its Delta commit, with a 1 s lease...
    let killed = s.run(&["--lease", "1s", "load", DEST], Some("after_commit"));
    assert_ne!(killed.code, 0);
    // ...which runs out: the master sensor's tick (`due`) fails the run as lost.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let due = s.run(&["due", "--json"], None).ok().json();
    assert_eq!(due[0]["table"], DEST, "{due}");
    let lost = &s.history()[0];
    assert_eq!(
        (lost["status"].as_str(), lost["error_class"].as_str()),
        (Some("Failed"), Some("WorkerLost")),
        "{lost}"
    );
    // The next load reads the Delta log first: the lost run had committed, so its bookkeeping
    // is finished and its rows are not appended again.
    let resumed = s.run(&["load", DEST, "--json"], None).ok().json();
    assert_eq!(resumed["rows_read"], 0, "{resumed}");
    assert!(
        resumed["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("recovered run"),
        "{resumed}"
    );
    s.assert_equal("append_only after a lost run that had committed")
        .await;
    let recovered = &s.history()[1];
    assert_eq!(recovered["run_id"], lost["run_id"]);
    assert_eq!(recovered["status"], "Succeeded");
    assert_eq!(recovered["watermark_after"], "120");
}
