//! The scheduler and what an outside scheduler asks of it: `dataloader run` (claim due tables
//! and load them, with the monitors), `dataloader due` and `dataloader analyze`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use dataloader_core::connection::resolve_optional;
use dataloader_core::{Clock, SystemClock};

use crate::app::App;
use crate::commands::load::summary_line;
use crate::duration_arg::parse_duration;
use crate::print;
use crate::signals;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// One sensor tick and the loads it claims, then exit (for cron and tests).
    #[arg(long)]
    once: bool,
    /// How often the alert monitor looks for events and sends what is due (dataloader alert).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    alert_interval: Duration,
    /// Also serve the console, the API and /metrics on ADDR, as `dataloader serve` does.
    #[arg(long, value_name = "ADDR", conflicts_with = "once")]
    serve: Option<std::net::SocketAddr>,
    /// Master sensor interval.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    poll_interval: Duration,
    #[arg(long, default_value_t = 4)]
    max_concurrent_loads: usize,
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    queued_monitor_interval: Duration,
    /// Runs queued longer than this are cancelled.
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    queued_threshold: Duration,
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    running_monitor_interval: Duration,
    /// Runs longer than this are cancelled (a table's timeout_minutes overrides it).
    #[arg(long, default_value = "180m", value_parser = parse_duration)]
    running_threshold: Duration,
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    failed_monitor_interval: Duration,
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    landing_monitor_interval: Duration,
    /// Where the landing-table monitor writes schema files and dbt sources.yml.
    #[arg(long, default_value = "schemas")]
    schemas_dir: PathBuf,
    /// On SIGTERM/SIGINT, how long running loads may finish before they are cancelled.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    grace_period: Duration,
    /// First retry delay; doubles with each retry.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    retry_base: Duration,
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    retry_max: Duration,
    /// OpenAI-compatible endpoint that words retry explanations (the rules decide).
    #[arg(long)]
    retry_llm_url: Option<String>,
    /// API key reference for it: env:NAME, file:/path, azure-keyvault://… or aws-sm://….
    #[arg(long)]
    retry_llm_key: Option<String>,
    #[arg(long, default_value = "gpt-4o-mini")]
    retry_llm_model: String,
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

pub(crate) async fn run(app: &App, args: RunArgs) -> Result<()> {
    let _lock = sqlite_run_lock(&app.store.describe())?;
    let llm = match &args.retry_llm_url {
        Some(url) => Some(dataloader_scheduler::LlmConfig {
            url: url.clone(),
            api_key: resolve_optional(args.retry_llm_key.as_deref()).await?,
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
        alert_interval: args.alert_interval,
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
    let console = match args.serve {
        Some(listen) => {
            let (listener, console) = crate::commands::serve::bind(app, listen).await?;
            Some(tokio::spawn(dataloader_console::serve(
                listener,
                console,
                signals::stop_requested(),
            )))
        }
        None => None,
    };
    let shutdown = async {
        signals::stop_requested().await;
        eprintln!("dataloader run: stopping (no more claims; running loads get the grace period)");
    };
    scheduler.run(shutdown).await?;
    if let Some(console) = console {
        // The console stops on the same signal and cancels the loads it started; give it the
        // grace period to record them, then go.
        if tokio::time::timeout(args.grace_period, console)
            .await
            .is_err()
        {
            eprintln!("dataloader run: the console did not stop within the grace period");
        }
    }
    Ok(())
}

pub(crate) async fn due(app: &App) -> Result<()> {
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

pub(crate) async fn analyze(app: &App) -> Result<()> {
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
