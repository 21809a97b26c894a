//! Engine tests against the real PostgreSQL on 127.0.0.1:5432 (see docs/testing.md): every
//! test has its own source database, control database and lake folder.

mod azure;
mod bad_input;
mod bytes;
mod catalog;
mod clickhouse;
mod column_types;
mod commit_state;
mod differential;
mod evolution;
mod faults;
mod full;
mod guards;
mod incremental;
mod layout;
mod mssql;
mod mysql;
mod oracle;
mod property;
mod report;
mod s3;
mod snowflake;
mod source_query;
mod strategies;
mod vending;

use std::sync::Arc;

use dataloader_core::{
    ConnectionConfig, DbType, LoadStrategy, RunStatus, SourceTable, Store, TableSpec, TargetTable,
    Trigger,
};
use dataloader_engine::{Engine, LoadRequest};
use dataloader_lake::{DeltaDestination, PathCatalog};
use dataloader_testkit::{pg_host_port, pg_user, PgTestDb};

/// A control database, a lake folder and an engine over them, for one test and one source
/// connection.
pub struct Lake {
    pub root: String,
    /// The control database's URL, for another process to open.
    pub control_db: String,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    /// The engine's clock: the system's, unless a test sets it.
    pub clock: Arc<TestClock>,
    pub lake: tempfile::TempDir,
    _control: tempfile::TempDir,
}

impl Lake {
    pub async fn new(connection: ConnectionConfig) -> Lake {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path().display().to_string();
        Lake::with_root(connection, lake, &root).await
    }

    /// A lake rooted at `root` (a folder or an object-store URL); `lake` is kept alive with it.
    pub async fn with_root(
        connection: ConnectionConfig,
        lake: tempfile::TempDir,
        root: &str,
    ) -> Lake {
        let control = tempfile::tempdir().unwrap();
        let control_db = format!("sqlite://{}/control.db", control.path().display());
        let store = dataloader_store::open(&control_db).await.unwrap();
        store.migrate().await.unwrap();
        store.upsert_connection(&connection).await.unwrap();
        let catalog = PathCatalog::new(root).unwrap();
        let clock = Arc::new(TestClock::default());
        let engine =
            Engine::new(store.clone(), Arc::new(catalog), clock.clone()).with_batch_size(7);
        Lake {
            root: root.to_string(),
            control_db,
            store,
            engine,
            clock,
            lake,
            _control: control,
        }
    }

    /// A table read through `connection`, configured by `configure`.
    pub async fn add_on(
        &self,
        connection: &str,
        source: &str,
        dest: &str,
        strategy: LoadStrategy,
        configure: impl FnOnce(&mut TableSpec),
    ) -> TargetTable {
        let mut spec = spec_on(connection, source, dest, strategy);
        configure(&mut spec);
        self.add_spec(&spec).await
    }

    /// One destination per strategy over the same source table, each loaded once.
    pub async fn load_every_strategy_once(&self, e: &EveryStrategy<'_>) -> StrategyTables {
        let (c, src) = (e.connection, e.source);
        let key = || vec![e.key.to_string()];
        let tables = StrategyTables {
            incremental: self
                .add_on(
                    c,
                    src,
                    &format!("{}.incr", e.dest),
                    LoadStrategy::Incremental,
                    |s| {
                        s.primary_keys = key();
                        s.incremental_column = Some(e.at.into());
                    },
                )
                .await,
            append_only: self
                .add_on(
                    c,
                    src,
                    &format!("{}.append", e.dest),
                    LoadStrategy::AppendOnly,
                    |s| s.incremental_column = Some(e.key.into()),
                )
                .await,
            chunked: self
                .add_on(
                    c,
                    src,
                    &format!("{}.chunks", e.dest),
                    LoadStrategy::ChunkedBackfill,
                    |s| {
                        s.primary_keys = key();
                        s.incremental_column = Some(e.chunk_column.into());
                        s.chunk_size = Some(e.chunk_size.into());
                    },
                )
                .await,
            check: self
                .add_on(
                    c,
                    src,
                    &format!("{}.check", e.dest),
                    LoadStrategy::CheckAndLoad,
                    |_| {},
                )
                .await,
            rolling: self
                .add_on(
                    c,
                    src,
                    &format!("{}.rolling", e.dest),
                    LoadStrategy::Rolling,
                    |s| {
                        s.primary_keys = key();
                        s.rolling_column = Some(e.at.into());
                        s.rolling_window = Some(e.window.into());
                    },
                )
                .await,
        };
        for dest in tables.all() {
            // The rolling window ends at the load's clock: the time of the source's rows.
            if dest == &tables.rolling {
                self.clock.set(e.now);
            }
            let report = self
                .engine
                .load(LoadRequest::new(dest, Trigger::Manual))
                .await
                .unwrap_or_else(|e| panic!("{dest}: {}", e.error));
            self.clock.reset();
            assert_eq!(report.status, RunStatus::Succeeded, "{dest}");
        }
        tables
    }

