//! ClickHouse as the registry knows it: its name, port and options, what a connection needs,
//! and the messages of the server the retry analysis recognises.

use dataloader_core::{ConnectionConfig, FailureCategory as F};

use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, OptionSpec,
};

/// The port of a connection that names none (the HTTP interface).
pub const PORT: u16 = 8123;

/// ClickHouse's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "clickhouse",
        aliases: &[],
        docs: "clickhouse",
        default_port: Some(PORT),
        options: &[
            OptionSpec {
                key: "protocol",
                about: "`http` (default) or `https`",
            },
            OptionSpec {
                key: "format",
                about: "`auto` (default: ArrowStream from 23.3 on), `arrow` or `rowbinary`",
            },
        ],
        tls: &[],
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
    /// The URL scheme, `protocol` (`http` by default).
    pub scheme: String,
    /// `format` as given; the source judges it once it knows the server's version.
    pub format: Option<String>,
}

impl ClickHouseOptions {
    pub fn of(config: &ConnectionConfig) -> Self {
        ClickHouseOptions {
            scheme: config
                .options
                .get("protocol")
                .cloned()
                .unwrap_or_else(|| "http".into()),
            format: config.options.get("format").cloned(),
        }
    }
}
