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
use commands::{
    alerts, catalog, connections, history, init, load, scheduler, serve, tables, validate,
};

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
            let text = error_text(&e);
            #[cfg(feature = "dagster")]
            pipes::finish(Some(("Error", &text)));
            eprintln!("error: {text}");
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as `{e:#}` writes them, but ending at DataLoader's
/// own error: its message already says what the foreign error under it says (reworded, or with
/// a password masked), so that error is not printed a second time.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        if cause.is::<dataloader_core::Error>() {
            break;
        }
    }
    text
}

async fn run(cli: Cli) -> Result<()> {
    // Vault references (azure-keyvault://, aws-sm://) are read through these from here on.
    dataloader_secrets::install(dataloader_secrets::Vaults::new(
        dataloader_secrets::VaultSettings::from_env(cli.secret_cache_ttl),
    ));
    // The quickstart makes its own control database; every other command opens the one set.
    if let Command::Quickstart { dir } = &cli.command {
        return quickstart::run(dir, cli.json, cli.batch_size).await;
    }
    let file_settings = settings::FileSettings::load(cli.config.as_deref())?;
    let place = settings::resolve(
        cli.control_db.clone(),
        cli.control_db_password.clone(),
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
        Command::Validate => validate::validate(&app).await?,
        Command::Serve { listen } => serve::serve(&app, listen).await?,
        Command::Token(t) => serve::token(&app, t).await?,
        Command::Alert(a) => alerts::alert(&app, a).await?,
        Command::Bench(bench::BenchCommand::Scheduler { tables, due }) => {
            bench::scheduler(&app, tables, due).await?
        }
        Command::Quickstart { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context;

    fn io(text: &str) -> std::io::Error {
        std::io::Error::other(text.to_string())
    }

    /// What the user read before errors kept their source: the foreign error's text once.
    #[test]
    fn a_kept_source_is_not_printed_twice() {
        let kept = dataloader_core::Error::store("read the run", io("disk I/O error"));
        let e = Err::<(), _>(kept)
            .context("loading sales.orders")
            .unwrap_err();
        assert_eq!(
            error_text(&e),
            "loading sales.orders: control store: read the run failed: disk I/O error"
        );
    }

    /// A reworded or masked message hides its source's text: that text is not printed either.
    #[test]
    fn a_source_under_a_reworded_message_is_not_printed() {
        let e = anyhow::Error::from(dataloader_core::Error::Connect {
            connection: "pg".into(),
            db_type: "postgres".into(),
            address: "db:5432".into(),
            message: "password authentication failed (user ***)".into(),
            source: Some(io("db error: FATAL: password authentication failed").into()),
        });
        assert_eq!(
            error_text(&e),
            "connection \"pg\": cannot reach postgres at db:5432: password authentication failed (user ***)"
        );
    }

    /// Other errors print their whole chain, as `{e:#}` does.
    #[test]
    fn other_chains_print_as_before() {
        let e = Err::<(), _>(io("No such file"))
            .context("cannot read tables.yml")
            .context("apply")
            .unwrap_err();
        assert_eq!(error_text(&e), format!("{e:#}"));
        assert_eq!(
            error_text(&e),
            "apply: cannot read tables.yml: No such file"
        );
    }
}
