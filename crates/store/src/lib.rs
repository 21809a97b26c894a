//! DataLoader's control plane: the control tables (named as in the loader it replaces) on
//! SQLite (embedded default) and PostgreSQL ("Lakebase"). Both backends run the same SQL, in
//! one generic store ([`SqlStore`]); what differs between them is the [`Backend`] trait. The
//! migrations differ only where the databases do (identity columns, trigger language).
//!
//! Modules by topic: `connections`, `tables`, `runs`, `leases`, `monitors`, `audit`, `alerts`,
//! `summaries` (what the console and `/metrics` read), `tokens` and `workers` hold the store's
//! methods; `rows` reads rows into the core's types; `migrations` the schema;
//! `backend` what differs; `store` the `Store` impl that points to the rest.

mod alerts;
mod audit;
mod backend;
mod connections;
mod leases;
mod migrations;
mod monitors;
mod rows;
mod runs;
mod store;
mod summaries;
mod tables;
mod tokens;
mod workers;

use std::sync::Arc;

use dataloader_core::secret::SecretSetting;
use dataloader_core::{Error, Result, Store};

pub use backend::postgres::{lakebase_url_from_env, redact_url, PostgresBackend};
pub use backend::sqlite::SqliteBackend;
pub use backend::Backend;
pub use store::SqlStore;

/// Opens the control store a URL names: `sqlite://path` (created if missing) or
/// `postgres://…`. The returned store is not migrated: call [`Store::migrate`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with_password(url, None).await
}

/// [`open`], with a PostgreSQL password given apart from a URL that holds none
/// (`DATALOADER_CONTROL_DB_PASSWORD`, `LAKEBASE_PASSWORD`): a value, or a reference that is
/// read again while the store is open, so that a rotated password reaches new connections.
pub async fn open_with_password(
    url: &str,
    password: Option<SecretSetting>,
) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        if password.is_some() {
            return Err(Error::config(
                "control_db_password",
                "a SQLite control database has no password: unset DATALOADER_CONTROL_DB_PASSWORD",
            ));
        }
        Ok(Arc::new(
            SqlStore::<SqliteBackend>::connect(url, None).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            SqlStore::<PostgresBackend>::connect(url, password).await?,
        ))
    } else {
        Err(Error::config(
            "control_db",
            format!(
                "\"{}\" is not a sqlite:// or postgres:// URL",
                redact_url(url, url)
            ),
        ))
    }
}
