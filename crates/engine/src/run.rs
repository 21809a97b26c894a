//! A run from start to end: the load entry points, the run's record (queued, started,
//! finished, each guarded by its owner), its lease and commit fence, and the strategy it runs.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use dataloader_core::schedule::next_occurrence;
use dataloader_core::{
    Claim, Error, LoadStrategy, NewRun, Result, RunOwner, RunStatus, RunUpdate, SourceObject,
    SourceSchema, StateUpdate, TableControl, TargetTable, Trigger,
};
use dataloader_lake::DeltaDestination;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::LoadContext;
use crate::lease::{lease_until, spawn_heartbeat, Lease, RunFence};
use crate::{
    evolution, fault, guards, strategies, Engine, LoadFailure, LoadOptions, LoadReport, Outcome,
    ProgressFn, LOADED_AT, RUN_ID,
};

/// The run a load records into: its id, what stops it, and the lease it holds.
struct RunHandle {
    run_id: i64,
    cancel: CancellationToken,
    lease: Lease,
}

impl Engine {
    /// Runs one load of the table now and records it in `historical_metadata`.
    pub async fn load(
        &self,
        destination: &TargetTable,
        trigger: Trigger,
        progress: Option<ProgressFn>,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        self.load_with(destination, trigger, progress, LoadOptions::default())
            .await
    }

    pub async fn load_with(
        &self,
        destination: &TargetTable,
        trigger: Trigger,
        progress: Option<ProgressFn>,
        options: LoadOptions,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        self.load_until(
            destination,
            trigger,
            progress,
            options,
            CancellationToken::new(),
        )
        .await
    }

    /// A load that `cancel` stops (on a signal, say): nothing is committed after it fires and
    /// the run ends `Cancelled`. The run holds a lease while it runs, so that a process killed
    /// outright leaves a run the master sensor fails, not a table that stays `In Progress`.
    pub async fn load_until(
        &self,
        destination: &TargetTable,
        trigger: Trigger,
        progress: Option<ProgressFn>,
        options: LoadOptions,
        cancel: CancellationToken,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let no_run = |error| LoadFailure {
            run_id: None,
            error,
        };
        let find = || async {
            self.store
                .table_by_destination(destination)
                .await?
                .ok_or_else(|| Error::UnknownTable {
                    destination: destination.to_string(),
                })
        };
        let table = find().await.map_err(no_run)?;
        let (table, dest, recovered) = self.prepare(table, -1).await.map_err(no_run)?;
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
        let run = RunHandle {
            run_id,
            cancel,
            lease: heartbeat.lease(),
        };
        self.execute_run(&table, run, dest, recovered, progress, options)
            .await
    }

    /// Runs a load the scheduler claimed (its run is already `Queued`, its heartbeat already
    /// running: `lease` is the one that heartbeat keeps). `cancel` stops it cooperatively:
    /// nothing is committed after it fires and the run ends `Cancelled`.
    pub async fn run_claimed(
        &self,
        claim: &Claim,
        progress: Option<ProgressFn>,
        cancel: CancellationToken,
        lease: Lease,
    ) -> std::result::Result<LoadReport, LoadFailure> {
        let (table, dest, recovered) = self
            .prepare(claim.table.clone(), claim.run_id)
            .await
            .map_err(|error| LoadFailure {
                run_id: Some(claim.run_id),
                error,
            })?;
        let run = RunHandle {
            run_id: claim.run_id,
            cancel,
            lease,
        };
        self.execute_run(
            &table,
            run,
            dest,
            recovered,
            progress,
            LoadOptions::default(),
        )
        .await
    }

