//! A table's page (its state, last error with the retry analysis, buttons, a chart of rows and
//! duration over its runs, the runs, the audit trail, the settings) and a run's page.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{badge, count, duration, time};
use super::overview::runs_table;
use super::{may_operate, Page, Viewer};
use crate::api;
use crate::error::ApiError;
use crate::views::RunView;
use crate::Console;

#[derive(Deserialize)]
pub(crate) struct Done {
    /// What the last button did, said once at the top.
    done: Option<String>,
    /// `storage`: a refresh of the Delta table and catalog part.
    part: Option<String>,
}

pub(crate) async fn table(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(part): Query<Done>,
) -> Response {
    // The live part's refresh (htmx) leaves out the lake and the catalog; the storage part's
    // own, slower refresh asks for them.
    let refresh = headers.contains_key("hx-request") && part.part.as_deref() != Some("storage");
    let detail = match api::table_detail(&console, &name, !refresh).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let page = Page::new(&headers);
    let t = &detail.table;
    let last = t.last_run.as_ref();
    let failed = last.filter(|r| r.status == "Failed");
    let runs: Vec<&RunView> = detail.runs.iter().collect();
    let button = |action: &str, label: &str, primary: bool| {
        html! {
            form.inline method="post" action={"/tables/" (t.name) "/" (action)} {
                (page.csrf_field())
                button type="submit" class=[primary.then_some("primary")] { (label) }
            }
        }
    };
    let body = html! {
        main {
            h1 { (t.name) }
            @if let Some(said) = part.done.as_deref().and_then(done_said) { p.done { (said) } }
            @if may_operate(&caller) {
                p {
                    (button("load", "Load now", true)) " "
                    (button("full-refresh", "Full refresh", false)) " "
                    @if t.active { (button("pause", "Pause", false)) } @else { (button("resume", "Resume", false)) }
                    @if caller.role >= dataloader_core::access::Role::Admin { " " a href={"/tables/" (t.name) "/edit"} { "Edit" } }
                }
            }
            // Read from the lake and the catalog at load and every 30 s, not at the live part's
            // every refresh.
            dl.kv.storage #storage hx-get={"/tables/" (t.name) "?part=storage"} hx-select="#storage" hx-target="this" hx-swap="outerHTML" hx-trigger="every 30s" {
                @match (&detail.storage, &detail.storage_error) {
                    (Some(s), _) => {
                        dt { "Delta table" } dd {
                            @match s.delta_version {
                                Some(v) => { "version " (v) ", " (count(s.files.map(|f| f as i64))) @if s.files == Some(1) { " file, " } @else { " files, " } (count(s.bytes.map(|b| b as i64))) " bytes" }
                                None => { "not written yet" }
                            }
                        }
                        dt { "Catalog" } dd { (s.catalog) }
                    }
                    (None, Some(e)) => { dt { "Delta table" } dd.error { (e) } }
                    (None, None) => {}
                }
            }
            div #live hx-get={"/tables/" (t.name)} hx-select="#live" hx-target="this" hx-swap="outerHTML" hx-trigger="every 5s" {
                dl.kv {
                    dt { "Status" } dd { (badge(t.status.as_deref())) @if !t.active { " " span.badge { "paused" } } }
                    dt { "Source" } dd { (t.connection) " · " (t.source) }
                    dt { "Strategy" } dd { (t.strategy) }
                    dt { "Schedule" } dd { (t.schedule.as_deref().unwrap_or("only when asked")) " " span.muted { (t.timezone) } }
                    dt { "Next load" } dd { (time(t.next_load)) }
                    dt { "Watermark" } dd { (t.watermark.as_deref().unwrap_or("–")) }
                    dt { "Last success" } dd { (time(t.last_success)) " " span.muted { "lag " (duration(t.lag_seconds.map(|s| s as f64))) } }
                    dt { "Retries since then" } dd { (t.retry_count) }
                }
                @if let Some(r) = failed {
                    h2 { "Last error" }
                    p.error { (r.error_class.as_deref().unwrap_or("")) ": " (r.error_text.as_deref().unwrap_or("")) }
                    @if let Some(rec) = &r.retry_recommendation {
                        p { b { "Retry analysis: " (rec) } " (" (r.retry_category.as_deref().unwrap_or("")) ") " (r.retry_explanation.as_deref().unwrap_or("")) }
                    }
                }
                h2 { "Rows and duration of the last " (runs.len()) " runs" }
                (chart(&detail.runs))
                h2 { "Runs" }
                @if runs.is_empty() { p.muted { "Never loaded." } } @else { (runs_table(&runs, false)) }
            }
            h2 { "Audit trail" }
            div.scroll { table {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Changed" } } }
                tbody { @for h in &detail.history { tr {
                    td { (time(Some(h.changed_at))) }
                    td { (h.changed_by.as_deref().unwrap_or("–")) }
                    td { (h.operation) }
                    td.wrap { (changes(h.old_values.as_ref(), h.new_values.as_ref())) }
                } } }
            } }
            h2 { "Settings" }
            dl.kv { @for (k, v) in settings(&detail.settings) { dt { (k) } dd { (v) } } }
        }
    };
    page.render(&t.name, &caller, body)
}