    /// A full load of a table with no rows (`id`, `amount` a decimal(10,3), `created_at` a
    /// timestamp): it succeeds, reads nothing, and makes a Delta table with those columns.
    pub async fn load_empty(&self, connection: &str, source: &str, dest: &str) {
        let dest = self
            .add_on(connection, source, dest, LoadStrategy::Full, |_| {})
            .await;
        let report = self
            .engine
            .load(LoadRequest::new(&dest, Trigger::Manual))
            .await
            .unwrap();
        assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 0));
        let schema = self
            .destination(&dest)
            .schema()
            .await
            .unwrap()
            .expect("the Delta table exists");
        assert_eq!(
            schema.field_with_name("amount").unwrap().data_type(),
            &arrow::datatypes::DataType::Decimal128(10, 3)
        );
        assert!(matches!(
            schema.field_with_name("created_at").unwrap().data_type(),
            arrow::datatypes::DataType::Timestamp(..)
        ));
        assert!(self
            .destination(&dest)
            .read_all(&["id"])
            .await
            .unwrap()
            .iter()
            .all(|b| b.num_rows() == 0));
    }

    pub async fn add_spec(&self, spec: &TableSpec) -> TargetTable {
        self.store
            .insert_table(spec, chrono::Utc::now())
            .await
            .unwrap();
        spec.destination.clone()
    }

    pub fn destination(&self, dest: &TargetTable) -> DeltaDestination {
        Lake::destination_in(&self.root, dest)
    }

    /// The Delta table of `dest` in the lake at `root`.
    pub fn destination_in(root: &str, dest: &TargetTable) -> DeltaDestination {
        use dataloader_core::Catalog;
        let url = PathCatalog::new(root).unwrap().table_url(dest).unwrap();
        DeltaDestination::new(&url, dest.to_string()).unwrap()
    }

    /// The Delta table's rows in canonical text, ordered by the first column.
    pub async fn delta_rows(
        &self,
        dest: &TargetTable,
        columns: &[&str],
        kinds: &[dataloader_testkit::Canon],
    ) -> Vec<Vec<Option<String>>> {
        let batches = self
            .destination(dest)
            .read_all(&[columns[0]])
            .await
            .unwrap();
        dataloader_testkit::arrow_rows(&batches, columns, kinds)
    }
}

/// What the "every strategy once" tests load a source table by.
pub struct EveryStrategy<'a> {
    pub connection: &'a str,
    pub source: &'a str,
    /// `catalog.schema` of the five destination tables.
    pub dest: &'a str,
    /// The key; also `append_only`'s watermark.
    pub key: &'a str,
    /// The timestamp column: `incremental`'s watermark and the `rolling` window's column.
    pub at: &'a str,
    pub window: &'a str,
    /// When the rolling table is loaded (RFC 3339): the newest `at` in the source.
    pub now: &'a str,
    pub chunk_column: &'a str,
    pub chunk_size: &'a str,
}

/// The destinations [`Lake::load_every_strategy_once`] made.
pub struct StrategyTables {
    pub incremental: TargetTable,
    pub append_only: TargetTable,
    pub chunked: TargetTable,
    pub check: TargetTable,
    pub rolling: TargetTable,
}

impl StrategyTables {
    pub fn all(&self) -> [&TargetTable; 5] {
        [
            &self.incremental,
            &self.append_only,
            &self.chunked,
            &self.check,
            &self.rolling,
        ]
    }

    /// The ones that hold the whole source table.
    pub fn whole(&self) -> [&TargetTable; 4] {
        [
            &self.incremental,
            &self.append_only,
            &self.chunked,
            &self.check,
        ]
    }
}

/// The engine's "now": the system clock until a test sets it.
#[derive(Default)]
pub struct TestClock(std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>);

impl TestClock {
    /// From now on the clock reads `at` (RFC 3339).
    pub fn set(&self, at: &str) {
        let at = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&chrono::Utc);
        self.set_to(at);
    }

    pub fn set_to(&self, at: chrono::DateTime<chrono::Utc>) {
        *self.0.lock().unwrap() = Some(at);
    }

    /// Back to the system clock.
    pub fn reset(&self) {
        *self.0.lock().unwrap() = None;
    }
}

impl dataloader_core::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.lock().unwrap().unwrap_or_else(chrono::Utc::now)
    }
}

/// A connection named `name` to a database server.
pub fn connection(
    name: &str,
    db_type: DbType,
    host: String,
    port: u16,
    database: &str,
    user: &str,
) -> ConnectionConfig {
    ConnectionConfig {
        name: name.into(),
        db_type,
        host: Some(host),
        port: Some(port),
        database: Some(database.to_string()),
        user: Some(user.to_string()),
        password: None,
        options: Default::default(),
        max_connections: None,
    }
}

/// A PostgreSQL source database and a [`Lake`] whose connection `pg` reads it.
pub struct Harness {
    pub source: PgTestDb,
    inner: Lake,
}

impl std::ops::Deref for Harness {
    type Target = Lake;
    fn deref(&self) -> &Lake {
        &self.inner
    }
}

impl Harness {
    pub async fn new(prefix: &str) -> Harness {
        let source = PgTestDb::create(prefix).await;
        let (host, port) = pg_host_port();
        let lake = Lake::new(connection(
            "pg",
            "postgresql".parse().unwrap(),
            host,
            port,
            &source.name,
            &pg_user(),
        ))
        .await;
        Harness {
            source,
            inner: lake,
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
}

/// A spec on connection `pg`.
pub fn spec(source: &str, dest: &str, strategy: LoadStrategy) -> TableSpec {
    spec_on("pg", source, dest, strategy)
}

pub fn spec_on(connection: &str, source: &str, dest: &str, strategy: LoadStrategy) -> TableSpec {
    let mut spec = TableSpec::new(
        connection,
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
