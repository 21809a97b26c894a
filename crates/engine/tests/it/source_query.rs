//! Tables whose source is a `source_query`, on the real PostgreSQL: the strategies' filters,
//! probes and parallel ranges wrap the query, and the Delta table equals the query's result.

use dataloader_core::{LoadStrategy, Probe, ReadRequest, RunStatus, TableSpec, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{arrow_rows, assert_same_rows, pg_rows, Canon};

use crate::{spec, Harness};

const SOURCE: &str = "
    CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, updated_at timestamp(6) NOT NULL);
    CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
        amount numeric(10,2), status text NOT NULL, spot point, updated_at timestamp(6) NOT NULL);
    INSERT INTO customers SELECT g, 'customer ' || g, timestamp '2024-01-01' FROM generate_series(1, 10) g;
    INSERT INTO orders SELECT g, 1 + g % 10, g * 1.25, CASE WHEN g % 7 = 0 THEN 'cancelled' ELSE 'open' END,
        point(g, -g), timestamp '2024-01-01' + g * interval '1.000001 second' FROM generate_series(1, 200) g;";

/// A join, casts (one of a type DataLoader cannot map as it is), a WHERE, and a watermark that
/// moves when either side of the join changes.
const QUERY: &str = "SELECT o.id, c.name AS customer, o.amount::numeric(12,3) AS amount,
       o.spot::text AS spot, GREATEST(o.updated_at, c.updated_at) AS updated_at
  FROM orders o JOIN customers c ON c.id = o.customer_id
 WHERE o.status <> 'cancelled' -- a trailing comment";

const COLUMNS: [&str; 5] = ["id", "customer", "amount", "spot", "updated_at"];
const KINDS: [Canon; 5] = [
    Canon::Text,
    Canon::Text,
    Canon::Decimal,
    Canon::Text,
    Canon::Text,
];

/// The Delta table holds exactly the query's rows, value for value.
async fn compare(h: &Harness, dest: &dataloader_core::TargetTable) {
    let source = pg_rows(
        &h.source.client,
        &format!(
            "SELECT id::text, customer, amount::text, spot,
                    (extract(epoch from updated_at) * 1000000)::bigint::text
               FROM ({QUERY}\n) q ORDER BY q.id"
        ),
        &KINDS,
    )
    .await;
    let batches = h.destination(dest).read_all(&["id"]).await.unwrap();
    assert_same_rows(&source, &arrow_rows(&batches, &COLUMNS, &KINDS), &COLUMNS);
}

fn query_spec(dest: &str, strategy: LoadStrategy) -> TableSpec {
    let mut s = spec("orders_enriched", dest, strategy);
    s.source_query = Some(QUERY.into());
    s
}

