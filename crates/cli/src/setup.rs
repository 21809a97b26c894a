//! What the process sets up before a command runs: allocator and delta-rs memory bounds, the
//! Dagster Pipes session of `load`, logging and the async runtime. Kept apart from the commands
//! because it is about the process, not about what any command does.

/// The memory settings, before anything else: `mallopt` must run before any other thread.
pub(crate) fn tune_memory() {
    return_freed_buffers_to_the_os();
    bound_the_delta_writer_memory();
}

/// delta-rs takes two memory bounds from the environment only: its writer's queue (default ten
/// of our batches, about 100 MB of decoded rows; two keep decoding and encoding overlapped) and
/// the upload parts in flight per file (default ten of 5 MB; four keep a remote store busy).
/// A value the user set wins.
fn bound_the_delta_writer_memory() {
    for (name, value) in [
        ("DELTARS_WRITER_BATCH_CHANNEL_SIZE", "2"),
        ("DELTARS_MAX_CONCURRENCY_TASKS", "4"),
    ] {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }
}

/// glibc serves a large block from its heap once its mmap threshold has crept up past it, and
/// then keeps the freed space: a 20M-row load ended at 313 MiB resident for a 133 MB heap peak.
/// A fixed threshold of 1 MiB hands the large batch buffers back when they are freed (191 MiB,
/// and no slower; 128 KiB saved a little more but cost 15 % in page faults). A
/// `MALLOC_MMAP_THRESHOLD_` set in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_buffers_to_the_os() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it runs before any other thread.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_buffers_to_the_os() {}

/// `load` run by Dagster Pipes opens its session before anything logs. Only the main thread's
/// panics end the process, so only those close the session; tokio turns a task's panic into an
/// error that the load reports as usual.
#[cfg(feature = "dagster")]
pub(crate) fn start_dagster_session() -> Result<(), crate::pipes::PipesError> {
    crate::pipes::start()?;
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            crate::pipes::finish(Some(("Panic", &info.to_string())));
        }
        report_panic(info);
    }));
    Ok(())
}

/// Log lines go to stderr; under Dagster Pipes also to Dagster, from `info` on for our crates.
pub(crate) fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    // delta-rs logs a missing table as an error, and its MERGE each file it reads.
    const QUIET: &str =
        "warn,buoyant_kernel::snapshot::builder=off,deltalake_core::operations::merge=error";
    let filter = |default: &str| {
        EnvFilter::try_from_env("DATALOADER_LOG").unwrap_or_else(|_| EnvFilter::new(default))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter(QUIET));
    let registry = tracing_subscriber::registry().with(stderr);
    #[cfg(feature = "dagster")]
    // Dagster keeps what it is sent: its own variable, so that DATALOADER_LOG=debug on stderr
    // does not fill Dagster's event log.
    let registry = registry.with(crate::pipes::session().map(|_| {
        let default = format!(
            "{QUIET},dataloader_engine=info,dataloader_lake=info,dataloader_sources=info,dataloader_scheduler=info"
        );
        crate::pipes::LogLayer.with_filter(
            EnvFilter::try_from_env("DATALOADER_DAGSTER_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default)),
        )
    }));
    registry.init();
}

/// The multi-threaded tokio runtime every command runs on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
