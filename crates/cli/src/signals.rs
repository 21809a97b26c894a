//! SIGINT and SIGTERM: `run` stops claiming when [`stop_requested`] resolves, and `load` is
//! cancelled through [`cancel_on_signal`] so that its run is recorded `Cancelled`. One listener
//! for the whole process, hence its own file.

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn stop_requested() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// The load running in this process, for the signal listener to cancel.
static RUNNING_LOAD: std::sync::Mutex<Option<tokio_util::sync::CancellationToken>> =
    std::sync::Mutex::new(None);
static SIGNAL_LISTENER: std::sync::Once = std::sync::Once::new();

/// SIGINT or SIGTERM cancels the running load: it commits nothing more and is recorded
/// `Cancelled`, instead of leaving its run `In Progress`. A signal with no load running (a
/// second one, or one after the load) quits at once with 130.
pub(crate) fn cancel_on_signal() -> RunningLoad {
    SIGNAL_LISTENER.call_once(|| {
        tokio::spawn(async {
            loop {
                stop_requested().await;
                let running = RUNNING_LOAD.lock().ok().and_then(|mut r| r.take());
                match running {
                    Some(load) => {
                        eprintln!("dataloader load: stopping; the run is recorded Cancelled (again to quit at once)");
                        load.cancel();
                    }
                    None => {
                        #[cfg(feature = "dagster")]
                        crate::pipes::finish(Some(("Cancelled", "stopped by a signal")));
                        std::process::exit(130);
                    }
                }
            }
        });
    });
    let token = tokio_util::sync::CancellationToken::new();
    if let Ok(mut running) = RUNNING_LOAD.lock() {
        *running = Some(token.clone());
    }
    RunningLoad(token)
}

/// A load [`cancel_on_signal`] may cancel, until dropped.
pub(crate) struct RunningLoad(tokio_util::sync::CancellationToken);

impl RunningLoad {
    pub(crate) fn token(&self) -> tokio_util::sync::CancellationToken {
        self.0.clone()
    }
}

impl Drop for RunningLoad {
    fn drop(&mut self) {
        if let Ok(mut running) = RUNNING_LOAD.lock() {
            running.take();
        }
    }
}
