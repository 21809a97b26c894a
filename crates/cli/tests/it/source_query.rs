//! `source_query` through the CLI: `table add --source-query`, `table update`, `apply` with a
//! `source_query:` key, `export` round trips, and a query edited by hand to one that writes.

use crate::PgControl;

const SOURCE: &str = "
    CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(10,2),
        updated_at timestamptz NOT NULL);
    INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo');
    INSERT INTO orders SELECT g, 1 + g % 2, g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour'
        FROM generate_series(1, 30) g;";

const QUERY: &str = "SELECT o.id, c.name AS customer, o.updated_at FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.amount > 10";

/// The listed table loaded into `destination`.
fn listed(tables: &serde_json::Value, destination: &str) -> serde_json::Value {
    tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["destination"] == destination)
        .unwrap_or_else(|| panic!("{destination} is not listed: {tables}"))
        .clone()
}

#[tokio::test]
async fn table_add_and_apply_take_a_source_query_and_export_round_trips_it() {
    let pg = PgControl::new("cli_query", SOURCE).await;
    let run = |args: &[&str]| pg.run(args);
    let d = pg.dir.path();

    let added = run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "orders_named",
        "--dest",
        "bronze.pg.orders_named",
        "--source-query",
        QUERY,
        "--strategy",
        "incremental",
        "--primary-key",
        "id",
        "--incremental-column",
        "updated_at",
    ])
    .ok();
    assert!(
        added
            .stdout
            .contains("(table_id 1, incremental from pg:orders_named (source query))"),
        "{}",
        added.stdout
    );
    let shown = run(&["table", "show", "bronze.pg.orders_named"])
        .ok()
        .json();
    assert_eq!(shown["source_query"], QUERY);
    let loaded = run(&["load", "bronze.pg.orders_named", "--json"])
        .ok()
        .json();
    assert_eq!(
        loaded["rows_read"], 20,
        "orders 11 to 30: the query's WHERE"
    );
    assert_eq!(loaded["status"], "Succeeded");

    // Refused: a query that is not one reading SELECT.
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "orders",
        "--dest",
        "bronze.pg.deleting",
        "--source-query",
        "DELETE FROM orders",
    ])
    .fails_with("source_query: must be one SELECT (or WITH … SELECT) statement that only reads: it starts with \"delete\"");

    // apply: the table added above, and one whose query is a multi-line YAML block.
    let exported = run(&["export"]).ok().stdout;
    assert!(exported.contains("source_query:"), "{exported}");
    let file = format!(
        "tables:
  - source: orders_named
    connection: pg
    destination: bronze.pg.orders_named
    strategy: incremental
    primary_key: id
    incremental_column: updated_at
    source_query: \"{QUERY}\"
  - source: big_orders
    connection: pg
    destination: bronze.pg.big_orders
    strategy: full
    source_query: |
      SELECT id, amount
        FROM orders
       WHERE amount >= 25
"
    );
    std::fs::write(d.join("tables.yaml"), &file).unwrap();
    let plan = run(&["apply", "-f", "tables.yaml"]).ok();
    assert!(
        plan.stdout.contains(
            "+ create table bronze.pg.big_orders (full from pg:big_orders (source query))"
        ) && plan
            .stdout
            .contains("Plan: 1 to create, 0 to change, 0 to deactivate."),
        "{file}\n{}",
        plan.stdout
    );
    let tables = run(&["table", "list", "--json"]).ok().json();
    assert_eq!(
        listed(&tables, "bronze.pg.big_orders")["source_query"],
        "SELECT id, amount\n  FROM orders\n WHERE amount >= 25\n"
    );
    let big = run(&["load", "bronze.pg.big_orders", "--json"]).ok().json();
    assert_eq!(big["rows_read"], 6);

    // export → apply changes nothing, the multi-line query included.
    let exported = run(&["export"]).ok().stdout;
    std::fs::write(d.join("exported.yaml"), &exported).unwrap();
    let again = run(&["apply", "-f", "exported.yaml", "--dry-run"]).ok();
    assert!(
        again
            .stdout
            .contains("Plan: 0 to create, 0 to change, 0 to deactivate."),
        "{exported}\n{}",
        again.stdout
    );

    // A changed query is a change of the field; `table update --source-query none` reads the
    // table again.
    std::fs::write(
        d.join("tables.yaml"),
        file.replace("WHERE amount >= 25", "WHERE amount >= 20"),
    )
    .unwrap();
    let changed = run(&["apply", "-f", "tables.yaml", "--json"]).ok().json();
    assert_eq!(
        changed["changes"][0]["fields"][0]["field"], "source_query",
        "{changed}"
    );
    run(&[
        "table",
        "update",
        "bronze.pg.big_orders",
        "--source-query",
        "none",
    ])
    .ok();
    let tables = run(&["table", "list", "--json"]).ok().json();
    assert!(listed(&tables, "bronze.pg.big_orders")["source_query"].is_null());
}

/// A query edited with plain SQL into one that writes is refused when the load starts, before
/// it reads or commits anything; its run ends `Failed`.
#[tokio::test]
async fn a_query_edited_by_hand_to_write_is_refused_at_load() {
    let pg = PgControl::new("cli_query_edit", SOURCE).await;
    let run = |args: &[&str]| pg.run(args);
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "orders_named",
        "--dest",
        "bronze.pg.orders_named",
        "--source-query",
        QUERY,
    ])
    .ok();
    pg.control
        .client
        .batch_execute("UPDATE table_control SET source_query = 'SELECT 1; DELETE FROM orders'")
        .await
        .unwrap();
    let refused = run(&["load", "bronze.pg.orders_named"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(
            "error: source_query: must be one SELECT (or WITH … SELECT) statement that only reads: \";\" is not allowed"
        ),
        "{}",
        refused.stderr
    );
    let history = run(&["history", "bronze.pg.orders_named", "--json"])
        .ok()
        .json();
    assert_eq!(history[0]["status"], "Failed", "{history}");
    let left: i64 = pg
        .source
        .client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 30);
    assert!(!pg
        .dir
        .path()
        .join("lakehouse/bronze/pg/orders_named")
        .exists());
}
