//! `full`: read the whole source table and replace the Delta table's contents in one commit.
//!
//! Readers see the previous version until that commit and the new one after it, never a
//! half-loaded table. The table takes the source's current schema. No watermark.

use dataloader_core::Result;

use crate::{LoadContext, Outcome};

pub async fn run(ctx: &LoadContext<'_>) -> Result<Outcome> {
    let read = ctx.read(None, None).await?;
    let written = ctx
        .destination
        .overwrite(read.schema, read.batches, &ctx.tag)
        .await?;
    Ok(Outcome {
        rows_read: ctx.rows_read(),
        rows_written: written.rows_written,
        rows_inserted: written.rows_inserted,
        rows_updated: 0,
        watermark_after: None,
        delta_version: written.version,
    })
}
