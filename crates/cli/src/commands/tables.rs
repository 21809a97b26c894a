//! `dataloader table add|list|show|update` and `dataloader tables`: the tables to load, with
//! their arguments. `apply` changes the same rows from a file.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use dataloader_core::{Clock, DbType, SourceTable, SystemClock, TableSpec, TargetTable};

use crate::app::App;
use crate::print;
use crate::spec_args::SpecArgs;

#[derive(Subcommand)]
pub(crate) enum TableCommand {
    /// Add a table to load.
    Add(TableArgs),
    /// List tables with their status.
    List,
    /// Show one table's configuration and state.
    Show { table: String },
    /// Change a table's options (options not given keep their value; `none` clears one).
    Update(TableUpdateArgs),
}

#[derive(Args)]
pub(crate) struct TableArgs {
    #[arg(long)]
    connection: String,
    /// Source table, schema.table; with --source-query, the name the query's rows go by.
    #[arg(long)]
    source: String,
    /// Destination, catalog.schema.table.
    #[arg(long = "dest")]
    destination: String,
    /// Add it inactive.
    #[arg(long)]
    inactive: bool,
    #[command(flatten)]
    spec: SpecArgs,
}

#[derive(Args)]
pub(crate) struct TableUpdateArgs {
    /// Destination, catalog.schema.table.
    table: String,
    /// Take the table out of (or, with --active, back into) scheduling.
    #[arg(long, conflicts_with = "active")]
    inactive: bool,
    #[arg(long)]
    active: bool,
    /// Forget the watermark: the next load reads from the start.
    #[arg(long)]
    reset_watermark: bool,
    #[command(flatten)]
    spec: SpecArgs,
}

pub(crate) async fn table(app: &App, t: TableCommand) -> Result<()> {
    match t {
        TableCommand::Add(a) => {
            let mut spec = TableSpec::new(
                a.connection,
                SourceTable::parse(&a.source)?,
                TargetTable::parse(&a.destination)?,
            );
            a.spec.apply(&mut spec)?;
            spec.is_active = !a.inactive;
            spec.validate()?;
            app.store.require_connection(&spec.connection).await?;
            if let Some(existing) = app.store.table_by_destination(&spec.destination).await? {
                bail!(
                    "destination: {} is already in table_control (table_id {}); change it with `dataloader apply`",
                    spec.destination,
                    existing.table_id
                );
            }
            let id = app.store.insert_table(&spec, SystemClock.now()).await?;
            if app.json {
                print::json(&app.store.table(id).await?)?;
            } else {
                println!(
                    "table {} added (table_id {id}, {} from {}:{})",
                    spec.destination,
                    spec.strategy,
                    spec.connection,
                    spec.source_object()
                );
            }
        }
        TableCommand::List => {
            let all = app.store.tables().await?;
            // Rows that cannot be read are named on stderr; the list stays whole and parseable.
            for bad in app.store.invalid_tables().await? {
                eprintln!(
                    "warning: the table_control row of {} (table_id {}) cannot be read, so it is not loaded: {}",
                    bad.destination, bad.table_id, bad.problem
                );
            }
            if app.json {
                print::json(&tables_for_orchestrators(app, &all).await?)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|t| {
                        vec![
                            t.spec.destination.to_string(),
                            t.spec.strategy.to_string(),
                            t.spec.origin(),
                            if t.spec.is_active {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            print::opt(&t.status),
                            print::opt(&t.incremental_value),
                            print::opt(
                                &t.next_load_date_time
                                    .map(|d| d.format("%Y-%m-%d %H:%M UTC")),
                            ),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    print::table(
                        &[
                            "table",
                            "strategy",
                            "source",
                            "active",
                            "status",
                            "watermark",
                            "next load"
                        ],
                        &rows
                    )
                );
            }
        }
        TableCommand::Update(a) => {
            let dest = TargetTable::parse(&a.table)?;
            let Some(existing) = app.store.table_by_destination(&dest).await? else {
                bail!(
                    "{}",
                    dataloader_core::Error::UnknownTable {
                        destination: dest.to_string()
                    }
                );
            };
            let mut spec = existing.spec.clone();
            a.spec.apply(&mut spec)?;
            if a.inactive {
                spec.is_active = false;
            }
            if a.active {
                spec.is_active = true;
            }
            spec.validate()?;
            app.store.require_connection(&spec.connection).await?;
            app.store
                .update_table_spec(existing.table_id, &spec, SystemClock.now())
                .await?;
            if a.reset_watermark {
                app.store.set_watermark(existing.table_id, None).await?;
            }
            let updated = app.store.table(existing.table_id).await?;
            if app.json {
                print::json(&updated)?;
            } else {
                println!("table {dest} updated");
            }
        }
        TableCommand::Show { table } => {
            let dest = TargetTable::parse(&table)?;
            let Some(t) = app.store.table_by_destination(&dest).await? else {
                bail!(
                    "{}",
                    dataloader_core::Error::UnknownTable {
                        destination: dest.to_string()
                    }
                );
            };
            let mut shown = serde_json::to_value(&t)?;
            shown["catalog"] = registration(app, &t.spec).await?;
            print::json(&shown)?;
        }
    }
    Ok(())
}

/// Where the table is registered, and whether its registration matches its Delta table (a
/// catalog that cannot be asked is said, not an error of `table show`).
async fn registration(app: &App, spec: &dataloader_core::TableSpec) -> Result<serde_json::Value> {
    let found = match app.engine()?.registration(spec).await {
        Ok(None) => serde_json::json!({"state": "not loaded yet"}),
        Ok(Some(desired)) => match app.catalog.drift(&desired).await {
            Ok(drift) => serde_json::to_value(drift)?,
            Err(e) => serde_json::json!({"state": "unknown", "error": e.to_string()}),
        },
        Err(e) => serde_json::json!({"state": "unknown", "error": e.to_string()}),
    };
    Ok(serde_json::json!({
        "catalog": app.catalog.describe(),
        "location": app.catalog.table_url(&spec.destination)?,
        "registration": found,
    }))
}

/// Each table as `table list --json` prints it: its control row, plus what an orchestrator
/// building one asset per table needs (the source's database type, the asset key, the checks).
async fn tables_for_orchestrators(
    app: &App,
    tables: &[dataloader_core::TableControl],
) -> Result<Vec<serde_json::Value>> {
    let types: std::collections::HashMap<String, DbType> = app
        .store
        .connections()
        .await?
        .into_iter()
        .map(|c| (c.name, c.db_type))
        .collect();
    tables
        .iter()
        .map(|t| {
            let mut value = serde_json::to_value(t)?;
            let dest = &t.spec.destination;
            if let Some(object) = value.as_object_mut() {
                object.insert(
                    "source_type".into(),
                    serde_json::json!(types.get(&t.spec.connection)),
                );
                object.insert(
                    "asset_key".into(),
                    serde_json::json!([dest.catalog, dest.schema, dest.table]),
                );
                object.insert(
                    "asset_checks".into(),
                    serde_json::json!(dataloader_engine::checks::checks_for(&t.spec)),
                );
            }
            Ok(value)
        })
        .collect()
}
