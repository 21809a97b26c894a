//! `dataloader bench scheduler`, with its arguments: the cost of one sensor tick over many
//! configured tables.

use std::time::Instant;

use anyhow::Result;
use chrono::Utc;
use clap::Subcommand;
use dataloader_core::{ConnectionConfig, LoadStrategy, SourceTable, TableSpec, TargetTable};

use crate::app::App;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// One sensor tick over many configured tables, on the control database given.
    Scheduler {
        #[arg(long, default_value_t = 10_000)]
        tables: usize,
        /// How many of them are due.
        #[arg(long, default_value_t = 100)]
        due: usize,
    },
}

pub async fn scheduler(app: &App, tables: usize, due: usize) -> Result<()> {
    let store = &app.store;
    let started = Instant::now();
    store
        .upsert_connection(&ConnectionConfig {
            name: "bench".into(),
            db_type: "sqlite".parse()?,
            host: None,
            port: None,
            database: Some("bench.db".into()),
            user: None,
            password: None,
            options: Default::default(),
            max_connections: None,
        })
        .await?;
    let now = Utc::now();
    let existing = store.tables().await?.len();
    for i in existing..tables {
        let mut spec = TableSpec::new(
            "bench",
            SourceTable::parse(&format!("t{i}"))?,
            TargetTable::parse(&format!("bench.s{}.t{i}", i % 50))?,
        );
        spec.strategy = LoadStrategy::Full;
        spec.schedule = Some("0 2 * * *".into());
        store.insert_table(&spec, now).await?;
    }
    let setup = started.elapsed();
    // Everything due in the future, then `due` of them due now.
    let all = store.tables().await?;
    for t in &all {
        store
            .set_next_load(t.table_id, Some(now + chrono::Duration::days(1)))
            .await?;
    }
    for t in all.iter().take(due) {
        store
            .set_next_load(t.table_id, Some(now - chrono::Duration::minutes(1)))
            .await?;
    }
    let idle = Instant::now();
    let none = store
        .claim_due(now - chrono::Duration::hours(1), 100, "bench", now)
        .await?;
    let idle = idle.elapsed();
    let tick = Instant::now();
    let claimed = store
        .claim_due(now, due as i64, "bench", now + chrono::Duration::minutes(1))
        .await?;
    let tick = tick.elapsed();
    // Leave the tables claimable for the next bench.
    for claim in claimed.iter().chain(&none) {
        store
            .finish_run(
                claim.run_id,
                dataloader_core::RunOwner::Worker("bench"),
                &dataloader_core::RunUpdate::ended(
                    dataloader_core::RunStatus::Cancelled,
                    Utc::now(),
                    dataloader_core::ErrorKind::Cancelled,
                    "bench claim",
                    None,
                ),
            )
            .await?;
    }
    println!(
        "{}: {} tables configured (set up in {:.1}s); sensor tick with none due: {:.1} ms; with {} due: {:.1} ms ({} claimed)",
        store.describe(),
        all.len(),
        setup.as_secs_f64(),
        idle.as_secs_f64() * 1000.0,
        due,
        tick.as_secs_f64() * 1000.0,
        claimed.len() + none.len()
    );
    Ok(())
}
