//! Per-column type overrides (`column_types`) on the real PostgreSQL and MariaDB: a column no
//! Delta type holds (a 42-digit `numeric`, a `point`, a MariaDB `DECIMAL(65,0)`) loads as the
//! source's exact text, a narrow column loads widened, and an override that would lose values
//! stops the load before it reads.

use arrow::datatypes::DataType;
use dataloader_core::{LoadStrategy, TableSpec, TargetTable, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{assert_same_rows, pg_rows, Canon};

use crate::mysql::My;
use crate::{keyed, spec, Harness, Lake};

const SOURCE: &str = "
    CREATE TABLE measures (id int PRIMARY KEY, free_num numeric, small int, amount numeric(10,2),
        spot point, updated_at timestamp(6) NOT NULL);
    INSERT INTO measures VALUES
        (1, 123456789012345678901234567890123456789012, 7, 12.34, point(1, 2), '2024-01-01 00:00:01'),
        (2, -0.000000000000000000000000000000000000000001, -2147483648, -99999999.99, NULL, '2024-01-01 00:00:02'),
        (3, NULL, NULL, NULL, point(-1.5, 0), '2024-01-01 00:00:03'),
        (4, 1e100, 2147483647, 0, point(0, 0), '2024-01-01 00:00:04');";

const COLUMNS: [&str; 5] = ["id", "free_num", "small", "amount", "spot"];
const KINDS: [Canon; 5] = [
    Canon::Text,
    Canon::Text,
    Canon::Text,
    Canon::Decimal,
    Canon::Text,
];

fn overrides(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect()
}

/// The Delta table holds PostgreSQL's own text of every overridden value.
async fn compare_pg(h: &Harness, dest: &TargetTable) {
    let source = pg_rows(
        &h.source.client,
        "SELECT id::text, free_num::text, small::text, amount::text, spot::text
           FROM measures ORDER BY id",
        &KINDS,
    )
    .await;
    assert_same_rows(
        &source,
        &h.delta_rows(dest, &COLUMNS, &KINDS).await,
        &COLUMNS,
    );
}

async fn load_error(lake: &Lake, dest: &TargetTable) -> String {
    lake.engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string()
}

#[tokio::test]
async fn columns_no_delta_type_holds_load_as_exact_text_and_narrow_ones_widened() {
    let h = Harness::new("ct_pg").await;
    h.source.client.batch_execute(SOURCE).await.unwrap();

    // As they are, the 42-digit value and the point cannot be loaded.
    let mut plain = spec("public.measures", "bronze.pg.plain", LoadStrategy::Full);
    plain.column_types = overrides(&[("spot", "string")]);
    let plain = h.add_spec(&plain).await;
    let refused = load_error(&h, &plain).await;
    assert!(refused.contains("free_num"), "{refused}");

    let mut s = keyed(
        "public.measures",
        "bronze.pg.measures",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    s.column_types = overrides(&[
        ("free_num", "string"),
        ("spot", "string"),
        ("small", "bigint"),
        ("amount", "decimal(20,4)"),
    ]);
    let dest = h.add_spec(&s).await;
    let first = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(first.rows.read, 4);
    compare_pg(&h, &dest).await;
    let schema = h.destination(&dest).schema().await.unwrap().unwrap();
    let type_of = |c: &str| schema.field_with_name(c).unwrap().data_type().clone();
    assert_eq!(type_of("free_num"), DataType::Utf8);
    assert_eq!(type_of("spot"), DataType::Utf8);
    assert_eq!(type_of("small"), DataType::Int64);
    assert_eq!(type_of("amount"), DataType::Decimal128(20, 4));

    // An incremental run reads the text through the strategy's filter, and merges by key.
    h.source
        .client
        .batch_execute(
            "UPDATE measures SET free_num = free_num * 10 + 1, updated_at = '2024-02-01' WHERE id = 1;
             INSERT INTO measures VALUES (5, 0.1234567890123456789012345678901234567890123, 5, 1.5,
                 point(5, 5), '2024-02-02');",
        )
        .await
        .unwrap();
    let second = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(
        (second.rows.read, second.rows.inserted, second.rows.updated),
        (2, 1, 1)
    );
    compare_pg(&h, &dest).await;
}

#[tokio::test]
async fn an_override_that_would_lose_values_or_names_no_column_is_refused() {
    let h = Harness::new("ct_bad").await;
    h.source.client.batch_execute(SOURCE).await.unwrap();
    let table = |dest: &str, pairs: &[(&str, &str)]| {
        let mut s: TableSpec = spec("public.measures", dest, LoadStrategy::Full);
        s.column_types = overrides(pairs);
        s
    };

    let narrowing = h
        .add_spec(&table(
            "bronze.pg.narrow",
            &[
                ("free_num", "string"),
                ("spot", "string"),
                ("amount", "int"),
            ],
        ))
        .await;
    let refused = load_error(&h, &narrowing).await;
    assert!(
        refused.contains("column \"amount\" is numeric(10,2)")
            && refused.contains("load it as string"),
        "{refused}"
    );

    let missing = h
        .add_spec(&table("bronze.pg.missing", &[("no_such", "string")]))
        .await;
    let refused = load_error(&h, &missing).await;
    assert!(
        refused.contains("column_types column \"no_such\" not found"),
        "{refused}"
    );
    for dest in [&narrowing, &missing] {
        assert!(
            h.destination(dest).schema().await.unwrap().is_none(),
            "{dest}: nothing committed"
        );
    }

    // A watermark column keeps its type: text would sort differently in the source.
    let mut watermark = keyed(
        "public.measures",
        "bronze.pg.wm",
        LoadStrategy::Incremental,
        "id",
        "updated_at",
    );
    watermark.column_types = overrides(&[("updated_at", "string")]);
    let refused = watermark.validate().unwrap_err().to_string();
    assert!(refused.contains("cannot load as string"), "{refused}");
}

#[tokio::test]
async fn mariadb_decimal_wider_than_delta_loads_as_exact_text() {
    let my = My::new("ct_my").await;
    my.db.exec(
        "CREATE TABLE wide (id INT PRIMARY KEY, big DECIMAL(65,0), frac DECIMAL(65,30), n SMALLINT);
         INSERT INTO wide VALUES
            (1, 123456789012345678901234567890123456789012, 12345678901234567890.123456789012345678901234567890, 1),
            (2, -99999999999999999999999999999999999999999999999999999999999999999, 0, -32768),
            (3, NULL, NULL, NULL);",
    )
    .await;
    let lake: &Lake = &my;

    // As it is, DECIMAL(65,0) has no Delta type.
    let plain = lake
        .add_on("my", "wide", "bronze.my.plain", LoadStrategy::Full, |_| {})
        .await;
    let refused = load_error(lake, &plain).await;
    assert!(
        refused.contains("column \"big\" has type decimal(65,0)"),
        "{refused}"
    );

    let dest = lake
        .add_on("my", "wide", "bronze.my.wide", LoadStrategy::Full, |s| {
            s.column_types = overrides(&[("big", "string"), ("frac", "string"), ("n", "bigint")]);
        })
        .await;
    let report = lake
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(report.rows.read, 3);
    let columns = ["id", "big", "frac", "n"];
    let kinds = [Canon::Text; 4];
    my.compare(
        &dest,
        "SELECT CAST(id AS CHAR), CAST(big AS CHAR), CAST(frac AS CHAR), CAST(n AS CHAR)
           FROM wide ORDER BY id",
        &columns,
        &kinds,
    )
    .await;
    let schema = lake.destination(&dest).schema().await.unwrap().unwrap();
    assert_eq!(
        schema.field_with_name("n").unwrap().data_type(),
        &DataType::Int64
    );
}
