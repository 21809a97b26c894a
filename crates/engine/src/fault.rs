//! Test-only crash points. `DATALOADER_FAULT=<point>` (or `<point>:<n>`, the n-th time the
//! point is reached) makes the process abort there, as a SIGKILL would stop it: no cleanup,
//! no bookkeeping. Unset, every point is a no-op.

use std::sync::atomic::{AtomicU32, Ordering};

static HITS: AtomicU32 = AtomicU32::new(0);

pub fn point(name: &str) {
    let Ok(fault) = std::env::var("DATALOADER_FAULT") else {
        return;
    };
    let (wanted, nth) = match fault.split_once(':') {
        Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
        None => (fault, 1),
    };
    if wanted != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 >= nth {
        eprintln!("DATALOADER_FAULT: aborting at {name}");
        std::process::abort();
    }
}
