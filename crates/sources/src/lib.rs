//! DataLoader's source connectors. Each database is one folder behind a cargo feature; all of
//! them speak the [`Source`] seam and render SQL through [`dialect::SqlDialect`]. Each folder's
//! `connector.rs` declares what the database is to the rest of DataLoader (a [`Connector`]);
//! [`connectors`] lists them, and everything that depends on the database goes through it.

use std::sync::Arc;

use dataloader_core::{ConnectionConfig, DbType, Error, Result, Source};

pub mod batch;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod connector;
pub mod dialect;
#[cfg(feature = "mssql")]
pub mod mssql;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "oracle")]
pub mod oracle;
pub mod per_table;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod read;
#[cfg(feature = "snowflake")]
pub mod snowflake;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "postgres", feature = "clickhouse"))]
pub mod tls;

pub use connector::{Connector, OptionSpec};

/// Rows per Arrow batch unless a load asks otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// The registry: every connector of this build, in the order `--type`'s help lists them.
static CONNECTORS: &[&Connector] = &[
    #[cfg(feature = "postgres")]
    &postgres::CONNECTOR,
    #[cfg(feature = "mysql")]
    &mysql::CONNECTOR,
    #[cfg(feature = "clickhouse")]
    &clickhouse::CONNECTOR,
    #[cfg(feature = "mssql")]
    &mssql::CONNECTOR,
    #[cfg(feature = "oracle")]
    &oracle::CONNECTOR,
    #[cfg(feature = "snowflake")]
    &snowflake::CONNECTOR,
    #[cfg(feature = "snowflake")]
    &snowflake::KEY_PAIR_CONNECTOR,
    #[cfg(feature = "sqlite")]
    &sqlite::CONNECTOR,
];

/// Every connector this build has.
pub fn connectors() -> &'static [&'static Connector] {
    CONNECTORS
}

