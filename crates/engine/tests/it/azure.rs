//! A lakehouse on Azure Blob Storage under an `abfss://` root: Azurite's blob service, started
//! by `scripts/test.sh`, which creates the container `DATALOADER_TEST_AZURE_CONTAINER` and sets
//! `AZURE_STORAGE_USE_EMULATOR=true` and `AZURITE_BLOB_STORAGE_URL`. delta-rs reads them from
//! the environment, as it reads a real account's `AZURE_*` variables: with those instead (and
//! `AZURE_STORAGE_ACCOUNT_NAME`), the same tests run against Azure. Without the container they
//! print a notice and skip.
//!
//! A crash, or a load with other credentials, is a child process: this test binary again,
//! running only [`child_load`], with `DATALOADER_FAULT` or the credentials in its environment.

use std::process::Command;
use std::sync::Arc;

use dataloader_core::{LoadStrategy, RunStatus, SystemClock, TableSpec, TargetTable, Trigger};
use dataloader_engine::{Engine, LoadReport, LoadRequest};
use dataloader_lake::PathCatalog;
use dataloader_testkit::{assert_same_rows, pg_rows, Canon};
use deltalake::logstore::object_store::ObjectStore;
use futures::TryStreamExt;

use crate::{keyed, spec, Harness, Lake};

/// What [`child_load`] loads: the control database, the lake root and the destination, one a
/// line.
const CHILD: &str = "DATALOADER_TEST_AZURE_CHILD";

/// The lake root `abfss://<container>@<account>.dfs.core.windows.net/<prefix>-<pid>`, or
/// `None` (after a notice) when no container is given.
fn azure_root(prefix: &str) -> Option<String> {
    let Ok(container) = std::env::var("DATALOADER_TEST_AZURE_CONTAINER") else {
        eprintln!("NOTICE: DATALOADER_TEST_AZURE_CONTAINER is not set: skipping the Azure lakehouse test (scripts/test.sh starts Azurite)");
        return None;
    };
    let account = std::env::var("AZURE_STORAGE_ACCOUNT_NAME")
        .unwrap_or_else(|_| "devstoreaccount1".to_string());
    Some(format!(
        "abfss://{container}@{account}.dfs.core.windows.net/{prefix}-{}",
        std::process::id()
    ))
}

/// A source table `t` (`id`, `v`, `n` a numeric, `updated_at`) of 50 rows, and a lake at `root`.
async fn setup(prefix: &str, root: &str) -> (Harness, Lake) {
    let h = Harness::new(prefix).await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(12,2), updated_at timestamp NOT NULL);
             INSERT INTO t SELECT g, 'v' || g, g * 1.25, timestamp '2024-01-01' + g * interval '1 second'
             FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let lake = Lake::with_root(
        h.store.connection("pg").await.unwrap().unwrap(),
        tempfile::tempdir().unwrap(),
        root,
    )
    .await;
    (h, lake)
}

const COLUMNS: [&str; 3] = ["id", "v", "n"];
const KINDS: [Canon; 3] = [Canon::Text, Canon::Text, Canon::Decimal];

/// One load of `dest`, which must succeed.
async fn load(lake: &Lake, dest: &TargetTable) -> LoadReport {
    lake.engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{dest}: {}", e.error))
}

/// An incremental table of `t`, merged by `id`, `updated_at` its watermark.
fn incremental(dest: &str) -> TableSpec {
    keyed(
        "public.t",
        dest,
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    )
}

/// A merge's counts: read, updated, inserted, and the Delta version it committed.
fn merge_counts(r: &LoadReport) -> (u64, u64, u64, Option<i64>) {
    (
        r.rows.read,
        r.rows.updated,
        r.rows.inserted,
        r.delta_version,
    )
}

/// The Delta table holds exactly the source's rows, and the rows `deleted` from the source
/// since the first load as they were then (an incremental load does not see a deleted row).
async fn assert_rows(h: &Harness, lake: &Lake, dest: &TargetTable, deleted: &[i32]) {
    let deleted: Vec<String> = deleted.iter().map(i32::to_string).collect();
    let mut expected = pg_rows(
        &h.source.client,
        &format!(
            "SELECT id::text, v, n::text FROM t
             UNION ALL SELECT g::text, 'v' || g, (g * 1.25)::numeric(12,2)::text
             FROM unnest(ARRAY[{}]::int[]) g",
            deleted.join(",")
        ),
        &KINDS,
    )
    .await;
    expected.sort_by_key(|row| row[0].as_deref().map(|id| id.parse::<i64>().unwrap()));
    let delta = lake.delta_rows(dest, &COLUMNS, &KINDS).await;
    assert_same_rows(&expected, &delta, &COLUMNS);
}

