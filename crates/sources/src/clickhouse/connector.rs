//! ClickHouse as the registry knows it: its name, port and options, what a connection needs,
//! and the messages of the server the retry analysis recognises.

use dataloader_core::tls::{SslMode, SSLMODE, SSLROOTCERT};
use dataloader_core::{ConnectionConfig, Error, FailureCategory as F, Result};

use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, OptionSpec, SSL,
};

/// The port of a connection that names none (the HTTP interface).
pub const PORT: u16 = 8123;
/// The port of an HTTPS connection that names none (ClickHouse's usual `https_port`).
pub const HTTPS_PORT: u16 = 8443;

/// ClickHouse's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "clickhouse",
        aliases: &[],
        docs: "clickhouse",
        default_port: Some(PORT),
        options: &[
            OptionSpec {
                key: "sslmode",
                about: "disable/prefer: HTTP; require, verify-ca, verify-full: HTTPS (default: require, prefer on localhost)",
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
                about: "the client certificate's key: a reference (file:/path, env:NAME)",
            },
            OptionSpec {
                key: "protocol",
                about: "old spelling: `http` is sslmode=disable, `https` verify-full",
            },
            OptionSpec {
                key: "format",
                about: "`auto` (default: ArrowStream from 23.3 on), `arrow` or `rowbinary`",
            },
        ],
        tls: SSL,
        check: needs_host_and_database,
        address: host_port_database,
        failures: &[
            (F::Authentication, &["password is incorrect"]),
            (F::Permission, &["not enough privileges"]),
            (F::Throttling, &["too many simultaneous queries"]),
            (F::Timeout, &["timeout exceeded"]),
            (F::MissingObject, &["doesn't exist", "unknown table"]),
            (F::DataError, &["cannot parse"]),
            (F::ResourceExhausted, &["memory limit"]),
        ],
        connect,
    }
}

/// What the source makes of a connection's options.
pub struct ClickHouseOptions {
    /// `sslmode` (or the old `protocol`), or the default for the host. ClickHouse serves HTTP
    /// and HTTPS on separate ports, so there is nothing to negotiate: `disable` and `prefer`
    /// (the default on localhost) speak HTTP, the others HTTPS.
    pub mode: SslMode,
    /// `format` as given; the source judges it once it knows the server's version.
    pub format: Option<String>,
}

impl ClickHouseOptions {
    pub fn of(config: &ConnectionConfig) -> Result<Self> {
        let o = &config.options;
        let host = config.host.as_deref().unwrap_or("localhost");
        let mode = match (o.get(SSLMODE), o.get(PROTOCOL).map(String::as_str)) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    PROTOCOL,
                    "set sslmode only: protocol is its old spelling (http: sslmode=disable, https: sslmode=verify-full)",
                ))
            }
            (None, Some("http")) => SslMode::Disable,
            (None, Some("https")) => SslMode::VerifyFull,
            (None, Some(other)) => {
                return Err(Error::config(
                    PROTOCOL,
                    format!("protocol takes http or https, not \"{other}\" (better: sslmode)"),
                ))
            }
            (_, None) => SslMode::of(o, host)?,
        };
        if !mode.https() && o.contains_key(SSLROOTCERT) {
            return Err(Error::config(
                SSLROOTCERT,
                format!("sslrootcert is for HTTPS, and sslmode={mode} connects over HTTP: set sslmode=verify-full"),
            ));
        }
        Ok(ClickHouseOptions {
            mode,
            format: o.get("format").cloned(),
        })
    }

    /// The URL's scheme.
    pub fn scheme(&self) -> &'static str {
        if self.mode.https() {
            "https"
        } else {
            "http"
        }
    }

    /// The port of a connection that names none: 8443 for HTTPS, 8123 for HTTP.
    pub fn default_port(&self) -> u16 {
        if self.mode.https() {
            HTTPS_PORT
        } else {
            PORT
        }
    }
}

/// The option ClickHouse connections took before `sslmode`.
const PROTOCOL: &str = "protocol";

/// Whether a mode speaks HTTPS.
trait Https {
    fn https(self) -> bool;
}

impl Https for SslMode {
    fn https(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(host: &str, options: &[(&str, &str)]) -> Result<ClickHouseOptions> {
        ClickHouseOptions::of(&crate::test_connection("clickhouse", host, options))
    }

    #[test]
    fn sslmode_picks_the_scheme_and_the_port() {
        let at = |host, o: &[(&str, &str)]| {
            let o = options(host, o).unwrap();
            (o.scheme(), o.default_port())
        };
        assert_eq!(at("localhost", &[]), ("http", 8123));
        assert_eq!(at("ch.internal", &[]), ("https", 8443));
        assert_eq!(at("ch", &[("sslmode", "prefer")]), ("http", 8123));
        assert_eq!(at("ch", &[("sslmode", "disable")]), ("http", 8123));
        for mode in ["require", "verify-ca", "verify-full"] {
            assert_eq!(at("localhost", &[("sslmode", mode)]), ("https", 8443));
        }
        assert_eq!(at("ch", &[("protocol", "http")]), ("http", 8123));
        assert_eq!(
            options("ch", &[("protocol", "https")]).unwrap().mode,
            SslMode::VerifyFull
        );
        let err = |o: &[(&str, &str)]| options("ch", o).err().unwrap().to_string();
        assert!(err(&[("protocol", "https"), ("sslmode", "require")]).contains("set sslmode only"));
        assert!(err(&[("protocol", "ftp")]).contains("takes http or https"));
        assert!(err(&[("sslmode", "disable"), ("sslrootcert", "/ca.pem")])
            .contains("sslrootcert is for HTTPS"));
    }
}
