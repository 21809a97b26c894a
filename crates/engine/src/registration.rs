//! Keeping the catalog in step with the lake: after a load, the table's registration is made
//! to match its Delta table (created, or re-created after schema evolution). A registration
//! that fails leaves the committed data as it is: the run succeeds with a note saying so, and
//! the next load or `dataloader catalog sync` repairs it.

use std::collections::BTreeMap;

use dataloader_core::{Registration, Result, TableSpec};

use crate::Engine;

impl Engine {
    /// What the table's registration should be; `None` while its Delta table does not exist.
    pub async fn registration(&self, spec: &TableSpec) -> Result<Option<Registration>> {
        let destination = self.destination(&spec.destination)?;
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

    /// Registers the table as its Delta table now is; a failure becomes the run's note.
    pub(crate) async fn keep_registered(&self, spec: &TableSpec) -> Option<String> {
        let outcome = async {
            if let Some(desired) = self.registration(spec).await? {
                self.catalog.register(&desired).await?;
            }
            Ok::<_, dataloader_core::Error>(())
        }
        .await;
        outcome.err().map(|e| {
            tracing::warn!(table = %spec.destination, error = %e, "catalog registration failed");
            format!("the data is committed, but registering it in the catalog failed: {e}; the next load or `dataloader catalog sync` repairs it")
        })
    }
}
