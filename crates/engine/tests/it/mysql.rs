//! The engine over the real MariaDB on 127.0.0.1:3306: every mapped type, watermarks at
//! microsecond precision, and every strategy once, compared with the source row by row.

use dataloader_core::{LoadStrategy, RunStatus, TargetTable, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::mysql::{host_port, MyTestDb};
use dataloader_testkit::{assert_same_rows, Canon};

use crate::{connection, EveryStrategy, Lake};

pub(crate) struct My {
    pub(crate) db: MyTestDb,
    lake: Lake,
}

impl std::ops::Deref for My {
    type Target = Lake;
    fn deref(&self) -> &Lake {
        &self.lake
    }
}

impl My {
    pub(crate) async fn new(prefix: &str) -> My {
        let db = MyTestDb::create(prefix).await;
        let (host, port) = host_port();
        let lake = Lake::new(connection(
            "my",
            "mysql".parse().unwrap(),
            host,
            port,
            &db.name,
            "root",
        ))
        .await;
        My { db, lake }
    }

    pub(crate) async fn compare(
        &self,
        dest: &TargetTable,
        sql: &str,
        columns: &[&str],
        kinds: &[Canon],
    ) {
        let source = self.db.rows(sql, kinds).await;
        assert_same_rows(
            &source,
            &self.delta_rows(dest, columns, kinds).await,
            columns,
        );
    }
}

/// Every type the connector maps, in one table with a row of extremes, one of the other
/// extremes and one of NULLs.
const ALL_TYPES: &str = "CREATE TABLE all_types (
            id INT PRIMARY KEY, c_tiny TINYINT, c_utiny TINYINT UNSIGNED, c_small SMALLINT, c_usmall SMALLINT UNSIGNED,
            c_medium MEDIUMINT, c_int INT, c_uint INT UNSIGNED, c_big BIGINT, c_ubig BIGINT UNSIGNED,
            c_dec DECIMAL(12,2), c_wide DECIMAL(38,10), c_float FLOAT, c_double DOUBLE, c_bit1 BIT(1), c_bit8 BIT(8),
            c_char CHAR(5), c_varchar VARCHAR(40), c_text TEXT, c_enum ENUM('small','large'), c_set SET('a','b'),
            c_json JSON, c_binary VARBINARY(8), c_blob BLOB, c_date DATE, c_dt DATETIME(6), c_ts TIMESTAMP(6) NULL,
            c_time TIME, c_year YEAR, `Customer Name` VARCHAR(20)
        ) CHARACTER SET utf8mb4;
        INSERT INTO all_types VALUES
          (1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
           9999999999.99, 9999999999999999999999999999.9999999999, 1.5, 2.25, b'1', b'10000001',
           'ab', 'Zürich – 東京 🚀', 'O''Hara \"q\"', 'large', 'a,b', '{\"k\": [1, 2]}', x'00ff10', x'deadbeef',
           '1000-01-01', '2024-02-29 13:14:15.123456', '2038-01-19 03:14:07.999999', '-838:59:59', 2024, 'Ann');
        INSERT INTO all_types VALUES
          (2, 127, 0, 32767, 0, 8388607, 2147483647, 0, 9223372036854775807, 0, -9999999999.99, -0.0000000001,
           -0.5, 1e308, b'0', b'0', '', '', '', 'small', '', '[]', x'', x'', '9999-12-31', '1970-01-01 00:00:00.000001',
           '1970-01-01 00:00:01.000000', '12:00:00', 1901, '');
        INSERT INTO all_types (id) VALUES (3)";

