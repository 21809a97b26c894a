//! What a connector declares about itself: its type names, default port, the options it takes,
//! what its connections need, the retry categories its driver's messages show, and how it
//! connects. Each database's folder declares one in its `connector.rs`; the registry in
//! `lib.rs` lists them. Nothing here names a database.

use std::future::Future;
use std::sync::Arc;

use dataloader_core::{Cause, ConnectionConfig, Error, FailureCategory, Result, Source};
use futures::future::BoxFuture;

/// Opens a source for a connection its connector has validated.
pub type ConnectFn = for<'a> fn(&'a ConnectionConfig) -> BoxFuture<'a, Result<Arc<dyn Source>>>;

/// A source's `connect`, as [`Connector::connect`] returns it.
pub fn boxed<'a, S: Source + 'static>(
    connect: impl Future<Output = Result<S>> + Send + 'a,
) -> BoxFuture<'a, Result<Arc<dyn Source>>> {
    Box::pin(async move { Ok(Arc::new(connect.await?) as Arc<dyn Source>) })
}

/// One database type, as `--type` names it and a connection stores it.
pub struct Connector {
    /// The `db_type` its connections store, and `--type`'s value.
    pub name: &'static str,
    /// Other values `--type` takes for it; the connection stores `name`.
    pub aliases: &'static [&'static str],
    /// Its page, `docs/connectors/<docs>.md`.
    pub docs: &'static str,
    /// The port of a connection that names none; `None` when it has no port (a file).
    pub default_port: Option<u16>,
    /// The options it takes; any other key is refused.
    pub options: &'static [OptionSpec],
    /// The TLS options (of [`TLS_OPTIONS`]) it honours, each with the values it honours
    /// ([`ANY`]: any value, a file or a reference). Any other TLS option or value is refused:
    /// it would connect without what was asked for.
    pub tls: &'static [(&'static str, &'static [&'static str])],
    /// What its connections need beyond their options (host, database, …).
    pub check: fn(&Connector, &ConnectionConfig) -> Result<()>,
    /// Where a connection points, for messages; never with credentials.
    pub address: fn(&Connector, &ConnectionConfig) -> String,
    /// Lower-case fragments of its driver's error messages, by the category they show. The
    /// scheduler's retry analysis adds them to its own, database-free rules.
    pub failures: &'static [(FailureCategory, &'static [&'static str])],
    /// Opens a source (connecting, so a wrong host or password fails here).
    pub connect: ConnectFn,
}

/// One connection option (`--option KEY=VALUE`, `options:` in YAML).
pub struct OptionSpec {
    pub key: &'static str,
    /// What it does, in a few words.
    pub about: &'static str,
}

/// Options that ask for TLS or set how it is checked, in any connector's spelling.
pub const TLS_OPTIONS: [&str; 14] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "ssl",
    "tls",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "encrypt",
    "secure",
    "trust_server_certificate",
];

/// A TLS option's values: any (a file path, a reference).
pub const ANY: &[&str] = &["*"];

/// The TLS options of a connector that implements libpq's set (PostgreSQL, MySQL), with the
/// same names and meanings everywhere (`dataloader_core::tls`).
pub const SSL_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "sslmode",
        about: "disable, prefer, require, verify-ca or verify-full (default: require, prefer on localhost)",
    },
    OptionSpec {
        key: "sslrootcert",
        about: "PEM file of the CAs the server's certificate must chain to (`system`: the machine's)",
    },
    OptionSpec {
        key: "sslcert",
        about: "PEM file of a client certificate, with sslkey",
    },
    OptionSpec {
        key: "sslkey",
        about: "the client certificate's private key: a reference (file:/path, env:NAME)",
    },
];

/// What [`SSL_OPTIONS`] honour.
pub const SSL: &[(&str, &[&str])] = &[
    ("sslmode", &dataloader_core::tls::SslMode::NAMES),
    ("sslrootcert", ANY),
    ("sslcert", ANY),
    ("sslkey", ANY),
];

/// Its name only: the rest is code and tables.
impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Whether `--type name` means this connector (its name or an alias, in any case).
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.name == name || self.aliases.contains(&name.as_str())
    }

    /// Where `c` points, for messages: [`Connector::address`].
    pub fn address_of(&self, c: &ConnectionConfig) -> String {
        (self.address)(self, c)
    }

    /// A connection to `c` that failed: [`Error::Auth`] when the server refused the login,
    /// else [`Error::Connect`] naming `db_type` and where `c` points.
    pub fn connect_error(
        &self,
        c: &ConnectionConfig,
        db_type: &str,
        login_refused: bool,
        message: String,
        source: Option<Cause>,
    ) -> Error {
        if login_refused {
            Error::Auth {
                connection: c.name.clone(),
                message,
                source,
            }
        } else {
            Error::Connect {
                connection: c.name.clone(),
                db_type: db_type.to_string(),
                address: self.address_of(c),
                message,
                source,
            }
        }
    }

    /// Refuses a TLS option or value this connector does not implement.
    pub fn check_tls_option(&self, key: &str, value: &str) -> Result<()> {
        let lower = key.to_ascii_lowercase();
        if !TLS_OPTIONS.contains(&lower.as_str()) {
            return Ok(());
        }
        let honoured = self
            .tls
            .iter()
            .any(|(k, values)| *k == lower && (*values == ANY || values.contains(&value)));
        if honoured {
            return Ok(());
        }
        Err(Error::config(
            key,
            format!(
                "{lower}={value} is not implemented for {} connections: DataLoader would connect without it, so it is refused (remove it, or see docs/connectors/{}.md for what is supported)",
                self.name, self.docs
            ),
        ))
    }

    /// Refuses an option key this connector does not take: a typo would be ignored.
    pub fn check_option_key(&self, connection: &str, key: &str) -> Result<()> {
        if self.options.iter().any(|o| o.key == key) {
            return Ok(());
        }
        Err(Error::UnknownOption {
            connection: connection.to_string(),
            db_type: self.name.to_string(),
            key: key.to_string(),
            valid: self.options.iter().map(|o| o.key.to_string()).collect(),
        })
    }
}

/// The check of a connector whose connections need a host and a database.
pub fn needs_host_and_database(connector: &Connector, c: &ConnectionConfig) -> Result<()> {
    let kind = connector.name;
    if c.host.as_deref().unwrap_or("").is_empty() {
        return Err(Error::config(
            "host",
            format!("a {kind} connection needs --host"),
        ));
    }
    needs_database(connector, c)
}

/// A connection needs a database.
pub fn needs_database(connector: &Connector, c: &ConnectionConfig) -> Result<()> {
    if c.database.as_deref().unwrap_or("").is_empty() {
        return Err(Error::config(
            "database",
            format!("a {} connection needs --database", connector.name),
        ));
    }
    Ok(())
}

/// `host:port/database`, the port defaulting to the connector's.
pub fn host_port_database(connector: &Connector, c: &ConnectionConfig) -> String {
    format!(
        "{}:{}/{}",
        c.host.as_deref().unwrap_or(""),
        c.port.or(connector.default_port).unwrap_or(0),
        c.database.as_deref().unwrap_or("")
    )
}
