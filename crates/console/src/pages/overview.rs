//! The overview, for an operator with 30 seconds: tables by status, what runs and waits now
//! (with the worker holding each lease), the last day's failures with the failed monitor's
//! verdicts, the schedulers' last ticks, and the next loads.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use dataloader_core::WorkerTick;
use maud::{html, Markup};

use super::layout::{badge, count, duration, time};
use super::{Page, Viewer};
use crate::views::{self, RunView, TableView};
use crate::Console;

pub(crate) async fn overview(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
) -> Response {
    let now = Utc::now();
    let tables = match views::tables(console.store.as_ref(), now).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    // The runs that ended in the last day, not a fixed number of the newest.
    let day_ago = now - Duration::hours(24);
    let ended: Vec<RunView> = match console.store.runs_finished_since(day_ago).await {
        Ok(runs) => runs.into_iter().rev().map(RunView::from).collect(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let failures: Vec<&RunView> = ended.iter().filter(|r| r.status == "Failed").collect();
    // An open run is its table's last one.
    let live: Vec<&RunView> = tables
        .iter()
        .filter_map(|t| t.last_run.as_ref())
        .filter(|r| r.status == "Queued" || r.status == "In Progress")
        .collect();
    let workers: Vec<WorkerTick> = match console.store.workers().await {
        Ok(w) => w
            .into_iter()
            .filter(|w| now - w.last_tick_at < Duration::hours(1))
            .collect(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let mut next: Vec<&TableView> = tables
        .iter()
        .filter(|t| t.active && t.next_load.is_some())
        .collect();
    next.sort_by_key(|t| t.next_load);
    next.truncate(10);

    let body = html! {
        main {
            div #live hx-get="/" hx-select="#live" hx-target="this" hx-swap="outerHTML" hx-trigger="every 5s" {
                h1 { "Overview" }
                (status_cards(&tables))
                h2 { "Running and queued now (" (live.len()) ")" }
                @if live.is_empty() {
                    p.muted { "Nothing is running." }
                } @else {
                    (runs_table(&live, false))
                }
                h2 { "Failures in the last 24 hours (" (failures.len()) ")" }
                @if failures.is_empty() {
                    p.muted { "No run failed in the last 24 hours." }
                } @else {
                    (runs_table(&failures, true))
                }
                h2 { "Schedulers (" (workers.len()) ")" }
                @if workers.is_empty() {
                    p.muted { "No " code { "dataloader run" } " worker ticked in the last hour: nothing loads tables when they are due." }
                } @else {
                    div.scroll { table {
                        thead { tr { th { "Worker" } th { "Last tick" } th { "Tick took" } th { "Late by" } th.num { "Loads running" } th.num { "Ticks" } } }
                        tbody { @for w in &workers { tr {
                            td { (w.worker) }
                            td { (time(Some(w.last_tick_at))) }
                            td { (duration(Some(w.last_tick_seconds))) }
                            td { (duration(Some(w.last_tick_lateness_seconds))) }
                            td.num { (w.running_loads) }
                            td.num { (count(Some(w.ticks))) }
                        } } }
                    } }
                }
                h2 { "Next loads" }
                @if next.is_empty() {
                    p.muted { "No active table has a schedule." }
                } @else {
                    div.scroll { table {
                        thead { tr { th { "Table" } th { "Next load" } th { "Schedule" } th { "Last run" } } }
                        tbody { @for t in &next { tr {
                            td { a href={"/tables/" (t.name)} { (t.name) } }
                            td { (time(t.next_load)) }
                            td { (t.schedule.as_deref().unwrap_or("–")) " " span.muted { (t.timezone) } }
                            td { (badge(t.status.as_deref())) }
                        } } }
                    } }
                }
                p.muted { "Updated " (time(Some(now))) "; this part reloads every 5 seconds." }
            }
        }
    };
    Page::new(&headers).render("Overview", &caller, body)
}

/// One card per status, each a link to the tables list filtered by it.
fn status_cards(tables: &[TableView]) -> Markup {
    let of = |f: &dyn Fn(&TableView) -> bool| tables.iter().filter(|t| f(t)).count();
    let cards = [
        ("All tables", "", tables.len()),
        (
            "Succeeded",
            "Succeeded",
            of(&|t| t.status.as_deref() == Some("Succeeded")),
        ),
        (
            "Failed",
            "Failed",
            of(&|t| t.status.as_deref() == Some("Failed")),
        ),
        (
            "Running",
            "In Progress",
            of(&|t| t.status.as_deref() == Some("In Progress")),
        ),
        (
            "Queued",
            "Queued",
            of(&|t| t.status.as_deref() == Some("Queued")),
        ),
        ("Never loaded", "never", of(&|t| t.status.is_none())),
        ("Paused", "paused", of(&|t| !t.active)),
    ];
    html! {
        div.cards {
            @for (label, filter, n) in cards {
                a.card href={"/tables?status=" (super::encode(filter))} { b { (n) } (label) }
            }
        }
    }
}

/// Runs as a table; `verdicts` adds the error and the failed monitor's verdict.
pub(crate) fn runs_table(runs: &[&RunView], verdicts: bool) -> Markup {
    html! {
        div.scroll { table {
            thead { tr {
                th { "Run" } th { "Table" } th { "Status" } th { "Queued" } th { "Duration" }
                th.num { "Rows" } th { "Worker" }
                @if verdicts { th { "Error" } th { "Retry verdict" } }
            } }
            tbody { @for r in runs { tr {
                td { a href={"/runs/" (r.run_id)} { "#" (r.run_id) } }
                td { a href={"/tables/" (r.table)} { (r.table) } }
                td { (badge(Some(&r.status))) }
                td { (time(Some(r.queued_at))) }
                td { (duration(r.duration_seconds)) }
                td.num { (count(r.rows_written)) }
                td { (r.worker.as_deref().unwrap_or("–")) }
                @if verdicts {
                    td.wrap.error { (r.error_text.as_deref().unwrap_or("")) }
                    td.wrap {
                        @if let Some(rec) = &r.retry_recommendation {
                            b { (rec) } " " span.muted { (r.retry_category.as_deref().unwrap_or("")) }
                        } @else { span.muted { "not analysed yet" } }
                    }
                }
            } } }
        } }
    }
}
