//! `full`: read the whole source table and replace the Delta table's contents in one commit.
//!
//! Readers see the previous version until that commit and the new one after it, never a
//! half-loaded table. No watermark. `--full-refresh` runs this for any strategy, and then the
//! watermark becomes the source's maximum read in the same snapshot.

use dataloader_core::{LoadStrategy, NullWatermark, Result, RowCounts, StateUpdate, WatermarkRead};

use crate::{LoadContext, Outcome};

pub async fn run(ctx: &LoadContext<'_>, state: StateUpdate) -> Result<Outcome> {
    let read = ctx.read(None, None).await?;
    let tag = ctx.tag(None, &state);
    let written = ctx
        .destination
        .overwrite(read.schema, read.batches, &tag)
        .await?;
    Ok(Outcome {
        rows: RowCounts {
            read: ctx.rows_read(),
            ..written.rows
        },
        delta_version: written.version,
        state,
        ..Outcome::default()
    })
}

/// Everything, for any strategy: one overwrite, and the watermark (if the strategy keeps
/// one) set to the maximum captured with the rows. A backfill is finished by it.
pub async fn refresh(ctx: &LoadContext<'_>) -> Result<Outcome> {
    let spec = &ctx.table.spec;
    let column = match spec.strategy {
        LoadStrategy::Full => None,
        LoadStrategy::Rolling => spec.rolling_column.clone(),
        _ => spec.incremental_column.clone(),
    };
    let watermark = column.map(|column| WatermarkRead {
        column,
        after: None,
        include_nulls: spec.effective_null_watermark() == NullWatermark::Include
            || spec.strategy == LoadStrategy::Full,
    });
    let read = ctx.read(None, watermark).await?;
    let state = StateUpdate {
        backfill_cursor: (spec.strategy == LoadStrategy::ChunkedBackfill).then_some(None),
        strategy: (spec.strategy == LoadStrategy::ChunkedBackfill)
            .then_some(LoadStrategy::Incremental),
        ..StateUpdate::default()
    };
    let tag = ctx.tag(read.captured_max.as_ref(), &state);
    let written = ctx
        .destination
        .overwrite(read.schema, read.batches, &tag)
        .await?;
    Ok(Outcome {
        rows: RowCounts {
            read: ctx.rows_read(),
            ..written.rows
        },
        watermark_after: read.captured_max,
        delta_version: written.version,
        notes: vec!["full refresh: the table was replaced".into()],
        state,
        ..Outcome::default()
    })
}
