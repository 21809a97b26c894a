//! The `dataloader` command: the process set-up and which function runs each subcommand.
//!
//! Start here. `cli.rs` has the arguments and their help text; each group of subcommands has
//! its file under `commands/`; `apply/` holds the control tables as a YAML file; `setup.rs`
//! prepares the process and `signals.rs` handles SIGINT and SIGTERM.

// The command enums are parsed once per process: their variants' sizes do not matter.
#![allow(clippy::large_enum_variant)]

mod app;
mod apply;
mod bench;
mod cli;
mod commands;
mod duration_arg;
#[cfg(feature = "dagster")]
mod pipes;
mod print;
mod quickstart;
mod settings;
mod setup;
mod signals;
mod spec_args;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use app::App;
use cli::{Cli, Command};
use commands::{catalog, connections, history, init, load, scheduler, tables};

fn main() -> ExitCode {
    setup::tune_memory();
    let cli = Cli::parse();
    #[cfg(feature = "dagster")]
    if matches!(cli.command, Command::Load { .. }) {
        if let Err(e) = setup::start_dagster_session() {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    setup::init_logging();
    let runtime = match setup::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => {
            #[cfg(feature = "dagster")]
            pipes::finish(None);
            ExitCode::SUCCESS
        }
        Err(e) => {
            #[cfg(feature = "dagster")]
            pipes::finish(Some(("Error", &format!("{e:#}"))));
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // The quickstart makes its own control database; every other command opens the one set.
    if let Command::Quickstart { dir } = &cli.command {
        return quickstart::run(dir, cli.json, cli.batch_size).await;
    }
    let file_settings = settings::FileSettings::load(cli.config.as_deref())?;
    let place = settings::resolve(
        cli.control_db.clone(),
        cli.lake_root.clone(),
        cli.catalog.clone(),
        &file_settings,
    );
    let app = App::open(place, cli.json, cli.batch_size, cli.lease).await?;
    match cli.command {
        Command::Init => init::init(&app)?,
        Command::Connection(c) => connections::connection(&app, c).await?,
        Command::Table(t) => tables::table(&app, t).await?,
        Command::Catalog(c) => catalog::catalog(&app, c).await?,
        Command::Apply { file, dry_run } => apply::apply(&app, &file, dry_run).await?,
        Command::Export => print!("{}", apply::export(app.store.as_ref()).await?),
        Command::Load {
            table,
            full_refresh,
        } => load::load(&app, table, full_refresh).await?,
        Command::History {
            table,
            limit,
            changes,
        } => history::history(&app, table, limit, changes).await?,
        Command::Run(args) => scheduler::run(&app, args).await?,
        Command::Due => scheduler::due(&app).await?,
        Command::Tables => tables::table(&app, tables::TableCommand::List).await?,
        Command::Analyze => scheduler::analyze(&app).await?,
        Command::Status => history::status(&app).await?,
        Command::Bench(bench::BenchCommand::Scheduler { tables, due }) => {
            bench::scheduler(&app, tables, due).await?
        }
        Command::Quickstart { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(())
}