/// The connector `name` means: a `--type` value (a connector's name or alias, any case) or a
/// stored `db_type`.
pub fn connector(name: &str) -> Result<&'static Connector> {
    CONNECTORS
        .iter()
        .copied()
        .find(|c| c.is_named(name))
        .ok_or_else(|| {
            Error::config(
                "type",
                format!(
                    "unknown database type \"{}\" (supported: {})",
                    name.to_ascii_lowercase(),
                    CONNECTORS
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// The `db_type` a `--type` value stands for, as a connection stores it (`postgres` →
/// `postgresql`).
pub fn db_type(name: &str) -> Result<DbType> {
    connector(name)?.name.parse()
}

/// Checks a connection as its connector sees it: the TLS options it honours, what every
/// connection needs (a plain name, secrets as references), the option keys it takes, then what
/// its database needs (host, database, …).
pub fn validate(config: &ConnectionConfig) -> Result<&'static Connector> {
    let connector = connector(config.db_type.as_str())?;
    for (key, value) in &config.options {
        connector.check_tls_option(key, value)?;
    }
    config.validate()?;
    for key in config.options.keys() {
        connector.check_option_key(&config.name, key)?;
    }
    (connector.check)(connector, config)?;
    Ok(connector)
}

/// Where a connection points (`host:port/database`, or what its connector shows instead), for
/// messages; never includes credentials.
pub fn address(config: &ConnectionConfig) -> String {
    match connector(config.db_type.as_str()) {
        Ok(c) => c.address_of(config),
        Err(_) => format!(
            "{}:{}/{}",
            config.host.as_deref().unwrap_or(""),
            config.port.unwrap_or(0),
            config.database.as_deref().unwrap_or("")
        ),
    }
}

/// Opens a source for a stored connection. Connecting happens here, so an unreachable
/// database or a wrong password fails before any load starts; so does an option its connector
/// does not take.
pub async fn connect(config: &ConnectionConfig) -> Result<Arc<dyn Source>> {
    let connector = validate(config)?;
    (connector.connect)(config).await
}

/// A connection of type `db_type` to `host` (database `d`, user `u`) with `options`, for the
/// unit tests of the connectors.
#[cfg(test)]
pub(crate) fn test_connection(
    db_type: &str,
    host: &str,
    options: &[(&str, &str)],
) -> ConnectionConfig {
    ConnectionConfig {
        name: "c".into(),
        db_type: db_type.parse().unwrap(),
        host: Some(host.into()),
        port: None,
        database: Some("d".into()),
        user: Some("u".into()),
        password: None,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        max_connections: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn connection(db_type: &str, options: &[(&str, &str)]) -> ConnectionConfig {
        test_connection(db_type, "h", options)
    }

    /// A value each option of `c` accepts: a TLS option's first honoured value, a reference
    /// for a secret, any text otherwise.
    fn every_option(c: &Connector) -> BTreeMap<String, String> {
        c.options
            .iter()
            .map(|o| {
                let value = match c.tls.iter().find(|(k, _)| *k == o.key) {
                    _ if dataloader_core::connection::is_secret_option(o.key) => {
                        "env:SECRET".into()
                    }
                    Some((_, values)) => values[0].to_string(),
                    None => "x".into(),
                };
                (o.key.to_string(), value)
            })
            .collect()
    }

    #[test]
    fn every_name_means_one_connector() {
        let mut seen = std::collections::HashSet::new();
        for c in connectors() {
            for name in std::iter::once(&c.name).chain(c.aliases) {
                assert!(seen.insert(*name), "{name} is taken twice");
                assert_eq!(connector(name).unwrap().name, c.name);
            }
        }
        assert_eq!(db_type("postgres").unwrap().as_str(), "postgresql");
        assert_eq!(db_type("MariaDB").unwrap().as_str(), "mysql");
        assert_eq!(db_type("sqlserver").unwrap().as_str(), "mssql");
        assert_eq!(
            db_type("db2").unwrap_err().to_string(),
            "type: unknown database type \"db2\" (supported: postgresql, mysql, clickhouse, mssql, oracle, snowflake, snowflake_pem, sqlite)"
        );
    }

    #[test]
    fn declarations_hold_together() {
        for c in connectors() {
            for (key, values) in c.tls {
                assert!(
                    c.options.iter().any(|o| o.key == *key),
                    "{}: TLS option {key} is not among its options",
                    c.name
                );
                assert!(!values.is_empty(), "{}: {key} honours no value", c.name);
            }
            for (category, fragments) in c.failures {
                for f in *fragments {
                    // The retry analysis matches them against the lower-cased message.
                    assert_eq!(*f, f.to_lowercase(), "{}: {category:?}", c.name);
                }
            }
        }
    }

    #[test]
    fn every_declared_option_is_taken_and_an_unknown_one_is_refused() {
        for c in connectors() {
            let mut config = connection(c.name, &[]);
            config.options = every_option(c);
            validate(&config).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            config.options.insert("sslmod".into(), "disable".into());
            let err = validate(&config).unwrap_err();
            assert_eq!(err.kind(), dataloader_core::ErrorKind::Config);
            let err = err.to_string();
            assert!(
                err.starts_with(&format!(
                    "connection \"c\": {} has no option \"sslmod\"",
                    c.name
                )),
                "{err}"
            );
            for o in c.options {
                assert!(err.contains(o.key), "{err} does not name {}", o.key);
            }
        }
        assert_eq!(
            validate(&connection("postgresql", &[("sslmod", "disable")]))
                .unwrap_err()
                .to_string(),
            "connection \"c\": postgresql has no option \"sslmod\" (its options: sslmode, sslrootcert, sslcert, sslkey)"
        );
        assert_eq!(
            validate(&connection("sqlite", &[("journal", "wal")]))
                .unwrap_err()
                .to_string(),
            "connection \"c\": sqlite has no option \"journal\" (it takes none)"
        );
        // Keys are exact: an upper-case TLS option would have been ignored.
        assert!(validate(&connection("mysql", &[("SSLMODE", "require")])).is_err());
    }

    #[test]
    fn a_secret_given_as_a_value_is_refused_before_the_key_is_judged() {
        let err = validate(&connection("mssql", &[("api_token", "hunter2")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes a reference"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn tls_options_a_connector_does_not_implement_are_refused() {
        let err = validate(&connection("postgresql", &[("sslmode", "verify_full")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("sslmode: sslmode=verify_full is not implemented for postgresql"),
            "{err}"
        );
        for mode in dataloader_core::tls::SslMode::NAMES {
            validate(&connection("postgresql", &[("sslmode", mode)])).unwrap();
        }
        validate(&connection(
            "postgresql",
            &[
                ("sslrootcert", "/etc/ca.pem"),
                ("sslcert", "/etc/client.pem"),
                ("sslkey", "file:/etc/client.key"),
            ],
        ))
        .unwrap();
        // The key is a secret: a reference, never the key or a bare path.
        let err = validate(&connection("postgresql", &[("sslkey", "/etc/client.key")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes a reference"), "{err}");
        validate(&connection("mysql", &[("sslmode", "require")])).unwrap();
        validate(&connection(
            "mssql",
            &[("trust_server_certificate", "true")],
        ))
        .unwrap();
        validate(&connection("mssql", &[("sslmode", "verify-full")])).unwrap();
        let err = validate(&connection("mssql", &[("sslmode", "verify-ca")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode=verify-ca is not implemented"),
            "{err}"
        );
        for (db, key) in [
            ("mysql", "ssl_ca"),
            ("postgresql", "ssl_ca"),
            ("clickhouse", "sslmode"),
            ("mssql", "encrypt"),
            ("mssql", "trust_server_certificate"),
            ("mssql", "sslcert"),
        ] {
            let err = validate(&connection(db, &[(key, "x")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not implemented for"), "{db} {key}: {err}");
        }
    }

    #[test]
    fn what_each_database_needs() {
        let needs = |db: &str, change: fn(&mut ConnectionConfig)| {
            let mut c = connection(db, &[]);
            change(&mut c);
            validate(&c).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(
            needs("postgresql", |c| c.host = None),
            Err("host: a postgresql connection needs --host".into())
        );
        assert_eq!(
            needs("oracle", |c| c.database = None),
            Err("database: a oracle connection needs --database".into())
        );
        assert_eq!(
            needs("sqlite", |c| c.database = None),
            Err("database: a sqlite connection needs --database (the path of the file)".into())
        );
        assert_eq!(needs("sqlite", |c| c.host = None), Ok(()));
        assert!(needs("snowflake", |c| c.host = None)
            .unwrap_err()
            .starts_with("account: a snowflake connection needs --option account="));
        assert!(needs("snowflake_pem", |_| ())
            .unwrap_err()
            .starts_with("private_key: a snowflake_pem connection needs --option private_key="));
    }

    #[test]
    fn addresses() {
        assert_eq!(address(&connection("postgresql", &[])), "h:5432/d");
        let mut c = connection("mssql", &[]);
        c.port = Some(14330);
        assert_eq!(address(&c), "h:14330/d");
        assert_eq!(address(&connection("sqlite", &[])), "d");
        let mut c = connection("snowflake_pem", &[("account", "acme")]);
        c.host = None;
        assert_eq!(address(&c), "acme.snowflakecomputing.com/d");
        assert_eq!(address(&connection("snowflake", &[])), "h:443/d");
    }

    #[tokio::test]
    async fn a_load_refuses_an_unknown_option_before_connecting() {
        let mut c = connection("sqlite", &[("journal_mode", "wal")]);
        c.database = Some("/nonexistent/dataloader.db".into());
        let err = connect(&c).await.err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("connection \"c\": sqlite has no option \"journal_mode\" (it takes none)")
        );
    }

    /// The connectors table of docs/configuration.md, as the registry says it.
    fn docs_table() -> String {
        let mut table = String::from(
            "| `db_type` | `--type` also takes | default port | options |\n|---|---|---|---|\n",
        );
        let code = |names: &mut dyn Iterator<Item = &str>| {
            let listed: Vec<String> = names.map(|n| format!("`{n}`")).collect();
            if listed.is_empty() {
                "—".to_string()
            } else {
                listed.join(", ")
            }
        };
        for c in connectors() {
            table.push_str(&format!(
                "| [`{}`](connectors/{}.md) | {} | {} | {} |\n",
                c.name,
                c.docs,
                code(&mut c.aliases.iter().copied()),
                c.default_port
                    .map_or("— (a file)".to_string(), |p| p.to_string()),
                code(&mut c.options.iter().map(|o| o.key)),
            ));
        }
        table
    }

    #[test]
    fn the_docs_list_every_connector_and_option() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
        let configuration = std::fs::read_to_string(format!("{docs}/configuration.md")).unwrap();
        let table = docs_table();
        assert!(
            configuration.contains(&table),
            "docs/configuration.md should hold this table:\n{table}"
        );
        for c in connectors() {
            let page = std::fs::read_to_string(format!("{docs}/connectors/{}.md", c.docs))
                .unwrap_or_else(|e| panic!("{}: docs/connectors/{}.md: {e}", c.name, c.docs));
            for o in c.options {
                assert!(
                    page.contains(o.key),
                    "docs/connectors/{}.md does not mention the option {}",
                    c.docs,
                    o.key
                );
            }
        }
    }
}
