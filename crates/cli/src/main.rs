//! The `dataloader` command.

// The command enums are parsed once per process: their variants' sizes do not matter.
#![allow(clippy::large_enum_variant)]

mod apply;
mod bench;
#[cfg(feature = "dagster")]
mod pipes;
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
use dataloader_engine::{Engine, LoadReport, LoadRequest, ProgressFn};
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

    /// A load's lease, renewed every third of it while the load runs: a run whose process
    /// stopped renewing it is taken as lost, and its table becomes due again.
    #[arg(long, env = "DATALOADER_LEASE", global = true, default_value = "60s", value_parser = duration)]
    lease: Duration,

    #[command(subcommand)]
    command: Command,
}

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
    /// Load one table now. Run by Dagster Pipes, it reports to Dagster (see docs/dagster.md).
    Load {
        /// Destination, catalog.schema.table (under Dagster Pipes: the context's table extra or
        /// asset key when left out).
        table: Option<String>,
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
    /// The scheduler: claims due tables and loads them, with the monitors of the Dagster loader it replaces.
    Run(RunArgs),
    /// Tables due now, as the master sensor would claim them, without claiming them (for an
    /// outside scheduler such as a Dagster sensor; `run_key` is stable until the table loads).
    Due,
    /// Every table (as `table list`); with --json, what an asset factory needs.
    Tables,
    /// Retry analysis of failed runs not yet analysed, once (what `run`'s failed monitor does):
    /// records each verdict and brings a retryable table's next load forward.
    Analyze,
    /// Every table: status, last run, rows, next run, last error and what to do about it.
    Status,
    /// Measure DataLoader itself.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Set up a demo (SQLite source, control DB, lakehouse) in a folder and load it.
    Quickstart {
        #[arg(long, default_value = "./dataloader-quickstart")]
        dir: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// One sensor tick and the loads it claims, then exit (for cron and tests).
    #[arg(long)]
    once: bool,
    /// Master sensor interval.
    #[arg(long, default_value = "60s", value_parser = duration)]
    poll_interval: Duration,
    #[arg(long, default_value_t = 4)]
    max_concurrent_loads: usize,
    #[arg(long, default_value = "10m", value_parser = duration)]
    queued_monitor_interval: Duration,
    /// Runs queued longer than this are cancelled.
    #[arg(long, default_value = "60m", value_parser = duration)]
    queued_threshold: Duration,
    #[arg(long, default_value = "10m", value_parser = duration)]
    running_monitor_interval: Duration,
    /// Runs longer than this are cancelled (a table's timeout_minutes overrides it).
    #[arg(long, default_value = "180m", value_parser = duration)]
    running_threshold: Duration,
    #[arg(long, default_value = "15m", value_parser = duration)]
    failed_monitor_interval: Duration,
    #[arg(long, default_value = "30m", value_parser = duration)]
    landing_monitor_interval: Duration,
    /// Where the landing-table monitor writes schema files and dbt sources.yml.
    #[arg(long, default_value = "schemas")]
    schemas_dir: PathBuf,
    /// On SIGTERM/SIGINT, how long running loads may finish before they are cancelled.
    #[arg(long, default_value = "30s", value_parser = duration)]
    grace_period: Duration,
    /// First retry delay; doubles with each retry.
    #[arg(long, default_value = "60s", value_parser = duration)]
    retry_base: Duration,
    #[arg(long, default_value = "60m", value_parser = duration)]
    retry_max: Duration,
    /// OpenAI-compatible endpoint that words retry explanations (the rules decide).
    #[arg(long)]
    retry_llm_url: Option<String>,
    /// API key reference for it: env:NAME or file:/path.
    #[arg(long)]
    retry_llm_key: Option<String>,
    #[arg(long, default_value = "gpt-4o-mini")]
    retry_llm_model: String,
}

fn duration(text: &str) -> Result<Duration, String> {
    match dataloader_core::Span::parse("duration", text).map_err(|e| e.to_string())? {
        dataloader_core::Span::Duration(us) => Ok(Duration::from_micros(us as u64)),
        dataloader_core::Span::Amount(a) => a
            .parse::<f64>()
            .map(Duration::from_secs_f64)
            .map_err(|_| format!("\"{text}\" is not a duration")),
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One sensor tick over many configured tables, on the control database given.
    Scheduler {
        #[arg(long, default_value_t = 10_000)]
        tables: usize,
        /// How many of them are due.
        #[arg(long, default_value_t = 100)]
        due: usize,
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
    /// postgresql, mysql (MariaDB too), clickhouse, mssql, oracle or sqlite.
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
    /// Loads running at once against this database, at most (the scheduler waits for a slot).
    #[arg(long)]
    max_connections: Option<u32>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{s}\" is not KEY=VALUE"))
}

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
    lease: Duration,
}

