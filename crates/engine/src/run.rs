//! A run's record from start to end: started, then finished as it turned out (each step
//! guarded by its owner), with its lease checked by a commit fence around the strategy.

use std::sync::Arc;
use std::time::Instant;

use dataloader_core::schedule::next_occurrence;
use dataloader_core::{Error, RunId, RunOwner, RunStatus, RunUpdate, TableControl};
use dataloader_lake::DeltaDestination;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::lease::{Lease, RunFence};
use crate::{fault, Engine, LoadFailure, LoadReport, ProgressFn};

/// The run a load records into: its id, what stops it, and the lease it holds.
pub(crate) struct RunHandle {
    pub run_id: RunId,
    pub cancel: CancellationToken,
    pub lease: Lease,
}

impl Engine {
    pub(crate) async fn execute_run(
        &self,
        table: &TableControl,
        run: RunHandle,
        dest: DeltaDestination,
        recovered: Vec<String>,
        progress: Option<ProgressFn>,
        full_refresh: bool,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let RunHandle {
            run_id,
            cancel,
            lease,
        } = run;
        let destination = &table.spec.destination;
        let table_url = dest.url().to_string();
        let dest = dest.with_fence(Arc::new(RunFence {
            store: self.store.clone(),
            clock: self.clock.clone(),
            run_id,
            worker: self.worker.clone(),
            lease: lease.duration,
            table: destination.to_string(),
        }));
        let owner = RunOwner::Worker(&self.worker);
        let span = tracing::info_span!("load", run_id, table = %destination);
        async {
            let started = Instant::now();
            let started_at = self.clock.now();
            let fail = |error| LoadFailure { run_id: Some(run_id), error };
            if !self.store.start_run(run_id, &self.worker, started_at).await.map_err(fail)? {
                return Err(fail(Error::Cancelled { table: destination.to_string() }));
            }
            let mut schema_changes = Vec::new();
            let result = tokio::select! {
                result = self.execute(table, run_id, started_at, dest, progress, full_refresh, &mut schema_changes) => result,
                _ = cancel.cancelled() => Err(match lease.lost() {
                    Some(why) => Error::LeaseLost { table: destination.to_string(), run_id, message: why.clone() },
                    None => Error::Cancelled { table: destination.to_string() },
                }),
            };
            let finished_at = self.clock.now();
            match result {
                Ok(mut outcome) => {
                    fault::point("after_commit");
                    outcome.notes.extend(recovered);
                    // Outside the cancellable part: the commit stands, so a cancel or a slow
                    // catalog must not keep it from being recorded. Whatever strategy created
                    // the table, the catalog learns of it and of its schema after evolution.
                    outcome.notes.extend(self.keep_registered(&table.spec).await);
                    if outcome.delta_version.is_some() {
                        outcome.state.loaded_from = Some(table.spec.origin());
                    }
                    // What committed is recorded, whatever else fails: a schedule that cannot
                    // say its next time leaves the table to manual loads, with a note.
                    let next = table.spec.next_scheduled(finished_at).unwrap_or_else(|e| {
                        outcome.notes.push(format!("no next scheduled load: {e}"));
                        None
                    });
                    let status = if outcome.skipped { RunStatus::Skipped } else { RunStatus::Succeeded };
                    let recorded = self
                        .store
                        .finish_run(
                            run_id,
                            owner,
                            &RunUpdate {
                                status,
                                finished_at,
                                rows: outcome.rows,
                                bytes_written: outcome.bytes_written as i64,
                                watermark_after: outcome.watermark_after.clone(),
                                delta_version: outcome.delta_version,
                                error_class: None,
                                error_text: None,
                                next_load_date_time: next,
                                schema_changes: joined(&schema_changes),
                                notes: joined(&outcome.notes),
                                state: outcome.state.clone(),
                            },
                        )
                        .await
                        .map_err(fail)?;
                    if !recorded {
                        // Committed, but a monitor closed the run meanwhile (its lease ran out):
                        // the next load records the commit from the Delta log.
                        return Err(fail(Error::LeaseLost {
                            table: destination.to_string(),
                            run_id,
                            message: "was closed while it committed (its lease ran out); its commit stands and the next load records it from the Delta log".into(),
                        }));
                    }
                    tracing::info!(rows_read = outcome.rows.read, rows_written = outcome.rows.written, %status, "load finished");
                    Ok(LoadReport {
                        run_id,
                        table: destination.to_string(),
                        strategy: outcome.state.strategy.unwrap_or(table.spec.strategy),
                        status,
                        rows: outcome.rows,
                        watermark_before: table.incremental_value.as_ref().map(|w| w.value.clone()),
                        watermark_after: outcome
                            .watermark_after
                            .or(table.incremental_value.clone())
                            .map(|w| w.value),
                        delta_version: outcome.delta_version,
                        schema_changes,
                        notes: outcome.notes,
                        table_url,
                        duration_ms: started.elapsed().as_millis(),
                    })
                }
                Err(error) => {
                    tracing::warn!(error = %error, "load failed");
                    let cancelled = matches!(
                        error.kind(),
                        dataloader_core::ErrorKind::Cancelled | dataloader_core::ErrorKind::WorkerLost
                    );
                    // A failed table waits for its next scheduled time; the failed monitor
                    // brings a retryable one forward.
                    let next = match &table.spec.schedule {
                        Some(s) => next_occurrence(s, &table.spec.timezone, finished_at).ok(),
                        None => table.next_load_date_time,
                    };
                    let recorded = self
                        .store
                        .finish_run(
                            run_id,
                            owner,
                            &RunUpdate {
                                schema_changes: joined(&schema_changes),
                                ..RunUpdate::ended(
                                    if cancelled { RunStatus::Cancelled } else { RunStatus::Failed },
                                    finished_at,
                                    error.kind(),
                                    error.to_string(),
                                    next,
                                )
                            },
                        )
                        .await;
                    match recorded {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("the run was closed by a monitor meanwhile; its record stands"),
                        Err(e) => tracing::error!(error = %e, "could not record the failed run"),
                    }
                    Err(fail(error))
                }
            }
        }
        .instrument(span)
        .await
    }
}

fn joined(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items.join("; "))
}
