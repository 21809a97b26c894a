//! Test-only crash points. `DATALOADER_FAULT=<point>` (or `<point>:<n>`, the n-th time the
//! point is reached) makes the process abort there, as a SIGKILL would stop it: no cleanup,
//! no bookkeeping. Unset, every point is a no-op.
//!
//! The points exist only in debug builds, the ones the tests run: a release build compiles
//! every point to nothing and never reads the variable. A debug build reads it once.

#[cfg(debug_assertions)]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;

    static WANTED: OnceLock<Option<(String, u32)>> = OnceLock::new();
    static HITS: AtomicU32 = AtomicU32::new(0);
    let wanted = WANTED.get_or_init(|| {
        let fault = std::env::var("DATALOADER_FAULT").ok()?;
        Some(match fault.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
            None => (fault, 1),
        })
    });
    let Some((wanted, nth)) = wanted else {
        return;
    };
    if wanted != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 >= *nth {
        eprintln!("DATALOADER_FAULT: aborting at {name}");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}
