//! What the loads did: `dataloader history` (one table's runs, or its configuration changes) and
//! `dataloader status` (every table's latest state and what to do about an error).

use anyhow::{bail, Result};
use dataloader_core::TargetTable;

use crate::app::App;
use crate::print;

pub(crate) async fn history(
    app: &App,
    table: Option<String>,
    limit: i64,
    changes: bool,
) -> Result<()> {
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

pub(crate) async fn status(app: &App) -> Result<()> {
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
