//! SQLite as the registry knows it: a file, no port and no options.

use dataloader_core::{ConnectionConfig, Error, Result};

use crate::connector::{ConnectFn, Connector};

/// SQLite's declaration, with `connect` from `mod.rs`.
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "sqlite",
        aliases: &[],
        docs: "sqlite",
        default_port: None,
        options: &[],
        tls: &[],
        check,
        address: |_, c| c.database.clone().unwrap_or_default(),
        failures: &[],
        connect,
    }
}

/// A connection needs the path of its file.
fn check(_: &Connector, c: &ConnectionConfig) -> Result<()> {
    if c.database.as_deref().unwrap_or("").is_empty() {
        return Err(Error::config(
            "database",
            "a sqlite connection needs --database (the path of the file)",
        ));
    }
    Ok(())
}