/// Changes the source: updates five rows, inserts three, deletes the last of the first 50.
async fn change_source(h: &Harness, round: i32) {
    h.source
        .client
        .batch_execute(&format!(
            "UPDATE t SET v = 'changed {round}', n = n + {round}, updated_at = timestamp '2025-01-01' + {round} * interval '1 day'
               WHERE id IN (SELECT id FROM t ORDER BY id LIMIT 5);
             INSERT INTO t SELECT g, 'new ' || g, g, timestamp '2025-01-01' + {round} * interval '1 day'
               FROM generate_series(1000 * {round} + 1, 1000 * {round} + 3) g;
             DELETE FROM t WHERE id = (SELECT max(id) FROM t WHERE id < 1000);"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn full_and_incremental_loads_into_an_azure_lakehouse() {
    let Some(root) = azure_root("run") else {
        return;
    };
    let (h, lake) = setup("azure", &root).await;
    let full = lake
        .add_spec(&spec("public.t", "bronze.pg.full", LoadStrategy::Full))
        .await;
    let incr = lake.add_spec(&incremental("bronze.pg.incr")).await;
    for dest in [&full, &incr] {
        let first = load(&lake, dest).await;
        assert_eq!((first.status, first.rows.read), (RunStatus::Succeeded, 50));
        assert!(first.table_url.starts_with(&root), "{}", first.table_url);
        assert_rows(&h, &lake, dest, &[]).await;
    }

    change_source(&h, 1).await;
    let full_again = load(&lake, &full).await;
    assert_eq!(
        (full_again.rows.read, full_again.delta_version),
        (52, Some(1))
    );
    assert_rows(&h, &lake, &full, &[]).await;

    // The merge: five rows updated, three inserted; the deleted row stays.
    let merged = load(&lake, &incr).await;
    assert_eq!(merge_counts(&merged), (8, 5, 3, Some(1)));
    assert_rows(&h, &lake, &incr, &[50]).await;
}

/// Runs one load of `dest` in a child process with `env` set and `remove` removed; returns
/// whether it exited normally, and its stderr, where [`child_load`] says how the load ended.
fn load_in_child(
    lake: &Lake,
    dest: &TargetTable,
    env: &[(&str, &str)],
    remove: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["azure::child_load", "--exact", "--ignored", "--nocapture"])
        .env(CHILD, format!("{}\n{}\n{dest}", lake.control_db, lake.root));
    for var in remove {
        cmd.env_remove(var);
    }
    let out = cmd
        .envs(env.iter().copied())
        .output()
        .expect("start the child load");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs one load of `dest` in a child process that `DATALOADER_FAULT` aborts at `point`.
fn crash_in_child(lake: &Lake, dest: &TargetTable, point: &str) {
    let (exited, stderr) = load_in_child(lake, dest, &[("DATALOADER_FAULT", point)], &[]);
    assert!(
        !exited && stderr.contains(&format!("DATALOADER_FAULT: aborting at {point}")),
        "the child load should have been stopped at {point}:\n{stderr}"
    );
}

/// The child of [`load_in_child`]: one load, in a process of its own, of the table [`CHILD`]
/// names; it says on stderr how the load ended.
#[tokio::test]
#[ignore = "the Azure tests run it in a child process"]
async fn child_load() {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let [control_db, root, dest] = args.lines().collect::<Vec<_>>()[..] else {
        panic!("{CHILD}: expected three lines, got {args:?}");
    };
    let store = dataloader_store::open(control_db).await.unwrap();
    let catalog = PathCatalog::new(root).unwrap();
    let engine = Engine::new(store, Arc::new(catalog), Arc::new(SystemClock)).with_batch_size(7);
    let dest = TargetTable::parse(dest).unwrap();
    match engine.load(LoadRequest::new(&dest, Trigger::Manual)).await {
        Ok(report) => eprintln!("child load: {:?}", report.status),
        Err(failure) => eprintln!(
            "child load failed ({:?}): {}",
            failure.error.kind(),
            failure.error
        ),
    }
}

#[tokio::test]
async fn the_azure_credentials_are_the_ones_in_the_environment() {
    let Some(root) = azure_root("credentials") else {
        return;
    };
    let (_h, lake) = setup("azure_creds", &root).await;
    let dest = lake
        .add_spec(&spec("public.t", "bronze.pg.t", LoadStrategy::Full))
        .await;
    // A wrong account key, then a wrong SAS token, each alone: both refused, so each was used.
    // (Under the emulator a request that names no credential is signed with Azurite's
    // well-known key, and would pass.)
    let credentials = ["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"];
    let wrong_key = "A".repeat(86) + "==";
    let wrong_sas =
        "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&spr=https,http&sig=AAAA";
    for (var, value) in [
        (credentials[0], wrong_key.as_str()),
        (credentials[1], wrong_sas),
    ] {
        let (_, stderr) = load_in_child(&lake, &dest, &[(var, value)], &credentials);
        assert!(
            stderr.contains("child load failed") && stderr.contains("403 Forbidden"),
            "{var}:\n{stderr}"
        );
        assert!(
            !stderr.contains(value),
            "{var}'s value is not shown:\n{stderr}"
        );
    }
    assert_eq!(
        lake.destination(&dest).version().await.unwrap(),
        None,
        "nothing written"
    );
    let (_, stderr) = load_in_child(&lake, &dest, &[], &[]);
    assert!(stderr.contains("child load: Succeeded"), "{stderr}");
}

/// The table's data files, committed or not.
async fn data_files(lake: &Lake, dest: &TargetTable) -> usize {
    let table = lake.destination(dest).open().await.unwrap().unwrap();
    let files: Vec<_> = table.object_store().list(None).try_collect().await.unwrap();
    files
        .iter()
        .filter(|f| {
            f.location.as_ref().ends_with(".parquet") && !f.location.as_ref().contains("_delta_log")
        })
        .count()
}

#[tokio::test]
async fn a_load_killed_before_or_after_its_commit_on_azure_recovers_exactly_once() {
    let Some(root) = azure_root("crash") else {
        return;
    };
    let (h, lake) = setup("azure_crash", &root).await;
    let dest = lake.add_spec(&incremental("bronze.pg.t")).await;
    let table_id = lake
        .store
        .table_by_destination(&dest)
        .await
        .unwrap()
        .unwrap()
        .table_id;
    load(&lake, &dest).await;
    let delta = lake.destination(&dest);

    // Killed between writing the merge's data files and its commit: the files are in the
    // container, the Delta log does not name them.
    change_source(&h, 1).await;
    let (version, files) = (
        delta.version().await.unwrap(),
        data_files(&lake, &dest).await,
    );
    crash_in_child(&lake, &dest, "before_commit");
    assert_eq!(delta.version().await.unwrap(), version, "nothing committed");
    assert!(
        data_files(&lake, &dest).await > files,
        "the killed load had written its data files"
    );
    assert_eq!(delta.key_counts(&[]).await.unwrap().unwrap().rows, 50);
    // The next load closes the dead run and commits the changes once.
    let resumed = load(&lake, &dest).await;
    assert_eq!(merge_counts(&resumed), (8, 5, 3, version.map(|v| v + 1)));
    let runs = lake.store.runs(Some(table_id), 3).await.unwrap();
    assert_eq!(
        (runs[1].status, runs[1].error_text.as_deref()),
        (
            RunStatus::Failed,
            Some("the process running this load stopped before it committed anything")
        )
    );
    assert_rows(&h, &lake, &dest, &[50]).await;

    // Killed after its commit, before its bookkeeping: the next load finishes that run from the
    // Delta log instead of merging again.
    change_source(&h, 2).await;
    let version = delta.version().await.unwrap();
    crash_in_child(&lake, &dest, "after_commit");
    assert_eq!(delta.version().await.unwrap(), version.map(|v| v + 1));
    let recovered = load(&lake, &dest).await;
    assert!(
        recovered
            .notes
            .first()
            .is_some_and(|n| n.starts_with("recovered run")),
        "{:?}",
        recovered.notes
    );
    assert_eq!(
        recovered.rows.read, 0,
        "the recovered merge is not read again"
    );
    let killed = &lake.store.runs(Some(table_id), 2).await.unwrap()[1];
    assert_eq!(killed.status, RunStatus::Succeeded);
    assert_eq!(killed.delta_version, version.map(|v| v + 1));
    assert_rows(&h, &lake, &dest, &[49, 50]).await;
}