impl App {
    fn engine(&self) -> Result<Engine> {
        let catalog = PathCatalog::new(&self.lake_root)?;
        Ok(
            Engine::new(self.store.clone(), Arc::new(catalog), Arc::new(SystemClock))
                .with_batch_size(self.batch_size)
                .with_lease(self.lease),
        )
    }
}

/// delta-rs takes two memory bounds from the environment only: its writer's queue (default ten
/// of our batches, about 100 MB of decoded rows; two keep decoding and encoding overlapped) and
/// the upload parts in flight per file (default ten of 5 MB; four keep a remote store busy).
/// A value the user set wins.
fn bound_the_delta_writer_memory() {
    for (name, value) in [
        ("DELTARS_WRITER_BATCH_CHANNEL_SIZE", "2"),
        ("DELTARS_MAX_CONCURRENCY_TASKS", "4"),
    ] {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }
}

/// glibc serves a large block from its heap once its mmap threshold has crept up past it, and
/// then keeps the freed space: a 20M-row load ended at 313 MiB resident for a 133 MB heap peak.
/// A fixed threshold of 1 MiB hands the large batch buffers back when they are freed (191 MiB,
/// and no slower; 128 KiB saved a little more but cost 15 % in page faults). A
/// `MALLOC_MMAP_THRESHOLD_` set in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_buffers_to_the_os() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it runs before any other thread.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_buffers_to_the_os() {}

