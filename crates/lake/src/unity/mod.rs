//! The Unity catalog (`unity:https://…`): every loaded table is an EXTERNAL DELTA table in a
//! Databricks workspace's (or a Unity Catalog server's) metastore, at the location the path
//! layout gives it, with the Delta schema's columns and properties naming where its rows come
//! from. The open-source API cannot change a table's columns, so a registration made before
//! schema evolution is deleted and created again; the Delta table is never touched. A
//! `dataloader.schema_fingerprint` property tells a current registration from a stale one,
//! because servers differ in how they echo columns back.

mod api;
mod auth;
mod vend;

use async_trait::async_trait;
use dataloader_core::{
    Catalog, Drift, Error, Registration, Result, TargetTable, VendedCredentials,
};

use crate::catalog::PathCatalog;
use crate::registration::{fingerprint, FINGERPRINT_PROPERTY};
use api::{Api, CreateTable, Failure, TableInfo};

/// The property every table DataLoader registered carries.
pub const MANAGED_PROPERTY: &str = "dataloader.managed_by";

pub struct UnityCatalog {
    api: Api,
    /// Where tables live: `<lake root>/<catalog>/<schema>/<table>`.
    lake: PathCatalog,
    create_schemas: bool,
    /// Write with credentials the catalog vends (when it vends any).
    vend_credentials: bool,
    shown: String,
}

