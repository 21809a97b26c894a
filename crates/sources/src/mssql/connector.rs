//! SQL Server as the registry knows it: its names, port and options, what a connection needs,
//! and the messages of its driver the retry analysis recognises.

use dataloader_core::tls::{SslMode, SSLMODE, SSLROOTCERT};
use dataloader_core::{ConnectionConfig, Error, FailureCategory as F, Result};
use tiberius::{Config, EncryptionLevel};

use super::types::MapOptions;
use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, OptionSpec, ANY,
};

/// The port of a connection that names none.
pub const PORT: u16 = 1433;

/// SQL Server's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "mssql",
        aliases: &["sqlserver"],
        docs: "mssql",
        default_port: Some(PORT),
        options: &[
            OptionSpec {
                key: "auth",
                about: "`aad`: an Azure AD service principal instead of a SQL login",
            },
            OptionSpec {
                key: "tenant_id",
                about: "auth=aad: the tenant",
            },
            OptionSpec {
                key: "client_id",
                about: "auth=aad: the service principal",
            },
            OptionSpec {
                key: "client_secret",
                about: "auth=aad: its secret, a reference",
            },
            OptionSpec {
                key: "aad_authority",
                about: "auth=aad: the token host (https://login.microsoftonline.com)",
            },
            OptionSpec {
                key: "sslmode",
                about: "disable, prefer, require or verify-full (default: require, prefer on localhost)",
            },
            OptionSpec {
                key: "sslrootcert",
                about: "verify-full: PEM file of a CA trusted besides the machine's",
            },
            OptionSpec {
                key: "trust_server_certificate",
                about: "old spelling: `true` is sslmode=require, `false` verify-full",
            },
            OptionSpec {
                key: "timezone",
                about: "the zone naive date-times are in; they load as UTC instants",
            },
            OptionSpec {
                key: "datetime2_precision",
                about: "`microseconds`: datetime2(7) as microsecond timestamps",
            },
            OptionSpec {
                key: "isolation",
                about: "`snapshot`: read in a SNAPSHOT transaction",
            },
        ],
        // Not `verify-ca`, nor client certificates: tiberius 0.13 checks a certificate with
        // rustls' own verifier, the name always included, and reads a client key only from a
        // file path. Refused rather than made to mean something else.
        tls: &[
            ("sslmode", &["disable", "prefer", "require", "verify-full"]),
            ("sslrootcert", ANY),
            ("trust_server_certificate", &["true", "false"]),
        ],
        check: needs_host_and_database,
        address: host_port_database,
        failures: &[
            (F::Authentication, &["login failed for user"]),
            (F::Permission, &["permission was denied"]),
            (F::Lock, &["lock request time out"]),
            (F::Timeout, &["timeout expired"]),
            (F::MissingObject, &["invalid object name"]),
            (F::DataError, &["conversion failed"]),
            (F::ResourceExhausted, &["insufficient system memory"]),
        ],
        connect,
    }
}

/// What the source makes of a connection's options.
pub struct MssqlOptions {
    /// How columns map: `timezone` and `datetime2_precision`.
    pub map: MapOptions,
    /// `sslmode` and `sslrootcert` (or `trust_server_certificate`), as tiberius takes them.
    pub tls: MssqlTls,
    /// `auth=aad`, with `tenant_id`, `client_id`, `client_secret` and `aad_authority`.
    pub aad: bool,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub aad_authority: String,
    /// `isolation=snapshot`.
    pub snapshot: bool,
}

impl MssqlOptions {
    /// Fails on a `timezone` that is not one.
    pub fn of(config: &ConnectionConfig) -> Result<Self> {
        let o = &config.options;
        let is = |key: &str, value: &str| o.get(key).is_some_and(|v| v == value);
        Ok(MssqlOptions {
            map: MapOptions {
                source_timezone: o
                    .get("timezone")
                    .map(|tz| dataloader_core::schedule::parse_timezone(tz))
                    .transpose()?,
                datetime2_microseconds: is("datetime2_precision", "microseconds"),
            },
            tls: MssqlTls::of(config)?,
            aad: is("auth", "aad"),
            tenant_id: o.get("tenant_id").cloned(),
            client_id: o.get("client_id").cloned(),
            client_secret: o.get("client_secret").cloned(),
            aad_authority: o
                .get("aad_authority")
                .cloned()
                .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
            snapshot: is("isolation", "snapshot"),
        })
    }
}

