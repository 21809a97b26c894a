//! MySQL and MariaDB as the registry knows them: names, port and options, what a connection
//! needs, and the messages of the driver the retry analysis recognises.

use dataloader_core::{ConnectionConfig, FailureCategory as F};

use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, OptionSpec,
};

/// The port of a connection that names none.
pub const PORT: u16 = 3306;

/// The TLS modes `sslmode` takes: TLS with the server's certificate verified, or none.
const SSLMODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

/// MySQL's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "mysql",
        aliases: &["mariadb"],
        docs: "mysql",
        default_port: Some(PORT),
        options: &[OptionSpec {
            key: "sslmode",
            about: "TLS (rustls, the server's certificate verified) unless `disable`",
        }],
        tls: &[("sslmode", SSLMODES)],
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

/// What the source makes of a connection's options.
pub struct MysqlOptions {
    /// `sslmode` other than `disable`.
    pub tls: bool,
}

impl MysqlOptions {
    pub fn of(config: &ConnectionConfig) -> Self {
        MysqlOptions {
            tls: config
                .options
                .get("sslmode")
                .is_some_and(|m| m != "disable"),
        }
    }
}
