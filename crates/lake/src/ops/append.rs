//! Append: new rows added to the table in one commit, its schema widened by new columns.

use dataloader_core::{BatchStream, Result};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::protocol::SaveMode;

use crate::destination::DeltaDestination;
use crate::tag::CommitTag;
use crate::write::WriteSummary;

impl DeltaDestination {
    /// Appends the batches in one commit (creating the table if needed).
    pub async fn append(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        self.write(schema, batches, tag, SaveMode::Append).await
    }
}