async fn load(h: &Harness, dest: &dataloader_core::TargetTable) -> dataloader_engine::LoadReport {
    h.engine
        .load(LoadRequest::new(dest, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{dest}: {}", e.error))
}

#[tokio::test]
async fn incremental_query_with_a_join_a_cast_and_a_where_reads_exactly_the_changed_rows() {
    let h = Harness::new("sq_incr").await;
    h.source.client.batch_execute(SOURCE).await.unwrap();

    // The table as it is cannot be loaded: `point` has no Delta type, and the error says how.
    let plain = h
        .add_table(
            "public.orders",
            "bronze.pg.orders",
            LoadStrategy::Full,
            &[],
            None,
        )
        .await;
    let refused = h
        .engine
        .load(LoadRequest::new(&plain, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        refused.contains("column \"spot\" has type point")
            && refused.contains("set source_query to a SELECT that casts it"),
        "{refused}"
    );

    let mut s = query_spec("bronze.pg.orders_enriched", LoadStrategy::Incremental);
    s.primary_keys = vec!["id".into()];
    s.incremental_column = Some("updated_at".into());
    let dest = h.add_spec(&s).await;
    let first = load(&h, &dest).await;
    // 200 orders, 28 of them cancelled.
    assert_eq!((first.rows.read, first.rows.inserted), (172, 172));
    assert_eq!(
        first.watermark_after.as_deref(),
        Some("2024-01-01 00:03:20.0002")
    );
    compare(&h, &dest).await;
    let schema = h.destination(&dest).schema().await.unwrap().unwrap();
    assert_eq!(
        schema.field_with_name("amount").unwrap().data_type(),
        &arrow::datatypes::DataType::Decimal128(12, 3),
        "the query's cast decides the type"
    );

    // New orders (one cancelled), updated orders, and a renamed customer whose orders the
    // watermark on GREATEST(...) picks up though the orders themselves did not change.
    h.source
        .client
        .batch_execute(
            "INSERT INTO orders SELECT g, 1, g, CASE WHEN g = 205 THEN 'cancelled' ELSE 'open' END,
                 NULL, timestamp '2024-02-01' + g * interval '1 second' FROM generate_series(201, 205) g;
             UPDATE orders SET amount = amount + 0.01, updated_at = timestamp '2024-03-01 00:00:00.000007'
              WHERE id IN (10, 20, 30);
             UPDATE customers SET name = 'renamed', updated_at = timestamp '2024-03-02' WHERE id = 4;",
        )
        .await
        .unwrap();
    let renamed: i64 = h
        .source
        .client
        .query_one(
            "SELECT count(*) FROM orders WHERE customer_id = 4 AND status <> 'cancelled'
                AND id NOT IN (10, 20, 30)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let second = load(&h, &dest).await;
    assert_eq!(
        second.rows.read,
        4 + 3 + renamed as u64,
        "only the new, updated and renamed rows the query returns"
    );
    assert_eq!(
        (second.rows.inserted, second.rows.updated),
        (4, 3 + renamed as u64)
    );
    assert_eq!(
        second.watermark_after.as_deref(),
        Some("2024-03-02 00:00:00")
    );
    compare(&h, &dest).await;
    let row = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(row.loaded_from.as_deref(), Some("pg:orders_enriched"));
}

#[tokio::test]
async fn a_query_is_described_as_its_table_is() {
    let h = Harness::new("sq_types").await;
    h.source
        .client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('ok', 'meh');
             CREATE TABLE every_type (id int PRIMARY KEY, a smallint, b bigint, c real, d double precision,
                 e boolean, f text, g varchar(5), h numeric(12,2), i numeric, j date, k timestamp(3),
                 l timestamptz, m time, n interval, o uuid, p jsonb, q bytea, r int[], s mood, t char(3));",
        )
        .await
        .unwrap();
    let source = dataloader_sources::connect(&h.store.require_connection("pg").await.unwrap())
        .await
        .unwrap();
    let table = source
        .describe(&dataloader_core::SourceObject::Table(
            dataloader_core::SourceTable::parse("every_type").unwrap(),
        ))
        .await
        .unwrap();
    let mut s = spec("every_type", "bronze.pg.every_type", LoadStrategy::Full);
    s.source_query = Some("SELECT * FROM every_type".into());
    let query = source.describe(&s.source_object()).await.unwrap();
    assert_eq!(table.column_names(), query.column_names());
    for (t, q) in table.columns.iter().zip(&query.columns) {
        assert_eq!(
            (&t.native_type, &t.data_type),
            (&q.native_type, &q.data_type),
            "{}",
            t.name
        );
    }
    assert_eq!(table.primary_key, vec!["id"]);
    assert!(query.primary_key.is_empty(), "a query declares no key");

    // Two columns of one name cannot be read by name.
    s.source_query = Some("SELECT e.id, x.id FROM every_type e JOIN every_type x USING (a)".into());
    let twice = source.describe(&s.source_object()).await.unwrap_err();
    assert!(
        twice
            .to_string()
            .contains("returns more than one column named \"id\": give each its own alias"),
        "{twice}"
    );
    // The server's own message for a query it cannot run.
    s.source_query = Some("SELECT nope FROM every_type".into());
    let wrong = source.describe(&s.source_object()).await.unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "connection \"pg\", every_type (source query): describe the source query failed: column \"nope\" does not exist"
    );
}

#[tokio::test]
async fn check_and_load_probes_and_parallel_reads_wrap_the_query() {
    let h = Harness::new("sq_check").await;
    h.source.client.batch_execute(SOURCE).await.unwrap();

    // row_count of the query, not of the table: a cancelled order changes nothing.
    let check = h
        .add_spec(&query_spec("bronze.pg.checked", LoadStrategy::CheckAndLoad))
        .await;
    let first = load(&h, &check).await;
    assert_eq!((first.status, first.rows.read), (RunStatus::Succeeded, 172));
    assert_eq!(load(&h, &check).await.status, RunStatus::Skipped);
    h.source
        .client
        .batch_execute(
            "INSERT INTO orders VALUES (300, 1, 1, 'cancelled', NULL, timestamp '2024-05-01')",
        )
        .await
        .unwrap();
    assert_eq!(
        load(&h, &check).await.status,
        RunStatus::Skipped,
        "the query leaves the cancelled order out"
    );
    h.source
        .client
        .batch_execute(
            "INSERT INTO orders VALUES (301, 1, 1, 'open', NULL, timestamp '2024-05-01')",
        )
        .await
        .unwrap();
    let changed = load(&h, &check).await;
    assert_eq!(
        (changed.status, changed.rows.read),
        (RunStatus::Succeeded, 173)
    );
    compare(&h, &check).await;

    // A parallel whole read: key ranges probed (MIN/MAX) and read over the query.
    let mut s = query_spec("bronze.pg.parallel", LoadStrategy::Full);
    s.primary_keys = vec!["id".into()];
    s.parallelism = Some("4".into());
    let parallel = h.add_spec(&s).await;
    let source = dataloader_sources::connect(&h.store.require_connection("pg").await.unwrap())
        .await
        .unwrap();
    let object = s.source_object();
    let schema = source.describe(&object).await.unwrap();
    for (probe, expected) in [
        (Probe::Min("id".into()), "1"),
        (Probe::Max("id".into()), "301"),
        (Probe::RowCount, "173"),
        (Probe::NullCount("spot".into()), "1"),
    ] {
        let value = source.probe(&object, &schema, &probe).await.unwrap();
        assert_eq!(
            value.map(|v| v.value).as_deref(),
            Some(expected),
            "{probe:?}"
        );
    }
    let request = ReadRequest {
        object,
        columns: schema.columns.clone(),
        filter: None,
        watermark: None,
        batch_size: 100,
    };
    let ranges = dataloader_engine::partition::ranges(&source, &request, &schema, &s, None)
        .await
        .unwrap()
        .expect("a parallel read");
    assert_eq!(ranges.len(), 4);
    let report = load(&h, &parallel).await;
    assert_eq!(
        (report.status, report.rows.read),
        (RunStatus::Succeeded, 173)
    );
    compare(&h, &parallel).await;
}

#[tokio::test]
async fn a_query_that_would_write_is_refused() {
    let h = Harness::new("sq_write").await;
    h.source.client.batch_execute(SOURCE).await.unwrap();

    // Refused when the table is added: not a SELECT.
    let mut s = spec("orders", "bronze.pg.deleting", LoadStrategy::Full);
    s.source_query = Some("DELETE FROM orders RETURNING id".into());
    let refused = h
        .store
        .insert_table(&s, chrono::Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with(
            "source_query: must be one SELECT (or WITH … SELECT) statement that only reads: it starts with \"delete\""
        ),
        "{refused}"
    );

    // A SELECT that calls a function that writes passes the words, not the server: the read
    // runs in a read-only transaction.
    h.source
        .client
        .batch_execute(
            "CREATE TABLE audit (n int);
             CREATE FUNCTION noisy(x bigint) RETURNS bigint LANGUAGE plpgsql
                 AS $$ BEGIN INSERT INTO audit VALUES (1); RETURN x; END $$;",
        )
        .await
        .unwrap();
    s.source_query = Some("SELECT noisy(id) AS id, status FROM orders".into());
    let dest = h.add_spec(&s).await;
    let failed = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(failed.contains("read-only transaction"), "{failed}");
    assert_eq!(h.destination(&dest).version().await.unwrap(), None);
    let written: i64 = h
        .source
        .client
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 0);
}
