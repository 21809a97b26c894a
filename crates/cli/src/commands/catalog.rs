//! `dataloader catalog sync`: every configured table's registration made to match its Delta
//! table, with the drift found said first (what is missing, stale or registered elsewhere).

use anyhow::{bail, Result};
use clap::Subcommand;
use dataloader_core::Drift;
use serde::Serialize;

use crate::app::App;
use crate::print;

#[derive(Subcommand)]
pub(crate) enum CatalogCommand {
    /// Register or refresh every table that has been loaded, printing the drift found.
    Sync {
        /// Print the drift and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// One table's line of the sync report.
#[derive(Serialize)]
struct Synced {
    table: String,
    #[serde(flatten)]
    drift: Option<Drift>,
    /// `registered`, `refreshed`, `unchanged`, `not loaded yet`, `would register`, `failed: …`.
    action: String,
}

pub(crate) async fn catalog(app: &App, command: CatalogCommand) -> Result<()> {
    let CatalogCommand::Sync { dry_run } = command;
    let engine = app.engine()?;
    let mut report = Vec::new();
    let mut failed = 0;
    for table in app.store.tables().await? {
        let spec = &table.spec;
        let name = spec.destination.to_string();
        // One unreadable Delta table or failed request does not hide the others' drift.
        let found = match engine.registration(spec).await {
            Ok(Some(desired)) => app.catalog.drift(&desired).await.map(|d| (desired, d)),
            Ok(None) => {
                report.push(Synced {
                    table: name,
                    drift: None,
                    action: "not loaded yet".into(),
                });
                continue;
            }
            Err(e) => Err(e),
        };
        let (desired, drift) = match found {
            Ok(found) => found,
            Err(e) => {
                failed += 1;
                report.push(Synced {
                    table: name,
                    drift: None,
                    action: format!("failed: {e}"),
                });
                continue;
            }
        };
        let action = match (&drift, dry_run) {
            (Drift::Current, _) => "unchanged".to_string(),
            (Drift::NotManaged, _) => "left alone".to_string(),
            (_, true) => "would register".to_string(),
            (_, false) => match app.catalog.register(&desired).await {
                Ok(()) if drift == Drift::Missing => "registered".into(),
                Ok(()) => "refreshed".into(),
                Err(e) => {
                    failed += 1;
                    format!("failed: {e}")
                }
            },
        };
        report.push(Synced {
            table: name,
            drift: Some(drift),
            action,
        });
    }
    if app.json {
        print::json(&report)?;
    } else {
        println!("catalog {}", app.catalog.describe());
        let rows: Vec<Vec<String>> = report
            .iter()
            .map(|r| {
                vec![
                    r.table.clone(),
                    r.drift
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    r.action.clone(),
                ]
            })
            .collect();
        println!("{}", print::table(&["TABLE", "FOUND", "ACTION"], &rows));
    }
    if failed > 0 {
        bail!("{failed} table(s) could not be registered (see above)");
    }
    Ok(())
}
