//! Keeping the catalog in step with the lake: after a load commits, outside the part a cancel
//! can stop, the table's registration is made to match its Delta table (created, or re-created
//! after schema evolution). A registration that fails leaves the committed data as it is: the
//! run is recorded with a note saying so, and the next load or `dataloader catalog sync`
//! repairs it.

use std::collections::BTreeMap;

use dataloader_core::summary::CATALOG_FAILURE_NOTE;
use dataloader_core::{Registration, Result, TableSpec, TableStorage};
use dataloader_lake::DeltaDestination;

use crate::Engine;

/// How long a load waits for its registration before recording the run with a note.
const REGISTRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Engine {
    /// What the lake and the catalog hold of the table: its Delta version and files, and how
    /// its registration stands (read with the catalog's vended credentials, as a load reads).
    pub async fn storage(&self, spec: &TableSpec) -> Result<TableStorage> {
        let destination = self.destination(&spec.destination)?;
        let destination = self.with_vended(&spec.destination, destination).await;
        let files = destination.files().await?;
        let catalog = if !self.catalog.keeps_registry() {
            format!(
                "{}: no registry, found by its path",
                self.catalog.describe()
            )
        } else {
            match self.registration_of(spec, &destination).await? {
                None => "nothing to register before a first load".into(),
                Some(desired) => match self.catalog.drift(&desired).await {
                    Ok(drift) => drift.to_string(),
                    Err(e) => format!("cannot tell: {e}"),
                },
            }
        };
        Ok(TableStorage {
            delta_version: files.map(|f| f.0),
            files: files.map(|f| f.1),
            bytes: files.map(|f| f.2),
            catalog,
        })
    }

    /// What the table's registration should be; `None` while its Delta table does not exist.
    pub async fn registration(&self, spec: &TableSpec) -> Result<Option<Registration>> {
        let destination = self.destination(&spec.destination)?;
        let destination = self.with_vended(&spec.destination, destination).await;
        self.registration_of(spec, &destination).await
    }

    /// [`Engine::registration`] read through a destination already opened with its vended
    /// credentials.
    async fn registration_of(
        &self,
        spec: &TableSpec,
        destination: &DeltaDestination,
    ) -> Result<Option<Registration>> {
        let Some(columns) = destination.catalog_columns().await? else {
            return Ok(None);
        };
        let properties: BTreeMap<String, String> = [
            ("dataloader.source.connection", spec.connection.clone()),
            ("dataloader.source.object", spec.source_object().to_string()),
            ("dataloader.strategy", spec.strategy.as_str().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(Some(Registration {
            table: spec.destination.clone(),
            location: destination.url().to_string(),
            columns,
            comment: format!(
                "Loaded by DataLoader from {} ({} strategy)",
                spec.origin(),
                spec.strategy
            ),
            properties,
        }))
    }

    /// Registers the table as its Delta table now is, within [`REGISTRATION_TIMEOUT`]; a
    /// failure becomes the run's note.
    pub(crate) async fn keep_registered(&self, spec: &TableSpec) -> Option<String> {
        // Reading the Delta schema (and vending for it) would be thrown away.
        if !self.catalog.keeps_registry() {
            return None;
        }
        let register = async {
            if let Some(desired) = self.registration(spec).await? {
                self.catalog.register(&desired).await?;
            }
            Ok::<_, dataloader_core::Error>(())
        };
        let failure = match tokio::time::timeout(REGISTRATION_TIMEOUT, register).await {
            Ok(result) => result.err().map(|e| e.to_string()),
            Err(_) => Some(format!(
                "the catalog did not answer within {} s",
                REGISTRATION_TIMEOUT.as_secs()
            )),
        };
        failure.map(|e| {
            tracing::warn!(table = %spec.destination, error = %e, "catalog registration failed");
            format!("the data is committed, but {CATALOG_FAILURE_NOTE}: {e}; the next load or `dataloader catalog sync` repairs it")
        })
    }
}
