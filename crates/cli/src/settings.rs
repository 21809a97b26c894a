//! Where the control database, the lakehouse and its catalog are: flag > environment > `dataloader.toml` >
//! default. `docs/configuration.md` documents the same order.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub const DEFAULT_CONTROL_DB: &str = "sqlite://./dataloader.db";
pub const DEFAULT_LAKE_ROOT: &str = "./lakehouse";
pub const DEFAULT_CATALOG: &str = "path";
pub const DEFAULT_CONFIG_FILE: &str = "dataloader.toml";

/// The optional `dataloader.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Control database URL (`sqlite://…` or `postgres://…`; no password in it: use
    /// DATALOADER_CONTROL_DB_PASSWORD or LAKEBASE_PASSWORD for that).
    pub control_db: Option<String>,
    /// Root of the local lakehouse, or an object-store URL.
    pub lake_root: Option<String>,
    /// `path` or `unity:<URL>` (see docs/catalogs.md).
    pub catalog: Option<String>,
}

pub struct Settings {
    pub control_db: String,
    /// The control database's password given apart from its URL: the variable (or flag) it
    /// came from, and its text (a value or a reference).
    pub control_db_password: Option<(&'static str, String)>,
    pub lake_root: String,
    pub catalog: String,
}

impl FileSettings {
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        if !path.exists() {
            if required {
                bail!("config: {} does not exist", path.display());
            }
            return Ok(FileSettings::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("config: reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config: {} is not valid", path.display()))
    }
}

/// `flag_or_env` is what clap found on the command line or in DATALOADER_* variables.
/// `LAKEBASE_PASSWORD` is used only with the URL the `LAKEBASE_*` variables make: never sent
/// to a database named another way.
pub fn resolve(
    control_db: Option<String>,
    control_db_password: Option<String>,
    lake_root: Option<String>,
    catalog: Option<String>,
    file: &FileSettings,
) -> Settings {
    let lakebase = control_db
        .is_none()
        .then(dataloader_store::lakebase_url_from_env)
        .flatten();
    let lakebase_password = lakebase
        .as_ref()
        .and_then(|_| std::env::var("LAKEBASE_PASSWORD").ok())
        .map(|p| ("LAKEBASE_PASSWORD", p));
    Settings {
        control_db_password: control_db_password
            .map(|p| ("DATALOADER_CONTROL_DB_PASSWORD", p))
            .or(lakebase_password)
            .filter(|(_, p)| !p.is_empty()),
        control_db: control_db
            .or(lakebase)
            .or_else(|| file.control_db.clone())
            .unwrap_or_else(|| DEFAULT_CONTROL_DB.to_string()),
        lake_root: lake_root
            .or_else(|| file.lake_root.clone())
            .unwrap_or_else(|| DEFAULT_LAKE_ROOT.to_string()),
        catalog: catalog
            .or_else(|| file.catalog.clone())
            .unwrap_or_else(|| DEFAULT_CATALOG.to_string()),
    }
}