fn main() -> std::process::ExitCode {
    return_freed_buffers_to_the_os();
    bound_the_delta_writer_memory();
    let cli = Cli::parse();
    #[cfg(feature = "dagster")]
    if matches!(cli.command, Command::Load { .. }) {
        if let Err(e) = pipes::start() {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
        // Only the main thread's panics end the process; tokio turns a task's into an error
        // that the load reports as usual.
        let report_panic = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("main") {
                pipes::finish(Some(("Panic", &info.to_string())));
            }
            report_panic(info);
        }));
    }
    init_logging();
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
        Ok(()) => {
            #[cfg(feature = "dagster")]
            pipes::finish(None);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            #[cfg(feature = "dagster")]
            pipes::finish(Some(("Error", &format!("{e:#}"))));
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr; under Dagster Pipes also to Dagster, from `info` on for our crates.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    // delta-rs logs a missing table as an error, and its MERGE each file it reads.
    const QUIET: &str =
        "warn,buoyant_kernel::snapshot::builder=off,deltalake_core::operations::merge=error";
    let filter = |default: &str| {
        EnvFilter::try_from_env("DATALOADER_LOG").unwrap_or_else(|_| EnvFilter::new(default))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter(QUIET));
    let registry = tracing_subscriber::registry().with(stderr);
    #[cfg(feature = "dagster")]
    // Dagster keeps what it is sent: its own variable, so that DATALOADER_LOG=debug on stderr
    // does not fill Dagster's event log.
    let registry = registry.with(pipes::session().map(|_| {
        let default = format!(
            "{QUIET},dataloader_engine=info,dataloader_lake=info,dataloader_sources=info,dataloader_scheduler=info"
        );
        pipes::LogLayer.with_filter(
            EnvFilter::try_from_env("DATALOADER_DAGSTER_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default)),
        )
    }));
    registry.init();
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
        lease: cli.lease,
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
            #[cfg(feature = "dagster")]
            if let Some(session) = pipes::session() {
                return load_under_dagster(&app, session, table, full_refresh).await;
            }
            let table =
                table.context("name the table to load: dataloader load catalog.schema.table")?;
            let dest = TargetTable::parse(&table)?;
            let report = load_with_progress(&app, &dest, full_refresh).await?;
            print_report(&app, &report)?;
        }
        Command::History {
            table,
            limit,
            changes,
        } => history(&app, table, limit, changes).await?,
        Command::Run(args) => run_scheduler(&app, args).await?,
        Command::Due => due(&app).await?,
        Command::Tables => table(&app, TableCommand::List).await?,
        Command::Analyze => analyze(&app).await?,
        Command::Status => status(&app).await?,
        Command::Bench(BenchCommand::Scheduler { tables, due }) => {
            bench::scheduler(&app, tables, due).await?
        }
        Command::Quickstart { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(())
}

fn print_report(app: &App, report: &LoadReport) -> Result<()> {
    if app.json {
        print::json(report)
    } else {
        println!("{}", summary_line(report));
        Ok(())
    }
}

/// `load` under Dagster Pipes: the table from the context, then the materialization, the asset
/// checks and the session's close (with the error when the load failed).
#[cfg(feature = "dagster")]
async fn load_under_dagster(
    app: &App,
    session: &pipes::Pipes,
    table: Option<String>,
    full_refresh: bool,
) -> Result<()> {
    let engine = app.engine()?;
    let worker = format!(
        "{} for Dagster run {}",
        engine.worker(),
        session.context.run_id
    );
    let engine = engine.with_worker(worker);
    let loaded = async {
        let name = match table {
            Some(t) => t,
            None => session
                .table()
                .map_err(|e| ("Config".to_string(), e.to_string()))?,
        };
        let dest =
            TargetTable::parse(&name).map_err(|e| (format!("{:?}", e.kind()), e.to_string()))?;
        session.log(
            "INFO",
            &format!(
                "DataLoader: loading {dest} for Dagster run {}",
                session.context.run_id
            ),
        );
        match load_cancellable(&engine, &dest, Trigger::Dagster, None, full_refresh).await {
            Ok(report) => Ok((dest, report)),
            Err(failure) => Err((
                format!("{:?}", failure.error.kind()),
                failure_message(&failure, &dest),
            )),
        }
    }
    .await;
    let (dest, report) = match loaded {
        Ok(done) => done,
        Err((kind, message)) => {
            session.log("ERROR", &format!("DataLoader load failed: {message}"));
            session.close(Some((&kind, &message)));
            bail!("{message}");
        }
    };
    if !session.writes_to_stdout() {
        print_report(app, &report)?;
    }
    report_to_dagster(&engine, session, &dest, &report).await;
    Ok(())
}

/// After a successful load: the materialization and the checks the asset declared. Nothing
/// here fails the load: what cannot be measured is reported as such.
#[cfg(feature = "dagster")]
async fn report_to_dagster(
    engine: &Engine,
    session: &pipes::Pipes,
    dest: &TargetTable,
    report: &LoadReport,
) {
    use dataloader_engine::checks::checks_for;
    let table = &report.table;
    let version = match engine.table_version(dest).await {
        Ok(v) => v,
        Err(e) => {
            session.log(
                "WARNING",
                &format!("DataLoader could not read the version of {table}: {e}"),
            );
            report.delta_version
        }
    };
    let control = engine.store().table_by_destination(dest).await;
    let applicable = match &control {
        Ok(Some(t)) => checks_for(&t.spec),
        _ => Vec::new(),
    };
    let declared = session
        .declared_checks()
        .unwrap_or_else(|| applicable.iter().map(|c| c.to_string()).collect());
    let to_run: Vec<&str> = applicable
        .iter()
        .copied()
        .filter(|c| declared.iter().any(|d| d == c))
        .collect();
    let checked = match (&control, to_run.is_empty()) {
        (Err(e), _) => Err(format!("the check failed to run: {e}")),
        (Ok(Some(t)), false) => engine
            .check(t, &to_run)
            .await
            .map(Some)
            .map_err(|e| format!("the check failed to run: {e}")),
        _ => Ok(None),
    };
    // The materialization first: Dagster takes check results as about it.
    session.report_materialization(
        report,
        version,
        checked.as_ref().ok().and_then(Option::as_ref),
    );
    match &checked {
        Ok(checks) => {
            for result in checks.iter().flat_map(|c| &c.results) {
                session.report_check(table, result);
            }
        }
        Err(why) => {
            session.log(
                "WARNING",
                &format!("DataLoader could not check {table}: {why}"),
            );
            let not_run: Vec<&str> = match control {
                Err(_) => declared.iter().map(String::as_str).collect(),
                Ok(_) => to_run.clone(),
            };
            session.report_checks_not_run(table, &not_run, why);
        }
    }
    if control.is_ok() {
        let retired: Vec<&str> = declared
            .iter()
            .map(String::as_str)
            .filter(|d| !applicable.contains(d))
            .collect();
        session.report_checks_not_run(
            table,
            &retired,
            "it no longer applies to the table's configuration; reload the Dagster code location",
        );
    }
}

/// One load that SIGINT or SIGTERM cancels, for every way `dataloader load` runs.
async fn load_cancellable(
    engine: &Engine,
    dest: &TargetTable,
    trigger: Trigger,
    progress: Option<ProgressFn>,
    full_refresh: bool,
) -> std::result::Result<LoadReport, dataloader_engine::LoadFailure> {
    let running = cancel_on_signal();
    engine
        .load(
            LoadRequest::new(dest, trigger)
                .progress(progress)
                .full_refresh(full_refresh)
                .cancel_on(running.token()),
        )
        .await
}

async fn load_with_progress(
    app: &App,
    dest: &TargetTable,
    full_refresh: bool,
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
    let result = load_cancellable(
        &app.engine()?,
        dest,
        Trigger::Manual,
        progress,
        full_refresh,
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => Ok(report),
        Err(failure) => match failure.run_id {
            Some(_) => bail!("{}", failure_message(&failure, dest)),
            None => Err(failure.error.into()),
        },
    }
}

/// A failed load's error, and where its run is recorded.
fn failure_message(failure: &dataloader_engine::LoadFailure, dest: &TargetTable) -> String {
    let recorded = if failure.error.kind() == dataloader_core::ErrorKind::Cancelled {
        "Cancelled"
    } else {
        "Failed"
    };
    match failure.run_id {
        Some(run) => format!(
            "{}\n(run {run} recorded as {recorded}; see `dataloader history {dest}`)",
            failure.error
        ),
        None => failure.error.to_string(),
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
                max_connections: a.max_connections,
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
            let config = app.store.require_connection(&name).await?.masked();
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
            print::json(&t)?;
        }
    }
    Ok(())
}

