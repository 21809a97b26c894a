//! Recovery before a run: a run that committed to Delta but died before its bookkeeping is
//! recorded from the state its commit carried; runs left open by a process that is gone are
//! closed. Also this process's identity (`host:pid/space`), by which a gone process is known.

use dataloader_core::{
    ErrorKind, Result, RowCounts, RunId, RunOwner, RunStatus, RunUpdate, TableControl,
};
use dataloader_lake::DeltaDestination;

use crate::commit_state::CommitState;
use crate::{app_id, Engine};

/// Why a run left open by a process that died is closed (runs that committed were recovered
/// from the Delta log before).
const STOPPED_BEFORE_COMMIT: &str =
    "the process running this load stopped before it committed anything";

/// Whether a run that the Delta log says committed lacks its bookkeeping: still open (its
/// process died), or closed as lost or cancelled without its commit recorded (its lease ran out,
/// or a signal or a monitor stopped it after the commit).
fn committed_but_unrecorded(run: &dataloader_core::RunRecord) -> bool {
    match run.status {
        RunStatus::Queued | RunStatus::InProgress => true,
        RunStatus::Failed | RunStatus::Cancelled => {
            run.delta_version.is_none()
                && matches!(
                    run.error_kind(),
                    Some(ErrorKind::WorkerLost | ErrorKind::Cancelled)
                )
        }
        _ => false,
    }
}

impl Engine {
    /// Finishes the bookkeeping of a run that committed to Delta but stopped before recording
    /// it (the `txn` in the Delta log says so), and closes runs left `Queued`/`In Progress`.
    pub(crate) async fn recover(
        &self,
        table: &TableControl,
        dest: &DeltaDestination,
        except_run: Option<RunId>,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let app = app_id(table.table_id);
        if let Some(committed) = dest.committed_version(&app).await? {
            let run = self.store.run(committed).await?;
            if run.as_ref().is_some_and(committed_but_unrecorded) {
                let committed_state = dest
                    .committed_state(&app, committed)
                    .await?
                    .unwrap_or_default();
                let state =
                    CommitState::from_map(&table.spec.destination.to_string(), committed_state)?;
                let watermark = state.watermark()?;
                let update = state.state_update();
                let now = self.clock.now();
                let recorded = self
                    .store
                    .finish_run(
                        committed,
                        RunOwner::Recovery,
                        &RunUpdate {
                            status: RunStatus::Succeeded,
                            finished_at: now,
                            rows: RowCounts::default(),
                            bytes_written: 0,
                            watermark_after: watermark,
                            delta_version: dest.version().await?,
                            error_class: None,
                            error_text: None,
                            next_load_date_time: table.next_load_date_time,
                            schema_changes: None,
                            notes: Some("committed to Delta, then its process stopped: bookkeeping recovered from the Delta log".into()),
                            state: update,
                        },
                    )
                    .await?;
                if recorded {
                    notes.push(format!("recovered run {committed}: it had committed to Delta before its process stopped"));
                }
            }
        }
        notes.extend(self.close_runs_of_gone_processes(table, except_run).await?);
        let abandoned = self
            .store
            .abandon_runs(
                table.table_id,
                except_run,
                STOPPED_BEFORE_COMMIT,
                self.clock.now(),
            )
            .await?;
        if !abandoned.is_empty() {
            notes.push(format!(
                "closed abandoned run(s) {}",
                abandoned
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(notes)
    }
}

impl Engine {
    /// Runs of the table that a process on this machine left open when it died: closed at once,
    /// rather than when their lease runs out, so that a load started again after a crash goes
    /// ahead. (Runs recovered from the Delta log were closed before this.)
    async fn close_runs_of_gone_processes(
        &self,
        table: &TableControl,
        except_run: Option<RunId>,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for run in self.store.runs(Some(table.table_id), 10).await? {
            let open = Some(run.run_id) != except_run
                && matches!(run.status, RunStatus::Queued | RunStatus::InProgress);
            let Some(worker) = run.worker.as_deref().filter(|_| open) else {
                continue;
            };
            if !local_process_gone(worker) {
                continue;
            }
            let closed = self
                .store
                .finish_run(
                    run.run_id,
                    RunOwner::Recovery,
                    &RunUpdate::ended(
                        RunStatus::Failed,
                        self.clock.now(),
                        ErrorKind::WorkerLost,
                        STOPPED_BEFORE_COMMIT,
                        table.next_load_date_time,
                    ),
                )
                .await?;
            if !closed {
                continue;
            }
            notes.push(format!(
                "closed run {}: its process on this machine had stopped",
                run.run_id
            ));
        }
        Ok(notes)
    }
}

/// Whether `worker` (`host:pid/space…`, as [`default_worker_name`] writes it) names a process
/// of this machine's process space that no longer runs. Anything unsure counts as running:
/// another host, another boot or PID namespace (a container sharing the host name), or a
/// process hidden from us.
#[cfg(unix)]
fn local_process_gone(worker: &str) -> bool {
    // This process's own name is `host:pid/space`: another process of the same space shares
    // the `host:` prefix and the `/space` suffix after its pid.
    let own = default_worker_name();
    let Some((host, rest)) = own.split_once(':') else {
        return false;
    };
    let Some(space) = rest.split_once('/').map(|(_, space)| space) else {
        return false;
    };
    let Some(rest) = worker.strip_prefix(host).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let (pid, rest) = rest.split_at(digits);
    if !rest.starts_with(&format!("/{space}")) {
        return false;
    }
    match pid
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        Some(pid) if pid.as_raw_nonzero().get() as u32 != std::process::id() => matches!(
            rustix::process::test_kill_process(pid),
            Err(e) if e == rustix::io::Errno::SRCH
        ),
        _ => false,
    }
}

#[cfg(not(unix))]
fn local_process_gone(_worker: &str) -> bool {
    false
}

/// This boot's PID namespace, as a short token: two processes with the same host name and PID
/// are one process only when their tokens match.
fn process_space() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(boot.trim(), namespace), &mut hasher);
    Some(format!("{:08x}", std::hash::Hasher::finish(&hasher) as u32))
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into())
}

/// `host:pid/space` (`host:pid` where /proc does not tell the process space), read once.
pub(crate) fn default_worker_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| match process_space() {
        Some(space) => format!("{}:{}/{space}", host_name(), std::process::id()),
        None => format!("{}:{}", host_name(), std::process::id()),
    })
    .clone()
}
