//! The engine over the Snowflake REST API as fakesnow emulates it (`scripts/test.sh` starts it
//! through `scripts/fakesnow_server.py`, which splits results longer than 1000 rows into chunks
//! as Snowflake does). Every mapped type, NULLs and unicode through Snowflake's Arrow encoding,
//! an empty table, key-pair login, result chunks, and every strategy once, compared with the
//! source row by row. The source side of each comparison is read as text (`CAST … AS VARCHAR`),
//! so it does not go through the conversions under test.

use dataloader_engine::LoadRequest;
use std::sync::atomic::{AtomicU32, Ordering};

use dataloader_core::{DbType, LoadStrategy, RunStatus, TargetTable, Trigger};
use dataloader_sources::snowflake::client::{Client, Credential, Login};
use dataloader_testkit::{assert_same_rows, canon_value, Canon};

use crate::{connection, EveryStrategy, Lake};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn base_url() -> Option<String> {
    let url = std::env::var("DATALOADER_TEST_SNOWFLAKE").ok();
    if url.is_none() {
        eprintln!("NOTICE: DATALOADER_TEST_SNOWFLAKE is not set: skipping the Snowflake test (scripts/test.sh starts fakesnow and sets it)");
    }
    url
}

struct Sf {
    client: Client,
    database: String,
    lake: Lake,
}

impl std::ops::Deref for Sf {
    type Target = Lake;
    fn deref(&self) -> &Lake {
        &self.lake
    }
}

fn sf_connection(
    name: &str,
    db_type: DbType,
    base: &str,
    database: &str,
) -> dataloader_core::ConnectionConfig {
    let url = url::Url::parse(base).expect("DATALOADER_TEST_SNOWFLAKE is a URL");
    let mut c = connection(
        name,
        db_type,
        url.host_str().unwrap_or("127.0.0.1").to_string(),
        url.port_or_known_default().unwrap_or(443),
        database,
        "loader",
    );
    c.options.insert("protocol".into(), url.scheme().into());
    c.options.insert("account".into(), "myorg-account1".into());
    c.options.insert("warehouse".into(), "LOAD_WH".into());
    c
}

impl Sf {
    async fn new(prefix: &str) -> Option<Sf> {
        let base = base_url()?;
        let database = format!(
            "DL_{}_{}_{}",
            prefix.to_uppercase(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let client = Client::login(Login {
            base_url: &base,
            account: "myorg-account1",
            user: "admin",
            credential: Credential::Password("unused".into()),
            database: &database,
            schema: Some("S"),
            warehouse: None,
            role: None,
        })
        .await
        .unwrap_or_else(|e| panic!("log in to {base}: {e}"));
        let sf = Sf {
            client,
            lake: Lake::new(sf_connection(
                "sf",
                "snowflake".parse().unwrap(),
                &base,
                &database,
            ))
            .await,
            database,
        };
        sf.exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {0}; CREATE SCHEMA IF NOT EXISTS {0}.S",
            sf.database
        ))
        .await;
        Some(sf)
    }

