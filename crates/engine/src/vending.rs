//! Writing with credentials the catalog vends: before a load opens its Delta table, the
//! catalog is asked for temporary storage credentials; every request of the table's object
//! store writes with them, and they are renewed before they expire, for as long as the
//! destination lives. A catalog that vends none, or cannot, leaves the lake's own credentials
//! in use.

use std::time::Duration;

use chrono::Utc;
use dataloader_core::TargetTable;
use dataloader_lake::DeltaDestination;

use crate::Engine;

/// How soon a failed renewal is tried again; the credentials in use hold until they expire.
const RETRY_RENEWAL: Duration = Duration::from_secs(30);

impl Engine {
    /// `dest` with the catalog's vended credentials, kept renewed while it lives.
    pub(crate) async fn with_vended(
        &self,
        table: &TargetTable,
        dest: DeltaDestination,
    ) -> DeltaDestination {
        let location = dest.url().to_string();
        let vended = match self.catalog.vend(table, &location).await {
            Ok(v) if v.credential.is_some() => v,
            Ok(_) => return dest,
            Err(e) => {
                tracing::warn!(%table, error = %e, "no vended credentials: writing with the lake's own");
                return dest;
            }
        };
        let storage = dest.vended_storage().clone();
        let renew = vended.renew_in(Utc::now());
        storage.set(vended.credential);
        let Some(mut wait) = renew else {
            return dest;
        };
        let (catalog, table) = (self.catalog.clone(), table.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(wait).await;
                match catalog.vend(&table, &location).await {
                    Ok(renewed) if renewed.credential.is_some() => {
                        let next = renewed.renew_in(Utc::now());
                        storage.set(renewed.credential);
                        match next {
                            Some(w) => wait = w,
                            None => return,
                        }
                    }
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(%table, error = %e, "renewing the vended credentials failed");
                        wait = RETRY_RENEWAL;
                    }
                }
            }
        });
        dest.with_renewal(task.abort_handle())
    }
}
