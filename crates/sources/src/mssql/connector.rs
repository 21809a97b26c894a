//! SQL Server as the registry knows it: its names, port and options, what a connection needs,
//! and the messages of its driver the retry analysis recognises.

use dataloader_core::{ConnectionConfig, FailureCategory as F, Result};

use super::types::MapOptions;
use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, OptionSpec,
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
                key: "trust_server_certificate",
                about: "`true`: accept the server's certificate unchecked",
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
        tls: &[("trust_server_certificate", &["true", "false"])],
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
    /// `trust_server_certificate=true`.
    pub trust_server_certificate: bool,
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
            trust_server_certificate: is("trust_server_certificate", "true"),
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
