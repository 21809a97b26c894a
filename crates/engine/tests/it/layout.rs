//! Data-file layout settings shape the files a load writes, and merges into such tables stay
//! exact: the engine-free merge on a plain table, delta-rs' MERGE on a partitioned one.

use dataloader_engine::LoadRequest;
use std::collections::BTreeSet;

use dataloader_core::{LoadStrategy, TargetTable, Trigger};
use dataloader_lake::parquet::basic::Compression;
use dataloader_lake::parquet::file::reader::{FileReader, SerializedFileReader};
use dataloader_testkit::{assert_same_rows, pg_rows, Canon};

use crate::{keyed, Harness};

const COLUMNS: [&str; 4] = ["id", "region", "payload", "updated_at"];
const KINDS: [Canon; 4] = [Canon::Text, Canon::Text, Canon::Text, Canon::Text];

async fn compare(h: &Harness, dest: &TargetTable) {
    let source = pg_rows(
        &h.source.client,
        "SELECT id::text, region, payload, (extract(epoch from updated_at) * 1000000)::bigint::text FROM events ORDER BY events.id",
        &KINDS,
    )
    .await;
    assert_same_rows(
        &source,
        &h.delta_rows(dest, &COLUMNS, &KINDS).await,
        &COLUMNS,
    );
}

async fn files(h: &Harness, dest: &TargetTable) -> BTreeSet<String> {
    let table = h.destination(dest).open().await.unwrap().unwrap();
    table.get_file_uris().unwrap().collect()
}

#[tokio::test]
async fn layout_settings_shape_the_data_files_and_merges_into_them_stay_exact() {
    let h = Harness::new("layout").await;
    // About 110 bytes of hard-to-compress text per row: several 1 MiB files.
    h.source
        .client
        .batch_execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, region text NOT NULL, payload text, updated_at timestamp(6) NOT NULL);
             INSERT INTO events
             SELECT g, (ARRAY['eu','us','apac'])[1 + g % 3], md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text),
                    timestamp '2024-01-01' + g * interval '1 second'
             FROM generate_series(1, 60000) g;",
        )
        .await
        .unwrap();
    let mut sized = keyed(
        "public.events",
        "bronze.pg.events",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    sized.target_file_size = Some("1MiB".into());
    sized.compression = Some("snappy".into());
    sized.row_group_rows = Some(4096);
    let sized = h.add_spec(&sized).await;
    let mut by_region = keyed(
        "public.events",
        "bronze.pg.events_by_region",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    by_region.partition_by = vec!["region".into()];
    let by_region = h.add_spec(&by_region).await;
    for dest in [&sized, &by_region] {
        let first = h
            .engine
            .load(LoadRequest::new(dest, Trigger::Manual))
            .await
            .unwrap();
        assert_eq!(first.rows.written, 60000);
        compare(&h, dest).await;
    }

    let before = files(&h, &sized).await;
    assert!(before.len() >= 3, "1 MiB files: {before:?}");
    for uri in &before {
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        for group in reader.metadata().row_groups() {
            assert!(group.num_rows() <= 4096, "{uri}: {} rows", group.num_rows());
            for column in group.columns() {
                assert_eq!(column.compression(), Compression::SNAPPY, "{uri}");
            }
        }
    }
    let regions: BTreeSet<String> = files(&h, &by_region)
        .await
        .iter()
        .map(|uri| {
            uri.split('/')
                .find(|part| part.starts_with("region="))
                .unwrap_or_else(|| panic!("{uri} is not under a region= folder"))
                .to_string()
        })
        .collect();
    assert_eq!(
        regions,
        BTreeSet::from(["region=apac".into(), "region=eu".into(), "region=us".into()])
    );

    // The usual incremental change set: updates at the newest keys, and new rows.
    h.source
        .client
        .batch_execute(
            "UPDATE events SET payload = 'changed ' || id, updated_at = timestamp '2025-01-01' + id * interval '1 microsecond' WHERE id > 59000;
             INSERT INTO events SELECT g, 'eu', 'new ' || g, timestamp '2025-02-01' + g * interval '1 second' FROM generate_series(60001, 60100) g;",
        )
        .await
        .unwrap();
    for dest in [&sized, &by_region] {
        let merged = h
            .engine
            .load(LoadRequest::new(dest, Trigger::Manual))
            .await
            .unwrap();
        assert_eq!(
            (merged.rows.read, merged.rows.updated, merged.rows.inserted),
            (1100, 1000, 100),
            "{dest}"
        );
        compare(&h, dest).await;
    }
    let after = files(&h, &sized).await;
    let kept = before.intersection(&after).count();
    assert!(
        kept + 2 >= before.len(),
        "only the files holding the newest keys are rewritten: {kept} of {} kept",
        before.len()
    );
}