/// Each column of [`ALL_TYPES`]: its destination name, the SQL that prints its source value as
/// the Delta value prints, and how the two compare.
fn all_type_columns() -> Vec<(&'static str, &'static str, Canon)> {
    vec![
        ("id", "CAST(id AS CHAR)", Canon::Text),
        ("c_tiny", "CAST(c_tiny AS CHAR)", Canon::Text),
        ("c_utiny", "CAST(c_utiny AS CHAR)", Canon::Text),
        ("c_small", "CAST(c_small AS CHAR)", Canon::Text),
        ("c_usmall", "CAST(c_usmall AS CHAR)", Canon::Text),
        ("c_medium", "CAST(c_medium AS CHAR)", Canon::Text),
        ("c_int", "CAST(c_int AS CHAR)", Canon::Text),
        ("c_uint", "CAST(c_uint AS CHAR)", Canon::Text),
        ("c_big", "CAST(c_big AS CHAR)", Canon::Text),
        ("c_ubig", "CAST(c_ubig AS CHAR)", Canon::Decimal),
        ("c_dec", "CAST(c_dec AS CHAR)", Canon::Decimal),
        ("c_wide", "CAST(c_wide AS CHAR)", Canon::Decimal),
        ("c_float", "CAST(c_float AS CHAR)", Canon::Float32),
        ("c_double", "CAST(c_double AS CHAR)", Canon::Float64),
        (
            "c_bit1",
            "IF(c_bit1 IS NULL, NULL, IF(c_bit1 = 1, 'true', 'false'))",
            Canon::Text,
        ),
        ("c_bit8", "CAST(c_bit8 + 0 AS CHAR)", Canon::Text),
        ("c_char", "c_char", Canon::Text),
        ("c_varchar", "c_varchar", Canon::Text),
        ("c_text", "c_text", Canon::Text),
        ("c_enum", "c_enum", Canon::Text),
        ("c_set", "c_set", Canon::Text),
        ("c_json", "c_json", Canon::Text),
        ("c_binary", "LOWER(HEX(c_binary))", Canon::Text),
        ("c_blob", "LOWER(HEX(c_blob))", Canon::Text),
        ("c_date", "CAST(c_date AS CHAR)", Canon::Text),
        (
            "c_dt",
            "CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', c_dt) AS CHAR)",
            Canon::Text,
        ),
        (
            "c_ts",
            "CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', c_ts) AS CHAR)",
            Canon::Text,
        ),
        ("c_time", "CAST(c_time AS CHAR)", Canon::Text),
        ("c_year", "CAST(c_year AS CHAR)", Canon::Text),
        ("customer_name", "`Customer Name`", Canon::Text),
    ]
}

#[tokio::test]
async fn full_load_of_every_mysql_type_equals_the_source() {
    let m = My::new("my_types").await;
    m.db.exec(ALL_TYPES).await;
    let dest = m
        .add_on(
            "my",
            "all_types",
            "bronze.my.all_types",
            LoadStrategy::Full,
            |_| {},
        )
        .await;
    let report = m
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 3));

    let columns = all_type_columns();
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let kinds: Vec<Canon> = columns.iter().map(|c| c.2).collect();
    let exprs = columns.iter().map(|c| c.1).collect::<Vec<_>>().join(", ");
    m.compare(
        &dest,
        &format!("SELECT {exprs} FROM all_types ORDER BY id"),
        &names,
        &kinds,
    )
    .await;
    let check = m
        .delta_rows(
            &dest,
            &["id", "c_ubig", "c_varchar", "c_time"],
            &[Canon::Text, Canon::Decimal, Canon::Text, Canon::Text],
        )
        .await;
    let check: Vec<Vec<Option<String>>> = check.into_iter().map(|r| r[1..].to_vec()).collect();
    assert_eq!(
        check[0][0].as_deref(),
        Some("18446744073709551615"),
        "bigint unsigned kept exactly"
    );
    assert_eq!(check[0][1].as_deref(), Some("Zürich – 東京 🚀"));
    assert_eq!(check[0][2].as_deref(), Some("-838:59:59"));
}

