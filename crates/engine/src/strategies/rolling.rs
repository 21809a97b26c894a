//! `rolling`: keep the rows of a window, `rolling_column > end − rolling_window`.
//!
//! The window ends at the load's clock for date and timestamp columns (UTC; naive timestamps
//! are read as UTC), so one row dated in the future cannot move it and empty the table.
//! Integer and decimal columns have no clock: their window ends at the column's maximum in the
//! source at the start of the run.
//!
//! Two commits: first the window's rows are MERGEd by primary key, then the Delta rows at or
//! below the window's lower bound are deleted. Between the two a reader may still see rows
//! that just left the window, never a window row missing. Like a key scan's, the deletes are
//! bounded: when they would remove more than `max_delete_ratio` of the table, the run is
//! refused before it writes anything. Rows whose rolling column is NULL are not in any
//! window: they are not loaded and not deleted. The watermark records the newest value loaded.

use dataloader_core::settings::Rolling;
use dataloader_core::{Error, Probe, Result, RowCounts, StateUpdate, Watermark, WatermarkRead};

use crate::{LoadContext, Outcome};

pub async fn run(ctx: &LoadContext<'_>, settings: &Rolling) -> Result<Outcome> {
    let spec = &ctx.table.spec;
    let column = settings.column.clone();
    let window = &settings.window;
    let Some(newest) = ctx.probe(&Probe::Max(column.clone())).await? else {
        return Ok(Outcome {
            notes: vec![format!("{} is empty: nothing to roll", spec.source)],
            ..Outcome::default()
        });
    };
    let end = Watermark::at_time(newest.kind, ctx.loaded_at).unwrap_or_else(|| newest.clone());
    let lower = end.shifted("rolling_window", window, false)?;
    let dest_column = ctx.dest_name(&column)?.to_string();
    let data_type = ctx
        .evolution
        .target
        .field_with_name(&dest_column)
        .map_err(|e| Error::Internal(e.to_string()))?
        .data_type()
        .clone();
    let expired = dataloader_lake::expr::at_or_below(&dest_column, &data_type, &lower)?;
    if let Some((expiring, total)) = ctx.destination.count_where(expired.clone()).await? {
        let ratio = settings.max_delete_ratio;
        if expiring as f64 > ratio * total as f64 {
            return Err(Error::Conflict {
                table: spec.destination.to_string(),
                message: format!(
                    "the rolling window ({column} > {lower}) would delete {expiring} of {total} rows ({:.1}%), more than max_delete_ratio {ratio}; refusing before writing anything (raise max_delete_ratio if that is right, for example after a long pause between loads)",
                    100.0 * expiring as f64 / total.max(1) as f64
                ),
            });
        }
    }
    let read = ctx
        .read(
            None,
            Some(WatermarkRead {
                column: column.clone(),
                after: Some(lower.clone()),
                include_nulls: false,
            }),
        )
        .await?;
    let high = read.captured_max.clone().unwrap_or(newest);
    let keys = ctx.dest_keys()?;
    let tag = ctx.tag(Some(&high), &StateUpdate::default());
    let merged = ctx
        .destination
        .merge(read.schema, read.batches, &keys, &dest_column, &tag)
        .await?;
    let (deleted, deleted_version) = ctx.destination.delete_where(expired, &tag).await?;
    Ok(Outcome {
        rows: RowCounts {
            read: ctx.rows_read(),
            deleted,
            ..merged.rows
        },
        watermark_after: Some(high),
        delta_version: deleted_version.or(merged.version),
        notes: vec![format!("window: {column} > {lower}")],
        ..Outcome::default()
    })
}