    /// Runs statements separated by `;` (none may contain one).
    async fn exec(&self, sql: &str) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            self.client
                .query(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    /// Rows of a query whose every column is text (or NULL), canonicalised per `kinds`.
    async fn rows(&self, sql: &str, kinds: &[Canon]) -> Vec<Vec<Option<String>>> {
        let result = self
            .client
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut rows = Vec::new();
        for part in 0..=result.chunks.len() {
            for batch in self.client.part(&result, part).await.unwrap() {
                for r in 0..batch.num_rows() {
                    rows.push(
                        kinds
                            .iter()
                            .enumerate()
                            .map(|(c, k)| {
                                let a = arrow::array::AsArray::as_string::<i32>(batch.column(c));
                                arrow::array::Array::is_valid(a, r)
                                    .then(|| canon_value(*k, a.value(r)))
                            })
                            .collect(),
                    );
                }
            }
        }
        rows
    }

    async fn compare(&self, dest: &TargetTable, sql: &str, columns: &[&str], kinds: &[Canon]) {
        assert_same_rows(
            &self.rows(sql, kinds).await,
            &self.delta_rows(dest, columns, kinds).await,
            columns,
        );
    }
}

/// Microseconds since 1970 of a timestamp column, as text.
fn micros(column: &str) -> String {
    format!("CAST(DATE_PART(EPOCH_MICROSECOND, {column}) AS VARCHAR)")
}

#[tokio::test]
async fn full_load_of_every_snowflake_type_equals_the_source() {
    let Some(sf) = Sf::new("types").await else {
        return;
    };
    sf.exec(
        "CREATE TABLE S.ALL_TYPES (
            ID NUMBER(10,0), BIG NUMBER(38,0), AMOUNT NUMBER(12,2), PRECISE NUMBER(38,10), F FLOAT,
            S VARCHAR, B BINARY, FLAG BOOLEAN, D DATE, T TIME, NTZ TIMESTAMP_NTZ, LTZ TIMESTAMP_LTZ,
            TZ TIMESTAMP_TZ, V VARIANT, O OBJECT, A ARRAY
        );
        INSERT INTO S.ALL_TYPES VALUES
          (1, 999999999999999999, 9999999999.99, 1234567890123456789012345678.0123456789, 1.5e300,
           'Zürich – 東京 🚀 it''s', TO_BINARY('00FF10', 'HEX'), TRUE, '2024-02-29', '23:59:59.123456',
           '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.5', '1970-01-01 00:00:00',
           PARSE_JSON('{\"a\": 1, \"b\": [true, null]}'), PARSE_JSON('{\"k\": \"v\"}'), PARSE_JSON('[1, \"two\"]'));
        INSERT INTO S.ALL_TYPES VALUES
          (2, -999999999999999999, -9999999999.99, -0.0000000001, -0.25, '', TO_BINARY('', 'HEX'), FALSE,
           '0001-01-01', '00:00:00', '1900-01-01 00:00:00', '2262-04-11 23:47:16.854775', '9999-12-31 23:59:59.999999',
           PARSE_JSON('\"text\"'), PARSE_JSON('{}'), PARSE_JSON('[]'));
        INSERT INTO S.ALL_TYPES (ID) VALUES (3)",
    )
    .await;
    let dest = sf
        .add_on(
            "sf",
            "s.all_types",
            "bronze.sf.all_types",
            LoadStrategy::Full,
            |_| {},
        )
        .await;
    let report = sf
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 3));

    let schema = sf
        .destination(&dest)
        .schema()
        .await
        .unwrap()
        .expect("the Delta table exists");
    let type_of = |c: &str| schema.field_with_name(c).unwrap().data_type().to_string();
    assert_eq!(type_of("id"), "Int64");
    assert_eq!(type_of("big"), "Decimal128(38, 0)");
    assert_eq!(type_of("amount"), "Decimal128(12, 2)");
    assert_eq!(type_of("ntz"), "Timestamp(µs)");
    assert_eq!(type_of("tz"), "Timestamp(µs, \"UTC\")");

    let columns: Vec<(&str, String, Canon)> = vec![
        ("id", "CAST(ID AS VARCHAR)".into(), Canon::Text),
        ("big", "CAST(BIG AS VARCHAR)".into(), Canon::Decimal),
        ("amount", "CAST(AMOUNT AS VARCHAR)".into(), Canon::Decimal),
        ("precise", "CAST(PRECISE AS VARCHAR)".into(), Canon::Decimal),
        ("f", "CAST(F AS VARCHAR)".into(), Canon::Float64),
        ("s", "S".into(), Canon::Text),
        ("b", "LOWER(HEX_ENCODE(B))".into(), Canon::Text),
        (
            "flag",
            "CASE WHEN FLAG THEN 'true' WHEN NOT FLAG THEN 'false' END".into(),
            Canon::Text,
        ),
        ("d", "CAST(D AS VARCHAR)".into(), Canon::Text),
        ("t", "CAST(T AS VARCHAR)".into(), Canon::Text),
        ("ntz", micros("NTZ"), Canon::Text),
        ("ltz", micros("LTZ"), Canon::Text),
        ("tz", micros("TZ"), Canon::Text),
        ("v", "CAST(V AS VARCHAR)".into(), Canon::Text),
        ("o", "CAST(O AS VARCHAR)".into(), Canon::Text),
        ("a", "CAST(A AS VARCHAR)".into(), Canon::Text),
    ];
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let kinds: Vec<Canon> = columns.iter().map(|c| c.2).collect();
    let exprs = columns
        .iter()
        .map(|c| c.1.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    sf.compare(
        &dest,
        &format!("SELECT {exprs} FROM S.ALL_TYPES ORDER BY ID"),
        &names,
        &kinds,
    )
    .await;
}

