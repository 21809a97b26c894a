//! The command line: the global flags and the subcommands. Their doc comments are the `--help`
//! text. Each group's own arguments live beside its code, under `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::bench::BenchCommand;
use crate::commands::alerts::AlertCommand;
use crate::commands::catalog::CatalogCommand;
use crate::commands::connections::ConnectionCommand;
use crate::commands::scheduler::RunArgs;
use crate::commands::serve::TokenCommand;
use crate::commands::tables::TableCommand;
use crate::duration_arg::{parse_duration, parse_duration_or_zero};

#[derive(Parser)]
#[command(
    name = "dataloader",
    version,
    about = "Keeps Delta Lake tables in step with operational databases."
)]
pub(crate) struct Cli {
    /// Control database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://./dataloader.db]
    #[arg(
        long,
        env = "DATALOADER_CONTROL_DB",
        global = true,
        hide_env_values = true
    )]
    pub(crate) control_db: Option<String>,

    /// The PostgreSQL control database's password, when its URL holds none: the value, or a
    /// reference (env:, file:, azure-keyvault://, aws-sm://) read again every minute so a
    /// rotation is picked up. LAKEBASE_PASSWORD does the same with the LAKEBASE_* variables.
    #[arg(
        long,
        env = "DATALOADER_CONTROL_DB_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub(crate) control_db_password: Option<String>,

    /// Lakehouse root: a directory or an object-store URL [default: ./lakehouse]
    #[arg(long, env = "DATALOADER_LAKE_ROOT", global = true)]
    pub(crate) lake_root: Option<String>,

    /// Where tables are registered: path (folders under the lake root only) or
    /// unity:https://WORKSPACE (Unity Catalog; credentials from DATABRICKS_TOKEN, or
    /// DATABRICKS_CLIENT_ID/SECRET, or ARM_TENANT_ID/ARM_CLIENT_ID/ARM_CLIENT_SECRET) [default: path]
    #[arg(long, env = "DATALOADER_CATALOG", global = true)]
    pub(crate) catalog: Option<String>,

    /// Settings file [default: ./dataloader.toml when it exists]
    #[arg(long, env = "DATALOADER_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Rows per Arrow batch read from a source.
    #[arg(long, env = "DATALOADER_BATCH_SIZE", global = true, default_value_t = dataloader_sources::DEFAULT_BATCH_SIZE)]
    pub(crate) batch_size: usize,

    /// A load's lease, renewed every third of it while the load runs: a run whose process
    /// stopped renewing it is taken as lost, and its table becomes due again.
    #[arg(long, env = "DATALOADER_LEASE", global = true, default_value = "60s", value_parser = parse_duration)]
    pub(crate) lease: Duration,

    /// How long a secret read from Azure Key Vault or AWS Secrets Manager is used before it is
    /// read again (so a rotation is picked up); 0 reads it at every connection.
    #[arg(long, env = "DATALOADER_SECRET_CACHE_TTL", global = true, default_value = "5m", value_parser = parse_duration_or_zero)]
    pub(crate) secret_cache_ttl: Duration,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create or upgrade the control tables (safe to run again).
    Init,
    /// Manage source connections.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Manage loaded tables.
    #[command(subcommand)]
    Table(TableCommand),
    /// The catalog tables are registered in.
    #[command(subcommand)]
    Catalog(CatalogCommand),
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
    /// Every table_control row that cannot be loaded as it stands (unreadable, or breaking a
    /// rule), and why; exits non-zero when there is one.
    Validate,
    /// The web console, the REST API (/api/v1) and Prometheus metrics (/metrics). On loopback
    /// no token is needed; on any other address every request needs one (dataloader token).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Alert rules (on failure, recovery, a long run, a stale table) and their deliveries.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Bearer tokens for the console and the API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Measure DataLoader itself.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Set up a demo (SQLite source, control DB, lakehouse) in a folder and load it.
    Quickstart {
        #[arg(long, default_value = "./dataloader-quickstart")]
        dir: PathBuf,
    },
}