/// How a SQL Server connection uses TLS: the shared `sslmode` mapped onto what tiberius 0.13
/// offers, an [`EncryptionLevel`] and whether and how the certificate is checked.
///
/// - `disable`: [`EncryptionLevel::Off`], the certificate unchecked. SQL Server encrypts the
///   login whatever the client asks (the password never travels in clear), then the session
///   goes in clear, as ODBC's `Encrypt=no`; a server that forces encryption encrypts it all.
///   Not `NotSupported`, which would send the password in clear.
/// - `prefer`, `require`: [`EncryptionLevel::Required`], any certificate (tiberius'
///   `trust_cert`). `prefer` cannot fall back to clear, and need not: every SQL Server since
///   2005 has a certificate (a self-signed one it makes at start-up when none is configured).
/// - `verify-full`: `Required`, the certificate chained to the machine's CAs plus the
///   `sslrootcert` file, and carrying the host's name.
/// - `verify-ca`, and `require` with `sslrootcert` (libpq's verify-ca): refused; tiberius
///   always checks the name of a certificate it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MssqlTls {
    pub mode: SslMode,
    /// `sslrootcert`: a CA trusted besides the machine's (`system`: the machine's only).
    pub rootcert: Option<String>,
}

/// What tiberius is told to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Any certificate (`trust_cert`).
    Any,
    /// A chain to the machine's CAs, or to these files' too (`trust_cert_ca`), and the name.
    Verified(Option<String>),
}

impl MssqlTls {
    /// `sslmode` (or the old `trust_server_certificate`) and `sslrootcert`; the default is the
    /// host's ([`SslMode::default_for`]). Refuses what tiberius cannot do, saying why.
    pub fn of(config: &ConnectionConfig) -> Result<Self> {
        let o = &config.options;
        let host = config.host.as_deref().unwrap_or("localhost");
        let mode = match (o.get(SSLMODE), o.get(TRUST_SERVER_CERTIFICATE)) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    TRUST_SERVER_CERTIFICATE,
                    "set sslmode only: trust_server_certificate is its old spelling (true: sslmode=require, false: sslmode=verify-full)",
                ))
            }
            (None, Some(trust)) => match trust.as_str() {
                "true" => SslMode::Require,
                "false" => SslMode::VerifyFull,
                other => {
                    return Err(Error::config(
                        TRUST_SERVER_CERTIFICATE,
                        format!("trust_server_certificate takes true or false, not \"{other}\" (better: sslmode)"),
                    ))
                }
            },
            _ => SslMode::of(o, host)?,
        };
        let rootcert = o.get(SSLROOTCERT).filter(|r| *r != "system").cloned();
        let refuse = |why: &str| {
            Err(Error::config(
                SSLMODE,
                format!("{why}, which SQL Server connections cannot do: tiberius checks the name of every certificate it checks (see docs/connectors/mssql.md). Use sslmode=verify-full, or require without sslrootcert"),
            ))
        };
        match mode {
            SslMode::VerifyCa => return refuse("sslmode=verify-ca checks the CA but not the name"),
            SslMode::Require | SslMode::Prefer | SslMode::Disable
                if o.contains_key(SSLROOTCERT) =>
            {
                return refuse(&format!(
                    "sslrootcert with sslmode={mode} means checking the CA but not the name"
                ))
            }
            _ => {}
        }
        if let Some(path) = &rootcert {
            // Read now, so a wrong path names the option rather than failing in tiberius.
            std::fs::read(path).map_err(|e| {
                Error::config(
                    SSLROOTCERT,
                    format!("cannot read sslrootcert file {path}: {e}"),
                )
            })?;
        }
        Ok(MssqlTls { mode, rootcert })
    }

    /// The encryption level and trust tiberius gets for the mode.
    pub fn tiberius(&self) -> (EncryptionLevel, Trust) {
        match self.mode {
            SslMode::Disable => (EncryptionLevel::Off, Trust::Any),
            SslMode::Prefer | SslMode::Require => (EncryptionLevel::Required, Trust::Any),
            SslMode::VerifyCa | SslMode::VerifyFull => (
                EncryptionLevel::Required,
                Trust::Verified(self.rootcert.clone()),
            ),
        }
    }

    /// Sets `cfg`'s encryption and trust.
    pub fn apply(&self, cfg: &mut Config) {
        let (level, trust) = self.tiberius();
        cfg.encryption(level);
        match trust {
            Trust::Any => cfg.trust_cert(),
            Trust::Verified(Some(path)) => cfg.trust_cert_ca(path),
            Trust::Verified(None) => {}
        }
    }
}

