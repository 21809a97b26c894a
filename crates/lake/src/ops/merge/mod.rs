//! Merge: upsert a change set by primary key in one commit. Rows with the same key are reduced
//! to the newest first, so no target row ever meets two source rows. Three paths, one file
//! each, chosen here:
//!
//! - `first_load`: no table yet, so the reduced change set becomes the table;
//! - `plain`: the usual table (same columns, unpartitioned, no feature a plain writer must
//!   honour), merged without a query engine by rewriting only the files that hold changed keys;
//! - `generic`: everything else, through delta-rs' MERGE.

mod change_index;
mod first_load;
mod generic;
mod plain;
mod rewrite;
#[cfg(test)]
mod tests;

use dataloader_core::{BatchStream, Result};
use deltalake::arrow::datatypes::SchemaRef;

use crate::destination::DeltaDestination;
use crate::tag::CommitTag;
use crate::write::WriteSummary;

impl DeltaDestination {
    /// Upserts the batches by `keys` in one commit. Rows with the same key are reduced to
    /// the one with the greatest `order_by` value first, so the merge never sees two source
    /// rows for one target row.
    pub async fn merge(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        keys: &[String],
        order_by: &str,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        let Some(table) = self.open().await? else {
            return self
                .create_by_key(schema, batches, keys, order_by, tag)
                .await;
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.error("read the table state", e))?;
        if plain::plain_table(snapshot, &schema) {
            return plain::PlainMerge {
                destination: self,
                table,
                schema,
                keys,
                order_by,
                tag,
            }
            .run(batches)
            .await;
        }
        self.merge_generic(table, schema, batches, keys, order_by, tag)
            .await
    }
}
