//! `dataloader load`: one table now, with a spinner on a terminal, or run by Dagster Pipes with
//! the materialization and asset checks reported to Dagster. Also the one-line summary of a
//! load, which `run --once` and `quickstart` print too.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dataloader_core::{TargetTable, Trigger};
use dataloader_engine::{Engine, LoadReport, LoadRequest, ProgressFn};

use crate::app::App;
#[cfg(feature = "dagster")]
use crate::pipes;
use crate::print;
use crate::signals;

pub(crate) async fn load(app: &App, table: Option<String>, full_refresh: bool) -> Result<()> {
    #[cfg(feature = "dagster")]
    if let Some(session) = pipes::session() {
        return load_under_dagster(app, session, table, full_refresh).await;
    }
    let table = table.context("name the table to load: dataloader load catalog.schema.table")?;
    let dest = TargetTable::parse(&table)?;
    let report = load_with_progress(app, &dest, full_refresh).await?;
    print_report(app, &report)
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
    let running = signals::cancel_on_signal();
    engine
        .load(
            LoadRequest::new(dest, trigger)
                .progress(progress)
                .full_refresh(full_refresh)
                .cancel_on(running.token()),
        )
        .await
}

pub(crate) async fn load_with_progress(
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

pub(crate) fn summary_line(r: &LoadReport) -> String {
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
    let deleted = if r.rows.deleted > 0 {
        format!(", {} deleted", r.rows.deleted)
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
        r.rows.read,
        r.rows.written,
        r.rows.inserted,
        r.rows.updated,
        r.run_id
    )
}
