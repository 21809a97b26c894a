//! Catalog registration: every table a load leaves in the lake is registered, whichever
//! strategy created it, and only once.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dataloader_core::{Catalog, Drift, LoadStrategy, Registration, Result, TargetTable, Trigger};
use dataloader_engine::{Engine, LoadRequest};
use dataloader_lake::PathCatalog;

use crate::Harness;

/// A path catalog that keeps a registry, so the test sees what was registered and when.
struct RecordingCatalog {
    paths: PathCatalog,
    registered: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Catalog for RecordingCatalog {
    fn table_url(&self, table: &TargetTable) -> Result<String> {
        self.paths.table_url(table)
    }

    fn describe(&self) -> String {
        "recording".into()
    }

    async fn drift(&self, desired: &Registration) -> Result<Drift> {
        let name = desired.table.to_string();
        let known = self
            .registered
            .lock()
            .unwrap()
            .iter()
            .any(|(t, _)| *t == name);
        Ok(if known {
            Drift::Current
        } else {
            Drift::Missing
        })
    }

    async fn register(&self, desired: &Registration) -> Result<()> {
        if self.drift(desired).await? == Drift::Missing {
            self.registered
                .lock()
                .unwrap()
                .push((desired.table.to_string(), desired.location.clone()));
        }
        Ok(())
    }
}

#[tokio::test]
async fn tables_created_by_any_strategy_are_registered_once() {
    let h = Harness::new("catreg").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL);
             INSERT INTO t SELECT g, now() - g * interval '1 hour' FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let rolling = h
        .add_on(
            "pg",
            "public.t",
            "bronze.cat.rolling",
            LoadStrategy::Rolling,
            |s| {
                s.primary_keys = vec!["id".into()];
                s.rolling_column = Some("at".into());
                s.rolling_window = Some("10 hours".into());
            },
        )
        .await;
    let backfill = h
        .add_on(
            "pg",
            "public.t",
            "bronze.cat.backfill",
            LoadStrategy::ChunkedBackfill,
            |s| {
                s.primary_keys = vec!["id".into()];
                s.incremental_column = Some("id".into());
                s.chunk_size = Some("7".into());
            },
        )
        .await;
    let catalog = Arc::new(RecordingCatalog {
        paths: PathCatalog::new(&h.root).unwrap(),
        registered: Mutex::default(),
    });
    let engine = Engine::new(h.store.clone(), catalog.clone(), h.clock.clone());
    for dest in [&rolling, &backfill] {
        for _ in 0..2 {
            engine
                .load(LoadRequest::new(dest, Trigger::Manual))
                .await
                .unwrap_or_else(|f| panic!("{dest}: {}", f.error));
        }
    }
    let registered = catalog.registered.lock().unwrap().clone();
    let expected: Vec<(String, String)> = [&rolling, &backfill]
        .iter()
        .map(|d| (d.to_string(), catalog.paths.table_url(d).unwrap()))
        .collect();
    assert_eq!(
        registered, expected,
        "each table registered once, at its location"
    );
}
