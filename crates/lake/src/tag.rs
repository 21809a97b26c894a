//! Commit tags: every commit carries an application transaction (`txn`) and the run's state in
//! its commit metadata, so a run can tell whether its own commit already happened and a
//! crashed run's bookkeeping can be recovered from the Delta log. Writing the tag and reading
//! it back live together so the two stay in step.

use dataloader_core::Result;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;

use crate::destination::DeltaDestination;

/// Identifies a commit: the loaded table (app id) and the run (version), plus the state the
/// run will record once the commit is in, so a crashed run's bookkeeping can be recovered
/// from the Delta log.
#[derive(Debug, Clone)]
pub struct CommitTag {
    pub app_id: String,
    pub version: i64,
    pub state: serde_json::Map<String, serde_json::Value>,
}

/// Key of the commit metadata that carries [`CommitTag::state`].
pub const STATE_KEY: &str = "dataloader.state";

/// Key of the commit metadata that carries [`CommitTag::version`], to find the run's commit.
const RUN_KEY: &str = "dataloader.run";

impl CommitTag {
    /// The run's transaction and state, plus `extra` commit metadata.
    pub(crate) fn commit_properties(
        &self,
        extra: impl IntoIterator<Item = (String, serde_json::Value)>,
    ) -> CommitProperties {
        CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, self.version))
            .with_metadata(
                [
                    (RUN_KEY.to_string(), serde_json::Value::from(self.version)),
                    (
                        STATE_KEY.to_string(),
                        serde_json::Value::Object(self.state.clone()),
                    ),
                ]
                .into_iter()
                .chain(extra),
            )
    }
}

impl DeltaDestination {
    /// The last run version this app committed, from the table's `txn` actions.
    pub async fn committed_version(&self, app_id: &str) -> Result<Option<i64>> {
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        let state = table
            .snapshot()
            .map_err(|e| self.error("read the table state", e))?;
        state
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.error("read the table's transactions", e))
    }

    /// The state recorded by the newest commit that `app_id` made with txn `version`.
    pub async fn committed_state(
        &self,
        app_id: &str,
        version: i64,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        use futures::TryStreamExt;
        let Some(table) = self.open().await? else {
            return Ok(None);
        };
        if self.committed_version(app_id).await? != Some(version) {
            return Ok(None);
        }
        let commits: Vec<_> = table
            .history(Some(50))
            .try_collect()
            .await
            .map_err(|e| self.error("read the table history", e))?;
        Ok(commits.into_iter().find_map(|c| {
            let run = c.info.get(RUN_KEY).and_then(|v| v.as_i64());
            match (run, c.info.get(STATE_KEY)) {
                (Some(r), Some(serde_json::Value::Object(state))) if r == version => {
                    Some(state.clone())
                }
                _ => None,
            }
        }))
    }
}
