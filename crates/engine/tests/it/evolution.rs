//! Schema evolution against a real source: each change applied or refused before writing,
//! and recorded in the run's history row.

use dataloader_core::{LoadStrategy, SchemaEvolution, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{arrow_rows, Canon};

use crate::{spec, Harness};

async fn incremental(h: &Harness, dest: &str) -> dataloader_core::TargetTable {
    let mut s = spec("public.t", dest, LoadStrategy::Incremental);
    s.primary_keys = vec!["id".into()];
    s.incremental_column = Some("seq".into());
    h.add_spec(&s).await
}

#[tokio::test]
async fn added_and_dropped_columns_evolve_the_table() {
    let h = Harness::new("evo_add").await;
    h.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, seq int NOT NULL, old text); INSERT INTO t VALUES (1, 1, 'x');")
        .await
        .unwrap();
    let dest = incremental(&h, "bronze.pg.t").await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    h.source
        .client
        .batch_execute("ALTER TABLE t ADD COLUMN extra numeric(5,1); ALTER TABLE t DROP COLUMN old; INSERT INTO t VALUES (2, 2, 4.5);")
        .await
        .unwrap();
    let report = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        report.schema_changes,
        vec![
            "column old is no longer in the source: kept, NULL in new rows".to_string(),
            "added column extra (Decimal128(5, 1))".to_string()
        ]
    );
    let run = h.store.run(report.run_id).await.unwrap().unwrap();
    assert!(run.schema_changes.unwrap().contains("added column extra"));
    let rows = h.destination(&dest).read_all(&["id"]).await.unwrap();
    let got = arrow_rows(
        &rows,
        &["id", "old", "extra"],
        &[Canon::Text, Canon::Text, Canon::Decimal],
    );
    assert_eq!(
        got[0],
        vec![Some("1".into()), Some("x".into()), None],
        "old rows keep their values, NULL in the new column"
    );
    assert_eq!(
        got[1],
        vec![Some("2".into()), None, Some("4.5".into())],
        "new rows NULL in the dropped column"
    );
}

#[tokio::test]
async fn widening_is_applied_by_full_loads_and_refused_with_the_remedy_otherwise() {
    let h = Harness::new("evo_widen").await;
    h.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, seq int NOT NULL, n int); INSERT INTO t VALUES (1, 1, 5);")
        .await
        .unwrap();
    let dest = incremental(&h, "bronze.pg.incr").await;
    let full = h
        .add_spec(&spec("public.t", "bronze.pg.full", LoadStrategy::Full))
        .await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    h.engine
        .load(LoadRequest::new(&full, Trigger::Manual))
        .await
        .unwrap();
    h.source
        .client
        .batch_execute(
            "ALTER TABLE t ALTER COLUMN n TYPE bigint; INSERT INTO t VALUES (2, 2, 9000000000);",
        )
        .await
        .unwrap();

    let version = h.destination(&dest).version().await.unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        err.contains("column \"n\" widened from Int32 to Int64 in the source; the Delta table cannot widen it in place: reload it with `dataloader load bronze.pg.incr --full-refresh`"),
        "{err}"
    );
    assert_eq!(
        h.destination(&dest).version().await.unwrap(),
        version,
        "nothing written"
    );

    let widened = h
        .engine
        .load(LoadRequest::new(&full, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        widened.schema_changes,
        vec!["column n widened from Int32 to Int64".to_string()]
    );
    let refreshed = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual).full_refresh(true))
        .await
        .unwrap();
    assert_eq!(refreshed.rows.read, 2);
    let rows = h.destination(&dest).read_all(&["id"]).await.unwrap();
    let got = arrow_rows(&rows, &["n"], &[Canon::Text]);
    assert_eq!(got[1][0].as_deref(), Some("9000000000"));
}

#[tokio::test]
async fn incompatible_changes_and_strict_tables_fail_before_writing() {
    let h = Harness::new("evo_strict").await;
    h.source
        .client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, seq int NOT NULL, code int); INSERT INTO t VALUES (1, 1, 5);")
        .await
        .unwrap();
    let dest = incremental(&h, "bronze.pg.t").await;
    let mut strict = spec("public.t", "bronze.pg.strict", LoadStrategy::Full);
    strict.schema_evolution = SchemaEvolution::Strict;
    let strict = h.add_spec(&strict).await;
    h.engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap();
    h.engine
        .load(LoadRequest::new(&strict, Trigger::Manual))
        .await
        .unwrap();

    h.source
        .client
        .batch_execute("ALTER TABLE t ADD COLUMN note text")
        .await
        .unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&strict, Trigger::Manual))
        .await
        .unwrap_err();
    assert!(
        err.error.to_string().contains(
            "schema_evolution is strict and the source changed: added column note (Utf8)"
        ),
        "{}",
        err.error
    );
    let run = h.store.run(err.run_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(run.error_class.as_deref(), Some("Schema"));

    h.source
        .client
        .batch_execute(
            "ALTER TABLE t ALTER COLUMN code TYPE text; INSERT INTO t VALUES (2, 2, 'A7', NULL)",
        )
        .await
        .unwrap();
    let version = h.destination(&dest).version().await.unwrap();
    let err = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        err.contains(
            "column \"code\" changed from Int32 to Utf8 in the source, which cannot be applied"
        ) && err.contains(&format!("dataloader load {dest} --full-refresh")),
        "{err}"
    );
    assert_eq!(h.destination(&dest).version().await.unwrap(), version);
    // The remedy it names works: a full refresh replaces the table with the new type.
    let refreshed = h
        .engine
        .load(LoadRequest::new(&dest, Trigger::Manual).full_refresh(true))
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert!(
        refreshed
            .schema_changes
            .contains(&"column code changed from Int32 to Utf8".to_string()),
        "{:?}",
        refreshed.schema_changes
    );
    let schema = h.destination(&dest).schema().await.unwrap().unwrap();
    assert_eq!(
        schema.field_with_name("code").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8
    );
}
