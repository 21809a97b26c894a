//! The sources against real servers that only the sources crate needs: the TLS servers
//! `scripts/test.sh` starts (`scripts/tls-servers.sh`). The shared conformance of each source
//! runs through the engine's suite (`crates/engine/tests/it`).

mod clickhouse_tls;
mod mysql_tls;
mod postgres_tls;

use std::collections::BTreeMap;

use dataloader_core::ConnectionConfig;

/// A TLS test server: `scheme://user@host:port/database` from `var`, and the test CA's files.
pub struct TlsServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// `DATALOADER_TEST_TLS_CA`: the CA that signed the server's certificate (for `localhost`).
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
}

impl TlsServer {
    /// The server `var` names, or `None` (with a notice) when the variable is not set.
    pub fn from_env(var: &str) -> Option<TlsServer> {
        let Ok(url) = std::env::var(var) else {
            eprintln!(
                "NOTICE: {var} is not set: skipping (scripts/test.sh starts the TLS servers)"
            );
            return None;
        };
        let rest = url.split_once("://").expect("scheme://").1;
        let (user, rest) = rest.split_once('@').expect("user@");
        let (addr, database) = rest.split_once('/').expect("/database");
        let (host, port) = addr.split_once(':').expect("host:port");
        let file = |v: &str| std::env::var(v).unwrap_or_else(|_| panic!("{var} is set, {v} not"));
        Some(TlsServer {
            host: host.into(),
            port: port.parse().expect("port"),
            user: user.into(),
            database: database.into(),
            ca: file("DATALOADER_TEST_TLS_CA"),
            client_cert: file("DATALOADER_TEST_TLS_CLIENT_CERT"),
            client_key: file("DATALOADER_TEST_TLS_CLIENT_KEY"),
        })
    }

    /// The error connecting to it as `db_type` at `host` with `options`.
    pub async fn connect_error(
        &self,
        db_type: &str,
        host: &str,
        options: &[(&str, &str)],
    ) -> String {
        match dataloader_sources::connect(&self.connection(db_type, host, options)).await {
            Ok(_) => panic!("connected to {host} with {options:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A connection of type `db_type` to it at `host`, with `options`.
    pub fn connection(
        &self,
        db_type: &str,
        host: &str,
        options: &[(&str, &str)],
    ) -> ConnectionConfig {
        ConnectionConfig {
            name: "tls".into(),
            db_type: db_type.parse().unwrap(),
            host: Some(host.into()),
            port: Some(self.port),
            database: Some(self.database.clone()),
            user: Some(self.user.clone()),
            password: None,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            max_connections: None,
        }
    }
}
