use dataloader_lake::DeltaDestination;
use dataloader_testkit::{arrow_rows, assert_same_rows, Canon};
use sqlx::{Connection, Row};

use crate::dataloader;

const COLUMNS: [&str; 6] = [
    "order_id",
    "customer_id",
    "amount",
    "status",
    "note",
    "updated_at",
];
const KINDS: [Canon; 6] = [
    Canon::Text,
    Canon::Text,
    Canon::Decimal,
    Canon::Text,
    Canon::Text,
    Canon::Text,
];

/// The demo's orders, as the SQLite source has them (timestamps as microseconds).
async fn source_orders(db: &std::path::Path) -> Vec<Vec<Option<String>>> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("SELECT OrderID, CustomerID, CAST(Amount AS TEXT), Status, Note, UpdatedAt FROM orders ORDER BY OrderID")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let ts: String = r.get(5);
            let micros = chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%d %H:%M:%S%.f")
                .unwrap()
                .and_utc()
                .timestamp_micros();
            vec![
                Some(r.get::<i64, _>(0).to_string()),
                Some(r.get::<i64, _>(1).to_string()),
                Some(dataloader_testkit::canon_decimal(&r.get::<String, _>(2))),
                r.get::<Option<String>, _>(3),
                r.get::<Option<String>, _>(4),
                Some(micros.to_string()),
            ]
        })
        .collect()
}

async fn assert_orders_match(dir: &std::path::Path) {
    let qs = dir.join("dataloader-quickstart");
    let url = format!("file://{}/lakehouse/bronze/demo/orders", qs.display());
    let batches = DeltaDestination::new(&url, "bronze.demo.orders")
        .unwrap()
        .read_all(&["order_id"])
        .await
        .unwrap();
    let delta = arrow_rows(&batches, &COLUMNS, &KINDS);
    assert_same_rows(
        &source_orders(&qs.join("demo-source.db")).await,
        &delta,
        &COLUMNS,
    );
}

#[tokio::test]
async fn quickstart_twice_loads_then_picks_up_exactly_the_changed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let first = dataloader(dir.path(), &["quickstart"]).ok();
    assert!(
        first.stdout.contains("bronze.demo.customers: Succeeded"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("bronze.demo.products: Succeeded"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("bronze.demo.orders: Succeeded")
            && first.stdout.contains("5000 rows read"),
        "{}",
        first.stdout
    );
    assert!(
        first.stderr.is_empty(),
        "no warnings on a clean run: {}",
        first.stderr
    );
    assert_orders_match(dir.path()).await;

    let second = dataloader(dir.path(), &["quickstart", "--json"]).ok();
    let json = second.json();
    let orders = &json["loads"][2];
    assert_eq!(orders["table"], "bronze.demo.orders");
    let updated = json["source_changes"]["orders_updated"].as_u64().unwrap();
    let inserted = json["source_changes"]["orders_inserted"].as_u64().unwrap();
    assert!(updated > 0 && inserted > 0);
    let read = orders["rows_read"].as_u64().unwrap();
    assert_eq!(
        read,
        updated + inserted,
        "the second load reads exactly the changed orders"
    );
    assert_eq!(orders["rows_inserted"].as_u64().unwrap(), inserted);
    assert_eq!(orders["rows_updated"].as_u64().unwrap(), updated);
    assert_eq!(
        json["loads"][0]["rows_read"], 500,
        "full tables reload whole"
    );
    assert_orders_match(dir.path()).await;

    // The control DB it made is usable from the CLI, as the quickstart tells the user.
    let qs = dir.path().join("dataloader-quickstart");
    let history = dataloader(
        &qs,
        &[
            "--control-db",
            "sqlite://dataloader.db",
            "history",
            "bronze.demo.orders",
            "--json",
        ],
    )
    .ok();
    let runs = history.json();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["rows_read"].as_u64().unwrap(), read);
    assert_eq!(runs[1]["rows_read"], 5000);
}
