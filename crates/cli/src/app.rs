//! What every command but `quickstart` works with: the opened control database, the global
//! flags, and the load engine built from them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use dataloader_core::secret::SecretSetting;
use dataloader_core::{Catalog, Store, SystemClock};
use dataloader_engine::Engine;

use crate::settings::Settings;

pub(crate) struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) json: bool,
    pub(crate) batch_size: usize,
    pub(crate) lease: Duration,
}

impl App {
    /// Opens the control database, creating or upgrading its tables first.
    pub(crate) async fn open(
        settings: Settings,
        json: bool,
        batch_size: usize,
        lease: Duration,
    ) -> Result<App> {
        let password = settings
            .control_db_password
            .map(|(name, text)| SecretSetting::parse(name, &text))
            .transpose()?;
        let store = dataloader_store::open_with_password(&settings.control_db, password).await?;
        store.migrate().await?;
        Ok(App {
            store,
            catalog: dataloader_lake::open_catalog(&settings.catalog, &settings.lake_root)?,
            json,
            batch_size,
            lease,
        })
    }

    pub(crate) fn engine(&self) -> Result<Engine> {
        Ok(Engine::new(
            self.store.clone(),
            self.catalog.clone(),
            Arc::new(SystemClock),
        )
        .with_batch_size(self.batch_size)
        .with_lease(self.lease))
    }
}
