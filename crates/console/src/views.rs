//! What the console and the API show of tables and runs, read from the store in a few queries
//! (not one per table: an overview of 800 tables must stay quick).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dataloader_core::{RunRecord, Store, TableControl};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// A table with its last run and how far behind it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TableView {
    /// `catalog.schema.table`, the name the API and the pages use.
    pub(crate) name: String,
    pub(crate) table_id: i64,
    pub(crate) connection: String,
    /// `schema.table` in the source, or the name a source query's rows go by.
    pub(crate) source: String,
    pub(crate) strategy: String,
    pub(crate) schedule: Option<String>,
    pub(crate) timezone: String,
    pub(crate) active: bool,
    pub(crate) tags: Vec<String>,
    /// The last run's status; none before a first load.
    pub(crate) status: Option<String>,
    pub(crate) watermark: Option<String>,
    pub(crate) next_load: Option<DateTime<Utc>>,
    pub(crate) retry_count: i64,
    pub(crate) last_run: Option<RunView>,
    pub(crate) last_success: Option<DateTime<Utc>>,
    /// Seconds since the last success (the freshness lag); none before one.
    pub(crate) lag_seconds: Option<i64>,
}

/// One run of a table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RunView {
    pub(crate) run_id: i64,
    pub(crate) table: String,
    pub(crate) trigger: String,
    pub(crate) status: String,
    pub(crate) queued_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) duration_seconds: Option<f64>,
    pub(crate) rows_read: Option<i64>,
    pub(crate) rows_written: Option<i64>,
    pub(crate) rows_deleted: Option<i64>,
    pub(crate) bytes_written: Option<i64>,
    pub(crate) watermark_before: Option<String>,
    pub(crate) watermark_after: Option<String>,
    pub(crate) delta_version: Option<i64>,
    pub(crate) worker: Option<String>,
    pub(crate) error_class: Option<String>,
    pub(crate) error_text: Option<String>,
    pub(crate) schema_changes: Option<String>,
    pub(crate) notes: Option<String>,
    /// The failed monitor's verdict: category, recommendation, explanation.
    pub(crate) retry_category: Option<String>,
    pub(crate) retry_recommendation: Option<String>,
    pub(crate) retry_explanation: Option<String>,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> RunView {
        let duration_seconds = match (r.started_at, r.finished_at) {
            (Some(s), Some(f)) => Some((f - s).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        RunView {
            run_id: r.run_id,
            table: r.destination,
            trigger: r.trigger,
            status: r.status.to_string(),
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_seconds,
            rows_read: r.rows_read,
            rows_written: r.rows_written,
            rows_deleted: r.rows_deleted,
            bytes_written: r.bytes_written,
            watermark_before: r.watermark_before,
            watermark_after: r.watermark_after,
            delta_version: r.delta_version,
            worker: r.worker,
            error_class: r.error_class,
            error_text: r.error_text,
            schema_changes: r.schema_changes,
            notes: r.notes,
            retry_category: r.retry_category,
            retry_recommendation: r.retry_recommendation,
            retry_explanation: r.retry_explanation,
        }
    }
}

/// The tables list's filters and order, as query parameters of the page and the API.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TableFilter {
    /// Part of the table's name, source or connection.
    pub(crate) q: Option<String>,
    /// A run status (`Succeeded`, `Failed`, …), `never` for tables never loaded, or `paused`.
    pub(crate) status: Option<String>,
    pub(crate) strategy: Option<String>,
    pub(crate) connection: Option<String>,
    pub(crate) tag: Option<String>,
    /// `scheduled` or `manual` (no cron).
    pub(crate) schedule: Option<String>,
    /// `name` (default), `status`, `last_run`, `rows`, `duration`, `lag` or `next_load`;
    /// a leading `-` reverses it.
    pub(crate) sort: Option<String>,
}

impl TableFilter {
    fn keeps(&self, t: &TableView) -> bool {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        let q = given(&self.q).map(str::to_lowercase);
        q.is_none_or(|q| {
            [&t.name, &t.source, &t.connection]
                .iter()
                .any(|s| s.to_lowercase().contains(&q))
        }) && given(&self.status).is_none_or(|s| match s {
            "never" => t.status.is_none(),
            "paused" => !t.active,
            s => t.status.as_deref() == Some(s),
        }) && given(&self.strategy).is_none_or(|s| t.strategy == s)
            && given(&self.connection).is_none_or(|c| t.connection == c)
            && given(&self.tag).is_none_or(|tag| t.tags.iter().any(|x| x == tag))
            && given(&self.schedule).is_none_or(|s| match s {
                "manual" => t.schedule.is_none(),
                _ => t.schedule.is_some(),
            })
    }

