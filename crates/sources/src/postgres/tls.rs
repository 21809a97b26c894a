//! TLS for PostgreSQL connections, with rustls through `tokio-postgres-rustls` (0.14: the
//! tokio-postgres 0.7 and rustls 0.23 of this build). The rustls configuration, with libpq's
//! `sslmode` semantics, is `crate::tls`'s, shared with ClickHouse.

use dataloader_core::tls::{SslMode, SSLROOTCERT};
use dataloader_core::{ConnectionConfig, Result};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connection's TLS: the mode, and the connector tokio-postgres uses when it is not
/// `disable`. Built once per source: reading the machine's CAs is not free.
pub struct Tls {
    pub mode: SslMode,
    /// Whether `sslrootcert` was given (for the hint a failure gets).
    pub rootcert: bool,
    pub connector: MakeRustlsConnect,
}

impl Tls {
    /// The TLS `config`'s options ask for. Fails on an unreadable or empty certificate file or
    /// key, naming the option and the file (never the key's content).
    pub async fn of(config: &ConnectionConfig) -> Result<Tls> {
        let host = config.host.as_deref().unwrap_or("localhost");
        let mode = SslMode::of(&config.options, host)?;
        let rootcert = config.options.contains_key(SSLROOTCERT);
        let client = crate::tls::client_config(config, mode).await?;
        Ok(Tls {
            mode,
            rootcert,
            connector: MakeRustlsConnect::new(client),
        })
    }

    /// tokio-postgres' mode: it knows no verification, which is the connector's.
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as M;
        match self.mode {
            SslMode::Disable => M::Disable,
            SslMode::Prefer => M::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => M::Require,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, options: &[(&str, &str)]) -> ConnectionConfig {
        crate::test_connection("postgresql", host, options)
    }

    #[tokio::test]
    async fn modes_default_by_host_and_files_are_named_in_errors() {
        assert_eq!(
            Tls::of(&config("db.internal", &[])).await.unwrap().mode,
            SslMode::Require
        );
        assert_eq!(
            Tls::of(&config("127.0.0.1", &[])).await.unwrap().mode,
            SslMode::Prefer
        );
        let verify = Tls::of(&config("db.internal", &[("sslmode", "verify-full")]))
            .await
            .unwrap();
        assert_eq!(
            verify.driver_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let err = Tls::of(&config("h", &[("sslrootcert", "/nonexistent/ca.pem")]))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot read sslrootcert file /nonexistent/ca.pem"),
            "{err}"
        );
        let err = Tls::of(&config("h", &[("sslcert", "/x.pem")]))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("needs both sslcert"), "{err}");
    }
}