impl UnityCatalog {
    /// `url` is the workspace or server (`https://adb-….azuredatabricks.net`), optionally with
    /// `?create_schemas=false`; tables live under `lake_root`.
    pub fn new(url: &str, lake_root: &str) -> Result<UnityCatalog> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::config("catalog", format!("unity:{url}: {e}")))?;
        // Shown without what the URL should not hold anyway (a password, a query).
        let shown = format!(
            "unity:{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("")
        );
        let bad = |why: String| Error::config("catalog", format!("{shown}: {why}"));
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL: set DATABRICKS_TOKEN (see docs/catalogs.md)"
                    .into(),
            ));
        }
        if parsed.path() != "/" && !parsed.path().is_empty() {
            return Err(bad(format!(
                "give the workspace's address without a path (not {}): DataLoader adds /api/2.1/unity-catalog",
                parsed.path()
            )));
        }
        let local = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && local) {
            return Err(bad(
                "use https:// (http:// only for a server on this machine)".into(),
            ));
        }
        let (mut create_schemas, mut vend_credentials) = (true, true);
        for (key, value) in parsed.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("create_schemas", "true") => create_schemas = true,
                ("create_schemas", "false") => create_schemas = false,
                ("vend_credentials", "true") => vend_credentials = true,
                ("vend_credentials", "false") => vend_credentials = false,
                _ => {
                    return Err(bad(format!(
                        "unknown setting {key}={value} (known: create_schemas=true|false, vend_credentials=true|false)"
                    )))
                }
            }
        }
        let host = format!(
            "{}://{}",
            parsed.scheme(),
            &parsed[url::Position::BeforeHost..url::Position::AfterPort]
        );
        let api = Api::new(&host).map_err(bad)?;
        Ok(UnityCatalog {
            shown: format!("unity:{host}"),
            api,
            lake: PathCatalog::new(lake_root)?,
            create_schemas,
            vend_credentials,
        })
    }

    /// What it authenticates with (a variable's name, never a value).
    pub fn credentials(&self) -> &'static str {
        self.api.auth.describe()
    }

    fn error(&self, table: &TargetTable, step: &'static str, failure: &Failure) -> Error {
        let hint = match failure {
            Failure::Denied(_) => "; on Databricks the principal needs USE CATALOG, USE SCHEMA, CREATE SCHEMA (unless create_schemas=false), EXTERNAL USE SCHEMA (granted only by the catalog's owner, not part of ALL PRIVILEGES), CREATE TABLE, and EXTERNAL USE LOCATION and CREATE EXTERNAL TABLE on the external location (see docs/catalogs.md)",
            Failure::Unauthenticated(_) => "; check the credentials in DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID/SECRET or ARM_* (see docs/catalogs.md)",
            _ => "",
        };
        Error::Catalog {
            catalog: self.shown.clone(),
            table: table.to_string(),
            step,
            message: format!("{}{hint}", failure.text()),
        }
    }

    /// The schema exists, created if allowed; a missing catalog is named.
    async fn ensure_schema(&self, table: &TargetTable) -> Result<()> {
        let schema = format!("{}.{}", table.catalog, table.schema);
        let step = "find the schema";
        if self
            .api
            .exists(&format!("schemas/{schema}"))
            .await
            .map_err(|f| self.error(table, step, &f))?
        {
            return Ok(());
        }
        let catalog_exists = self
            .api
            .exists(&format!("catalogs/{}", table.catalog))
            .await
            .map_err(|f| self.error(table, "find the catalog", &f))?;
        if !catalog_exists {
            return Err(self.error(
                table,
                "find the catalog",
                &Failure::Missing(format!(
                    "catalog \"{}\" does not exist: create it (CREATE CATALOG {}) or load into one that does",
                    table.catalog, table.catalog
                )),
            ));
        }
        if !self.create_schemas {
            return Err(self.error(
                table,
                step,
                &Failure::Missing(format!(
                    "schema \"{schema}\" does not exist, and create_schemas=false forbids creating it: create it (CREATE SCHEMA {schema})"
                )),
            ));
        }
        self.api
            .create_schema(&table.catalog, &table.schema)
            .await
            .map_err(|f| self.error(table, "create the schema", &f))
    }

    async fn create(&self, desired: &Registration) -> Result<()> {
        let t = &desired.table;
        let mut properties = desired.properties.clone();
        properties.insert(MANAGED_PROPERTY.into(), "DataLoader".into());
        properties.insert(FINGERPRINT_PROPERTY.into(), fingerprint(desired));
        let request = CreateTable {
            name: &t.table,
            catalog_name: &t.catalog,
            schema_name: &t.schema,
            table_type: "EXTERNAL",
            data_source_format: "DELTA",
            storage_location: &desired.location,
            comment: &desired.comment,
            properties: &properties,
            columns: &desired.columns,
        };
        self.api
            .create_table(&request)
            .await
            .map_err(|f| self.error(t, "register the table", &f))
    }

    async fn registered(&self, table: &TargetTable) -> Result<Option<TableInfo>> {
        self.api
            .get_table(&table.to_string())
            .await
            .map_err(|f| self.error(table, "read the registration", &f))
    }
}

/// Whether two locations name one place: URLs compared parsed, without a trailing slash;
/// `file:///x`, `file:/x`, `file://localhost/x` and `/x` alike.
fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().trim_end_matches('/');
        let path_of_file = url::Url::parse(s)
            .ok()
            .filter(|u| u.scheme() == "file")
            .and_then(|u| u.to_file_path().ok());
        match path_of_file {
            Some(path) => path.display().to_string(),
            None if s.starts_with('/') => s.to_string(),
            None => match url::Url::parse(s) {
                // Both sides parsed alike, so their paths are encoded alike.
                Ok(u) => format!(
                    "{}://{}{}",
                    u.scheme(),
                    u.authority(),
                    u.path().trim_end_matches('/')
                ),
                Err(_) => s.to_string(),
            },
        }
    };
    norm(a) == norm(b)
}