async fn history(app: &App, table: Option<String>, limit: i64, changes: bool) -> Result<()> {
    let table_id = match &table {
        Some(name) => {
            let dest = TargetTable::parse(name)?;
            match app.store.table_by_destination(&dest).await {
                Ok(Some(t)) => Some(t.table_id),
                Ok(None) => bail!(
                    "{}",
                    dataloader_core::Error::UnknownTable {
                        destination: dest.to_string()
                    }
                ),
                // A row that cannot be read still has its history.
                Err(e) => match app
                    .store
                    .invalid_tables()
                    .await?
                    .into_iter()
                    .find(|bad| bad.destination == dest.to_string())
                {
                    Some(bad) => Some(bad.table_id),
                    None => return Err(e.into()),
                },
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
                match (&r.error_text, &r.retry_recommendation) {
                    (Some(e), Some(rec)) => format!(
                        "{e} — {rec}: {}",
                        r.retry_explanation.as_deref().unwrap_or("")
                    ),
                    (Some(e), None) => e.clone(),
                    _ => String::new(),
                },
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

/// On SQLite one scheduler at a time: a lock file beside the database, held while it runs.
fn sqlite_run_lock(control_db: &str) -> Result<Option<std::fs::File>> {
    let Some(path) = control_db.strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let path = path.trim_start_matches("//");
    let lock_path = format!("{path}.run-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {lock_path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `dataloader run` is already using {control_db}; on SQLite one scheduler runs at a time (use a PostgreSQL control database to run several)"
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {lock_path}")),
    }
}

async fn run_scheduler(app: &App, args: RunArgs) -> Result<()> {
    let _lock = sqlite_run_lock(&app.store.describe())?;
    let llm = match &args.retry_llm_url {
        Some(url) => Some(dataloader_scheduler::LlmConfig {
            url: url.clone(),
            api_key: args
                .retry_llm_key
                .as_deref()
                .map(|r| SecretRef::parse(r)?.resolve())
                .transpose()?,
            model: args.retry_llm_model.clone(),
            timeout: Duration::from_secs(10),
        }),
        None => None,
    };
    let config = dataloader_scheduler::SchedulerConfig {
        poll_interval: args.poll_interval,
        max_concurrent_loads: args.max_concurrent_loads,
        lease: app.lease,
        queued_monitor_interval: args.queued_monitor_interval,
        queued_threshold: args.queued_threshold,
        running_monitor_interval: args.running_monitor_interval,
        running_threshold: args.running_threshold,
        failed_monitor_interval: args.failed_monitor_interval,
        landing_monitor_interval: args.landing_monitor_interval,
        schemas_dir: args.schemas_dir.clone(),
        grace_period: args.grace_period,
        retry_base: args.retry_base,
        retry_max: args.retry_max,
        llm,
        claim_batch: 100,
    };
    let scheduler = Arc::new(dataloader_scheduler::Scheduler::new(
        Arc::new(app.engine()?),
        Arc::new(SystemClock),
        config,
    ));
    if args.once {
        let results = scheduler.run_once_and_analyze().await?;
        let reports: Vec<serde_json::Value> = results
            .iter()
            .map(|r| match r {
                Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                Err(f) => serde_json::json!({"run_id": f.run_id, "status": "Failed", "error": f.error.to_string()}),
            })
            .collect();
        if app.json {
            print::json(&reports)?;
        } else {
            for r in &results {
                match r {
                    Ok(report) => println!("{}", summary_line(report)),
                    Err(f) => println!("run {}: {}", print::opt(&f.run_id), f.error),
                }
            }
            println!("{} load(s) claimed and run", results.len());
        }
        return Ok(());
    }
    eprintln!(
        "dataloader run: worker {} on {}",
        scheduler.worker(),
        app.store.describe()
    );
    let shutdown = async {
        stop_requested().await;
        eprintln!("dataloader run: stopping (no more claims; running loads get the grace period)");
    };
    scheduler.run(shutdown).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_requested() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// The load running in this process, for the signal listener to cancel.
static RUNNING_LOAD: std::sync::Mutex<Option<tokio_util::sync::CancellationToken>> =
    std::sync::Mutex::new(None);
static SIGNAL_LISTENER: std::sync::Once = std::sync::Once::new();

/// SIGINT or SIGTERM cancels the running load: it commits nothing more and is recorded
/// `Cancelled`, instead of leaving its run `In Progress`. A signal with no load running (a
/// second one, or one after the load) quits at once with 130.
fn cancel_on_signal() -> RunningLoad {
    SIGNAL_LISTENER.call_once(|| {
        tokio::spawn(async {
            loop {
                stop_requested().await;
                let running = RUNNING_LOAD.lock().ok().and_then(|mut r| r.take());
                match running {
                    Some(load) => {
                        eprintln!("dataloader load: stopping; the run is recorded Cancelled (again to quit at once)");
                        load.cancel();
                    }
                    None => {
                        #[cfg(feature = "dagster")]
                        pipes::finish(Some(("Cancelled", "stopped by a signal")));
                        std::process::exit(130);
                    }
                }
            }
        });
    });
    let token = tokio_util::sync::CancellationToken::new();
    if let Ok(mut running) = RUNNING_LOAD.lock() {
        *running = Some(token.clone());
    }
    RunningLoad(token)
}

/// A load [`cancel_on_signal`] may cancel, until dropped.
struct RunningLoad(tokio_util::sync::CancellationToken);

impl RunningLoad {
    fn token(&self) -> tokio_util::sync::CancellationToken {
        self.0.clone()
    }
}

impl Drop for RunningLoad {
    fn drop(&mut self) {
        if let Ok(mut running) = RUNNING_LOAD.lock() {
            running.take();
        }
    }
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

async fn due(app: &App) -> Result<()> {
    let now = SystemClock.now();
    // As the master sensor's tick: runs whose process died are failed first, so their tables
    // are due again.
    dataloader_scheduler::fail_lost_runs(app.store.as_ref(), now).await?;
    let mut due: Vec<_> = app
        .store
        .tables()
        .await?
        .into_iter()
        .filter_map(|t| t.due_since(now).map(|since| (t, since)))
        .collect();
    due.sort_by_key(|(t, _)| t.claim_order(now));
    if app.json {
        // A run's time limit, as the long-running monitor applies it.
        let default_limit = dataloader_scheduler::SchedulerConfig::default().running_threshold;
        let rows: Vec<serde_json::Value> = due
            .iter()
            .map(|(t, since)| {
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                let dest = &t.spec.destination;
                let max_runtime = t
                    .spec
                    .timeout_minutes
                    .map_or(default_limit.as_secs() as i64, |m| m * 60);
                serde_json::json!({
                    "table": dest.to_string(),
                    "asset_key": [dest.catalog, dest.schema, dest.table],
                    "table_id": t.table_id,
                    "due_since": since,
                    "run_key": format!("{dest}@{since}"),
                    "strategy": t.spec.strategy,
                    "priority": t.spec.priority,
                    "timeout_minutes": t.spec.timeout_minutes,
                    "max_runtime_seconds": max_runtime,
                })
            })
            .collect();
        return print::json(&rows);
    }
    if due.is_empty() {
        println!("no table is due");
        return Ok(());
    }
    let lines: Vec<Vec<String>> = due
        .iter()
        .map(|(t, since)| {
            vec![
                t.spec.destination.to_string(),
                t.spec.strategy.to_string(),
                since.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                t.spec.priority.to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        print::table(&["table", "strategy", "due since", "priority"], &lines)
    );
    Ok(())
}

async fn analyze(app: &App) -> Result<()> {
    let analyzed = dataloader_scheduler::analyze_failures(
        app.store.as_ref(),
        SystemClock.now(),
        &dataloader_scheduler::SchedulerConfig::default(),
    )
    .await?;
    if app.json {
        return print::json(&analyzed);
    }
    if analyzed.is_empty() {
        println!("no failed run waits for analysis");
    }
    for a in &analyzed {
        let retry = a
            .verdict
            .retry_at
            .map(|at| format!(", next load {}", at.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        println!(
            "run {} of {}: {} ({}){retry} — {}",
            a.run_id, a.table, a.verdict.recommendation, a.verdict.category, a.verdict.explanation
        );
    }
    Ok(())
}

async fn status(app: &App) -> Result<()> {
    let tables = app.store.tables().await?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for t in &tables {
        let last = match t.last_run_id {
            Some(id) => app.store.run(id).await?,
            None => None,
        };
        let error = last
            .as_ref()
            .and_then(|r| r.error_text.clone())
            .filter(|_| {
                !matches!(
                    t.status,
                    Some(
                        dataloader_core::RunStatus::Succeeded | dataloader_core::RunStatus::Skipped
                    )
                )
            });
        let advice = last.as_ref().and_then(|r| {
            r.retry_recommendation
                .as_ref()
                .map(|rec| format!("{rec}: {}", r.retry_explanation.clone().unwrap_or_default()))
        });
        json.push(serde_json::json!({
            "table": t.spec.destination.to_string(),
            "strategy": t.spec.strategy,
            "active": t.spec.is_active,
            "status": t.status,
            "last_run": last,
            "next_load": t.next_load_date_time,
            "watermark": t.incremental_value.as_ref().map(|w| &w.value),
            "retry_count": t.retry_count,
            "last_error": error,
            "recommendation": advice,
        }));
        rows.push(vec![
            t.spec.destination.to_string(),
            print::opt(&t.status),
            last.as_ref()
                .and_then(|r| r.finished_at.or(r.started_at))
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into()),
            print::opt(&last.as_ref().and_then(|r| r.rows_written)),
            print::opt(&t.next_load_date_time.map(|d| d.format("%Y-%m-%d %H:%M"))),
            match (&error, &advice) {
                (Some(e), Some(a)) => format!("{e} — {a}"),
                (Some(e), None) => e.clone(),
                _ => String::new(),
            },
        ]);
    }
    for bad in app.store.invalid_tables().await? {
        let problem = format!(
            "this table_control row cannot be read, so it is not loaded: {}",
            bad.problem
        );
        json.push(serde_json::json!({
            "table": bad.destination,
            "status": "Invalid",
            "last_error": problem,
            "recommendation": "correct the row with `dataloader table update` or SQL",
        }));
        rows.push(vec![
            bad.destination,
            "Invalid".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            problem,
        ]);
    }
    if app.json {
        return print::json(&json);
    }
    println!(
        "{}",
        print::table(
            &[
                "table",
                "status",
                "last run (UTC)",
                "rows",
                "next run (UTC)",
                "last error"
            ],
            &rows
        )
    );
    Ok(())
}