    /// `tables` filtered and ordered; an unknown sort key is an error naming the known ones.
    pub(crate) fn apply(&self, tables: Vec<TableView>) -> Result<Vec<TableView>, ApiError> {
        let mut kept: Vec<TableView> = tables.into_iter().filter(|t| self.keeps(t)).collect();
        let sort = self.sort.as_deref().unwrap_or("name");
        let (key, reverse) = match sort.strip_prefix('-') {
            Some(k) => (k, true),
            None => (sort, false),
        };
        let last = |t: &TableView| t.last_run.clone();
        match key {
            "name" => kept.sort_by(|a, b| a.name.cmp(&b.name)),
            "status" => kept.sort_by(|a, b| a.status.cmp(&b.status)),
            "last_run" => kept.sort_by_key(|t| last(t).map(|r| r.queued_at)),
            "rows" => kept.sort_by_key(|t| last(t).and_then(|r| r.rows_written)),
            "duration" => kept.sort_by(|a, b| {
                let d = |t: &TableView| last(t).and_then(|r| r.duration_seconds);
                d(a).partial_cmp(&d(b)).unwrap_or(std::cmp::Ordering::Equal)
            }),
            "lag" => kept.sort_by_key(|t| t.lag_seconds),
            "next_load" => kept.sort_by_key(|t| t.next_load),
            other => {
                return Err(ApiError::invalid(format!(
                    "sort \"{other}\" is not one of name, status, last_run, rows, duration, lag, next_load (a leading - reverses)"
                )))
            }
        }
        if reverse {
            kept.reverse();
        }
        Ok(kept)
    }
}

/// Every readable table with its last run and last success, in three queries.
pub(crate) async fn tables(
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Vec<TableView>, ApiError> {
    let tables = store.tables().await?;
    let mut last_runs: HashMap<i64, RunRecord> = store
        .last_runs()
        .await?
        .into_iter()
        .map(|r| (r.table_id, r))
        .collect();
    let successes: HashMap<i64, DateTime<Utc>> =
        store.last_successes(None).await?.into_iter().collect();
    Ok(tables
        .into_iter()
        .map(|t| {
            let last_run = last_runs.remove(&t.table_id);
            let last_success = successes.get(&t.table_id).copied();
            table_view(t, last_run, last_success, now)
        })
        .collect())
}

pub(crate) fn table_view(
    t: TableControl,
    last_run: Option<RunRecord>,
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> TableView {
    let spec = t.spec;
    TableView {
        name: spec.destination.to_string(),
        table_id: t.table_id,
        connection: spec.connection,
        source: spec.source.to_string(),
        strategy: spec.strategy.as_str().to_string(),
        schedule: spec.schedule,
        timezone: spec.timezone,
        active: spec.is_active,
        tags: spec.tags,
        status: t.status.map(|s| s.to_string()),
        watermark: t.incremental_value.map(|w| w.to_string()),
        next_load: t.next_load_date_time,
        retry_count: t.retry_count,
        last_run: last_run.map(RunView::from),
        last_success,
        lag_seconds: last_success.map(|s| (now - s).num_seconds().max(0)),
    }
}

/// The table named `name` (`catalog.schema.table`), or a 404 that says so.
pub(crate) async fn table(store: &dyn Store, name: &str) -> Result<TableControl, ApiError> {
    let destination = dataloader_core::TargetTable::parse(name).map_err(ApiError::from)?;
    store
        .table_by_destination(&destination)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no table {name} in table_control")))
}

/// One table as the list shows it (its last run and last success), read by name.
pub(crate) async fn one(store: &dyn Store, name: &str) -> Result<TableView, ApiError> {
    let table = table(store, name).await?;
    let last_run = match table.last_run_id {
        Some(id) => store.run(id).await?,
        None => None,
    };
    let last_success = last_success(store, table.table_id).await?;
    Ok(table_view(table, last_run, last_success, Utc::now()))
}

/// When the table's newest successful run finished, whenever that was.
pub(crate) async fn last_success(
    store: &dyn Store,
    table_id: i64,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(store
        .last_successes(Some(table_id))
        .await?
        .first()
        .map(|(_, at)| *at))
}
