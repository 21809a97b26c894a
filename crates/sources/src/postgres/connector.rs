//! PostgreSQL as the registry knows it: its names, port and options, what its connections
//! need, and the messages of its driver the retry analysis recognises.

use dataloader_core::FailureCategory as F;

use crate::connector::{
    host_port_database, needs_host_and_database, ConnectFn, Connector, SSL, SSL_OPTIONS,
};

/// The port of a connection that names none.
pub const PORT: u16 = 5432;

/// PostgreSQL's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "postgresql",
        aliases: &["postgres"],
        docs: "postgresql",
        default_port: Some(PORT),
        options: SSL_OPTIONS,
        tls: SSL,
        check: needs_host_and_database,
        address: host_port_database,
        failures: &[
            (F::Cancelled, &["canceling statement due to user request"]),
            (
                F::Authentication,
                &["password authentication failed", "role \""],
            ),
            (
                F::Permission,
                &["permission denied", "insufficient privilege"],
            ),
            (F::Lock, &["could not serialize", "could not obtain lock"]),
            (F::Throttling, &["remaining connection slots are reserved"]),
            (F::Timeout, &["statement timeout"]),
            (F::Network, &["server closed the connection"]),
            (
                F::DataError,
                &["invalid input syntax", "numeric field overflow"],
            ),
            (F::ResourceExhausted, &["could not resize shared memory"]),
        ],
        connect,
    }
}
