use dataloader_core::{LoadStrategy, RunStatus, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{arrow_rows, assert_same_rows, pg_rows, Canon};

use crate::Harness;

/// Every mapped PostgreSQL type, NULLs in each, unicode, extremes; read back through
/// DataFusion and compared with the source row by row.
#[tokio::test]
async fn full_load_of_every_type_equals_the_source() {
    let h = Harness::new("full_types").await;
    h.source
        .client
        .batch_execute(
            r#"
            CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
            CREATE TABLE public.all_types (
                id int8 PRIMARY KEY,
                c_int2 int2, c_int4 int4, c_int8 int8,
                c_num numeric(12,2), c_num_wide numeric(38,10), c_num_free numeric,
                c_float4 float4, c_float8 float8, c_bool bool,
                c_text text, c_varchar varchar(20), c_char char(5), "CustomerName" text,
                c_date date, c_time time, c_timetz timetz, c_ts timestamp, c_tstz timestamptz,
                c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea,
                c_int_arr int4[], c_text_arr text[], c_mood mood
            );
            INSERT INTO all_types VALUES
              (1, 1, 2, 3, 12.34, 1.5, 42, 1.5, 2.25, true,
               'Zürich – 東京 🚀', 'O''Hara "q"', 'ab', 'Ann',
               '2024-02-29', '13:14:15.123456', '01:02:03+05:30', '2024-03-31 02:30:00.000001', '2024-03-31 02:30:00+02',
               '1 day 02:03:04.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', '\x00ff10',
               '{1,NULL,3}', '{"x","y z",NULL}', 'happy'),
              (2, -32768, 2147483647, -9223372036854775808, 9999999999.99, 9999999999999999999999999999.9999999999,
               12345678901234567890.123456789, 3.4028235e38, 1e308, false,
               '', '', '', '', '0001-01-01', '00:00:00', '23:59:59.999999-12', '1900-01-01 00:00:00.000001',
               '9999-12-31 23:59:59.999999+00', '-3 years', '00000000-0000-0000-0000-000000000000', '[]', '{}', '\x',
               '{}', '{}', 'sad'),
              (3, 32767, -2147483648, 9223372036854775807, -9999999999.99, -0.0000000001, -0.000000001,
               '-Infinity', 'NaN', NULL, E'line\nbreak\ttab \\ back', NULL, NULL, NULL,
               '9999-12-31', NULL, NULL, NULL, '1970-01-01 00:00:00+00', NULL, NULL, 'null', 'null', NULL,
               NULL, NULL, NULL),
              (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
            INSERT INTO all_types (id, c_int4, c_num, c_float8, c_text, c_ts, c_tstz, c_bool)
              SELECT g, g * 7, g * 1.25, g / 3.0, repeat('x', g % 50), timestamp '2024-01-01' + g * interval '1 second',
                     timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', g % 2 = 0
              FROM generate_series(5, 1000) g;
            "#,
        )
        .await
        .unwrap();
    let dest = h
        .add_table(
            "public.all_types",
            "bronze.pg.all_types",
            LoadStrategy::Full,
            &[],
            None,
        )
        .await;

    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.rows.read, 1000);
    assert_eq!(report.rows.written, 1000);
    assert_eq!(report.delta_version, Some(0));

    let columns: Vec<(&str, &str, Canon)> = vec![
        ("id", "id::text", Canon::Text),
        ("c_int2", "c_int2::text", Canon::Text),
        ("c_int4", "c_int4::text", Canon::Text),
        ("c_int8", "c_int8::text", Canon::Text),
        ("c_num", "c_num::text", Canon::Decimal),
        ("c_num_wide", "c_num_wide::text", Canon::Decimal),
        ("c_num_free", "c_num_free::text", Canon::Decimal),
        ("c_float4", "c_float4::text", Canon::Float32),
        ("c_float8", "c_float8::text", Canon::Float64),
        ("c_bool", "c_bool::text", Canon::Text),
        ("c_text", "c_text", Canon::Text),
        ("c_varchar", "c_varchar::text", Canon::Text),
        (
            "c_char",
            "CASE WHEN c_char IS NOT NULL THEN format('%s', c_char) END",
            Canon::Text,
        ),
        ("customer_name", "\"CustomerName\"", Canon::Text),
        ("c_date", "c_date::text", Canon::Text),
        ("c_time", "c_time::text", Canon::Text),
        ("c_timetz", "c_timetz::text", Canon::Text),
        (
            "c_ts",
            "(extract(epoch from c_ts) * 1000000)::bigint::text",
            Canon::Text,
        ),
        (
            "c_tstz",
            "(extract(epoch from c_tstz) * 1000000)::bigint::text",
            Canon::Text,
        ),
        ("c_interval", "c_interval::text", Canon::Text),
        ("c_uuid", "c_uuid::text", Canon::Text),
        ("c_json", "c_json::text", Canon::Text),
        ("c_jsonb", "c_jsonb::text", Canon::Text),
        ("c_bytea", "encode(c_bytea, 'hex')", Canon::Text),
        ("c_int_arr", "to_json(c_int_arr)::text", Canon::Text),
        ("c_text_arr", "to_json(c_text_arr)::text", Canon::Text),
        ("c_mood", "c_mood::text", Canon::Text),
    ];
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let kinds: Vec<Canon> = columns.iter().map(|c| c.2).collect();
    let exprs = columns.iter().map(|c| c.1).collect::<Vec<_>>().join(", ");
    h.source
        .client
        .batch_execute("SET intervalstyle = 'iso_8601'; SET extra_float_digits = 3")
        .await
        .unwrap();
    let source = pg_rows(
        &h.source.client,
        &format!("SELECT {exprs} FROM all_types ORDER BY all_types.id"),
        &kinds,
    )
    .await;
    let batches = h.destination(&dest).read_all(&["id"]).await.unwrap();
    let delta = arrow_rows(&batches, &names, &kinds);
    assert_same_rows(&source, &delta, &names);

    // Spot checks that the comparison itself would catch a difference.
    assert_eq!(source[0][10].as_deref(), Some("Zürich – 東京 🚀"));
    assert_eq!(
        delta[1][6].as_deref(),
        Some("12345678901234567890.123456789")
    );
    assert_eq!(delta[0][12].as_deref(), Some("ab   "));

    // Every row carries its run and load time.
    let run_ids = arrow_rows(&batches, &["_run_id"], &[Canon::Text]);
    assert!(run_ids
        .iter()
        .all(|r| r[0].as_deref() == Some(report.run_id.to_string().as_str())));

    // A second full load replaces, in one new version, rather than appends.
    h.source
        .client
        .batch_execute("DELETE FROM all_types WHERE id > 10")
        .await
        .unwrap();
    let second = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(second.delta_version, Some(1));
    assert_eq!(
        h.destination(&dest)
            .read_all(&["id"])
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        10
    );
}

#[tokio::test]
async fn values_delta_cannot_hold_fail_the_load_naming_the_column() {
    let h = Harness::new("full_nan").await;
    h.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, amount numeric); INSERT INTO t VALUES (1, 1), (2, 'NaN')")
        .await
        .unwrap();
    let dest = h
        .add_table("public.t", "bronze.pg.t", LoadStrategy::Full, &[], None)
        .await;
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err();
    let message = err.error.to_string();
    assert!(
        message.contains("column \"amount\"") && message.contains("NaN"),
        "{message}"
    );
    assert_eq!(
        h.destination(&dest).version().await.unwrap(),
        None,
        "no Delta commit"
    );
    let run = h.store.run(err.run_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error_class.as_deref(), Some("TypeMapping"));
}

