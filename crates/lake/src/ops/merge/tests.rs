//! The merge's paths end to end: which one a table takes, and that each leaves the same rows.
//! They live apart from the paths themselves because they cross them (a merge that takes the
//! generic path, then the plain one).

use std::sync::Arc;

use dataloader_core::Layout;
use deltalake::arrow::array::{Array, Int64Array, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;

use super::plain::plain_table;
use crate::test_support::{batch, schema, stream, tag};
use crate::DeltaDestination;

/// Merges `changes` by `id`, the newest `version` winning, as run `run`.
async fn merge_by_id(
    dest: &DeltaDestination,
    schema: SchemaRef,
    changes: RecordBatch,
    run: i64,
) -> crate::WriteSummary {
    dest.merge(
        schema,
        stream(vec![changes]),
        &["id".into()],
        "version",
        &tag(run),
    )
    .await
    .unwrap()
}

fn rows(batches: &[RecordBatch]) -> Vec<(i64, String, Option<i64>)> {
    let mut out = vec![];
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        // DataFusion may hand strings back as views.
        let names = deltalake::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
        let names = names.as_any().downcast_ref::<StringArray>().unwrap();
        let versions = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            let v = (!versions.is_null(i)).then(|| versions.value(i));
            out.push((ids.value(i), names.value(i).to_string(), v));
        }
    }
    out
}

#[tokio::test]
async fn merge_keeps_the_newest_row_per_key_and_rewrites_only_files_with_changed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let dest = DeltaDestination::new(url.as_str(), "bronze.test.t")
        .unwrap()
        .with_layout(Layout::default());
    // Two appends: two files, keys 1..=3 and 10..=12.
    for (n, part) in [[1, 2, 3], [10, 11, 12]].iter().enumerate() {
        let rows: Vec<_> = part.iter().map(|id| (*id, "old", Some(1))).collect();
        dest.append(schema(), stream(vec![batch(&rows)]), &tag(n as i64))
            .await
            .unwrap();
    }
    let before: std::collections::BTreeSet<String> = dest
        .open()
        .await
        .unwrap()
        .unwrap()
        .get_file_uris()
        .unwrap()
        .collect();
    // Key 11 three times across two batches: version 5 wins over 3 and over NULL.
    // Key 20 is new, twice with equal versions: the later row wins.
    let changes = vec![
        batch(&[
            (11, "v3", Some(3)),
            (20, "first", Some(7)),
            (11, "v5", Some(5)),
        ]),
        batch(&[(11, "null", None), (20, "second", Some(7))]),
    ];
    let summary = dest
        .merge(
            schema(),
            stream(changes),
            &["id".into()],
            "version",
            &tag(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            summary.rows.written,
            summary.rows.updated,
            summary.rows.inserted
        ),
        (2, 1, 1)
    );
    let got = rows(&dest.read_all(&["id"]).await.unwrap());
    let want: Vec<(i64, String, Option<i64>)> = vec![
        (1, "old".into(), Some(1)),
        (2, "old".into(), Some(1)),
        (3, "old".into(), Some(1)),
        (10, "old".into(), Some(1)),
        (11, "v5".into(), Some(5)),
        (12, "old".into(), Some(1)),
        (20, "second".into(), Some(7)),
    ];
    assert_eq!(got, want);
    let table = dest.open().await.unwrap().unwrap();
    let after: std::collections::BTreeSet<String> = table.get_file_uris().unwrap().collect();
    assert_eq!(
        before.intersection(&after).count(),
        1,
        "the file of keys 1..=3 stays: {before:?} → {after:?}"
    );
    // The commit is an idempotent run commit like every other.
    assert_eq!(dest.committed_version("test").await.unwrap(), Some(2));
    assert_eq!(summary.version, table.version().map(|v| v as i64));
}

