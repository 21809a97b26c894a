//! `dataloader quickstart`: a demo that needs nothing but the binary. It makes a SQLite source
//! with three tables, a SQLite control database and a local lakehouse in one folder, registers
//! the tables and loads them. Run again, it first changes some demo rows, so the incremental
//! load shows it picks up exactly those.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;

use crate::app::App;
use crate::apply;
use crate::commands::load::{load_with_progress, summary_line};
use crate::print;

const CUSTOMERS: i64 = 500;
const PRODUCTS: i64 = 120;
const ORDERS: i64 = 5_000;

const TABLES_YAML: &str = r#"connections:
  demo:
    type: sqlite
    database: "{source}"
defaults:
  connection: demo
  destination: bronze.demo.{table}
tables:
  - source: customers
    strategy: full
    schedule: "0 3 * * *"
  - source: products
    strategy: full
    schedule: "0 3 * * 0"
  - source: orders
    strategy: incremental
    primary_key: [OrderID]
    incremental_column: UpdatedAt
    schedule: "*/15 * * * *"
"#;

/// A small deterministic generator, so every quickstart shows the same demo data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, modulo: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % modulo.max(1)
    }
}

async fn open_source(path: &Path) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

async fn create_demo_source(pool: &SqlitePool) -> Result<()> {
    let mut tx = pool.begin().await?;
    for ddl in [
        "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY, Name TEXT NOT NULL, Email TEXT, \
         Country CHAR(2), SignupDate DATE, IsActive BOOLEAN, CreditLimit DECIMAL(12,2))",
        "CREATE TABLE products (SKU TEXT PRIMARY KEY, Name TEXT NOT NULL, Price DECIMAL(10,2), \
         WeightKg REAL, CreatedAt DATETIME)",
        "CREATE TABLE orders (OrderID INTEGER PRIMARY KEY, CustomerID INTEGER NOT NULL, SKU TEXT, \
         Quantity INTEGER, Amount DECIMAL(12,2), Status TEXT, Note TEXT, OrderedAt DATETIME, \
         UpdatedAt DATETIME NOT NULL)",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await?;
    }
    let mut rng = Lcg(42);
    let countries = ["NL", "DE", "BE", "FR", "GB", "US", "ES", "IT"];
    let names = [
        "Jansen", "Müller", "Peeters", "Dubois", "Smith", "García", "Rossi", "Øberg", "李",
    ];
    let epoch = NaiveDate::from_ymd_opt(2025, 1, 1).context("date")?;
    for id in 1..=CUSTOMERS {
        let name = format!("{} {}", names[rng.next(names.len() as u64) as usize], id);
        sqlx::query("INSERT INTO customers VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(&name)
            .bind((rng.next(10) > 0).then(|| format!("customer{id}@example.com")))
            .bind(countries[rng.next(countries.len() as u64) as usize])
            .bind(
                (epoch + Duration::days(rng.next(600) as i64))
                    .format("%Y-%m-%d")
                    .to_string(),
            )
            .bind(rng.next(5) > 0)
            .bind(format!("{}.{:02}", rng.next(50_000), rng.next(100)))
            .execute(&mut *tx)
            .await?;
    }
    let start = epoch.and_hms_opt(8, 0, 0).context("time")?;
    for i in 1..=PRODUCTS {
        sqlx::query("INSERT INTO products VALUES ($1, $2, $3, $4, $5)")
            .bind(format!("SKU-{i:05}"))
            .bind(format!("Product {i}"))
            .bind(format!("{}.{:02}", 1 + rng.next(900), rng.next(100)))
            .bind((rng.next(5) > 0).then(|| rng.next(20_000) as f64 / 1000.0))
            .bind(fmt_ts(start + Duration::minutes(rng.next(500_000) as i64)))
            .execute(&mut *tx)
            .await?;
    }
    for id in 1..=ORDERS {
        let ordered = start + Duration::seconds(id * 6_000 + rng.next(3_000) as i64);
        let quantity = 1 + rng.next(9) as i64;
        sqlx::query("INSERT INTO orders VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(id)
            .bind(1 + rng.next(CUSTOMERS as u64) as i64)
            .bind(format!("SKU-{:05}", 1 + rng.next(PRODUCTS as u64)))
            .bind(quantity)
            .bind(format!(
                "{}.{:02}",
                quantity * (1 + rng.next(500) as i64),
                rng.next(100)
            ))
            .bind(["placed", "paid", "shipped", "delivered"][rng.next(4) as usize])
            .bind((rng.next(7) == 0).then_some("gift wrap, \"fragile\" ✓"))
            .bind(fmt_ts(ordered))
            .bind(fmt_ts(ordered + Duration::minutes(rng.next(600) as i64)))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn fmt_ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Changes 25 existing orders and adds 10 new ones, stamped now.
async fn change_demo_rows(pool: &SqlitePool) -> Result<(i64, i64)> {
    let now = fmt_ts(Utc::now().naive_utc());
    let mut tx = pool.begin().await?;
    let max_id: i64 = sqlx::query_scalar("SELECT MAX(OrderID) FROM orders")
        .fetch_one(&mut *tx)
        .await?;
    let seed = max_id as u64;
    let mut rng = Lcg(seed);
    let mut updated = 0;
    for _ in 0..25 {
        let id = 1 + rng.next(max_id as u64) as i64;
        updated += sqlx::query("UPDATE orders SET Status = 'returned', UpdatedAt = $2 WHERE OrderID = $1 AND UpdatedAt < $2")
            .bind(id)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
    }
    for id in max_id + 1..=max_id + 10 {
        sqlx::query(
            "INSERT INTO orders VALUES ($1, $2, 'SKU-00001', 1, '19.99', 'placed', NULL, $3, $3)",
        )
        .bind(id)
        .bind(1 + rng.next(CUSTOMERS as u64) as i64)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((updated, 10))
}

pub async fn run(dir: &Path, json: bool, batch_size: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::path::absolute(dir)?;
    let source_path = dir.join("demo-source.db");
    let fresh = !source_path.exists();
    let source = open_source(&source_path).await?;
    let changed = if fresh {
        create_demo_source(&source).await?;
        None
    } else {
        Some(change_demo_rows(&source).await?)
    };
    source.close().await;

    let control_db = format!("sqlite://{}", dir.join("dataloader.db").display());
    let lake_root = dir.join("lakehouse").display().to_string();
    let store = dataloader_store::open(&control_db).await?;
    store.migrate().await?;
    let yaml = TABLES_YAML.replace("{source}", &source_path.display().to_string());
    std::fs::write(dir.join("tables.yaml"), &yaml)?;
    let plan = apply::plan(store.as_ref(), apply::parse(&yaml)?).await?;
    plan.execute(store.as_ref(), None).await?;

    let app = App {
        store: store.clone(),
        catalog: Arc::new(dataloader_lake::PathCatalog::new(&lake_root)?),
        json,
        batch_size,
        lease: dataloader_engine::DEFAULT_LEASE,
    };
    if !json {
        println!("DataLoader quickstart in {}", dir.display());
        match changed {
            None => println!("  created the demo source {} (customers, products, orders)", source_path.display()),
            Some((updated, inserted)) => println!(
                "  changed the demo source: {updated} orders updated, {inserted} orders added — the incremental load should read exactly {} rows",
                updated + inserted
            ),
        }
        println!();
    }
    let mut reports = Vec::new();
    for dest in [
        "bronze.demo.customers",
        "bronze.demo.products",
        "bronze.demo.orders",
    ] {
        let dest = dataloader_core::TargetTable::parse(dest)?;
        let report = load_with_progress(&app, &dest, false).await?;
        if !json {
            println!("{}", summary_line(&report));
        }
        reports.push(report);
    }
    if json {
        let changed = changed.map(|(updated, inserted)| {
            serde_json::json!({"orders_updated": updated, "orders_inserted": inserted})
        });
        return print::json(&serde_json::json!({
            "dir": dir, "control_db": control_db, "lake_root": lake_root,
            "source_changes": changed, "loads": reports
        }));
    }
    let cd = format!("cd {}", dir.display());
    let exe = command_name();
    println!(
        "\nLook around:\n  {cd}\n  {exe} --control-db sqlite://dataloader.db table list\n  \
         {exe} --control-db sqlite://dataloader.db history bronze.demo.orders\n  \
         {exe} --control-db sqlite://dataloader.db export\n  \
         {exe} --control-db sqlite://dataloader.db serve    (the console: http://127.0.0.1:8080/)\n\
         The Delta tables are in {lake_root}/bronze/demo/ — open them with any Delta reader, for example\n  \
         python -c \"import deltalake; print(deltalake.DeltaTable('{lake_root}/bronze/demo/orders').to_pandas())\"\n  \
         duckdb -c \"SELECT * FROM delta_scan('{lake_root}/bronze/demo/orders') LIMIT 10\"\n\
         Run the quickstart again: it changes some orders first, and the incremental load picks up exactly those."
    );
    Ok(())
}

/// `dataloader` when this binary is the one on the PATH, else its full path, so the hints
/// work as printed.
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "dataloader".into();
    };
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("dataloader") == exe))
        .unwrap_or(false);
    if on_path {
        "dataloader".into()
    } else {
        exe.display().to_string()
    }
}