/// The option SQL Server connections took before `sslmode`.
const TRUST_SERVER_CERTIFICATE: &str = "trust_server_certificate";

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(host: &str, options: &[(&str, &str)]) -> Result<MssqlTls> {
        MssqlTls::of(&crate::test_connection("mssql", host, options))
    }

    fn mapped(host: &str, options: &[(&str, &str)]) -> (EncryptionLevel, Trust) {
        tls(host, options).unwrap().tiberius()
    }

    #[test]
    fn sslmode_maps_onto_encryption_and_trust() {
        use EncryptionLevel::{Off, Required};
        // The defaults: require over a network, prefer on this machine; both encrypt all.
        assert_eq!(mapped("db.internal", &[]), (Required, Trust::Any));
        assert_eq!(mapped("127.0.0.1", &[]), (Required, Trust::Any));
        assert_eq!(mapped("db", &[("sslmode", "disable")]), (Off, Trust::Any));
        assert_eq!(
            mapped("db", &[("sslmode", "prefer")]),
            (Required, Trust::Any)
        );
        assert_eq!(
            mapped("db", &[("sslmode", "verify-full")]),
            (Required, Trust::Verified(None))
        );
        let ca = std::env::temp_dir().join(format!("dl-mssql-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "a CA").unwrap();
        let path = ca.display().to_string();
        assert_eq!(
            mapped("db", &[("sslmode", "verify-full"), ("sslrootcert", &path)]),
            (Required, Trust::Verified(Some(path.clone())))
        );
        assert_eq!(
            mapped(
                "db",
                &[("sslmode", "verify-full"), ("sslrootcert", "system")]
            ),
            (Required, Trust::Verified(None))
        );
        std::fs::remove_file(&ca).unwrap();
        // tiberius takes the mapping without panicking (trust_cert and trust_cert_ca are
        // exclusive in it).
        for mode in ["disable", "prefer", "require", "verify-full"] {
            tls("db", &[("sslmode", mode)])
                .unwrap()
                .apply(&mut Config::new());
        }
    }

    #[test]
    fn the_old_option_is_an_alias_and_conflicts_are_refused() {
        assert_eq!(
            tls("db", &[("trust_server_certificate", "true")])
                .unwrap()
                .mode,
            SslMode::Require
        );
        assert_eq!(
            tls("localhost", &[("trust_server_certificate", "false")])
                .unwrap()
                .mode,
            SslMode::VerifyFull
        );
        let both = tls(
            "db",
            &[("trust_server_certificate", "true"), ("sslmode", "require")],
        );
        assert!(both.unwrap_err().to_string().contains("set sslmode only"));
        let bad = tls("db", &[("trust_server_certificate", "yes")]);
        assert!(bad.unwrap_err().to_string().contains("takes true or false"));
    }

    #[test]
    fn what_tiberius_cannot_do_is_refused_with_the_reason() {
        for options in [
            &[("sslmode", "verify-ca")][..],
            &[("sslmode", "require"), ("sslrootcert", "/etc/ca.pem")],
            &[
                ("trust_server_certificate", "true"),
                ("sslrootcert", "/etc/ca.pem"),
            ],
        ] {
            let err = tls("db", options).unwrap_err().to_string();
            assert!(
                err.contains("tiberius checks the name"),
                "{options:?}: {err}"
            );
            assert!(err.contains("sslmode=verify-full"), "{options:?}: {err}");
        }
        let err = tls(
            "db",
            &[
                ("sslmode", "verify-full"),
                ("sslrootcert", "/nonexistent/ca.pem"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cannot read sslrootcert file /nonexistent/ca.pem"),
            "{err}"
        );
        let err = tls("db", &[("sslmode", "verify_full")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an sslmode"), "{err}");
    }
}