#[tokio::test]
async fn a_key_held_twice_or_null_is_replaced_once_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let dest = DeltaDestination::new(url.as_str(), "bronze.test.t").unwrap();
    // A NULL key and key 100: the file's statistics say 100..=100.
    let with_null_id = |name: &str| {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![None, Some(100)])),
                Arc::new(StringArray::from(vec![name, "c"])),
                Arc::new(Int64Array::from(vec![Some(1), Some(1)])),
            ],
        )
        .unwrap()
    };
    // Key 5 in two files (appended before it was a key); a NULL key in a third file whose
    // key range does not hold 5, so pruning by value alone would skip it.
    dest.append(
        schema(),
        stream(vec![batch(&[(1, "a", Some(1)), (5, "x", Some(1))])]),
        &tag(0),
    )
    .await
    .unwrap();
    dest.append(
        schema(),
        stream(vec![batch(&[(5, "y", Some(1)), (9, "b", Some(1))])]),
        &tag(1),
    )
    .await
    .unwrap();
    dest.append(schema(), stream(vec![with_null_id("null")]), &tag(2))
        .await
        .unwrap();
    let changes = deltalake::arrow::compute::concat_batches(
        &schema(),
        &[
            batch(&[(5, "new", Some(2))]),
            with_null_id("null2").slice(0, 1),
        ],
    )
    .unwrap();
    let summary = merge_by_id(&dest, schema(), changes, 3).await;
    assert_eq!((summary.rows.updated, summary.rows.inserted), (2, 0));
    let all = dest.read_all(&["id"]).await.unwrap();
    let mut names: Vec<String> = all
        .iter()
        .flat_map(|b| {
            let names = deltalake::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..names.len()).map(move |i| names.value(i).to_string())
        })
        .collect();
    names.sort();
    assert_eq!(names, vec!["a", "b", "c", "new", "null2"]);
}

#[tokio::test]
async fn merge_with_a_new_column_takes_the_generic_path_and_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let dest = DeltaDestination::new(url.as_str(), "bronze.test.t").unwrap();
    // Two files, so the file of keys 0 and 1 is left alone by the first merge and keeps
    // the narrower schema.
    for (run, rows) in [vec![(0, "z"), (1, "a")], vec![(2, "b")]]
        .into_iter()
        .enumerate()
    {
        let rows: Vec<_> = rows
            .into_iter()
            .map(|(id, name)| (id, name, Some(1)))
            .collect();
        dest.append(schema(), stream(vec![batch(&rows)]), &tag(run as i64))
            .await
            .unwrap();
    }
    let wider = Arc::new(Schema::new(
        schema()
            .fields()
            .iter()
            .cloned()
            .chain([Arc::new(Field::new("extra", DataType::Utf8, true))])
            .collect::<Vec<_>>(),
    ));
    let b = batch(&[(2, "b2", Some(2)), (3, "c", Some(2))]);
    let mut columns = b.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![Some("x"), None])));
    let changes = RecordBatch::try_new(wider.clone(), columns).unwrap();
    let summary = merge_by_id(&dest, wider.clone(), changes, 2).await;
    assert_eq!((summary.rows.updated, summary.rows.inserted), (1, 1));
    let got = rows(&dest.read_all(&["id"]).await.unwrap());
    assert_eq!(
        got,
        vec![
            (0, "z".into(), Some(1)),
            (1, "a".into(), Some(1)),
            (2, "b2".into(), Some(2)),
            (3, "c".into(), Some(2))
        ]
    );
    let table = dest.open().await.unwrap().unwrap();
    assert!(
        plain_table(table.snapshot().unwrap(), &wider),
        "{:?} vs {:?}",
        table.snapshot().unwrap().snapshot().arrow_schema(),
        wider
    );
    // The next merge has the table's columns and takes the engine-free path; it rewrites
    // the first file, written before `extra` existed, whose other row reads NULL there.
    let b = batch(&[(1, "a2", Some(3))]);
    let mut columns = b.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![Some("y")])));
    let changes = RecordBatch::try_new(wider.clone(), columns).unwrap();
    let summary = merge_by_id(&dest, wider, changes, 3).await;
    assert_eq!((summary.rows.updated, summary.rows.inserted), (1, 0));
    let all = dest.read_all(&["id"]).await.unwrap();
    assert_eq!(
        rows(&all),
        vec![
            (0, "z".into(), Some(1)),
            (1, "a2".into(), Some(3)),
            (2, "b2".into(), Some(2)),
            (3, "c".into(), Some(2))
        ]
    );
    let extra: Vec<Option<String>> = all
        .iter()
        .flat_map(|b| {
            let column = deltalake::arrow::compute::cast(
                b.column_by_name("extra").unwrap(),
                &DataType::Utf8,
            )
            .unwrap();
            let column = column.as_any().downcast_ref::<StringArray>().unwrap();
            (0..column.len())
                .map(|i| (!column.is_null(i)).then(|| column.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(extra, vec![None, Some("y".into()), Some("x".into()), None]);
}
