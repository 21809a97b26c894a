//! The HTTP transport: plain HTTP through the `clickhouse` crate's own client, or HTTPS over
//! hyper and rustls with the shared TLS set-up, and the hints a failed connection gets about
//! ClickHouse's separate HTTP and HTTPS ports.

use dataloader_core::tls::SslMode;
use dataloader_core::{ConnectionConfig, Result};

/// The HTTP client for `mode`: the `clickhouse` crate's own (plain HTTP) for `disable` and
/// `prefer`, else hyper over rustls with `crate::tls`'s configuration (the one PostgreSQL uses:
/// `require` checks nothing, `verify-ca` the chain, `verify-full` the chain and the name), with
/// the crate's keep-alive and idle time-out.
pub(super) async fn http_client(
    config: &ConnectionConfig,
    mode: SslMode,
) -> Result<clickhouse::Client> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use std::time::Duration;
    if matches!(mode, SslMode::Disable | SslMode::Prefer) {
        return Ok(clickhouse::Client::default());
    }
    let tls = crate::tls::client_config(config, mode).await?;
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        // ClickHouse closes idle connections after 3 s: give them up first (as the crate does).
        .pool_idle_timeout(Duration::from_secs(2))
        .build(https);
    Ok(clickhouse::Client::with_http_client(client))
}

/// What to set when a connection failed over TLS or for the want of it: the shared hints,
/// and the two of ClickHouse's separate HTTP and HTTPS ports.
pub(super) fn tls_hint(message: &str, mode: SslMode, rootcert: bool) -> Option<String> {
    if let Some(hint) = dataloader_core::tls::hint(message, mode, rootcert) {
        return Some(hint);
    }
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    let https = !matches!(mode, SslMode::Disable | SslMode::Prefer);
    if https
        && has(&[
            "invalidcontenttype",
            "corrupt message",
            "wrong version number",
        ])
    {
        return Some(format!("the port answers in plain HTTP, not TLS, and sslmode is {mode}: connect to ClickHouse's https_port (8443 by default), or set sslmode=disable (never over an untrusted network)"));
    }
    if !https
        && has(&[
            "reset by peer",
            "connection closed",
            "incompletemessage",
            "incomplete message",
        ])
    {
        return Some(format!("the server closed the connection; if this port is ClickHouse's https_port (8443 by default), sslmode={mode} speaks plain HTTP to it: set sslmode=verify-full (with sslrootcert) or require"));
    }
    None
}