/// What the page says after a button or form sent the browser back to it (a fixed sentence
/// per action: the query never puts text of its own on the page).
fn done_said(action: &str) -> Option<&'static str> {
    Some(match action {
        "load" => "A load started. This page shows the run when it ends.",
        "full-refresh" => "A full refresh started. This page shows the run when it ends.",
        "pause" => "The table was paused.",
        "resume" => "The table was resumed.",
        "created" => "The table was created.",
        "updated" => "The table was updated.",
        _ => return None,
    })
}

/// The keys whose value an audit row changed: `key: old → new`.
fn changes(old: Option<&serde_json::Value>, new: Option<&serde_json::Value>) -> String {
    let (Some(serde_json::Value::Object(old)), Some(serde_json::Value::Object(new))) = (old, new)
    else {
        return match (old, new) {
            (None, Some(_)) => "created".into(),
            (Some(_), None) => "deleted".into(),
            _ => String::new(),
        };
    };
    let mut said: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}: {} → {v}",
                old.get(k).unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect();
    said.sort();
    said.join("; ")
}

/// The settings that are set, as text.
fn settings(value: &serde_json::Value) -> Vec<(String, String)> {
    let serde_json::Value::Object(map) = value else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| {
            !v.is_null() && *v != &serde_json::json!([]) && *v != &serde_json::json!({})
        })
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Bars for rows written and a line for duration, oldest run on the left.
fn chart(runs: &[RunView]) -> Markup {
    let runs: Vec<&RunView> = runs
        .iter()
        .rev()
        .filter(|r| r.finished_at.is_some())
        .collect();
    if runs.is_empty() {
        return html! { p.muted { "No finished run yet." } };
    }
    let (w, h) = (600.0_f64, 140.0_f64);
    // At least 20 slots, so that a table with few runs shows bars, not a block.
    let step = w / runs.len().max(20) as f64;
    let max_rows = runs
        .iter()
        .filter_map(|r| r.rows_written)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_secs = runs
        .iter()
        .filter_map(|r| r.duration_seconds)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let line: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let y = h - r.duration_seconds.unwrap_or(0.0) / max_secs * (h - 10.0);
            format!("{:.1},{:.1}", i as f64 * step + step / 2.0, y)
        })
        .collect();
    html! {
        svg.chart viewBox={"0 0 " (w) " " (h)} preserveAspectRatio="none" role="img"
            aria-label="Rows written (bars) and duration (line) per run" {
            @for (i, r) in runs.iter().enumerate() {
                @let rows = r.rows_written.unwrap_or(0) as f64;
                @let bar = rows / max_rows * (h - 10.0);
                rect x=(format!("{:.1}", i as f64 * step + 1.0)) y=(format!("{:.1}", h - bar))
                    width=(format!("{:.1}", (step - 2.0).max(1.0))) height=(format!("{:.1}", bar))
                    fill=(if r.status == "Failed" { "#e8a0a0" } else { "#9cc3ee" }) {
                    title { "run #" (r.run_id) ": " (count(r.rows_written)) " rows, " (duration(r.duration_seconds)) }
                }
            }
            polyline points=(line.join(" ")) fill="none" stroke="#1d232b" stroke-width="1.5" {}
        }
        p.muted {
            "Bars: rows written (most " (count(Some(max_rows as i64))) "); line: duration (longest "
            (duration(Some(max_secs))) "); oldest run on the left."
        }
    }
}

pub(crate) async fn run(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let run: RunView = match console.store.run(id).await {
        Ok(Some(r)) => r.into(),
        Ok(None) => return ApiError::not_found(format!("no run {id}")).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    let body = html! {
        main {
            h1 { "Run #" (run.run_id) " of " a href={"/tables/" (run.table)} { (run.table) } }
            div #live hx-get={"/runs/" (run.run_id)} hx-select="#live" hx-target="this" hx-swap="outerHTML" hx-trigger="every 5s" {
                dl.kv {
                    dt { "Status" } dd { (badge(Some(&run.status))) }
                    dt { "Trigger" } dd { (run.trigger) }
                    dt { "Worker" } dd { (text(&run.worker)) }
                    dt { "Queued" } dd { (time(Some(run.queued_at))) }
                    dt { "Started" } dd { (time(run.started_at)) }
                    dt { "Finished" } dd { (time(run.finished_at)) }
                    dt { "Duration" } dd { (duration(run.duration_seconds)) }
                    dt { "Rows read" } dd { (count(run.rows_read)) }
                    dt { "Rows written" } dd { (count(run.rows_written)) }
                    dt { "Rows deleted" } dd { (count(run.rows_deleted)) }
                    dt { "Bytes written" } dd { (count(run.bytes_written)) }
                    dt { "Watermark before" } dd { (text(&run.watermark_before)) }
                    dt { "Watermark after" } dd { (text(&run.watermark_after)) }
                    dt { "Delta version" } dd { (run.delta_version.map(|v| v.to_string()).unwrap_or("–".into())) }
                    dt { "Schema changes" } dd { (text(&run.schema_changes)) }
                    dt { "Notes" } dd { (text(&run.notes)) }
                }
                @if let Some(e) = &run.error_text {
                    h2 { "Error" }
                    p.error { (run.error_class.as_deref().unwrap_or("")) ": " (e) }
                    @if let Some(rec) = &run.retry_recommendation {
                        p { b { "Retry analysis: " (rec) } " (" (text(&run.retry_category)) ") " (text(&run.retry_explanation)) }
                    }
                }
            }
        }
    };
    Page::new(&headers).render(&format!("Run #{id}"), &caller, body)
}
