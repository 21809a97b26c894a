//! `dataloader run`: the master sensor and four monitors of the Dagster loader it replaces, in
//! one process, loads on a bounded worker pool, and leases so that many processes can share one
//! PostgreSQL control plane.
//!
//! | loop | does |
//! |---|---|
//! | master sensor | claims due tables (a `Queued` run each, leased to this worker) |
//! | heartbeat | renews the lease of every run this worker holds; stops a run a monitor cancelled |
//! | lease monitor | fails runs whose worker stopped renewing (every sensor tick) |
//! | long-queued monitor | cancels runs queued too long |
//! | long-running monitor | asks runs running too long to stop (cooperatively: nothing is committed) |
//! | failed monitor | retry analysis, reschedules retryable failures with backoff |
//! | landing-table monitor | schema files and dbt `sources.yml` |

pub mod alerts;
pub mod landing;
pub mod retry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dataloader_core::{
    Claim, Clock, ErrorKind, LostRun, Result, RetryVerdict, RunOwner, RunStatus, RunUpdate, Store,
    TableControl, WorkerTick,
};
use dataloader_engine::{Engine, LoadFailure, LoadReport, LoadRequest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use retry::LlmConfig;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub poll_interval: Duration,
    pub max_concurrent_loads: usize,
    /// How long a claim stays valid without a heartbeat; heartbeats come at a third of it.
    pub lease: Duration,
    pub queued_monitor_interval: Duration,
    pub queued_threshold: Duration,
    pub running_monitor_interval: Duration,
    /// For tables without `timeout_minutes`.
    pub running_threshold: Duration,
    pub failed_monitor_interval: Duration,
    pub landing_monitor_interval: Duration,
    pub schemas_dir: PathBuf,
    /// How long a shutdown waits for running loads before cancelling them.
    pub grace_period: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub llm: Option<LlmConfig>,
    /// Most tables one sensor tick claims (never more than there are free worker slots).
    pub claim_batch: i64,
    /// How often the alert monitor looks for events and sends deliveries.
    pub alert_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            poll_interval: Duration::from_secs(60),
            max_concurrent_loads: 4,
            lease: Duration::from_secs(60),
            queued_monitor_interval: Duration::from_secs(600),
            queued_threshold: Duration::from_secs(3600),
            running_monitor_interval: Duration::from_secs(600),
            running_threshold: Duration::from_secs(3 * 3600),
            failed_monitor_interval: Duration::from_secs(900),
            landing_monitor_interval: Duration::from_secs(1800),
            schemas_dir: PathBuf::from("schemas"),
            grace_period: Duration::from_secs(30),
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            llm: None,
            claim_batch: 100,
            alert_interval: Duration::from_secs(30),
        }
    }
}

/// How one claimed load ended.
pub type LoadResult = std::result::Result<LoadReport, LoadFailure>;

/// The master sensor's first step: fails the runs whose lease ran out (their process is gone).
/// Their tables are due again at once while `max_retries` allows; a table lost more often in a
/// row waits for its next scheduled time instead of being relaunched forever.
pub async fn fail_lost_runs(store: &dyn Store, now: DateTime<Utc>) -> Result<Vec<LostRun>> {
    let lost = store.expire_leases(now).await?;
    for run in &lost {
        tracing::warn!(
            run_id = run.run_id,
            retries_exhausted = run.retries_exhausted,
            "its worker was lost: the run is failed"
        );
        if !run.retries_exhausted {
            continue;
        }
        if let Some(table) = readable_table(store, run.table_id).await? {
            // A schedule edited into one that cannot be read waits an hour, as the claim does.
            let next = table
                .spec
                .next_scheduled(now)
                .unwrap_or(Some(now + chrono::Duration::hours(1)));
            store.set_next_load(table.table_id, next).await?;
        }
    }
    Ok(lost)
}

