//! MySQL and MariaDB as the registry knows them: names, port and options, what a connection
//! needs, and the messages of the driver the retry analysis recognises.

use dataloader_core::secret::SecretRef;
use dataloader_core::tls::{client_cert, SslMode, SSLCERT, SSLROOTCERT};
use dataloader_core::{ConnectionConfig, Error, FailureCategory as F, Result};
use mysql_async::{ClientIdentity, SslOpts};

use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, ANY, SSL_OPTIONS,
};

/// The port of a connection that names none.
pub const PORT: u16 = 3306;

/// MySQL's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "mysql",
        aliases: &["mariadb"],
        docs: "mysql",
        default_port: Some(PORT),
        options: SSL_OPTIONS,
        // Not `verify-ca`: mysql_async 0.37 skips the name check by looking for
        // "NotValidForName" in rustls' message, which rustls 0.23.2x no longer writes, so it
        // would check the name anyway. Refused rather than made to mean verify-full.
        tls: &[
            ("sslmode", &["disable", "prefer", "require", "verify-full"]),
            ("sslrootcert", ANY),
            ("sslcert", ANY),
            ("sslkey", ANY),
        ],
        check: needs_host_and_database,
        address: host_port_database,
        failures: &[
            (F::Authentication, &["access denied for user"]),
            (F::Permission, &["command denied to user"]),
            (F::Lock, &["lock wait timeout"]),
            (F::Throttling, &["too many connections"]),
            (F::Network, &["communications link failure"]),
            (
                F::MissingObject,
                &["doesn't exist", "unknown table", "unknown column"],
            ),
            (F::DataError, &["data truncation"]),
        ],
        connect,
    }
}

/// What the source makes of a connection's TLS options (`crate::connector::SSL_OPTIONS`, with
/// libpq's meanings, as for PostgreSQL).
pub struct MysqlOptions {
    /// `sslmode`, or the default for the host (`require`; `prefer` on this machine).
    pub mode: SslMode,
    /// `sslrootcert`: the CAs to trust instead of Mozilla's (`system`: Mozilla's, the only
    /// built-in set mysql_async has).
    pub rootcert: Option<String>,
    /// `sslcert`, and `sslkey`'s reference.
    pub client: Option<(String, String)>,
}

impl MysqlOptions {
    pub fn of(config: &ConnectionConfig) -> Result<Self> {
        let o = &config.options;
        let mode = SslMode::of(o, config.host.as_deref().unwrap_or("localhost"))?;
        let client = client_cert(o)?.map(|(cert, key)| (cert.to_string(), key.to_string()));
        if mode == SslMode::Require && o.contains_key(SSLROOTCERT) {
            // libpq's require with a CA file is verify-ca, which mysql_async cannot do.
            return Err(Error::config(
                SSLROOTCERT,
                "sslrootcert with sslmode=require means checking the CA but not the name, which MySQL connections cannot do (see docs/connectors/mysql.md): use sslmode=verify-full, or require without sslrootcert",
            ));
        }
        Ok(MysqlOptions {
            mode,
            rootcert: o.get(SSLROOTCERT).filter(|r| *r != "system").cloned(),
            client,
        })
    }

    /// mysql_async's TLS for the mode, or `None` for `disable`. `prefer` and `require` accept
    /// any certificate; `verify-full` checks the chain and the name (`verify-ca` is refused
    /// before: see [`declare`]). Files are read here so an error names the option.
    pub async fn ssl_opts(&self) -> Result<Option<SslOpts>> {
        let ssl = SslOpts::default();
        let mut ssl = match self.mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => ssl.with_danger_accept_invalid_certs(true),
            SslMode::VerifyCa | SslMode::VerifyFull => ssl,
        };
        if let Some(path) = &self.rootcert {
            ssl = ssl
                .with_root_certs(vec![read(SSLROOTCERT, path)?.into()])
                .with_disable_built_in_roots(true);
        }
        if let Some((cert, key)) = &self.client {
            let key = SecretRef::parse(key)?.resolve().await?.into_bytes();
            ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                read(SSLCERT, cert)?.into(),
                key.into(),
            )));
        }
        Ok(Some(ssl))
    }
}

/// The file `path` of option `key`, read now so a missing file names the option.
fn read(key: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::config(key, format!("cannot read {key} file {path}: {e}")))
}
