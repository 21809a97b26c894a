//! The `dataloader` command.

mod apply;
mod print;
mod quickstart;
mod settings;
mod spec_args;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dataloader_core::secret::SecretRef;
use dataloader_core::{
    Clock, ConnectionConfig, DbType, SourceTable, Store, SystemClock, TableSpec, TargetTable,
    Trigger,
};
use dataloader_engine::{Engine, LoadOptions, LoadReport, ProgressFn};
use dataloader_lake::PathCatalog;

#[derive(Parser)]
#[command(
    name = "dataloader",
    version,
    about = "Keeps Delta Lake tables in step with operational databases."
)]
struct Cli {
    /// Control database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://./dataloader.db]
    #[arg(
        long,
        env = "DATALOADER_CONTROL_DB",
        global = true,
        hide_env_values = true
    )]
    control_db: Option<String>,

    /// Lakehouse root: a directory or an object-store URL [default: ./lakehouse]
    #[arg(long, env = "DATALOADER_LAKE_ROOT", global = true)]
    lake_root: Option<String>,

    /// Settings file [default: ./dataloader.toml when it exists]
    #[arg(long, env = "DATALOADER_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Rows per Arrow batch read from a source.
    #[arg(long, env = "DATALOADER_BATCH_SIZE", global = true, default_value_t = dataloader_sources::DEFAULT_BATCH_SIZE)]
    batch_size: usize,

    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create or upgrade the control tables (safe to run again).
    Init,
    /// Manage source connections.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Manage loaded tables.
    #[command(subcommand)]
    Table(TableCommand),
    /// Make the control tables match a YAML file (prints the plan first).
    Apply {
        /// The file, for example tables.yaml.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Print the plan and stop.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the control tables as a YAML file for `apply`.
    Export,
    /// Load one table now.
    Load {
        /// Destination, catalog.schema.table.
        table: String,
        /// Read the whole table and replace the Delta table, whatever the strategy (the
        /// watermark moves to the source's maximum).
        #[arg(long)]
        full_refresh: bool,
    },
    /// Runs of one table (or all), newest first.
    History {
        /// Destination, catalog.schema.table.
        table: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Show the audit trail of the table's configuration instead of its runs.
        #[arg(long)]
        changes: bool,
    },
    /// Set up a demo (SQLite source, control DB, lakehouse) in a folder and load it.
    Quickstart {
        #[arg(long, default_value = "./dataloader-quickstart")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// Add or replace a connection.
    Add(ConnectionArgs),
    /// Connect and print the server version.
    Test { name: String },
    /// Show one connection (secrets are shown only as their references).
    Show { name: String },
    /// List connections.
    List,
    /// Remove a connection that no table uses.
    Remove { name: String },
}

#[derive(Args)]
struct ConnectionArgs {
    name: String,
    /// postgresql or sqlite.
    #[arg(long = "type")]
    db_type: String,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// Database name (for sqlite: the file path).
    #[arg(long)]
    database: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// Read the password from this environment variable at load time.
    #[arg(long, conflicts_with_all = ["password_file", "password"])]
    password_env: Option<String>,
    /// Read the password from this file at load time.
    #[arg(long, conflicts_with = "password")]
    password_file: Option<String>,
    /// A secret reference, env:NAME or file:/path (never the password itself).
    #[arg(long)]
    password: Option<String>,
    /// Driver option KEY=VALUE (repeatable).
    #[arg(long = "option", value_parser = parse_key_value)]
    options: Vec<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{s}\" is not KEY=VALUE"))
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum TableCommand {
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
struct TableArgs {
    #[arg(long)]
    connection: String,
    /// Source table, schema.table.
    #[arg(long)]
    source: String,
    /// Destination, catalog.schema.table.
    #[arg(long = "dest")]
    destination: String,
    /// Add it inactive.
    #[arg(long)]
    inactive: bool,
    #[command(flatten)]
    spec: spec_args::SpecArgs,
}

#[derive(Args)]
struct TableUpdateArgs {
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
    spec: spec_args::SpecArgs,
}

struct App {
    store: Arc<dyn Store>,
    lake_root: String,
    json: bool,
    batch_size: usize,
}

impl App {
    fn engine(&self) -> Result<Engine> {
        let catalog = PathCatalog::new(&self.lake_root)?;
        Ok(
            Engine::new(self.store.clone(), Arc::new(catalog), Arc::new(SystemClock))
                .with_batch_size(self.batch_size),
        )
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DATALOADER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,buoyant_kernel::snapshot::builder=off,deltalake_core::operations::merge=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open_app(cli: &Cli) -> Result<App> {
    let file = settings::FileSettings::load(cli.config.as_deref())?;
    let s = settings::resolve(cli.control_db.clone(), cli.lake_root.clone(), &file);
    let store = dataloader_store::open(&s.control_db).await?;
    store.migrate().await?;
    Ok(App {
        store,
        lake_root: s.lake_root,
        json: cli.json,
        batch_size: cli.batch_size,
    })
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Quickstart { dir } = &cli.command {
        return quickstart::run(dir, cli.json, cli.batch_size).await;
    }
    let app = open_app(&cli).await?;
    match cli.command {
        Command::Init => {
            if app.json {
                print::json(
                    &serde_json::json!({"control_db": app.store.describe(), "status": "ready"}),
                )?;
            } else {
                println!("control tables ready in {}", app.store.describe());
            }
        }
        Command::Connection(c) => connection(&app, c).await?,
        Command::Table(t) => table(&app, t).await?,
        Command::Apply { file, dry_run } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let desired = apply::parse(&text).with_context(|| file.display().to_string())?;
            let plan = apply::plan(app.store.as_ref(), desired).await?;
            if app.json {
                print::json(&serde_json::json!({"changes": plan.changes, "applied": !dry_run}))?;
            } else {
                for c in &plan.changes {
                    println!("{c}");
                }
                println!("{}", plan.summary());
            }
            if !dry_run {
                plan.execute(app.store.as_ref()).await?;
                if !app.json && !plan.changes.is_empty() {
                    println!("Applied.");
                }
            } else if !app.json {
                println!("Dry run: nothing was changed.");
            }
        }
        Command::Export => print!("{}", apply::export(app.store.as_ref()).await?),
        Command::Load {
            table,
            full_refresh,
        } => {
            let dest = TargetTable::parse(&table)?;
            let report = load_with_progress(&app, &dest, LoadOptions { full_refresh }).await?;
            if app.json {
                print::json(&report)?;
            } else {
                println!("{}", summary_line(&report));
            }
        }
        Command::History {
            table,
            limit,
            changes,
        } => history(&app, table, limit, changes).await?,
        Command::Quickstart { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(())
}

async fn load_with_progress(
    app: &App,
    dest: &TargetTable,
    options: LoadOptions,
) -> Result<LoadReport> {
    let bar = (std::io::stderr().is_terminal() && !app.json).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("{dest}: starting"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let progress: Option<ProgressFn> = bar.clone().map(|bar| {
        let dest = dest.to_string();
        Arc::new(move |rows: u64| bar.set_message(format!("{dest}: {rows} rows read")))
            as ProgressFn
    });
    let result = app
        .engine()?
        .load_with(dest, Trigger::Manual, progress, options)
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => Ok(report),
        Err(failure) => match failure.run_id {
            Some(run) => bail!(
                "{}\n(run {run} recorded as Failed; see `dataloader history {dest}`)",
                failure.error
            ),
            None => Err(failure.error.into()),
        },
    }
}

fn summary_line(r: &LoadReport) -> String {
    let watermark = match (&r.watermark_before, &r.watermark_after) {
        (_, None) => String::new(),
        (Some(before), Some(after)) if before == after => {
            format!(", watermark unchanged at {after}")
        }
        (before, Some(after)) => format!(
            ", watermark {} → {after}",
            before.as_deref().unwrap_or("(none)")
        ),
    };
    let version = r
        .delta_version
        .map(|v| format!("Delta version {v}"))
        .unwrap_or_else(|| "no new Delta version".into());
    let deleted = if r.rows_deleted > 0 {
        format!(", {} deleted", r.rows_deleted)
    } else {
        String::new()
    };
    let extra: String = r
        .schema_changes
        .iter()
        .map(|c| format!("\n  schema: {c}"))
        .chain(r.notes.iter().map(|n| format!("\n  note: {n}")))
        .collect();
    format!(
        "{}: {} in {:.1}s ({}) — {} rows read, {} written ({} inserted, {} updated{deleted}){watermark}; {version}; run {}{extra}",
        r.table,
        r.status,
        r.duration_ms as f64 / 1000.0,
        r.strategy,
        r.rows_read,
        r.rows_written,
        r.rows_inserted,
        r.rows_updated,
        r.run_id
    )
}

async fn connection(app: &App, c: ConnectionCommand) -> Result<()> {
    match c {
        ConnectionCommand::Add(a) => {
            let password = match (a.password_env, a.password_file, a.password) {
                (Some(var), _, _) => Some(format!("env:{var}")),
                (_, Some(path), _) => Some(format!("file:{path}")),
                (_, _, Some(reference)) => Some(reference),
                _ => None,
            };
            let config = ConnectionConfig {
                name: a.name,
                db_type: DbType::from_str(&a.db_type)?,
                host: a.host,
                port: a.port,
                database: a.database,
                user: a.user,
                password,
                options: a.options.into_iter().collect(),
            };
            config.validate()?;
            app.store.upsert_connection(&config).await?;
            if app.json {
                print::json(&config)?;
            } else {
                println!(
                    "connection {} saved ({} at {})",
                    config.name,
                    config.db_type,
                    config.address()
                );
            }
        }
        ConnectionCommand::Test { name } => {
            let config = app.store.require_connection(&name).await?;
            let started = std::time::Instant::now();
            let source = dataloader_sources::connect(&config).await?;
            let version = source.server_version().await?;
            let ms = started.elapsed().as_millis();
            if app.json {
                print::json(
                    &serde_json::json!({"connection": name, "ok": true, "server_version": version, "ms": ms}),
                )?;
            } else {
                println!("connection {name}: ok in {ms} ms — {version}");
            }
        }
        ConnectionCommand::Show { name } => {
            let config = app.store.require_connection(&name).await?;
            let secret = config
                .password
                .as_deref()
                .map(|r| match SecretRef::parse(r) {
                    Ok(reference) => match reference.resolve() {
                        Ok(_) => format!("{reference} (available)"),
                        Err(_) => format!("{reference} (NOT available here)"),
                    },
                    Err(_) => "(invalid reference)".into(),
                });
            if app.json {
                print::json(&config)?;
            } else {
                let rows = vec![
                    vec!["name".into(), config.name.clone()],
                    vec!["type".into(), config.db_type.to_string()],
                    vec!["host".into(), print::opt(&config.host)],
                    vec!["port".into(), print::opt(&config.port)],
                    vec!["database".into(), print::opt(&config.database)],
                    vec!["user".into(), print::opt(&config.user)],
                    vec!["password".into(), print::opt(&secret)],
                    vec!["options".into(), format!("{:?}", config.options)],
                ];
                println!("{}", print::table(&["field", "value"], &rows));
            }
        }
        ConnectionCommand::List => {
            let all = app.store.connections().await?;
            if app.json {
                print::json(&all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.db_type.to_string(),
                            c.address(),
                            print::opt(&c.user),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    print::table(&["name", "type", "address", "user"], &rows)
                );
            }
        }
        ConnectionCommand::Remove { name } => {
            if !app.store.delete_connection(&name).await? {
                bail!("connection: no connection named \"{name}\"");
            }
            if !app.json {
                println!("connection {name} removed");
            }
        }
    }
    Ok(())
}

async fn table(app: &App, t: TableCommand) -> Result<()> {
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
                    spec.destination, spec.strategy, spec.connection, spec.source
                );
            }
        }
        TableCommand::List => {
            let all = app.store.tables().await?;
            if app.json {
                print::json(&all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|t| {
                        vec![
                            t.spec.destination.to_string(),
                            t.spec.strategy.to_string(),
                            format!("{}:{}", t.spec.connection, t.spec.source),
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
            print::json(&t)?;
        }
    }
    Ok(())
}

async fn history(app: &App, table: Option<String>, limit: i64, changes: bool) -> Result<()> {
    let table_id = match &table {
        Some(name) => {
            let dest = TargetTable::parse(name)?;
            match app.store.table_by_destination(&dest).await? {
                Some(t) => Some(t.table_id),
                None => bail!(
                    "{}",
                    dataloader_core::Error::UnknownTable {
                        destination: dest.to_string()
                    }
                ),
            }
        }
        None => None,
    };
    if changes {
        let Some(id) = table_id else {
            bail!("history --changes needs a table");
        };
        let records = app.store.table_history(id).await?;
        if app.json {
            return print::json(&records);
        }
        let rows: Vec<Vec<String>> = records
            .iter()
            .take(limit.max(0) as usize)
            .map(|h| {
                let changed = match (&h.old_values, &h.new_values) {
                    (
                        Some(serde_json::Value::Object(old)),
                        Some(serde_json::Value::Object(new)),
                    ) => new
                        .iter()
                        .filter(|(k, v)| old.get(*k) != Some(v))
                        .map(|(k, v)| {
                            format!("{k}: {} → {v}", old.get(k).cloned().unwrap_or_default())
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => String::new(),
                };
                vec![
                    h.changed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    h.operation.clone(),
                    print::opt(&h.changed_by),
                    changed,
                ]
            })
            .collect();
        println!(
            "{}",
            print::table(&["changed at (UTC)", "operation", "by", "changes"], &rows)
        );
        return Ok(());
    }
    let runs = app.store.runs(table_id, limit).await?;
    if app.json {
        return print::json(&runs);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let duration = match (r.started_at, r.finished_at) {
                (Some(s), Some(f)) => format!("{:.1}s", (f - s).num_milliseconds() as f64 / 1000.0),
                _ => "-".into(),
            };
            vec![
                r.run_id.to_string(),
                r.destination.clone(),
                r.status.to_string(),
                r.trigger.clone(),
                r.queued_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                duration,
                print::opt(&r.rows_read),
                print::opt(&r.rows_written),
                print::opt(&r.watermark_after),
                print::opt(&r.delta_version),
                r.error_text.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!(
        "{}",
        print::table(
            &[
                "run",
                "table",
                "status",
                "trigger",
                "queued (UTC)",
                "took",
                "read",
                "written",
                "watermark",
                "version",
                "error"
            ],
            &rows
        )
    );
    Ok(())
}
