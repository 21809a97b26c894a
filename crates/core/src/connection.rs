//! A named connection (`table_control_dbconfig`): where a source database is and how to
//! authenticate, with the password only as a [`SecretRef`](crate::secret::SecretRef) string.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{secret::SecretRef, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbType {
    Postgresql,
    Mysql,
    Clickhouse,
    Mssql,
    Oracle,
    Snowflake,
    /// Snowflake with key-pair (JWT) authentication (`snowflake_pem`, as the loader DataLoader
    /// replaces names it).
    SnowflakePem,
    Sqlite,
}

impl DbType {
    pub const ALL: &'static [DbType] = &[
        DbType::Postgresql,
        DbType::Mysql,
        DbType::Clickhouse,
        DbType::Mssql,
        DbType::Oracle,
        DbType::Snowflake,
        DbType::SnowflakePem,
        DbType::Sqlite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DbType::Postgresql => "postgresql",
            DbType::Mysql => "mysql",
            DbType::Clickhouse => "clickhouse",
            DbType::Mssql => "mssql",
            DbType::Oracle => "oracle",
            DbType::Snowflake => "snowflake",
            DbType::SnowflakePem => "snowflake_pem",
            DbType::Sqlite => "sqlite",
        }
    }

    pub fn default_port(self) -> Option<u16> {
        match self {
            DbType::Postgresql => Some(5432),
            DbType::Mysql => Some(3306),
            DbType::Clickhouse => Some(8123),
            DbType::Mssql => Some(1433),
            DbType::Oracle => Some(1521),
            DbType::Snowflake | DbType::SnowflakePem => Some(443),
            DbType::Sqlite => None,
        }
    }
}