#[tokio::test]
async fn every_strategy_once_on_snowflake_with_result_chunks() {
    let Some(sf) = Sf::new("strategies").await else {
        return;
    };
    sf.exec(
        "CREATE TABLE S.EVENTS (ID NUMBER(18,0), V VARCHAR, CHANGED_AT TIMESTAMP_NTZ);
         INSERT INTO S.EVENTS SELECT SEQ4() + 1, 'v' || (SEQ4() + 1), DATEADD(MINUTE, SEQ4() + 1, '2024-01-01 00:00:00'::TIMESTAMP_NTZ)
           FROM TABLE(GENERATOR(ROWCOUNT => 2500))",
    )
    .await;
    // Results past 1000 rows come back in chunks, as Snowflake sends large results.
    let all = "SELECT CAST(ID AS VARCHAR), V FROM S.EVENTS ORDER BY ID";
    let result = sf.client.query(all).await.unwrap();
    assert_eq!(
        result.chunks.len(),
        2,
        "the emulator splits 2500 rows into 1000 + 2 chunks"
    );
    let kinds = [Canon::Text, Canon::Text];
    let cols = ["id", "v"];
    let t = sf
        .load_every_strategy_once(&EveryStrategy {
            connection: "sf",
            source: "s.events",
            dest: "bronze.sf",
            key: "ID",
            at: "CHANGED_AT",
            window: "20 minutes",
            now: "2024-01-02T17:40:00Z",
            chunk_column: "ID",
            chunk_size: "1000",
        })
        .await;
    for dest in t.whole() {
        sf.compare(dest, all, &cols, &kinds).await;
    }
    sf.compare(
        &t.rolling,
        "SELECT CAST(ID AS VARCHAR), V FROM S.EVENTS WHERE ID > 2480 ORDER BY ID",
        &cols,
        &kinds,
    )
    .await;

    sf.exec("UPDATE S.EVENTS SET V = 'changed', CHANGED_AT = '2024-03-01 00:00:00.25' WHERE ID = 5; INSERT INTO S.EVENTS VALUES (2501, 'new', '2024-03-01 00:00:01')")
        .await;
    let second = sf
        .engine
        .load(LoadRequest::new(&t.incremental, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (second.rows.read, second.rows.updated, second.rows.inserted),
        (2, 1, 1)
    );
    assert_eq!(
        second.watermark_after.as_deref(),
        Some("2024-03-01 00:00:01")
    );
    sf.compare(&t.incremental, all, &cols, &kinds).await;
    let appended = sf
        .engine
        .load(LoadRequest::new(&t.append_only, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(appended.rows.read, 1, "only the new id is appended");
}

/// A source query with a join, a cast and a `WHERE`, loaded incrementally twice: typed from its
/// `LIMIT 0` rowtype, the watermark filter wraps it.
#[tokio::test]
async fn incremental_source_query_on_snowflake() {
    let Some(sf) = Sf::new("query").await else {
        return;
    };
    sf.exec(
        "CREATE TABLE S.KINDS (K NUMBER(9,0), LABEL VARCHAR);
         INSERT INTO S.KINDS VALUES (0, 'even'), (1, 'odd');
         CREATE TABLE S.EVENTS (ID NUMBER(18,0), V VARCHAR, CHANGED_AT TIMESTAMP_NTZ);
         INSERT INTO S.EVENTS SELECT SEQ4() + 1, 'v' || (SEQ4() + 1), DATEADD(MINUTE, SEQ4() + 1, '2024-01-01 00:00:00'::TIMESTAMP_NTZ)
           FROM TABLE(GENERATOR(ROWCOUNT => 50))",
    )
    .await;
    let query = "SELECT E.ID, K.LABEL, CAST(E.ID * 2 AS NUMBER(20,0)) AS TWICE, E.CHANGED_AT
                   FROM S.EVENTS E JOIN S.KINDS K ON K.K = MOD(E.ID, 2)
                  WHERE E.ID <= 40";
    let dest = sf
        .add_on(
            "sf",
            "s.events_labelled",
            "bronze.sf.events_labelled",
            LoadStrategy::Incremental,
            |s| {
                s.source_query = Some(query.into());
                s.primary_keys = vec!["ID".into()];
                s.incremental_column = Some("CHANGED_AT".into());
            },
        )
        .await;
    let all = format!(
        "SELECT CAST(ID AS VARCHAR), LABEL, CAST(TWICE AS VARCHAR) FROM ({query}) Q ORDER BY Q.ID"
    );
    let (cols, kinds) = (
        ["id", "label", "twice"],
        [Canon::Text, Canon::Text, Canon::Decimal],
    );
    let first = sf
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(first.rows.read, 40);
    sf.compare(&dest, &all, &cols, &kinds).await;
    sf.exec(
        "UPDATE S.EVENTS SET CHANGED_AT = '2024-03-01 00:00:00' WHERE ID IN (5, 45);
         UPDATE S.KINDS SET LABEL = 'uneven' WHERE K = 1",
    )
    .await;
    let second = sf
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(
        (second.rows.read, second.rows.updated),
        (1, 1),
        "row 5 only: 45 is outside the query"
    );
    let labels = sf
        .delta_rows(&dest, &["id", "label"], &[Canon::Text, Canon::Text])
        .await;
    assert_eq!(
        labels[4][1].as_deref(),
        Some("uneven"),
        "row 5 was read again"
    );
    assert_eq!(
        labels[2][1].as_deref(),
        Some("odd"),
        "row 3's watermark did not move"
    );
}

/// `column_types: string` reads Snowflake's own `TO_VARCHAR` of each value.
#[tokio::test]
async fn columns_load_as_snowflake_text_with_column_types() {
    let Some(sf) = Sf::new("coltypes").await else {
        return;
    };
    sf.exec(
        "CREATE TABLE S.MEASURES (ID NUMBER(9,0), AMOUNT NUMBER(38,10), RATIO FLOAT);
         INSERT INTO S.MEASURES VALUES (1, 1234567890123456789012345678.0123456789, 0.5), (2, -0.5, NULL)",
    )
    .await;
    let dest = sf
        .add_on(
            "sf",
            "s.measures",
            "bronze.sf.measures",
            LoadStrategy::Full,
            |s| {
                s.column_types = [("AMOUNT".to_string(), "string".to_string())].into();
            },
        )
        .await;
    let report = sf
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(report.rows.read, 2);
    let (cols, kinds) = (["id", "amount"], [Canon::Text, Canon::Text]);
    sf.compare(
        &dest,
        "SELECT CAST(ID AS VARCHAR), TO_VARCHAR(AMOUNT) FROM S.MEASURES ORDER BY ID",
        &cols,
        &kinds,
    )
    .await;
    let schema = sf.destination(&dest).schema().await.unwrap().unwrap();
    assert_eq!(
        schema.field_with_name("amount").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8
    );
}

#[tokio::test]
async fn empty_snowflake_table_loads_its_schema_and_no_rows() {
    let Some(sf) = Sf::new("empty").await else {
        return;
    };
    sf.exec(
        "CREATE TABLE S.NOTHING (ID NUMBER(9,0), AMOUNT NUMBER(10,3), CREATED_AT TIMESTAMP_TZ)",
    )
    .await;
    sf.load_empty("sf", "s.nothing", "bronze.sf.nothing").await;
}

#[tokio::test]
async fn key_pair_login_reads_the_key_by_reference() {
    let Some(base) = base_url() else {
        return;
    };
    let Some(sf) = Sf::new("keypair").await else {
        return;
    };
    sf.exec("CREATE TABLE S.K (ID NUMBER(9,0)); INSERT INTO S.K VALUES (1), (2)")
        .await;
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key.path(),
        include_str!("../../../sources/src/snowflake/testdata/key_aes256.p8"),
    )
    .unwrap();
    let mut pem = sf_connection("sfk", "snowflake_pem".parse().unwrap(), &base, &sf.database);
    pem.options.insert(
        "private_key".into(),
        format!("file:{}", key.path().display()),
    );
    pem.options.insert(
        "private_key_passphrase".into(),
        "env:DATALOADER_TEST_SF_PASSPHRASE".into(),
    );
    std::env::set_var("DATALOADER_TEST_SF_PASSPHRASE", "pass phrase!");
    let source = dataloader_sources::connect(&pem).await.unwrap();
    assert!(source
        .server_version()
        .await
        .unwrap()
        .starts_with("Snowflake "));

    std::env::set_var("DATALOADER_TEST_SF_PASSPHRASE_WRONG", "not it");
    pem.options.insert(
        "private_key_passphrase".into(),
        "env:DATALOADER_TEST_SF_PASSPHRASE_WRONG".into(),
    );
    let Err(error) = dataloader_sources::connect(&pem).await else {
        panic!("a wrong passphrase was accepted");
    };
    let message = error.to_string();
    assert!(message.contains("wrong passphrase"), "{message}");
    assert!(!message.contains("not it"), "{message}");
}
