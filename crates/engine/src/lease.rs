//! Leases and fencing: a run holds a lease while it runs, and commits only while it still
//! holds it.
//!
//! - The heartbeat renews the lease every third of its length. A run that a monitor cancelled,
//!   or closed as lost, is stopped at the next beat. A worker that cannot reach the control
//!   database stops itself one beat before its lease runs out — before a monitor can fail the
//!   run and another worker take the table — and says why.
//! - The fence asks the control database, right before each commit reaches the Delta log,
//!   whether the run is still open, still this worker's and leased for at least one more beat.
//!   Anything else — a lease that ran out, a cancel, an unreachable database — refuses the
//!   commit: a load that cannot prove it owns its table writes nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dataloader_core::{Clock, Error, Result, Store};
use dataloader_lake::CommitFence;
use tokio_util::sync::CancellationToken;

/// How long a run's lease lasts unless renewed; the heartbeat renews it every third of that.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// When a lease taken at `now` runs out.
pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// One heartbeat: a renewal, and the least lease a commit needs left.
fn beat(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(200))
}

/// A run's lease as its load sees it: how long it lasts, and why it was lost once it was
/// (set by the heartbeat, read by the load to say why it stopped).
#[derive(Clone, Debug)]
pub struct Lease {
    pub duration: Duration,
    loss: Arc<OnceLock<String>>,
}

impl Lease {
    pub fn new(duration: Duration) -> Lease {
        Lease {
            duration,
            loss: Arc::default(),
        }
    }

    /// Why the heartbeat stopped the run, if its lease could not be kept.
    pub fn lost(&self) -> Option<&String> {
        self.loss.get()
    }
}

/// A running heartbeat; it stops when dropped, however its load ended (a panic included).
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    lease: Lease,
}

impl Heartbeat {
    /// The lease it keeps.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews the lease of `run_id`, held by `worker`, until dropped; cancels the run when a
/// monitor asked for it, when the run is no longer open and `worker`'s, or when the lease is
/// about to run out without a renewal.
pub fn spawn_heartbeat(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    run_id: i64,
    worker: String,
    lease: Duration,
    cancel: CancellationToken,
) -> Heartbeat {
    let kept = Lease::new(lease);
    let lost = kept.loss.clone();
    let task = tokio::spawn(async move {
        let beat = beat(lease);
        let margin = chrono::Duration::from_std(beat).unwrap_or(chrono::Duration::seconds(20));
        // The lease the run was created or claimed with runs from about now.
        let mut held_until = lease_until(clock.now(), lease);
        let mut every = tokio::time::interval(beat);
        every.tick().await;
        loop {
            every.tick().await;
            let until = lease_until(clock.now(), lease);
            // A renewal that hangs (a connection cut without a reset) counts as failed.
            let renewed =
                tokio::time::timeout(beat, store.renew_lease(run_id, &worker, until)).await;
            let failure = match renewed {
                Ok(Ok(false)) => {
                    held_until = until;
                    continue;
                }
                Ok(Ok(true)) => {
                    tracing::warn!(
                        run_id,
                        "this run was cancelled, or closed as lost: stopping it"
                    );
                    cancel.cancel();
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {beat:?}"),
            };
            tracing::warn!(run_id, error = %failure, "could not renew the lease");
            if clock.now() + margin >= held_until {
                let _ = lost.set(format!(
                    "could not renew its lease before it ran out at {held_until} ({failure})"
                ));
                tracing::error!(
                    run_id,
                    "the lease runs out without a renewal: stopping the load"
                );
                cancel.cancel();
                return;
            }
        }
    });
    Heartbeat { task, lease: kept }
}

/// The commit fence of one run (see the module header).
pub(crate) struct RunFence {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub run_id: i64,
    pub worker: String,
    pub lease: Duration,
    pub table: String,
}

#[async_trait]
impl CommitFence for RunFence {
    async fn check(&self) -> Result<()> {
        // Every data file of the commit is written; its commit file is not.
        crate::fault::point("before_commit");
        let beat = beat(self.lease);
        let needed = self.clock.now()
            + chrono::Duration::from_std(beat).unwrap_or(chrono::Duration::seconds(20));
        let lost = |message: String| Error::LeaseLost {
            table: self.table.clone(),
            run_id: self.run_id,
            message,
        };
        match tokio::time::timeout(
            beat,
            self.store.lease_holds(self.run_id, &self.worker, needed),
        )
        .await
        {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(lost(
                "no longer holds its lease (it ran out, or the run was cancelled or closed by a monitor): its commit was refused".into(),
            )),
            Ok(Err(e)) => Err(lost(format!(
                "could not confirm its lease before committing ({e}): its commit was refused"
            ))),
            Err(_) => Err(lost(format!(
                "could not confirm its lease before committing (no answer within {beat:?}): its commit was refused"
            ))),
        }
    }
}
