//! `/metrics` in Prometheus' text format (prometheus-client's encoder), read from the control
//! database at each scrape, so every worker's runs count and a restart loses nothing: loads by
//! table, strategy and outcome; rows and bytes written; a load duration histogram by strategy;
//! seconds since each table's last success; runs queued and running; retry verdicts.
//!
//! The histogram's buckets are counted in SQL ([`DURATION_BUCKETS`]), not observed here, so it
//! is a small metric of its own that hands prometheus-client the counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dataloader_core::summary::{RunTotals, DURATION_BUCKETS};
use dataloader_core::RunStatus;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::access::Caller;
use crate::error::ApiError;
use crate::Console;

type Labels = Vec<(&'static str, String)>;

/// Any token may read (Prometheus sends one as a bearer: `authorization` in its scrape
/// config); on loopback none is needed.
pub(crate) async fn metrics(State(console): State<Arc<Console>>, _caller: Caller) -> Response {
    match render(&console).await {
        Ok(text) => (
            // prometheus-client writes OpenMetrics text (`# EOF`, counters' `_total`).
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn render(console: &Console) -> Result<String, ApiError> {
    let store = console.store.as_ref();
    let tables = store.tables().await?;
    let totals = store.run_totals().await?;
    let successes: HashMap<i64, chrono::DateTime<Utc>> =
        store.last_successes(None).await?.into_iter().collect();
    let names: HashMap<i64, (String, String)> = tables
        .iter()
        .map(|t| {
            let spec = &t.spec;
            let name = spec.destination.to_string();
            (t.table_id, (name, spec.strategy.as_str().to_string()))
        })
        .collect();

    let loads = Family::<Labels, Counter>::default();
    let rows = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    let verdicts = Family::<Labels, Counter>::default();
    let catalog_failures = Family::<Labels, Counter>::default();
    let in_flight = Family::<Labels, Gauge>::default();
    let mut durations: BTreeMap<String, Durations> = BTreeMap::new();
    for status in [RunStatus::Queued, RunStatus::InProgress] {
        // Present at zero, so a dashboard shows 0 rather than no data.
        let _ = in_flight.get_or_create(&vec![("status", status.as_str().to_string())]);
    }
    for t in &totals {
        // A run of a table deleted since keeps its counts under its id.
        let (table, strategy) = names
            .get(&t.table_id)
            .cloned()
            .unwrap_or_else(|| (format!("table_id:{}", t.table_id), "unknown".into()));
        let outcome = t.status.as_str().to_string();
        let by_table = vec![("table", table.clone())];
        let open = matches!(t.status, RunStatus::Queued | RunStatus::InProgress);
        // A counter counts ended runs only: an open run's series would vanish when it ends,
        // which Prometheus reads as a reset.
        if !open {
            loads
                .get_or_create(&vec![
                    ("table", table.clone()),
                    ("strategy", strategy.clone()),
                    ("outcome", outcome.clone()),
                ])
                .inc_by(t.runs as u64);
        }
        rows.get_or_create(&by_table)
            .inc_by(t.rows_written.max(0) as u64);
        bytes
            .get_or_create(&by_table)
            .inc_by(t.bytes_written.max(0) as u64);
        if t.catalog_failures > 0 {
            catalog_failures
                .get_or_create(&by_table)
                .inc_by(t.catalog_failures as u64);
        }
        if let Some(retry) = &t.retry {
            verdicts
                .get_or_create(&vec![("recommendation", retry.clone())])
                .inc_by(t.runs as u64);
        }
        if open {
            in_flight
                .get_or_create(&vec![("status", outcome)])
                .inc_by(t.runs);
        }
        durations.entry(strategy).or_default().add(t);
    }
    let lag = Family::<Labels, Gauge>::default();
    let now = Utc::now();
    for t in &tables {
        if let Some(at) = successes.get(&t.table_id) {
            lag.get_or_create(&vec![("table", t.spec.destination.to_string())])
                .set((now - *at).num_seconds().max(0));
        }
    }

    let (tick_seconds, tick_lateness, tick_age) = (
        Family::<Labels, Gauge<f64, AtomicU64>>::default(),
        Family::<Labels, Gauge<f64, AtomicU64>>::default(),
        Family::<Labels, Gauge<f64, AtomicU64>>::default(),
    );
    // Workers gone for a day are history, not series.
    for w in store.workers().await? {
        let age = (now - w.last_tick_at).num_milliseconds() as f64 / 1000.0;
        if age > 86_400.0 {
            continue;
        }
        let labels = vec![("worker", w.worker.clone())];
        tick_seconds.get_or_create(&labels).set(w.last_tick_seconds);
        tick_lateness
            .get_or_create(&labels)
            .set(w.last_tick_lateness_seconds);
        tick_age.get_or_create(&labels).set(age.max(0.0));
    }

    let mut registry = Registry::with_prefix("dataloader");
    registry.register(
        "loads",
        "Ended loads by table, strategy and outcome (the run's final status)",
        loads,
    );
    registry.register("rows_written", "Rows written to Delta tables", rows);
    registry.register("bytes_written", "Bytes written to Delta tables", bytes);
    registry.register(
        "load_duration_seconds",
        "Duration of finished loads, by strategy",
        DurationHistograms(durations),
    );
    registry.register(
        "freshness_lag_seconds",
        "Seconds since each table's last successful load",
        lag,
    );
    registry.register("runs", "Runs queued or running now", in_flight);
    registry.register(
        "retry_verdicts",
        "Failed runs by the failed monitor's recommendation",
        verdicts,
    );
    registry.register(
        "catalog_registration_failures",
        "Runs whose data committed but whose catalog registration failed",
        catalog_failures,
    );
    registry.register(
        "scheduler_tick_seconds",
        "How long each worker's last master-sensor tick took",
        tick_seconds,
    );
    registry.register(
        "scheduler_tick_lateness_seconds",
        "How long after its planned time each worker's last tick began",
        tick_lateness,
    );
    registry.register(
        "scheduler_last_tick_age_seconds",
        "Seconds since each worker's last tick (a stuck or stopped scheduler grows it)",
        tick_age,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::internal(format!("encoding the metrics: {e}")))?;
    Ok(text)
}

/// The histogram of one strategy: sum, count and cumulative counts per bucket.
#[derive(Debug, Default)]
struct Durations {
    sum: f64,
    count: u64,
    at_most: Vec<u64>,
}

impl Durations {
    fn add(&mut self, t: &RunTotals) {
        self.sum += t.seconds;
        self.count += t.timed.max(0) as u64;
        self.at_most.resize(DURATION_BUCKETS.len(), 0);
        for (i, n) in t.at_most.iter().enumerate().take(DURATION_BUCKETS.len()) {
            self.at_most[i] += (*n).max(0) as u64;
        }
    }

    /// Per-bucket counts (what the encoder adds up), with `+Inf` last.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
        let mut below = 0;
        for (bound, at_most) in DURATION_BUCKETS.iter().zip(&self.at_most) {
            out.push((*bound, at_most - below));
            below = *at_most;
        }
        out.push((f64::MAX, self.count - below.min(self.count)));
        out
    }
}

/// Load durations by strategy, from counts the store made.
#[derive(Debug)]
struct DurationHistograms(BTreeMap<String, Durations>);

impl EncodeMetric for DurationHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (strategy, d) in &self.0 {
            let labels = [("strategy", strategy.as_str())];
            encoder
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(d.sum, d.count, &d.buckets(), None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_become_per_bucket_counts_with_the_rest_in_inf() {
        let mut d = Durations::default();
        let at_most = vec![1, 3, 3, 4, 4, 4, 4, 4, 4];
        d.add(&RunTotals {
            table_id: 1,
            status: RunStatus::Succeeded,
            retry: None,
            runs: 5,
            rows_written: 0,
            bytes_written: 0,
            timed: 5,
            seconds: 20000.0,
            at_most,
            catalog_failures: 0,
        });
        let buckets = d.buckets();
        assert_eq!(
            buckets.iter().map(|b| b.1).collect::<Vec<_>>(),
            vec![1, 2, 0, 1, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(buckets.last().unwrap().0, f64::MAX);
        assert_eq!(d.count, 5);
    }
}
