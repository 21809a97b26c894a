//! The `Catalog` seam: where a `catalog.schema.table` lives, and how a catalog that keeps a
//! registry of tables (Unity Catalog) learns of it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::{Result, TargetTable};

/// One column as a catalog registers it, in Unity Catalog's terms (`ColumnInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogColumn {
    pub name: String,
    /// `LONG`, `STRING`, `DECIMAL`, `ARRAY`, …
    pub type_name: String,
    /// Spark's catalog string: `bigint`, `decimal(12,2)`, `array<string>`.
    pub type_text: String,
    /// The field as Spark's StructField JSON (the Delta log's own).
    pub type_json: String,
    pub type_precision: Option<i32>,
    pub type_scale: Option<i32>,
    pub position: i32,
    pub nullable: bool,
    /// Its place among the table's partition columns.
    pub partition_index: Option<i32>,
}

/// What a table should look like in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub table: TargetTable,
    /// The Delta table's location (`file:///…`, `s3://…`, `abfss://…`).
    pub location: String,
    pub columns: Vec<CatalogColumn>,
    pub comment: String,
    pub properties: BTreeMap<String, String>,
}

/// How a table's registration differs from what it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Drift {
    /// Registered as it should be (always, for catalogs without a registry).
    Current,
    Missing,
    /// Registered at another location.
    WrongLocation {
        registered: String,
    },
    /// Registered from another Delta schema (after schema evolution) or other settings.
    Stale {
        changes: Vec<String>,
    },
    /// A table of that name exists that DataLoader did not register: left alone.
    NotManaged,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Current => f.write_str("current"),
            Drift::Missing => f.write_str("missing"),
            Drift::WrongLocation { registered } => write!(f, "registered at {registered}"),
            Drift::Stale { changes } => write!(f, "stale: {}", changes.join("; ")),
            Drift::NotManaged => f.write_str("registered by something else: left alone"),
        }
    }
}

/// Short-lived storage credentials a catalog vends for one table; `credential: None`: use the
/// lake's own credentials.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct VendedCredentials {
    pub credential: Option<StorageCredential>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One cloud's temporary storage credential.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageCredential {
    /// AWS STS session keys.
    Aws {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
    },
    /// An Azure shared access signature (a URL query string).
    AzureSas(String),
    /// An Azure AD bearer token.
    AzureToken(String),
    /// A Google Cloud OAuth bearer token.
    GcpToken(String),
}

impl StorageCredential {
    /// The values to keep out of every message.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            StorageCredential::Aws {
                access_key_id,
                secret_access_key,
                session_token,
            } => vec![access_key_id, secret_access_key, session_token],
            StorageCredential::AzureSas(v)
            | StorageCredential::AzureToken(v)
            | StorageCredential::GcpToken(v) => vec![v],
        }
    }
}

/// Names the kind, never a value.
impl std::fmt::Debug for StorageCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageCredential::Aws { .. } => "Aws(***)",
            StorageCredential::AzureSas(_) => "AzureSas(***)",
            StorageCredential::AzureToken(_) => "AzureToken(***)",
            StorageCredential::GcpToken(_) => "GcpToken(***)",
        })
    }
}

impl VendedCredentials {
    /// How long until they should be renewed: five minutes before they expire, or half the
    /// time left when that is shorter; at least a second. `None` when they do not expire.
    pub fn renew_in(&self, now: chrono::DateTime<chrono::Utc>) -> Option<std::time::Duration> {
        const AHEAD: std::time::Duration = std::time::Duration::from_secs(300);
        let left = (self.expires_at? - now).to_std().unwrap_or_default();
        let wait = left.checked_sub(AHEAD).unwrap_or(left / 2);
        Some(wait.max(std::time::Duration::from_secs(1)))
    }
}

/// Maps `catalog.schema.table` to where its Delta table lives, and registers it.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The table's location as a URL (`file:///…`, `s3://…`).
    fn table_url(&self, table: &TargetTable) -> Result<String>;

    /// What this catalog is, for `table show` and messages: `path`, `unity:https://…`.
    fn describe(&self) -> String;

    /// Whether it keeps a registry of tables; one that does not (the path catalog) needs no
    /// registration built after a load.
    fn keeps_registry(&self) -> bool {
        true
    }

    /// How the table's registration differs from `desired`.
    async fn drift(&self, desired: &Registration) -> Result<Drift>;

    /// Makes the registration match `desired` (creating it, or re-creating it after schema
    /// evolution); nothing in the Delta table is touched. Idempotent. A no-op for catalogs
    /// without a registry.
    async fn register(&self, desired: &Registration) -> Result<()>;

    /// Temporary credentials for reading and writing the table at `location`; none from a
    /// catalog that vends none.
    async fn vend(&self, _table: &TargetTable, _location: &str) -> Result<VendedCredentials> {
        Ok(VendedCredentials::default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{StorageCredential, VendedCredentials};

    #[test]
    fn vended_credentials_are_renewed_ahead_of_expiry() {
        let now = chrono::Utc::now();
        let expiring = |seconds: i64| VendedCredentials {
            credential: Some(StorageCredential::GcpToken("secret-value".into())),
            expires_at: Some(now + chrono::Duration::seconds(seconds)),
        };
        assert_eq!(
            expiring(3600).renew_in(now),
            Some(Duration::from_secs(3300))
        );
        assert_eq!(expiring(120).renew_in(now), Some(Duration::from_secs(60)));
        assert_eq!(expiring(-5).renew_in(now), Some(Duration::from_secs(1)));
        assert_eq!(VendedCredentials::default().renew_in(now), None);
        let shown = format!("{:?}", expiring(1));
        assert!(
            shown.contains("GcpToken") && !shown.contains("secret-value"),
            "{shown}"
        );
    }
}
