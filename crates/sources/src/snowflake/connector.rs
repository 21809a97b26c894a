//! Snowflake as the registry knows it: two types, `snowflake` (a password) and `snowflake_pem`
//! (a key pair), with their port and options, what a connection needs, and the messages the
//! retry analysis recognises.

use dataloader_core::{ConnectionConfig, Error, FailureCategory as F, Result};

use crate::connector::{host_port_database, needs_database, ConnectFn, Connector, OptionSpec};

/// The port of a connection that names none.
pub const PORT: u16 = 443;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "account",
        about: "the account identifier; the host is <account>.snowflakecomputing.com",
    },
    OptionSpec {
        key: "warehouse",
        about: "the session's warehouse",
    },
    OptionSpec {
        key: "role",
        about: "the session's role",
    },
    OptionSpec {
        key: "schema",
        about: "the session's default schema",
    },
    OptionSpec {
        key: "protocol",
        about: "`https` (default) or `http`, for an emulator",
    },
    OptionSpec {
        key: "integers",
        about: "`decimal` (default) or `bigint`: how NUMBER(p,0) loads",
    },
    OptionSpec {
        key: "private_key",
        about: "the PEM key of a key-pair login, a reference",
    },
    OptionSpec {
        key: "private_key_passphrase",
        about: "the key's passphrase, a reference",
    },
];

const FAILURES: &[(F, &[&str])] = &[
    (F::Authentication, &["incorrect username or password"]),
    (F::Permission, &["insufficient privileges"]),
    (F::Timeout, &["timeout of"]),
];

/// `snowflake`: a user and password (or a key pair when `private_key` is given).
pub(crate) const fn declare(connect: ConnectFn) -> Connector {
    Connector {
        name: "snowflake",
        aliases: &[],
        docs: "snowflake",
        default_port: Some(PORT),
        options: OPTIONS,
        tls: &[],
        check,
        address,
        failures: FAILURES,
        connect,
    }
}

/// `snowflake_pem`: a key pair, as the loader DataLoader replaces names it.
pub(crate) const fn declare_key_pair(connect: ConnectFn) -> Connector {
    Connector {
        name: "snowflake_pem",
        ..declare(connect)
    }
}

fn check(connector: &Connector, c: &ConnectionConfig) -> Result<()> {
    let kind = connector.name;
    if c.host.as_deref().unwrap_or("").is_empty() && !c.options.contains_key("account") {
        return Err(Error::config(
            "account",
            format!("a {kind} connection needs --option account=<account identifier> (or --host)"),
        ));
    }
    needs_database(connector, c)?;
    if kind == "snowflake_pem" && !c.options.contains_key("private_key") {
        return Err(Error::config(
            "private_key",
            "a snowflake_pem connection needs --option private_key=file:/path/rsa_key.p8 (or env:NAME)",
        ));
    }
    Ok(())
}

/// Without `--host`: `<account>.snowflakecomputing.com/<database>`.
fn address(connector: &Connector, c: &ConnectionConfig) -> String {
    if c.host.is_some() {
        return host_port_database(connector, c);
    }
    format!(
        "{}.snowflakecomputing.com/{}",
        c.options.get("account").map(String::as_str).unwrap_or(""),
        c.database.as_deref().unwrap_or("")
    )
}

/// A connection's options as the source reads them; values are judged when it connects.
pub struct SnowflakeOptions {
    pub account: Option<String>,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    pub schema: Option<String>,
    pub protocol: Option<String>,
    pub integers: Option<String>,
    pub private_key: Option<String>,
    pub private_key_passphrase: Option<String>,
}

impl SnowflakeOptions {
    pub fn of(config: &ConnectionConfig) -> Self {
        let get = |key: &str| config.options.get(key).cloned();
        SnowflakeOptions {
            account: get("account"),
            warehouse: get("warehouse"),
            role: get("role"),
            schema: get("schema"),
            protocol: get("protocol"),
            integers: get("integers"),
            private_key: get("private_key"),
            private_key_passphrase: get("private_key_passphrase"),
        }
    }
}
