//! A named connection (`table_control_dbconfig`): where a source database is and how to
//! authenticate, with the password only as a [`SecretRef`](crate::secret::SecretRef) string.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{secret::SecretRef, Error, Result};

/// A connection's database type: the name a connector registered (`postgresql`, `mysql`, …).
/// Core knows no database: which names exist, and what each needs, is the registry of the
/// `sources` crate (`dataloader_sources::connectors`). Parsing only lower-cases the name and
/// checks that it is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DbType(String);

impl DbType {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DbType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let name = s.to_ascii_lowercase();
        if !crate::naming::is_plain_name(&name) {
            return Err(Error::config(
                "type",
                format!("\"{s}\" is not a database type (letters, digits, '_' or '-')"),
            ));
        }
        Ok(DbType(name))
    }
}

impl TryFrom<String> for DbType {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DbType> for String {
    fn from(t: DbType) -> String {
        t.0
    }
}

impl std::fmt::Display for DbType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    /// `env:NAME`, `file:/path`, `azure-keyvault://VAULT/SECRET[/VERSION]` or
    /// `aws-sm://SECRET_ID[#KEY]`: a reference, never the secret.
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
    /// What every connection needs, whatever its database: a plain name, and secrets (the
    /// password, an option whose name says secret) only as references. What its database needs
    /// (options, host, …) is its connector's to check: `dataloader_sources::validate` does both.
    pub fn validate(&self) -> Result<()> {
        if !crate::naming::is_plain_name(&self.name) {
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
            if is_secret_option(key) && SecretRef::parse(value).is_err() {
                // Never echoes the value: it is a secret typed in by mistake.
                return Err(Error::config(
                    key.as_str(),
                    format!("--option {key}= takes a reference (env:NAME, file:/path, azure-keyvault://VAULT/SECRET or aws-sm://SECRET_ID), never the secret itself"),
                ));
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
    pub async fn resolve_password(&self) -> Result<Option<String>> {
        resolve_optional(self.password.as_deref()).await
    }
}

/// The secret `reference` names, if one is given: for optional secrets (a password, a key's
/// passphrase).
pub async fn resolve_optional(reference: Option<&str>) -> Result<Option<String>> {
    match reference {
        Some(r) => Ok(Some(SecretRef::parse(r)?.resolve().await?)),
        None => Ok(None),
    }
}

/// A `connection_history` row: who changed which fields of a connection, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionChange {
    pub connection: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub operation: String,
    pub changed_at: chrono::DateTime<chrono::Utc>,
    pub changed_by: String,
    /// `host`, `password`, `options.sslmode`, …
    pub fields: Vec<String>,
}

impl ConnectionConfig {
    /// The fields that differ from `old`, by name (an option as `options.KEY`).
    pub fn changed_fields(&self, old: &ConnectionConfig) -> Vec<String> {
        let mut fields: Vec<String> = [
            ("type", old.db_type != self.db_type),
            ("host", old.host != self.host),
            ("port", old.port != self.port),
            ("database", old.database != self.database),
            ("user", old.user != self.user),
            ("password", old.password != self.password),
            (
                "max_connections",
                old.max_connections != self.max_connections,
            ),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| name.to_string())
        .collect();
        let keys: std::collections::BTreeSet<&String> =
            old.options.keys().chain(self.options.keys()).collect();
        fields.extend(
            keys.into_iter()
                .filter(|k| old.options.get(*k) != self.options.get(*k))
                .map(|k| format!("options.{k}")),
        );
        fields
    }
}

/// Whether an option's value is a secret: its name says so.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token", "passphrase"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(options: &[(&str, &str)]) -> ConnectionConfig {
        ConnectionConfig {
            name: "c".into(),
            db_type: "mssql".parse().unwrap(),
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
            let err = connection(&[(key, "hunter2")])
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains("takes a reference"), "{key}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
            connection(&[(key, "env:SECRET")]).validate().unwrap();
        }
        let stored = ConnectionConfig {
            password: Some("plain".into()),
            ..connection(&[("client_secret", "plain"), ("auth", "aad")])
        };
        let shown = stored.masked();
        assert_eq!(shown.password.as_deref(), Some("***"));
        assert_eq!(shown.options["client_secret"], "***");
        assert_eq!(shown.options["auth"], "aad");
    }

    #[test]
    fn a_database_type_is_a_lower_case_name() {
        let t: DbType = "PostgreSQL".parse().unwrap();
        assert_eq!(t.as_str(), "postgresql");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"postgresql\"");
        let err = "db 2".parse::<DbType>().unwrap_err().to_string();
        assert!(
            err.starts_with("type: \"db 2\" is not a database type"),
            "{err}"
        );
        assert!(serde_json::from_str::<DbType>("\"\"").is_err());
    }

    #[test]
    fn changed_fields_name_fields_and_options_never_values() {
        let old = connection(&[("sslmode", "require"), ("app", "x")]);
        let mut new = connection(&[("sslmode", "verify-full"), ("trust", "no")]);
        new.host = Some("h2".into());
        new.password = Some("env:P".into());
        assert_eq!(
            new.changed_fields(&old),
            vec![
                "host",
                "password",
                "options.app",
                "options.sslmode",
                "options.trust"
            ]
        );
        assert!(old.changed_fields(&old.clone()).is_empty());
    }
}
