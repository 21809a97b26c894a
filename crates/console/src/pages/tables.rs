//! The tables: searched and filtered by status, strategy, connection, tag and schedule, sorted
//! by any column (the API's filter, [`TableFilter`]), each with its last run, rows, duration,
//! freshness lag and next load.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{html, Markup};

use super::layout::{badge, count, duration, time};
use super::{encode, Page, Viewer};
use crate::views::{self, TableFilter, TableView};
use crate::Console;

pub(crate) async fn tables(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Query(filter): Query<TableFilter>,
) -> Response {
    let all = match views::tables(console.store.as_ref(), Utc::now()).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let options = Options::of(&all);
    let shown = match filter.apply(all.clone()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let here = query_string(&filter, None);
    let body = html! {
        main {
            h1 { "Tables (" (shown.len()) " of " (all.len()) ")" }
            @if caller.role >= dataloader_core::access::Role::Admin { p { a href="/tables/new" { "New table" } } }
            form.filters method="get" action="/tables" {
                input type="search" name="q" placeholder="Search name, source, connection" value=(filter.q.clone().unwrap_or_default());
                (select("status", "any status", &options.statuses, filter.status.as_deref()))
                (select("strategy", "any strategy", &options.strategies, filter.strategy.as_deref()))
                (select("connection", "any connection", &options.connections, filter.connection.as_deref()))
                (select("tag", "any tag", &options.tags, filter.tag.as_deref()))
                (select("schedule", "scheduled or not", &["scheduled".to_string(), "manual".to_string()].into_iter().collect(), filter.schedule.as_deref()))
                @if let Some(sort) = &filter.sort { input type="hidden" name="sort" value=(sort); }
                button type="submit" { "Filter" }
                a href="/tables" { "Clear" }
            }
            div #live hx-get={"/tables" (here)} hx-select="#live" hx-target="this" hx-swap="outerHTML" hx-trigger="every 10s" {
                div.scroll { table {
                    thead { tr {
                        th { (sort_link(&filter, "name", "Table")) }
                        th { (sort_link(&filter, "status", "Status")) }
                        th { "Strategy" }
                        th { "Connection" }
                        th { (sort_link(&filter, "last_run", "Last run")) }
                        th.num { (sort_link(&filter, "rows", "Rows")) }
                        th { (sort_link(&filter, "duration", "Duration")) }
                        th { (sort_link(&filter, "lag", "Lag")) }
                        th { (sort_link(&filter, "next_load", "Next load")) }
                    } }
                    tbody { @for t in &shown { (row(t)) } }
                } }
                @if shown.is_empty() { p.muted { "No table matches." } }
            }
        }
    };
    Page::new(&headers).render("Tables", &caller, body)
}

fn row(t: &TableView) -> Markup {
    let last = t.last_run.as_ref();
    html! {
        tr {
            td {
                a href={"/tables/" (t.name)} { (t.name) }
                @if !t.active { " " span.badge { "paused" } }
            }
            td { (badge(t.status.as_deref())) }
            td { (t.strategy) }
            td { (t.connection) }
            td { (time(last.map(|r| r.queued_at))) }
            td.num { (count(last.and_then(|r| r.rows_written))) }
            td { (duration(last.and_then(|r| r.duration_seconds))) }
            td { (duration(t.lag_seconds.map(|s| s as f64))) }
            td { @if t.active { (time(t.next_load)) } @else { span.muted { "paused" } } }
        }
    }
}

/// The values each filter can take, from the tables themselves.
struct Options {
    statuses: BTreeSet<String>,
    strategies: BTreeSet<String>,
    connections: BTreeSet<String>,
    tags: BTreeSet<String>,
}

impl Options {
    fn of(tables: &[TableView]) -> Options {
        let mut statuses: BTreeSet<String> =
            tables.iter().filter_map(|t| t.status.clone()).collect();
        statuses.extend(["never".to_string(), "paused".to_string()]);
        Options {
            statuses,
            strategies: tables.iter().map(|t| t.strategy.clone()).collect(),
            connections: tables.iter().map(|t| t.connection.clone()).collect(),
            tags: tables.iter().flat_map(|t| t.tags.clone()).collect(),
        }
    }
}

fn select(name: &str, any: &str, values: &BTreeSet<String>, chosen: Option<&str>) -> Markup {
    html! {
        select name=(name) {
            option value="" { (any) }
            @for v in values {
                option value=(v) selected[chosen == Some(v.as_str())] { (v) }
            }
        }
    }
}

/// A column header that sorts by `key`, and reverses when it already does.
fn sort_link(filter: &TableFilter, key: &str, label: &str) -> Markup {
    let current = filter.sort.as_deref().unwrap_or("name");
    let (next, arrow) = match current {
        c if c == key => (format!("-{key}"), " ▲"),
        c if c.strip_prefix('-') == Some(key) => (key.to_string(), " ▼"),
        _ => (key.to_string(), ""),
    };
    html! { a href={"/tables" (query_string(filter, Some(&next)))} { (label) (arrow) } }
}

/// `filter` as a query string (`?…`), with `sort` replaced when given.
fn query_string(filter: &TableFilter, sort: Option<&str>) -> String {
    let pairs = [
        ("q", filter.q.as_deref()),
        ("status", filter.status.as_deref()),
        ("strategy", filter.strategy.as_deref()),
        ("connection", filter.connection.as_deref()),
        ("tag", filter.tag.as_deref()),
        ("schedule", filter.schedule.as_deref()),
        ("sort", sort.or(filter.sort.as_deref())),
    ];
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    match set.is_empty() {
        true => String::new(),
        false => format!("?{}", set.join("&")),
    }
}
