//! Engine tests against the real PostgreSQL on 127.0.0.1:5432 (see TEST-SERVERS.md): every
//! test has its own source database, control database and lake folder.

mod bad_input;
mod clickhouse;
mod differential;
mod evolution;
mod full;
mod incremental;
mod mysql;
mod strategies;

use std::sync::Arc;

use dataloader_core::{
    ConnectionConfig, DbType, LoadStrategy, SourceTable, Store, SystemClock, TableSpec, TargetTable,
};
use dataloader_engine::Engine;
use dataloader_lake::{DeltaDestination, PathCatalog};
use dataloader_testkit::{pg_host_port, pg_user, PgTestDb};

pub struct Harness {
    pub source: PgTestDb,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub lake: tempfile::TempDir,
    _control: tempfile::TempDir,
}

impl Harness {
    pub async fn new(prefix: &str) -> Harness {
        let source = PgTestDb::create(prefix).await;
        let control = tempfile::tempdir().unwrap();
        let lake = tempfile::tempdir().unwrap();
        let store =
            dataloader_store::open(&format!("sqlite://{}/control.db", control.path().display()))
                .await
                .unwrap();
        store.migrate().await.unwrap();
        let (host, port) = pg_host_port();
        store
            .upsert_connection(&ConnectionConfig {
                name: "pg".into(),
                db_type: DbType::Postgresql,
                host: Some(host),
                port: Some(port),
                database: Some(source.name.clone()),
                user: Some(pg_user()),
                password: None,
                options: Default::default(),
                max_connections: None,
            })
            .await
            .unwrap();
        let catalog = PathCatalog::new(&lake.path().display().to_string()).unwrap();
        let engine =
            Engine::new(store.clone(), Arc::new(catalog), Arc::new(SystemClock)).with_batch_size(7);
        Harness {
            source,
            store,
            engine,
            lake,
            _control: control,
        }
    }

    pub async fn add_table(
        &self,
        source: &str,
        dest: &str,
        strategy: LoadStrategy,
        keys: &[&str],
        column: Option<&str>,
    ) -> TargetTable {
        let mut spec = TableSpec::new(
            "pg",
            SourceTable::parse(source).unwrap(),
            TargetTable::parse(dest).unwrap(),
        );
        spec.strategy = strategy;
        spec.primary_keys = keys.iter().map(|k| k.to_string()).collect();
        spec.incremental_column = column.map(str::to_string);
        self.store
            .insert_table(&spec, chrono::Utc::now())
            .await
            .unwrap();
        spec.destination
    }

    pub async fn add_spec(&self, spec: &TableSpec) -> TargetTable {
        self.store
            .insert_table(spec, chrono::Utc::now())
            .await
            .unwrap();
        spec.destination.clone()
    }

    pub fn destination(&self, dest: &TargetTable) -> DeltaDestination {
        let url = url_of(self.lake.path(), dest);
        DeltaDestination::new(&url, dest.to_string()).unwrap()
    }
}

pub fn spec(source: &str, dest: &str, strategy: LoadStrategy) -> TableSpec {
    let mut spec = TableSpec::new(
        "pg",
        SourceTable::parse(source).unwrap(),
        TargetTable::parse(dest).unwrap(),
    );
    spec.strategy = strategy;
    spec
}

/// A spec merging by `key` with `column` as its watermark.
pub fn keyed(
    source: &str,
    dest: &str,
    strategy: LoadStrategy,
    key: &str,
    column: &str,
) -> TableSpec {
    let mut s = spec(source, dest, strategy);
    s.primary_keys = vec![key.to_string()];
    s.incremental_column = Some(column.to_string());
    s
}

pub fn url_of(root: &std::path::Path, dest: &TargetTable) -> String {
    use dataloader_core::Catalog;
    PathCatalog::new(&root.display().to_string())
        .unwrap()
        .table_url(dest)
        .unwrap()
}
