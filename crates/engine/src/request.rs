//! What a caller asks of [`crate::Engine::load`]: which table (or which claimed run), and how.
//! One request type instead of one entry point per combination of options.

use dataloader_core::TargetTable;
use dataloader_core::{Claim, Trigger};
use tokio_util::sync::CancellationToken;

use crate::{Lease, ProgressFn};

/// One load to run. Build it with [`LoadRequest::new`] (a load asked for now) or
/// [`LoadRequest::claimed`] (a run the scheduler claimed), then add options.
pub struct LoadRequest<'a> {
    pub(crate) run: RunSource<'a>,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) cancel: CancellationToken,
    pub(crate) full_refresh: bool,
}

/// Where the run a load records into comes from.
pub(crate) enum RunSource<'a> {
    /// The engine creates the run, queued now.
    New {
        destination: &'a TargetTable,
        trigger: Trigger,
    },
    /// The scheduler created it `Queued`, and its heartbeat keeps `lease`.
    Claimed { claim: &'a Claim, lease: Lease },
}

impl<'a> LoadRequest<'a> {
    /// A load of `destination` now, recorded with `trigger`.
    pub fn new(destination: &'a TargetTable, trigger: Trigger) -> Self {
        Self::with_run(RunSource::New {
            destination,
            trigger,
        })
    }

    /// The load of a run the scheduler claimed; `lease` is the one its heartbeat keeps.
    pub fn claimed(claim: &'a Claim, lease: Lease) -> Self {
        Self::with_run(RunSource::Claimed { claim, lease })
    }

    fn with_run(run: RunSource<'a>) -> Self {
        LoadRequest {
            run,
            progress: None,
            cancel: CancellationToken::new(),
            full_refresh: false,
        }
    }

    /// Called with the running count of rows read, for progress bars.
    pub fn progress(mut self, progress: Option<ProgressFn>) -> Self {
        self.progress = progress;
        self
    }

    /// Stops the load when `cancel` fires (on a signal, say): nothing is committed after it
    /// and the run ends `Cancelled`.
    pub fn cancel_on(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Reads the whole table and replaces the Delta table, whatever the strategy; the
    /// watermark (if any) becomes the source's maximum. The remedy for a column Delta cannot
    /// widen.
    pub fn full_refresh(mut self, full_refresh: bool) -> Self {
        self.full_refresh = full_refresh;
        self
    }
}