/// The failed monitor: retry analysis of every failed run not yet analysed; returns the
/// verdicts it recorded.
pub async fn analyze_failures(
    store: &dyn Store,
    now: DateTime<Utc>,
    config: &SchedulerConfig,
) -> Result<Vec<AnalyzedRun>> {
    let runs = store.runs_to_analyze(200).await?;
    let mut analyzed = Vec::with_capacity(runs.len());
    for run in runs {
        let text = run.error_text.clone().unwrap_or_default();
        let analysis = retry::analyze(run.error_kind(), &text);
        let mut explanation = analysis.explanation.clone();
        if let Some(llm) = &config.llm {
            if let Some(better) = retry::llm_explain(llm, &run.destination, &text, &analysis).await
            {
                explanation = better;
            }
        }
        let table = readable_table(store, run.table_id).await?;
        let retry_at = match (&table, analysis.recommendation) {
            (_, retry::Recommendation::DoNotRetry) => None,
            (Some(t), _)
                if t.last_run_id == Some(run.run_id) && t.retry_count < t.spec.max_retries =>
            {
                Some(match analysis.recommendation {
                    retry::Recommendation::RetryNow => now,
                    _ => {
                        let wait = retry::backoff(
                            config.retry_base,
                            config.retry_max,
                            t.retry_count,
                            (run.run_id as u64).wrapping_mul(2_654_435_761),
                        );
                        now + chrono_duration(wait)
                    }
                })
            }
            _ => None,
        };
        let exhausted =
            retry_at.is_none() && analysis.recommendation != retry::Recommendation::DoNotRetry;
        if exhausted {
            explanation = format!("{explanation} (no retries left: max_retries reached)");
        }
        let verdict = RetryVerdict {
            category: analysis.category.into(),
            recommendation: analysis.recommendation.as_str().into(),
            explanation,
            retry_at,
        };
        store.record_verdict(run.run_id, &verdict).await?;
        analyzed.push(AnalyzedRun {
            run_id: run.run_id,
            table: run.destination,
            worker: run.worker,
            error: text,
            verdict,
        });
    }
    Ok(analyzed)
}

/// The table, or `None` when it is gone or its row cannot be read (then it is not retried:
/// its row must be corrected first, and the sensor reports it).
async fn readable_table(store: &dyn Store, table_id: i64) -> Result<Option<TableControl>> {
    match store.table(table_id).await {
        Err(e) if e.kind() == ErrorKind::Config => Ok(None),
        other => other,
    }
}

/// A failed run and the failed monitor's verdict on it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnalyzedRun {
    pub run_id: i64,
    pub table: String,
    /// The process that ran it (`dataloader load` under Dagster names the Dagster run here).
    pub worker: Option<String>,
    pub error: String,
    #[serde(flatten)]
    pub verdict: RetryVerdict,
}

