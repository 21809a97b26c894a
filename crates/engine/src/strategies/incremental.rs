//! `incremental`: read the rows with `incremental_column > incremental_value − lookback`,
//! bounded above by the column's maximum captured in the same snapshot, and MERGE them by
//! primary key.
//!
//! - Source rows sharing a key are reduced to the one with the greatest incremental value.
//! - `lookback` re-reads a window below the watermark, so a row committed late with an older
//!   value is still loaded; the merge makes the re-read rows no-ops.
//! - `null_watermark: include` (the default) also re-reads the rows whose column is NULL,
//!   every run; `skip` leaves them out and the run's notes count them.
//! - The watermark becomes the greater of the stored one and the captured maximum, only after
//!   the commit, in the same control-plane transaction that marks the run `Succeeded`.
//! - A source maximum below the stored watermark stops the run (the source was reset).
//! - `delete_detection: pk_scan` then deletes rows whose keys left the source (second commit).

use dataloader_core::settings::{Incremental, KeyScan};
use dataloader_core::{NullWatermark, Result, RowCounts, StateUpdate, WatermarkRead};

use super::{check_regression, newest};
use crate::{LoadContext, Outcome};

pub async fn run(
    ctx: &LoadContext<'_>,
    settings: &Incremental,
    mut state: StateUpdate,
) -> Result<Outcome> {
    let column = settings.column.clone();
    let stored = ctx.table.incremental_value.as_ref();
    let after = match (stored, &settings.lookback) {
        (Some(w), Some(lookback)) => Some(w.shifted("lookback", lookback, false)?),
        (w, _) => w.cloned(),
    };
    let include_nulls = settings.nulls == NullWatermark::Include;
    let read = ctx
        .read(
            None,
            Some(WatermarkRead {
                column: column.clone(),
                after,
                include_nulls,
            }),
        )
        .await?;
    check_regression(ctx, &column, stored, read.captured_max.as_ref()).await?;
    let high = newest(stored, read.captured_max.as_ref())?;
    let keys = ctx.dest_keys()?;
    let order_by = ctx.dest_name(&column)?.to_string();
    let tag = ctx.tag(high.as_ref(), &state);
    let written = ctx
        .destination
        .merge(read.schema, read.batches, &keys, &order_by, &tag)
        .await?;
    let mut outcome = Outcome {
        rows: RowCounts {
            read: ctx.rows_read(),
            ..written.rows
        },
        watermark_after: high,
        delta_version: written.version,
        ..Outcome::default()
    };
    if !include_nulls {
        outcome.notes.extend(ctx.skipped_nulls_note(&column).await?);
    }
    if let Some(scan) = settings
        .key_scan
        .as_ref()
        .filter(|s| delete_scan_due(ctx, s))
    {
        let (deleted, version) = super::delete_missing(ctx, scan, &keys, &tag).await?;
        outcome.rows.deleted = deleted;
        outcome.delta_version = version.or(outcome.delta_version);
        state.delete_scan_at = Some(ctx.loaded_at);
    }
    outcome.state = state;
    Ok(outcome)
}

fn delete_scan_due(ctx: &LoadContext<'_>, scan: &KeyScan) -> bool {
    match (scan.interval_micros, ctx.table.last_delete_scan_at) {
        (Some(micros), Some(last)) => {
            last + chrono::Duration::microseconds(micros) <= ctx.loaded_at
        }
        _ => true,
    }
}
