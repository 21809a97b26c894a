//! The one load entry point: finds (or takes over) the run, recovers what a crashed run left,
//! then hands the run to [`crate::run`].

use dataloader_core::{Error, NewRun, Result, RunId, TableControl};
use dataloader_lake::DeltaDestination;

use crate::lease::{lease_until, spawn_heartbeat};
use crate::request::RunSource;
use crate::run::RunHandle;
use crate::{Engine, LoadFailure, LoadReport, LoadRequest};

impl Engine {
    /// Runs one load and records it in `historical_metadata`. A new run holds a lease while
    /// it runs, so that a process killed outright leaves a run the master sensor fails, not a
    /// table that stays `In Progress`.
    pub async fn load(
        &self,
        request: LoadRequest<'_>,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let LoadRequest {
            run,
            progress,
            cancel,
            full_refresh,
        } = request;
        // A new run's heartbeat lives as long as this call: dropping it stops the renewals.
        let (handle, _heartbeat, table, dest, recovered) = match run {
            RunSource::New {
                destination,
                trigger,
            } => {
                let no_run = |error| LoadFailure {
                    run_id: None,
                    error,
                };
                let table = self
                    .store
                    .table_by_destination(destination)
                    .await
                    .and_then(|t| {
                        t.ok_or_else(|| Error::UnknownTable {
                            destination: destination.to_string(),
                        })
                    })
                    .map_err(no_run)?;
                let (table, dest, recovered) = self.prepare(table, None).await.map_err(no_run)?;
                let queued_at = self.clock.now();
                let run_id = self
                    .store
                    .create_run(&NewRun {
                        table_id: table.table_id,
                        trigger,
                        queued_at,
                        watermark_before: table.incremental_value.clone(),
                        worker: self.worker.clone(),
                        lease_until: lease_until(queued_at, self.lease),
                    })
                    .await
                    .map_err(no_run)?;
                let heartbeat = spawn_heartbeat(
                    self.store.clone(),
                    self.clock.clone(),
                    run_id,
                    self.worker.clone(),
                    self.lease,
                    cancel.clone(),
                );
                let handle = RunHandle {
                    run_id,
                    cancel,
                    lease: heartbeat.lease(),
                };
                (handle, Some(heartbeat), table, dest, recovered)
            }
            RunSource::Claimed { claim, lease } => {
                let (table, dest, recovered) = self
                    .prepare(claim.table.clone(), Some(claim.run_id))
                    .await
                    .map_err(|error| LoadFailure {
                        run_id: Some(claim.run_id),
                        error,
                    })?;
                let handle = RunHandle {
                    run_id: claim.run_id,
                    cancel,
                    lease,
                };
                (handle, None, table, dest, recovered)
            }
        };
        self.execute_run(&table, handle, dest, recovered, progress, full_refresh)
            .await
    }

    /// Recovery before a run: the table's state as the Delta log says it should be. `own_run`
    /// is the run this load already holds, which recovery must not close.
    async fn prepare(
        &self,
        table: TableControl,
        own_run: Option<RunId>,
    ) -> Result<(TableControl, DeltaDestination, Vec<String>)> {
        let destination = table.spec.destination.clone();
        let dest = self
            .destination(&destination)?
            .with_layout(table.spec.layout()?);
        let dest = self.with_vended(&destination, dest).await;
        let recovered = self.recover(&table, &dest, own_run).await?;
        let table = if recovered.is_empty() {
            table
        } else {
            self.store
                .table(table.table_id)
                .await?
                .ok_or_else(|| Error::UnknownTable {
                    destination: destination.to_string(),
                })?
        };
        Ok((table, dest, recovered))
    }
}