    /// Recovery before a run: the table's state as the Delta log says it should be.
    async fn prepare(
        &self,
        table: TableControl,
        except_run: i64,
    ) -> Result<(TableControl, DeltaDestination, Vec<String>)> {
        let destination = table.spec.destination.clone();
        let dest = self
            .destination(&destination)?
            .with_layout(table.spec.layout()?);
        let recovered = self.recover(&table, &dest, except_run).await?;
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

    async fn execute_run(
        &self,
        table: &TableControl,
        run: RunHandle,
        dest: DeltaDestination,
        recovered: Vec<String>,
        progress: Option<ProgressFn>,
        options: LoadOptions,
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
                result = self.execute(table, run_id, started_at, dest, progress, options, &mut schema_changes) => result,
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
                                rows_read: outcome.rows_read as i64,
                                rows_written: outcome.rows_written as i64,
                                rows_deleted: outcome.rows_deleted as i64,
                                bytes_written: 0,
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
                    tracing::info!(rows_read = outcome.rows_read, rows_written = outcome.rows_written, %status, "load finished");
                    Ok(LoadReport {
                        run_id,
                        table: destination.to_string(),
                        strategy: outcome.state.strategy.unwrap_or(table.spec.strategy),
                        status,
                        rows_read: outcome.rows_read,
                        rows_written: outcome.rows_written,
                        rows_inserted: outcome.rows_inserted,
                        rows_updated: outcome.rows_updated,
                        rows_deleted: outcome.rows_deleted,
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
                                    format!("{:?}", error.kind()),
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

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        table: &TableControl,
        run_id: i64,
        started_at: DateTime<Utc>,
        destination: DeltaDestination,
        progress: Option<ProgressFn>,
        options: LoadOptions,
        schema_changes: &mut Vec<String>,
    ) -> Result<Outcome> {
        let spec = &table.spec;
        spec.validate()?;
        let existing = destination.schema().await?;
        if !options.full_refresh {
            guards::stored_state_fits(table, &destination, existing.is_some()).await?;
        }
        let connection = self.store.require_connection(&spec.connection).await?;
        let source = dataloader_sources::connect(&connection).await?;
        let schema = source
            .describe(&SourceObject::Table(spec.source.clone()))
            .await?;
        check_columns(table, &schema)?;
        let dest_names = spec
            .column_naming
            .apply_all(&spec.source.to_string(), &schema.column_names())?;
        if let Some(clash) = dest_names.iter().find(|n| *n == LOADED_AT || *n == RUN_ID) {
            return Err(Error::config(
                "column_naming",
                format!("{}: source column becomes \"{clash}\", a name DataLoader reserves for its audit columns", spec.source),
            ));
        }
        let rewrites_all = options.full_refresh || spec.effective_strategy() == LoadStrategy::Full;
        let evolution = evolution::plan(
            spec,
            &schema,
            &dest_names,
            existing.as_deref(),
            rewrites_all,
        )?;
        schema_changes.extend(evolution.changes.iter().cloned());
        let ctx = LoadContext {
            table,
            source,
            schema,
            dest_names,
            destination,
            run_id,
            worker: &self.worker,
            loaded_at: started_at,
            batch_size: self.batch_size,
            progress,
            store: self.store.clone(),
            evolution,
            max_connections: connection.max_connections,
            table_exists: existing.is_some(),
            rows_read: Arc::default(),
        };
        let outcome = if options.full_refresh {
            strategies::full::refresh(&ctx).await?
        } else {
            match spec.strategy {
                LoadStrategy::Full => strategies::full::run(&ctx, StateUpdate::default()).await?,
                LoadStrategy::Incremental => {
                    strategies::incremental::run(&ctx, StateUpdate::default()).await?
                }
                LoadStrategy::AppendOnly => {
                    strategies::append_only::run(&ctx, StateUpdate::default()).await?
                }
                LoadStrategy::Rolling => strategies::rolling::run(&ctx).await?,
                LoadStrategy::CheckAndLoad => strategies::check_and_load::run(&ctx).await?,
                LoadStrategy::ChunkedBackfill => strategies::chunked_backfill::run(&ctx).await?,
            }
        };
        if outcome.delta_version == Some(0) {
            self.catalog
                .register(&spec.destination, ctx.destination.url().as_str())
                .await?;
        }
        Ok(outcome)
    }
}

fn joined(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items.join("; "))
}

/// Every column the table's configuration names must exist in the source.
fn check_columns(table: &TableControl, schema: &SourceSchema) -> Result<()> {
    let spec = &table.spec;
    let named = spec
        .primary_keys
        .iter()
        .map(|k| ("primary key", k))
        .chain(spec.incremental_column.iter().map(|c| ("incremental", c)))
        .chain(spec.rolling_column.iter().map(|c| ("rolling", c)));
    for (role, column) in named {
        if schema.column(column).is_none() {
            return Err(Error::ColumnNotFound {
                table: spec.source.to_string(),
                column: column.clone(),
                role,
                columns: schema.column_names(),
            });
        }
    }
    Ok(())
}
