//! Overwrite: a load that replaces the whole table, contents and schema, in one commit.

use dataloader_core::{BatchStream, Result};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::protocol::SaveMode;

use crate::destination::DeltaDestination;
use crate::tag::CommitTag;
use crate::write::WriteSummary;

impl DeltaDestination {
    /// Replaces the table's contents (and schema) in one commit, streaming the batches into
    /// Parquet files as they come. Readers see the old table until the commit.
    pub async fn overwrite(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        self.write(schema, batches, tag, SaveMode::Overwrite).await
    }
}
