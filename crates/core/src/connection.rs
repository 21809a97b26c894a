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
    /// Snowflake with key-pair (JWT) authentication: the seed's `snowflake_pem`.
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
    /// Driver options (for example `sslmode`, `timezone`); never secrets.
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
                for key in ["private_key", "private_key_passphrase"] {
                    if let Some(r) = self.options.get(key) {
                        SecretRef::parse(r).map_err(|_| {
                            Error::config(
                                key,
                                format!("--option {key}= takes a reference (env:NAME or file:/path), never the key itself"),
                            )
                        })?;
                    }
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
