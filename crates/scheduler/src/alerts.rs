//! The alert monitor: finds what the active rules ask for (failed runs, recoveries, runs
//! longer than N minutes, tables not loaded successfully for N minutes), queues one delivery
//! per rule and event (the store ignores a second, so workers that find the same event, or a
//! window scanned twice, send it once), then sends what is due: a POST of the rule's JSON or
//! Slack body to its webhook, retried with backoff, each attempt recorded.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dataloader_core::alert::{AlertEvent, AlertFormat, AlertRule, Attempt, NewDelivery};
use dataloader_core::{Result, RunRecord, RunStatus, Store};

/// Attempts before a delivery is given up as failed.
pub const MAX_ATTEMPTS: i64 = 5;
/// The first retry's wait; each next one doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// How long a worker holds a delivery it is sending.
const HOLD: Duration = Duration::from_secs(60);

/// What one pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertPass {
    pub queued: usize,
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Queues the events of runs that ended since `since` (and of what runs or is stale now),
/// then sends the deliveries due.
pub async fn pass(
    store: &dyn Store,
    http: &reqwest::Client,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<AlertPass> {
    let rules: Vec<AlertRule> = store
        .alert_rules()
        .await?
        .into_iter()
        .filter(|r| r.is_active)
        .collect();
    let mut done = AlertPass::default();
    if !rules.is_empty() {
        for delivery in events(store, &rules, now, since).await? {
            if store.queue_delivery(&delivery, now).await? {
                done.queued += 1;
            }
        }
    }
    send_due(store, http, &rules, now, &mut done).await?;
    Ok(done)
}

async fn events(
    store: &dyn Store,
    rules: &[AlertRule],
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<Vec<NewDelivery>> {
    let on = |event: AlertEvent| rules.iter().filter(move |r| r.event == event);
    let mut out = Vec::new();
    for run in store.runs_finished_since(since).await? {
        let table = run.destination.as_str();
        let about = Subject::of_run(&run);
        if run.status == RunStatus::Failed {
            for rule in on(AlertEvent::Failure).filter(|r| r.covers(table)) {
                let text = format!(
                    "{table} failed (run {}, {}): {}",
                    run.run_id,
                    run.error_class.as_deref().unwrap_or("error"),
                    clip(run.error_text.as_deref().unwrap_or(""))
                );
                out.push(delivery(rule, "failure", &about, &text, now));
            }
        }
        let recovery_rules: Vec<&AlertRule> = on(AlertEvent::Recovery)
            .filter(|r| r.covers(table))
            .collect();
        if run.status == RunStatus::Succeeded && !recovery_rules.is_empty() {
            // The run before this one, whenever it ran.
            let before = store.runs(Some(run.table_id), 10).await?;
            let previous = before.iter().find(|r| r.run_id < run.run_id);
            if previous.is_some_and(|p| p.status == RunStatus::Failed) {
                let text = format!(
                    "{table} recovered (run {}, {} rows written)",
                    run.run_id,
                    run.rows_written.unwrap_or(0)
                );
                for rule in recovery_rules {
                    out.push(delivery(rule, "recovery", &about, &text, now));
                }
            }
        }
    }
    let (long_runs, stale) = (
        on(AlertEvent::LongRun).next(),
        on(AlertEvent::Freshness).next(),
    );
    if long_runs.is_none() && stale.is_none() {
        return Ok(out);
    }
    let tables = store.tables().await?;
    let names: HashMap<i64, String> = tables
        .iter()
        .map(|t| (t.table_id, t.spec.destination.to_string()))
        .collect();
    if long_runs.is_some() {
        // Paused or not: a run that does not end is worth a word.
        for running in store.running_runs().await? {
            let Some(table) = names.get(&running.table_id) else {
                continue;
            };
            let minutes = (now - running.started_at).num_minutes();
            for rule in on(AlertEvent::LongRun).filter(|r| r.covers(table)) {
                if minutes >= rule.threshold_minutes.unwrap_or(i64::MAX) {
                    let text = format!(
                        "{table} has been running for {minutes} minutes (run {})",
                        running.run_id
                    );
                    let about = Subject {
                        key: format!("run:{}", running.run_id),
                        table,
                        table_id: running.table_id,
                        run_id: Some(running.run_id),
                        status: Some(RunStatus::InProgress.as_str()),
                        error_class: None,
                    };
                    out.push(delivery(rule, "long_run", &about, &text, now));
                }
            }
        }
    }
    if stale.is_some() {
        // A paused table is stale on purpose.
        let active: HashMap<i64, bool> = tables
            .iter()
            .map(|t| (t.table_id, t.spec.is_active))
            .collect();
        for (table_id, last) in store.last_successes(None).await? {
            let (Some(table), Some(true)) = (names.get(&table_id), active.get(&table_id)) else {
                continue;
            };
            let minutes = (now - last).num_minutes();
            for rule in on(AlertEvent::Freshness).filter(|r| r.covers(table)) {
                if minutes >= rule.threshold_minutes.unwrap_or(i64::MAX) {
                    let text = format!(
                        "{table} has not loaded successfully for {minutes} minutes (last success {})",
                        last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                    // One alert per stale spell: the next success starts another.
                    let about = Subject {
                        key: format!("table:{table_id}:since:{}", last.timestamp()),
                        table,
                        table_id,
                        run_id: None,
                        status: None,
                        error_class: None,
                    };
                    out.push(delivery(rule, "freshness", &about, &text, now));
                }
            }
        }
    }
    Ok(out)
}

/// An error's first line, at most 300 characters: an alert points, the run page explains.
fn clip(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// What an event is about: its key (unique for the rule, with the event's kind before it),
/// its table and run.
struct Subject<'a> {
    key: String,
    table: &'a str,
    table_id: i64,
    run_id: Option<i64>,
    status: Option<&'a str>,
    error_class: Option<&'a str>,
}

impl<'a> Subject<'a> {
    fn of_run(run: &'a RunRecord) -> Subject<'a> {
        Subject {
            key: format!("run:{}", run.run_id),
            table: &run.destination,
            table_id: run.table_id,
            run_id: Some(run.run_id),
            status: Some(run.status.as_str()),
            error_class: run.error_class.as_deref(),
        }
    }
}

/// The delivery of `rule` for the event `kind` about `about`: its key and body.
fn delivery(
    rule: &AlertRule,
    kind: &str,
    about: &Subject,
    text: &str,
    now: DateTime<Utc>,
) -> NewDelivery {
    let payload = match rule.format {
        AlertFormat::Slack => serde_json::json!({ "text": format!("DataLoader: {text}") }),
        AlertFormat::Json => serde_json::json!({
            "event": kind,
            "rule": rule.name,
            "table": about.table,
            "run_id": about.run_id,
            "status": about.status,
            "error_class": about.error_class,
            "message": text,
            "at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    };
    NewDelivery {
        rule: rule.name.clone(),
        event_key: format!("{kind}:{}", about.key),
        table_id: Some(about.table_id),
        run_id: about.run_id,
        payload: payload.to_string(),
    }
}

async fn send_due(
    store: &dyn Store,
    http: &reqwest::Client,
    rules: &[AlertRule],
    now: DateTime<Utc>,
    done: &mut AlertPass,
) -> Result<()> {
    let hold = now + chrono::Duration::from_std(HOLD).unwrap_or_default();
    for d in store.claim_deliveries(now, hold, 50).await? {
        let attempt = match rules.iter().find(|r| r.name == d.rule) {
            Some(rule) => match send(http, rule, &d.payload).await {
                Ok(()) => Attempt::Delivered,
                Err(error) if d.attempts + 1 < MAX_ATTEMPTS => {
                    let wait = FIRST_RETRY * 2u32.pow(d.attempts.clamp(0, 10) as u32);
                    Attempt::Retry {
                        error,
                        at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
                    }
                }
                Err(error) => Attempt::Failed { error },
            },
            None => Attempt::Failed {
                error: format!("the rule {} was removed or paused", d.rule),
            },
        };
        match &attempt {
            Attempt::Delivered => done.delivered += 1,
            Attempt::Retry { .. } => done.retried += 1,
            Attempt::Failed { error } => {
                tracing::warn!(rule = %d.rule, event = %d.event_key, %error, "alert not delivered");
                done.failed += 1
            }
        }
        store.record_attempt(d.delivery_id, &attempt, now).await?;
    }
    Ok(())
}

/// POSTs `payload` to the rule's webhook; the error says why without the URL (a Slack
/// webhook's URL is its secret).
async fn send(
    http: &reqwest::Client,
    rule: &AlertRule,
    payload: &str,
) -> std::result::Result<(), String> {
    let url = match rule.webhook() {
        Ok(setting) => setting.get().await.map_err(|e| format!("webhook: {e}"))?,
        Err(e) => return Err(format!("webhook: {e}")),
    };
    let response = http
        .post(url.trim())
        .header("content-type", "application/json")
        .body(payload.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("webhook: {}", e.without_url()))?;
    match response.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("webhook answered HTTP {s}")),
    }
}