pub struct Scheduler {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    worker: String,
    slots: Arc<Semaphore>,
    connection_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Cancelling it cancels every load this process runs.
    stop_loads: CancellationToken,
    /// When this scheduler started, for its `scheduler_workers` row.
    started_at: chrono::DateTime<chrono::Utc>,
    /// The alert monitor's webhook client.
    http: reqwest::Client,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Scheduler {
    pub fn new(engine: Arc<Engine>, clock: Arc<dyn Clock>, config: SchedulerConfig) -> Self {
        Scheduler {
            worker: engine.worker().to_string(),
            store: engine.store().clone(),
            engine,
            clock,
            slots: Arc::new(Semaphore::new(config.max_concurrent_loads.max(1))),
            config,
            connection_slots: Mutex::new(HashMap::new()),
            stop_loads: CancellationToken::new(),
            started_at: chrono::Utc::now(),
            http: reqwest::Client::new(),
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The master sensor: fails expired leases, then claims what is due, as many tables as
    /// there are free worker slots (so that no claim waits behind this worker's own loads
    /// while another worker could run it).
    pub async fn tick(&self) -> Result<Vec<Claim>> {
        self.tick_with(0, Duration::ZERO).await
    }

    /// A tick while `busy` claims of this worker are still running or waiting, begun `late`
    /// after its planned time; recorded for the console and `/metrics`.
    async fn tick_with(&self, busy: usize, late: Duration) -> Result<Vec<Claim>> {
        let began = std::time::Instant::now();
        let claims = self.claim(busy).await;
        let tick = WorkerTick {
            worker: self.worker.clone(),
            started_at: self.started_at,
            last_tick_at: self.clock.now(),
            last_tick_seconds: began.elapsed().as_secs_f64(),
            last_tick_lateness_seconds: late.as_secs_f64(),
            ticks: 1,
            running_loads: busy as i64,
        };
        // Only a record: a control plane that cannot take it fails the claim too, or not.
        if let Err(e) = self.store.record_tick(&tick).await {
            tracing::warn!(error = %e, "recording the scheduler's tick");
        }
        claims
    }

    /// Fails expired leases, then claims what is due for the free slots.
    async fn claim(&self, busy: usize) -> Result<Vec<Claim>> {
        let now = self.clock.now();
        fail_lost_runs(self.store.as_ref(), now).await?;
        let free = self.config.max_concurrent_loads.max(1).saturating_sub(busy);
        let limit = self.config.claim_batch.min(free as i64);
        if limit <= 0 {
            return Ok(vec![]);
        }
        self.store
            .claim_due(
                now,
                limit,
                &self.worker,
                now + chrono_duration(self.config.lease),
            )
            .await
    }

    /// Runs one claimed load on the pool: waits for a slot (and for its connection's limit),
    /// renews the lease meanwhile, and stops when a monitor or a shutdown cancels it.
    async fn run_claim(self: Arc<Self>, claim: Claim) -> LoadResult {
        let cancel = self.stop_loads.child_token();
        let heartbeat = dataloader_engine::spawn_heartbeat(
            self.store.clone(),
            self.clock.clone(),
            claim.run_id,
            self.worker.clone(),
            self.config.lease,
            cancel.clone(),
        );
        self.clone()
            .run_with_slots(&claim, cancel, heartbeat.lease())
            .await
    }

    async fn run_with_slots(
        self: Arc<Self>,
        claim: &Claim,
        cancel: CancellationToken,
        lease: dataloader_engine::Lease,
    ) -> LoadResult {
        let waiting = |e: dataloader_core::Error| LoadFailure {
            run_id: Some(claim.run_id),
            error: e,
        };
        let cancelled = || dataloader_core::Error::Cancelled {
            table: claim.table.spec.destination.to_string(),
        };
        let _slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot.map_err(|e| waiting(dataloader_core::Error::Internal(e.to_string())))?,
            _ = cancel.cancelled() => {
                self.give_back(claim, "the worker stopped before the load started").await;
                return Err(waiting(cancelled()));
            }
        };
        let connection = self
            .connection_limit(&claim.table.spec.connection)
            .await
            .map_err(waiting)?;
        let _connection_slot = match connection {
            Some(limit) => Some(tokio::select! {
                slot = limit.acquire_owned() => slot.map_err(|e| waiting(dataloader_core::Error::Internal(e.to_string())))?,
                _ = cancel.cancelled() => {
                    self.give_back(claim, "the worker stopped before the load started").await;
                    return Err(waiting(cancelled()));
                }
            }),
            None => None,
        };
        self.engine
            .load(LoadRequest::claimed(claim, lease).cancel_on(cancel))
            .await
    }

    /// A claimed run that never started is cancelled and its table left due for others.
    async fn give_back(&self, claim: &Claim, reason: &str) {
        let update = RunUpdate::ended(
            RunStatus::Cancelled,
            self.clock.now(),
            ErrorKind::Cancelled,
            reason,
            claim.table.next_load_date_time,
        );
        // A run a monitor closed meanwhile keeps the record the monitor wrote.
        let recorded = self
            .store
            .finish_run(claim.run_id, RunOwner::Worker(&self.worker), &update)
            .await;
        if let Err(e) = recorded {
            tracing::warn!(run_id = claim.run_id, error = %e, "could not record the cancelled run");
        }
    }

    async fn connection_limit(&self, name: &str) -> Result<Option<Arc<Semaphore>>> {
        if let Some(s) = self
            .connection_slots
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(Some(s));
        }
        let Some(limit) = self
            .store
            .connection(name)
            .await?
            .and_then(|c| c.max_connections)
        else {
            return Ok(None);
        };
        let semaphore = Arc::new(Semaphore::new(limit.max(1) as usize));
        if let Ok(mut map) = self.connection_slots.lock() {
            return Ok(Some(
                map.entry(name.to_string()).or_insert(semaphore).clone(),
            ));
        }
        Ok(Some(semaphore))
    }

    /// One sensor tick and the loads it claimed, run to the end, then the failed monitor over
    /// what failed (`dataloader run --once`).
    pub async fn run_once_and_analyze(self: &Arc<Self>) -> Result<Vec<LoadResult>> {
        let started = self.clock.now();
        let results = self.run_once().await?;
        self.failed().await?;
        // The events of this pass's runs, and what else is due now.
        self.alerts_since(started - chrono::Duration::minutes(10))
            .await?;
        Ok(results)
    }

    /// The alert monitor's pass: events of runs that ended in the last two intervals (a window
    /// that overlaps the last pass, so a slow pass misses nothing; the store drops repeats),
    /// then the deliveries due.
    pub async fn alerts(&self) -> Result<alerts::AlertPass> {
        let window = chrono_duration(self.config.alert_interval * 2) + chrono::Duration::minutes(1);
        self.alerts_since(self.clock.now() - window).await
    }

    async fn alerts_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<alerts::AlertPass> {
        alerts::pass(self.store.as_ref(), &self.http, self.clock.now(), since).await
    }

    /// One sensor tick and the loads it claimed, run to the end.
    pub async fn run_once(self: &Arc<Self>) -> Result<Vec<LoadResult>> {
        let claims = self.tick().await?;
        let mut loads = JoinSet::new();
        for claim in claims {
            loads.spawn(self.clone().run_claim(claim));
        }
        let mut results = Vec::new();
        while let Some(done) = loads.join_next().await {
            if let Ok(result) = done {
                results.push(result);
            }
        }
        Ok(results)
    }

    /// The long-queued monitor: cancels runs queued longer than the threshold. Their tables
    /// keep their due time, so the next tick (of any worker with a free slot) claims them
    /// again: a load that waited too long is late, not skipped.
    pub async fn long_queued(&self) -> Result<usize> {
        let now = self.clock.now();
        let minutes = self.config.queued_threshold.as_secs_f64() / 60.0;
        let tables = self
            .store
            .cancel_queued(
                now - chrono_duration(self.config.queued_threshold),
                now,
                &format!("queued for more than {minutes:.0} minute(s) (long-queued monitor); claimed again at the next tick"),
            )
            .await?;
        Ok(tables.len())
    }

    /// The long-running monitor: asks runs past their table's `timeout_minutes` (or the
    /// default threshold) to stop; their worker cancels them at its next heartbeat.
    pub async fn long_running(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut asked = 0;
        for run in self.store.running_runs().await? {
            let limit = run
                .timeout_minutes
                .map(chrono::Duration::minutes)
                .unwrap_or_else(|| chrono_duration(self.config.running_threshold));
            if now - run.started_at > limit {
                tracing::warn!(run_id = run.run_id, "running too long: asking it to stop");
                self.store.request_cancel(run.run_id).await?;
                asked += 1;
            }
        }
        Ok(asked)
    }

    /// The failed monitor: retry analysis of every failed run not yet analysed; returns the
    /// verdicts it recorded.
    pub async fn failed(&self) -> Result<Vec<AnalyzedRun>> {
        analyze_failures(self.store.as_ref(), self.clock.now(), &self.config).await
    }

    /// The landing-table monitor.
    pub async fn landing(&self) -> Result<usize> {
        let written = landing::run(
            self.store.as_ref(),
            self.engine.catalog().as_ref(),
            &self.config.schemas_dir,
        )
        .await?;
        Ok(written.len())
    }

    /// The long-running process: the sensor and the monitors until `shutdown` resolves; then
    /// no more claims, running loads get the grace period, and what is left is cancelled.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let interval = |d: Duration| {
            let mut i = tokio::time::interval(d.max(Duration::from_millis(100)));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        };
        let mut sensor = interval(self.config.poll_interval);
        let mut queued = interval(self.config.queued_monitor_interval);
        let mut running = interval(self.config.running_monitor_interval);
        let mut failed = interval(self.config.failed_monitor_interval);
        let mut landing = interval(self.config.landing_monitor_interval);
        let mut alerting = interval(self.config.alert_interval);
        let mut loads: JoinSet<LoadResult> = JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(worker = %self.worker, "scheduler started");
        loop {
            let outcome: Result<()> = tokio::select! {
                _ = &mut shutdown => break,
                planned = sensor.tick() => match self.tick_with(loads.len(), planned.elapsed()).await {
                    Ok(claims) => {
                        for claim in claims {
                            tracing::info!(run_id = claim.run_id, table = %claim.table.spec.destination, "claimed");
                            loads.spawn(self.clone().run_claim(claim));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                _ = queued.tick() => self.long_queued().await.map(|_| ()),
                _ = running.tick() => self.long_running().await.map(|_| ()),
                _ = failed.tick() => self.failed().await.map(|_| ()),
                _ = landing.tick() => self.landing().await.map(|_| ()),
                _ = alerting.tick() => self.alerts().await.map(|_| ()),
                Some(done) = loads.join_next(), if !loads.is_empty() => {
                    if let Ok(Err(failure)) = done {
                        tracing::warn!(run_id = ?failure.run_id, error = %failure.error, "load failed");
                    }
                    Ok(())
                }
            };
            if let Err(e) = outcome {
                // The control plane may be briefly unreachable: log, and try at the next tick.
                tracing::error!(error = %e, "scheduler loop");
            }
        }
        tracing::info!(running = loads.len(), grace = ?self.config.grace_period, "shutting down: no more claims");
        let drained = tokio::time::timeout(self.config.grace_period, async {
            while loads.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = loads.len(),
                "grace period over: cancelling the loads still running"
            );
            self.stop_loads.cancel();
            while loads.join_next().await.is_some() {}
        }
        Ok(())
    }
}
