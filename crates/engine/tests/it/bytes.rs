//! `bytes_written` in a run's history is the size of the data files its commits added, as the
//! files on disk say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dataloader_core::{LoadStrategy, Trigger};
use dataloader_engine::LoadRequest;

use crate::Harness;

/// Every Parquet file under `dir`, with its size.
fn parquet_files(dir: &Path) -> HashMap<PathBuf, u64> {
    let mut files = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.insert(path, entry.metadata().unwrap().len());
        }
    }
    files
}

fn added(before: &HashMap<PathBuf, u64>, after: &HashMap<PathBuf, u64>) -> u64 {
    after
        .iter()
        .filter(|(path, _)| !before.contains_key(*path))
        .map(|(_, size)| size)
        .sum()
}

#[tokio::test]
async fn a_run_records_the_bytes_its_commits_added() {
    let h = Harness::new("bytes").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, at int NOT NULL);
             INSERT INTO t SELECT g, repeat('x', g % 97), g FROM generate_series(1, 5000) g;",
        )
        .await
        .unwrap();
    let dest = h
        .add_table(
            "public.t",
            "bronze.bytes.t",
            LoadStrategy::Incremental,
            &["id"],
            Some("at"),
        )
        .await;
    let dir = h.destination(&dest).url().to_file_path().unwrap();
    let recorded = |run_id| {
        let store = h.store.clone();
        async move {
            store
                .run(run_id)
                .await
                .unwrap()
                .unwrap()
                .bytes_written
                .unwrap() as u64
        }
    };

    let mut files = parquet_files(&dir);
    let first = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    let after_first = parquet_files(&dir);
    let written = added(&files, &after_first);
    assert!(written > 0, "the first load wrote files");
    assert_eq!(recorded(first.run_id).await, written, "first load");
    files = after_first;

    // Changed and new rows: the merge rewrites some files and adds others.
    h.source
        .client
        .batch_execute(
            "UPDATE t SET v = 'changed', at = at + 10000 WHERE id <= 100;
             INSERT INTO t SELECT g, 'new', g + 20000 FROM generate_series(5001, 5200) g;",
        )
        .await
        .unwrap();
    let second = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(second.rows.written, 300);
    let after_second = parquet_files(&dir);
    let written = added(&files, &after_second);
    assert!(written > 0, "the merge wrote files");
    assert_eq!(recorded(second.run_id).await, written, "merge");

    // Nothing new: no commit, no bytes.
    let third = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(third.delta_version, None, "nothing to commit");
    assert_eq!(recorded(third.run_id).await, 0, "no commit");
}