#[tokio::test]
async fn an_empty_source_gives_an_empty_table_and_a_reload_empties_it() {
    let h = Harness::new("full_empty").await;
    h.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    let dest = h
        .add_table("public.t", "bronze.pg.t", LoadStrategy::Full, &[], None)
        .await;
    let first = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!((first.rows.read, first.delta_version), (0, Some(0)));
    assert!(h
        .destination(&dest)
        .read_all(&[])
        .await
        .unwrap()
        .iter()
        .all(|b| b.num_rows() == 0));

    h.source
        .client
        .batch_execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    assert_eq!(
        h.engine
            .load(LoadRequest::new(&dest, Trigger::Manual))
            .await
            .unwrap()
            .rows
            .written,
        2
    );
    h.source
        .client
        .batch_execute("DELETE FROM t")
        .await
        .unwrap();
    let emptied = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(emptied.delta_version, Some(2));
    let rows: usize = h
        .destination(&dest)
        .read_all(&[])
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 0, "a full load of an empty source empties the table");
}

/// A full load split into key ranges read at once on their own connections: every row once,
/// the gaps and both ends of the key included.
#[tokio::test]
async fn parallel_full_load_reads_every_row_once() {
    let h = Harness::new("parallel").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE wide (id int8 PRIMARY KEY, v text);
             INSERT INTO wide SELECT g * 3 - 5000, 'v' || g FROM generate_series(1, 10000) g WHERE g % 7 <> 0;
             INSERT INTO wide VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max')",
        )
        .await
        .unwrap();
    let dest = h
        .add_table(
            "public.wide",
            "bronze.pg.wide",
            LoadStrategy::Full,
            &["id"],
            None,
        )
        .await;
    let mut table = h.store.table_by_destination(&dest).await.unwrap().unwrap();
    table.spec.parallelism = Some("4".into());
    h.store
        .update_table_spec(table.table_id, &table.spec, chrono::Utc::now())
        .await
        .unwrap();

    // The plan: four ranges that cover the whole key space between them.
    let source = dataloader_sources::connect(&h.store.require_connection("pg").await.unwrap())
        .await
        .unwrap();
    let object = dataloader_core::SourceObject::Table(table.spec.source.clone());
    let schema = source.describe(&object).await.unwrap();
    let request = dataloader_core::ReadRequest {
        object,
        columns: schema.columns.clone(),
        filter: None,
        watermark: None,
        batch_size: 100,
    };
    let ranges =
        dataloader_engine::partition::ranges(&source, &request, &schema, &table.spec, None)
            .await
            .unwrap()
            .expect("a parallel read");
    assert_eq!(ranges.len(), 4);
    let with_limit =
        dataloader_engine::partition::ranges(&source, &request, &schema, &table.spec, Some(2))
            .await
            .unwrap()
            .expect("a parallel read");
    assert_eq!(with_limit.len(), 2, "max_connections bounds the ranges");

    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    let expected = pg_rows(
        &h.source.client,
        "SELECT id::text, v FROM wide ORDER BY wide.id",
        &[Canon::Text, Canon::Text],
    )
    .await;
    assert_eq!(report.rows.read as usize, expected.len());
    let batches = h.destination(&dest).read_all(&["id"]).await.unwrap();
    assert_same_rows(
        &expected,
        &arrow_rows(&batches, &["id", "v"], &[Canon::Text, Canon::Text]),
        &["id", "v"],
    );
}
