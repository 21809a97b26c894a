//! Oracle as the registry knows it: its name, port and options, what a connection needs, and
//! the messages of its driver the retry analysis recognises.

use dataloader_core::{ConnectionConfig, FailureCategory as F};

use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, OptionSpec,
};

/// The port of a connection that names none.
pub const PORT: u16 = 1521;

/// Oracle's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "oracle",
        aliases: &[],
        docs: "oracle",
        default_port: Some(PORT),
        options: &[
            OptionSpec {
                key: "connect_string",
                about: "any Oracle connect string (TNS alias, Easy Connect), instead of //host:port/service",
            },
            OptionSpec {
                key: "timestamp_precision",
                about: "`microseconds`: TIMESTAMP(7-9) as microsecond timestamps",
            },
        ],
        tls: &[],
        check: needs_host_and_database,
        address: host_port_database,
        failures: &[
            (
                F::Authentication,
                &["ora-01017", "invalid username/password"],
            ),
            (F::Permission, &["ora-01031", "insufficient privileges"]),
            (F::Lock, &["ora-00060"]),
            (F::Timeout, &["ora-01013"]),
            (F::Network, &[": tns:"]),
            (F::MissingObject, &["ora-00942"]),
            (F::DataError, &["ora-01722"]),
            (F::ResourceExhausted, &["ora-04031"]),
        ],
        connect,
    }
}

/// What the source makes of a connection's options.
pub struct OracleOptions {
    /// `connect_string`, used as given.
    pub connect_string: Option<String>,
    /// `timestamp_precision=microseconds`.
    pub microsecond_timestamps: bool,
}

impl OracleOptions {
    pub fn of(config: &ConnectionConfig) -> Self {
        OracleOptions {
            connect_string: config.options.get("connect_string").cloned(),
            microsecond_timestamps: config
                .options
                .get("timestamp_precision")
                .is_some_and(|v| v == "microseconds"),
        }
    }
}
