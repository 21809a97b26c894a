//! A TCP proxy a test controls, between a client and a real server on this machine: it can
//! cut every connection (and refuse new ones), slow every packet down, and heal again. For
//! fault tests of what happens when the control database or a source goes away mid-load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    cut: AtomicBool,
    delay_ms: AtomicU64,
    connections: Mutex<Vec<AbortHandle>>,
}

/// A running proxy on `127.0.0.1:port()` to `target`; stopped when dropped.
pub struct FaultProxy {
    port: u16,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards each connection to `target` (host:port).
    pub async fn start(target: String) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let port = listener.local_addr().expect("the proxy port").port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let state = shared.clone();
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(&target).await {
                        forward(inbound, outbound, state).await;
                    }
                });
                if let Ok(mut open) = shared.connections.lock() {
                    open.retain(|c| !c.is_finished());
                    open.push(task.abort_handle());
                }
            }
        });
        FaultProxy {
            port,
            state,
            accept,
        }
    }

    /// A proxy to the test PostgreSQL server.
    pub async fn to_postgres() -> FaultProxy {
        let (host, port) = crate::pg_host_port();
        FaultProxy::start(format!("{host}:{port}")).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy and refuses new ones until [`restore`].
    ///
    /// [`restore`]: FaultProxy::restore
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        if let Ok(mut open) = self.state.connections.lock() {
            for connection in open.drain(..) {
                connection.abort();
            }
        }
    }

    /// Lets connections through again, without delay.
    pub fn restore(&self) {
        self.state.delay_ms.store(0, Ordering::SeqCst);
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Holds every chunk of bytes for `delay` before passing it on.
    pub fn delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn forward(inbound: TcpStream, outbound: TcpStream, state: Arc<State>) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let up = pump(&mut client_read, &mut server_write, &state);
    let down = pump(&mut server_read, &mut client_write, &state);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

async fn pump(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    state: &State,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if state.cut.load(Ordering::SeqCst) || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