fn drift_of(info: Option<&TableInfo>, desired: &Registration) -> Drift {
    let Some(info) = info else {
        return Drift::Missing;
    };
    if info.properties.get(MANAGED_PROPERTY).map(String::as_str) != Some("DataLoader") {
        return Drift::NotManaged;
    }
    // A server that does not say where the table is leaves it unknown, not wrong.
    if let Some(registered) = info.storage_location.clone().filter(|l| !l.is_empty()) {
        if !same_location(&registered, &desired.location) {
            return Drift::WrongLocation { registered };
        }
    }
    let expected = fingerprint(desired);
    if info.properties.get(FINGERPRINT_PROPERTY) == Some(&expected) {
        return Drift::Current;
    }
    let mut changes = Vec::new();
    for c in &desired.columns {
        match info.columns.iter().find(|r| r.name == c.name) {
            None => changes.push(format!(
                "column {} ({}) is not registered",
                c.name, c.type_text
            )),
            // A server may echo the physical type under its own spelling, or none.
            Some(r) => match r.type_text.as_deref() {
                Some(t) if !t.eq_ignore_ascii_case(&c.type_text) && !t.contains(' ') => changes
                    .push(format!(
                        "column {} registered as {t}, now {}",
                        c.name, c.type_text
                    )),
                _ => {}
            },
        }
    }
    for r in &info.columns {
        if !desired.columns.iter().any(|c| c.name == r.name) {
            changes.push(format!(
                "column {} is registered but not in the Delta table",
                r.name
            ));
        }
    }
    if changes.is_empty() {
        changes.push("the registration was made from other table settings".into());
    }
    Drift::Stale { changes }
}

#[async_trait]
impl Catalog for UnityCatalog {
    fn table_url(&self, table: &TargetTable) -> Result<String> {
        self.lake.table_url(table)
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn vend(&self, table: &TargetTable, location: &str) -> Result<VendedCredentials> {
        if !self.vend_credentials {
            return Ok(VendedCredentials::default());
        }
        vend::vend(&self.api, &table.to_string(), location)
            .await
            .map_err(|f| self.error(table, "get temporary storage credentials", &f))
    }

    async fn drift(&self, desired: &Registration) -> Result<Drift> {
        let info = self.registered(&desired.table).await?;
        Ok(drift_of(info.as_ref(), desired))
    }

    async fn register(&self, desired: &Registration) -> Result<()> {
        let table = &desired.table;
        match self.drift(desired).await? {
            Drift::Current => Ok(()),
            Drift::NotManaged => Err(self.error(
                table,
                "register the table",
                &Failure::Other("a table of that name exists that DataLoader did not register; it is left alone: drop it, or load into another destination".into()),
            )),
            Drift::Missing => {
                self.ensure_schema(table).await?;
                if let Err(e) = self.create(desired).await {
                    // Another worker may have registered it meanwhile: fine if it matches.
                    if self.drift(desired).await? != Drift::Current {
                        return Err(e);
                    }
                }
                Ok(())
            }
            Drift::WrongLocation { .. } | Drift::Stale { .. } => {
                self.api
                    .delete_table(&table.to_string())
                    .await
                    .map_err(|f| self.error(table, "drop the stale registration", &f))?;
                if let Err(e) = self.create(desired).await {
                    // A retried request may have created it after all.
                    if self.drift(desired).await? != Drift::Current {
                        return Err(Error::Catalog {
                            catalog: self.shown.clone(),
                            table: table.to_string(),
                            step: "register the table again (the stale registration was dropped)",
                            message: e.to_string(),
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_location;

    #[test]
    fn locations_compare_as_places() {
        assert!(same_location(
            "file:///lake/bronze/s/t/",
            "/lake/bronze/s/t"
        ));
        assert!(same_location("file:/lake/a%20b", "file:///lake/a b"));
        assert!(same_location("file://localhost/lake/t", "file:///lake/t"));
        assert!(same_location(
            "abfss://c@acct.dfs.core.windows.net/lake/t/",
            "abfss://c@acct.dfs.core.windows.net/lake/t"
        ));
        assert!(!same_location("s3://bucket/lake/t", "s3://other/lake/t"));
        assert!(!same_location("/lake/t1", "/lake/t2"));
    }
}