impl FromStr for DbType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Ok(DbType::Postgresql),
            "mysql" | "mariadb" => Ok(DbType::Mysql),
            "clickhouse" => Ok(DbType::Clickhouse),
            "mssql" | "sqlserver" => Ok(DbType::Mssql),
            "oracle" => Ok(DbType::Oracle),
            "snowflake" => Ok(DbType::Snowflake),
            "snowflake_pem" => Ok(DbType::SnowflakePem),
            "sqlite" => Ok(DbType::Sqlite),
            other => Err(Error::config(
                "type",
                format!(
                    "unknown database type \"{other}\" (supported: {})",
                    DbType::ALL
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

impl std::fmt::Display for DbType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionConfig {
    pub name: String,
    pub db_type: DbType,
    /// Host name; for SQLite, unused.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Database name; for SQLite, the path of the database file.
    pub database: Option<String>,
    pub user: Option<String>,
    /// `env:NAME` or `file:/path`: a reference, never the secret.
    pub password: Option<String>,
    /// Driver options (for example `account`, `auth`); a secret among them (a key whose name
    /// says password, secret, key, token or passphrase) only as a reference.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Loads running at once against this database, at most; unlimited when unset.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

impl ConnectionConfig {
    pub fn validate(&self) -> Result<()> {
        if !crate::table::is_plain_name(&self.name) {
            return Err(Error::config(
                "name",
                format!(
                    "connection name \"{}\" must be letters, digits, '_' or '-'",
                    self.name
                ),
            ));
        }
        if let Some(p) = &self.password {
            SecretRef::parse(p)?;
        }
        for (key, value) in &self.options {
            if let Some(why) = unsupported_tls_option(self.db_type, key, value) {
                return Err(Error::config(key.as_str(), why));
            }
            if is_secret_option(key) && SecretRef::parse(value).is_err() {
                // Never echoes the value: it is a secret typed in by mistake.
                return Err(Error::config(
                    key.as_str(),
                    format!("--option {key}= takes a reference (env:NAME or file:/path), never the secret itself"),
                ));
            }
        }
        match self.db_type {
            DbType::Postgresql
            | DbType::Mysql
            | DbType::Clickhouse
            | DbType::Mssql
            | DbType::Oracle => {
                let kind = self.db_type;
                if self.host.as_deref().unwrap_or("").is_empty() {
                    return Err(Error::config(
                        "host",
                        format!("a {kind} connection needs --host"),
                    ));
                }
                if self.database.as_deref().unwrap_or("").is_empty() {
                    return Err(Error::config(
                        "database",
                        format!("a {kind} connection needs --database"),
                    ));
                }
            }
            DbType::Snowflake | DbType::SnowflakePem => {
                let kind = self.db_type;
                if self.host.as_deref().unwrap_or("").is_empty()
                    && !self.options.contains_key("account")
                {
                    return Err(Error::config(
                        "account",
                        format!("a {kind} connection needs --option account=<account identifier> (or --host)"),
                    ));
                }
                if self.database.as_deref().unwrap_or("").is_empty() {
                    return Err(Error::config(
                        "database",
                        format!("a {kind} connection needs --database"),
                    ));
                }
                if kind == DbType::SnowflakePem && !self.options.contains_key("private_key") {
                    return Err(Error::config(
                        "private_key",
                        "a snowflake_pem connection needs --option private_key=file:/path/rsa_key.p8 (or env:NAME)",
                    ));
                }
            }
            DbType::Sqlite => {
                if self.database.as_deref().unwrap_or("").is_empty() {
                    return Err(Error::config(
                        "database",
                        "a sqlite connection needs --database (the path of the file)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The connection as it may be shown or written out: a secret option or password that is
    /// not a reference (stored before references were required) becomes `***`.
    pub fn masked(&self) -> ConnectionConfig {
        let is_reference = |v: &str| SecretRef::parse(v).is_ok();
        ConnectionConfig {
            password: self.password.as_ref().map(|p| {
                if is_reference(p) {
                    p.clone()
                } else {
                    "***".into()
                }
            }),
            options: self
                .options
                .iter()
                .map(|(k, v)| {
                    let shown = if is_secret_option(k) && !is_reference(v) {
                        "***".to_string()
                    } else {
                        v.clone()
                    };
                    (k.clone(), shown)
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The password, resolved from its reference, if one is configured.
    pub fn resolve_password(&self) -> Result<Option<String>> {
        self.password
            .as_deref()
            .map(|r| SecretRef::parse(r)?.resolve())
            .transpose()
    }

    /// `host:port/database`, for messages; never includes credentials.
    pub fn address(&self) -> String {
        match self.db_type {
            DbType::Sqlite => self.database.clone().unwrap_or_default(),
            DbType::Snowflake | DbType::SnowflakePem if self.host.is_none() => format!(
                "{}.snowflakecomputing.com/{}",
                self.options
                    .get("account")
                    .map(String::as_str)
                    .unwrap_or(""),
                self.database.as_deref().unwrap_or("")
            ),
            _ => format!(
                "{}:{}/{}",
                self.host.as_deref().unwrap_or(""),
                self.port.or(self.db_type.default_port()).unwrap_or(0),
                self.database.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Whether an option's value is a secret: its name says so.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token", "passphrase"]
        .iter()
        .any(|word| key.contains(word))
}

/// Why a TLS option is refused for a connection to `db_type`: one its connector does not
/// implement would be ignored, and the connection made in a way the user did not ask for.
fn unsupported_tls_option(db_type: DbType, key: &str, value: &str) -> Option<String> {
    const TLS: [&str; 14] = [
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "ssl",
        "tls",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "encrypt",
        "secure",
        "trust_server_certificate",
    ];
    let key = key.to_ascii_lowercase();
    if !TLS.contains(&key.as_str()) {
        return None;
    }
    let supported = match (db_type, key.as_str()) {
        // Without TLS is what a PostgreSQL source does today: only saying so is accepted.
        (DbType::Postgresql, "sslmode") => value == "disable",
        // TLS with the server's certificate verified, or none.
        (DbType::Mysql, "sslmode") => matches!(
            value,
            "disable" | "prefer" | "require" | "verify-ca" | "verify-full"
        ),
        (DbType::Mssql, "trust_server_certificate") => matches!(value, "true" | "false"),
        _ => false,
    };
    (!supported).then(|| {
        format!(
            "{key}={value} is not implemented for {db_type} connections: DataLoader would connect without it, so it is refused (remove it, or see docs/connectors/{}.md for what is supported)",
            match db_type {
                DbType::SnowflakePem => "snowflake",
                DbType::Postgresql => "postgresql",
                other => other.as_str(),
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(db_type: DbType, options: &[(&str, &str)]) -> ConnectionConfig {
        ConnectionConfig {
            name: "c".into(),
            db_type,
            host: Some("h".into()),
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

    #[test]
    fn secret_options_must_be_references_and_are_never_echoed() {
        for key in [
            "client_secret",
            "api_token",
            "private_key_passphrase",
            "db_password",
        ] {
            let err = connection(DbType::Mssql, &[(key, "hunter2")])
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains("takes a reference"), "{key}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
            connection(DbType::Mssql, &[(key, "env:SECRET")])
                .validate()
                .unwrap();
        }
        let stored = ConnectionConfig {
            password: Some("plain".into()),
            ..connection(
                DbType::Mssql,
                &[("client_secret", "plain"), ("auth", "aad")],
            )
        };
        let shown = stored.masked();
        assert_eq!(shown.password.as_deref(), Some("***"));
        assert_eq!(shown.options["client_secret"], "***");
        assert_eq!(shown.options["auth"], "aad");
    }

    #[test]
    fn tls_options_a_connector_does_not_implement_are_refused() {
        let err = connection(DbType::Postgresql, &[("sslmode", "require")])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("sslmode: sslmode=require is not implemented for postgresql"),
            "{err}"
        );
        connection(DbType::Postgresql, &[("sslmode", "disable")])
            .validate()
            .unwrap();
        connection(DbType::Mysql, &[("sslmode", "require")])
            .validate()
            .unwrap();
        for (db, key) in [
            (DbType::Mysql, "sslrootcert"),
            (DbType::Clickhouse, "sslmode"),
            (DbType::Mssql, "encrypt"),
        ] {
            assert!(
                connection(db, &[(key, "x")]).validate().is_err(),
                "{db} {key}"
            );
        }
    }
}
