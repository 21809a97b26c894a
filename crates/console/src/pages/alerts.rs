//! The alert rules and what they delivered: each rule's event, tables and webhook (by its host,
//! or its reference: a Slack webhook's URL is a secret), and the newest deliveries with their
//! attempts and last error. Rules are changed with `dataloader alert` or an apply file.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{badge, time};
use super::{Page, Viewer};
use crate::error::ApiError;
use crate::Console;

pub(crate) async fn alerts(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
) -> Response {
    let store = console.store.as_ref();
    let (rules, deliveries) = match (store.alert_rules().await, store.deliveries(50).await) {
        (Ok(r), Ok(d)) => (r, d),
        (Err(e), _) | (_, Err(e)) => return ApiError::from(e).into_response(),
    };
    let body = html! {
        main {
            h1 { "Alerts" }
            p.muted { "Rules are changed with " code { "dataloader alert" } " or an apply file's " code { "alerts:" } "; " code { "dataloader run" } " sends them." }
            h2 { "Rules (" (rules.len()) ")" }
            @if rules.is_empty() { p.muted { "No rule: nobody is told when a load fails." } } @else {
                div.scroll { table {
                    thead { tr { th { "Name" } th { "On" } th { "After" } th { "Tables" } th { "Format" } th { "Webhook" } th { "Active" } } }
                    tbody { @for r in &rules { tr {
                        td { (r.name) }
                        td { (r.event.as_str()) }
                        td { (r.threshold_minutes.map(|m| format!("{m} min")).unwrap_or("–".into())) }
                        td { (r.tables.as_deref().unwrap_or("every table")) }
                        td { (r.format.as_str()) }
                        td { code { (r.shown_url()) } }
                        td { @if r.is_active { "yes" } @else { span.badge { "paused" } } }
                    } } }
                } }
            }
            h2 { "Deliveries (newest " (deliveries.len()) ")" }
            @if deliveries.is_empty() { p.muted { "Nothing delivered yet." } } @else {
                div.scroll { table {
                    thead { tr { th { "Queued" } th { "Rule" } th { "Event" } th { "Status" } th.num { "Attempts" } th { "Last error" } } }
                    tbody { @for d in &deliveries { tr {
                        td { (time(Some(d.created_at))) }
                        td { (d.rule) }
                        td { (d.event_key) }
                        td { (badge(Some(match d.status.as_str() { "delivered" => "Succeeded", "failed" => "Failed", _ => "Queued" }))) " " (d.status.as_str()) }
                        td.num { (d.attempts) }
                        td.wrap.error { (d.last_error.as_deref().unwrap_or("")) }
                    } } }
                } }
            }
        }
    };
    Page::new(&headers).render("Alerts", &caller, body)
}