#[tokio::test]
async fn incremental_keeps_microseconds_and_reads_only_changes() {
    let m = My::new("my_incr").await;
    let mut sql = String::from(
        "CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2), updated_at DATETIME(6) NOT NULL); INSERT INTO orders VALUES ",
    );
    sql.push_str(
        &(1..=300)
            .map(|i| {
                format!("({i}, {i}.25, TIMESTAMPADD(MICROSECOND, {i}, '2024-01-01 00:00:00'))")
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.db.exec(&sql).await;
    let dest = m
        .add_on(
            "my",
            "orders",
            "bronze.my.orders",
            LoadStrategy::Incremental,
            |s| {
                s.primary_keys = vec!["id".into()];
                s.incremental_column = Some("updated_at".into());
            },
        )
        .await;
    let first = m
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(first.rows.read, 300);
    assert_eq!(
        first.watermark_after.as_deref(),
        Some("2024-01-01 00:00:00.000300")
    );
    m.db.exec(
        "INSERT INTO orders SELECT id + 300, 1, TIMESTAMPADD(MICROSECOND, 400 + id, '2024-01-01 00:00:00') FROM orders WHERE id <= 10;
         UPDATE orders SET amount = amount + 1, updated_at = '2024-01-01 00:00:00.000999' WHERE id % 60 = 0",
    )
    .await;
    let second = m
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (second.rows.read, second.rows.inserted, second.rows.updated),
        (15, 10, 5)
    );
    assert_eq!(
        second.watermark_after.as_deref(),
        Some("2024-01-01 00:00:00.000999")
    );
    let kinds = [Canon::Text, Canon::Decimal, Canon::Text];
    m.compare(
        &dest,
        "SELECT CAST(id AS CHAR), CAST(amount AS CHAR), CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', updated_at) AS CHAR) FROM orders ORDER BY id",
        &["id", "amount", "updated_at"],
        &kinds,
    )
    .await;
    let third = m
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((third.rows.read, third.delta_version), (0, None));
}

#[tokio::test]
async fn every_strategy_once_on_mariadb() {
    let m = My::new("my_strategies").await;
    let mut sql = String::from("CREATE TABLE events (id INT PRIMARY KEY, v VARCHAR(10), at DATETIME(6)); INSERT INTO events VALUES ");
    sql.push_str(
        &(1..=100)
            .map(|i| format!("({i}, 'v{i}', TIMESTAMPADD(MINUTE, {i}, '2024-01-01 00:00:00'))"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.db.exec(&sql).await;
    let all = "SELECT CAST(id AS CHAR), v FROM events ORDER BY id";
    let kinds = [Canon::Text, Canon::Text];
    let cols = ["id", "v"];

    let t = m
        .load_every_strategy_once(&EveryStrategy {
            connection: "my",
            source: "events",
            dest: "bronze.my",
            key: "id",
            at: "at",
            window: "20 minutes",
            now: "2024-01-01T01:40:00Z",
            chunk_column: "at",
            chunk_size: "30 minutes",
        })
        .await;
    for dest in t.whole() {
        m.compare(dest, all, &cols, &kinds).await;
    }
    m.compare(
        &t.rolling,
        "SELECT CAST(id AS CHAR), v FROM events WHERE id > 80 ORDER BY id",
        &cols,
        &kinds,
    )
    .await;
    let switched = m
        .store
        .table_by_destination(&t.chunked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(switched.spec.strategy, LoadStrategy::Incremental);
    assert_eq!(
        switched.incremental_value.unwrap().value,
        "2024-01-01 01:40:00.000000"
    );
    assert_eq!(
        m.engine
            .load(LoadRequest::new(&t.check, Trigger::Manual))
            .await
            .unwrap()
            .status,
        RunStatus::Skipped
    );
}

#[tokio::test]
async fn empty_mariadb_table_loads_its_schema_and_no_rows() {
    let m = My::new("my_empty").await;
    m.db.exec(
        "CREATE TABLE nothing (id INT PRIMARY KEY, amount DECIMAL(10,3), created_at DATETIME(6))",
    )
    .await;
    m.load_empty("my", "nothing", "bronze.my.nothing").await;
}

/// A check query that calls a function which writes fails in its read-only transaction and
/// writes nothing: the statement check cannot see inside a function, the server can.
#[tokio::test]
async fn a_check_query_runs_read_only_on_mariadb() {
    let m = My::new("my_check_ro").await;
    m.db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);
         CREATE TABLE audit (n INT);",
    )
    .await;
    m.db.exec_one(
        "CREATE FUNCTION touch() RETURNS INT MODIFIES SQL DATA \
         BEGIN INSERT INTO audit VALUES (1); RETURN 1; END",
    )
    .await;
    let dest = m
        .add_on("my", "t", "bronze.my.t", LoadStrategy::CheckAndLoad, |s| {
            s.check_mode = Some(dataloader_core::CheckMode::Query);
            s.check_query = Some("SELECT touch()".into());
        })
        .await;
    let err = m
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(err.to_ascii_lowercase().contains("read only"), "{err}");
    let written =
        m.db.rows("SELECT COUNT(*) FROM audit", &[Canon::Text])
            .await;
    assert_eq!(written, vec![vec![Some("0".to_string())]]);
}

/// `SELECT * FROM all_types` as a source query: its columns, typed from the result's column
/// definitions, map as the table's do, and it loads the same values.
#[tokio::test]
async fn a_source_query_reads_every_type_as_its_table_does_on_mariadb() {
    let m = My::new("my_query_types").await;
    m.db.exec(ALL_TYPES).await;
    let mut spec = crate::spec_on(
        "my",
        "all_types",
        "bronze.my.all_types_q",
        LoadStrategy::Full,
    );
    spec.source_query = Some("SELECT * FROM all_types".into());
    let source = dataloader_sources::connect(&m.store.require_connection("my").await.unwrap())
        .await
        .unwrap();
    let table = source
        .describe(&dataloader_core::SourceObject::Table(spec.source.clone()))
        .await
        .unwrap();
    let query = source.describe(&spec.source_object()).await.unwrap();
    assert_eq!(table.column_names(), query.column_names());
    for (t, q) in table.columns.iter().zip(&query.columns) {
        assert_eq!(t.data_type, q.data_type, "{} ({})", t.name, q.native_type);
    }
    let dest = m.add_spec(&spec).await;
    let report = m
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 3));
    let columns = all_type_columns();
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let kinds: Vec<Canon> = columns.iter().map(|c| c.2).collect();
    let exprs = columns.iter().map(|c| c.1).collect::<Vec<_>>().join(", ");
    m.compare(
        &dest,
        &format!("SELECT {exprs} FROM all_types ORDER BY id"),
        &names,
        &kinds,
    )
    .await;
}

/// An incremental table whose source is a query with a join, a cast and a WHERE: the second
/// load reads exactly the changed rows the query returns.
#[tokio::test]
async fn incremental_source_query_on_mariadb() {
    let m = My::new("my_query_incr").await;
    let mut sql = String::from(
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
         INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo'), (3, 'Cy');
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(10,2),
             status VARCHAR(10) NOT NULL, updated_at DATETIME(6) NOT NULL);
         INSERT INTO orders VALUES ",
    );
    sql.push_str(
        &(1..=60)
            .map(|i| {
                let status = if i % 6 == 0 { "cancelled" } else { "open" };
                format!(
                    "({i}, {}, {i}.25, '{status}', TIMESTAMPADD(MICROSECOND, {i}, '2024-01-01 00:00:00'))",
                    1 + i % 3
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.db.exec(&sql).await;
    let query = "SELECT o.id, c.name AS customer, CAST(o.amount * 2 AS DECIMAL(12,3)) AS doubled, o.updated_at
                   FROM orders o JOIN customers c ON c.id = o.customer_id
                  WHERE o.status <> 'cancelled'";
    let dest = m
        .add_on(
            "my",
            "orders_doubled",
            "bronze.my.orders_doubled",
            LoadStrategy::Incremental,
            |s| {
                s.source_query = Some(query.into());
                s.primary_keys = vec!["id".into()];
                s.incremental_column = Some("updated_at".into());
            },
        )
        .await;
    let columns = ["id", "customer", "doubled", "updated_at"];
    let kinds = [Canon::Text, Canon::Text, Canon::Decimal, Canon::Text];
    // The query's rows against the Delta table's, but for the key `kept` (see below).
    let (m, dest) = (&m, &dest);
    let compare = |kept: Option<&'static str>| async move {
        let source = m
            .db
            .rows(
                &format!(
                    "SELECT CAST(id AS CHAR), customer, CAST(doubled AS CHAR),
                            CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', updated_at) AS CHAR)
                       FROM ({query}) q ORDER BY q.id"
                ),
                &kinds,
            )
            .await;
        let delta: Vec<_> = m
            .delta_rows(dest, &columns, &kinds)
            .await
            .into_iter()
            .filter(|row| row[0].as_deref() != kept)
            .collect();
        assert_same_rows(&source, &delta, &columns);
    };
    let first = m
        .engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((first.rows.read, first.rows.inserted), (50, 50));
    assert_eq!(
        first.watermark_after.as_deref(),
        Some("2024-01-01 00:00:00.000059")
    );
    compare(None).await;

    // Two new orders (one cancelled) and three updated ones (one now cancelled: the query
    // leaves it out, and the Delta table keeps the row it had).
    m.db.exec(
        "INSERT INTO orders VALUES (61, 1, 1, 'open', '2024-02-01 00:00:00.000001'),
             (62, 2, 1, 'cancelled', '2024-02-01 00:00:00.000002');
         UPDATE orders SET amount = amount + 1, updated_at = '2024-03-01 00:00:00.000009' WHERE id IN (1, 2);
         UPDATE orders SET status = 'cancelled', updated_at = '2024-03-01' WHERE id = 3",
    )
    .await;
    let second = m
        .engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (second.rows.read, second.rows.inserted, second.rows.updated),
        (3, 1, 2)
    );
    assert_eq!(
        second.watermark_after.as_deref(),
        Some("2024-03-01 00:00:00.000009")
    );
    assert_eq!(
        m.delta_rows(dest, &["id"], &[Canon::Text]).await.len(),
        51,
        "order 3 stays in Delta: the query no longer returns it, and no key scan runs"
    );
    compare(Some("3")).await;
}
