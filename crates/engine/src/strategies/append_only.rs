//! `append_only`: append the rows with `incremental_column > incremental_value` (bounded by
//! the maximum captured in the same snapshot), never deduplicated, exactly once.
//!
//! Exactly once: the commit carries a Delta application transaction (app id from the table,
//! version = run id) and the new watermark. A process that dies after the commit but before
//! its bookkeeping leaves that `txn` behind; the next load finds it, records the run as it
//! should have been and moves the watermark past the appended rows before reading, so nothing
//! is appended twice. No lookback (re-read rows would be appended again); NULL watermark rows
//! cannot be tracked and are skipped, counted in the run's notes.

use dataloader_core::settings::AppendOnly;
use dataloader_core::{Result, StateUpdate, WatermarkRead};

use super::{check_regression, newest};
use crate::{LoadContext, Outcome};

pub async fn run(
    ctx: &LoadContext<'_>,
    settings: &AppendOnly,
    state: StateUpdate,
) -> Result<Outcome> {
    let column = settings.column.clone();
    let stored = ctx.table.incremental_value.as_ref();
    let read = ctx
        .read(
            None,
            Some(WatermarkRead {
                column: column.clone(),
                after: stored.cloned(),
                include_nulls: false,
            }),
        )
        .await?;
    check_regression(ctx, &column, stored, read.captured_max.as_ref()).await?;
    let mut outcome = Outcome::default();
    if read.captured_max.is_some() {
        let high = newest(stored, read.captured_max.as_ref())?;
        let tag = ctx.tag(high.as_ref(), &state);
        let written = ctx
            .destination
            .append(read.schema, read.batches, &tag)
            .await?;
        outcome = Outcome {
            rows: written.rows,
            watermark_after: high,
            delta_version: written.version,
            ..outcome
        };
    }
    outcome.rows.read = ctx.rows_read();
    outcome.notes.extend(ctx.skipped_nulls_note(&column).await?);
    outcome.state = state;
    Ok(outcome)
}
