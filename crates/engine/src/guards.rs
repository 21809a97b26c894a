//! Refusals before a load reads anything: states in which going on would silently lose or
//! duplicate rows. Each says what happened and what to run; `--full-refresh` (which replaces
//! the table and resets the watermark) is the remedy for all of them, and skips them.
//!
//! - **The Delta table is gone but a watermark or backfill cursor is stored.** Going on would
//!   create the table from the rows past the watermark only. We refuse rather than reload by
//!   ourselves: a missing table is as often a wrong lake root or catalog (after which an
//!   automatic reload would quietly copy every table again, elsewhere) as a deleted folder.
//! - **The table was loaded from another source or connection.** Its rows and watermark belong
//!   to that source: merging the new one in would keep rows the new source never had, and its
//!   watermark would skip the new source's older rows.
//! - **`append_only` over rows it cannot account for.** With no watermark (reset by a strategy
//!   change, or never set) it would append every source row again beside them.

use dataloader_core::{Error, LoadStrategy, Result, TableControl};
use dataloader_lake::DeltaDestination;

/// Fails when the table's stored state does not fit its Delta table (see the module header).
pub(crate) async fn stored_state_fits(
    table: &TableControl,
    destination: &DeltaDestination,
    exists: bool,
) -> Result<()> {
    let spec = &table.spec;
    let dest = &spec.destination;
    let writes = spec.effective_strategy();
    let conflict = |message: String| Error::Conflict {
        table: dest.to_string(),
        message,
    };
    let reads_past_watermark = matches!(
        writes,
        LoadStrategy::Incremental | LoadStrategy::AppendOnly | LoadStrategy::ChunkedBackfill
    );
    if !exists {
        let stored = match (&table.incremental_value, &table.backfill_cursor) {
            (Some(w), _) if reads_past_watermark => Some(format!("watermark {w}")),
            (_, Some(_)) if writes == LoadStrategy::ChunkedBackfill => {
                Some("backfill cursor".to_string())
            }
            _ => None,
        };
        if let Some(stored) = stored {
            return Err(conflict(format!(
                "there is no Delta table at {}, but its {stored} is stored: loading on from it would leave out every row before it. Reload the whole table with `dataloader load {dest} --full-refresh`; if the lake root or catalog changed, point DataLoader back at the table instead",
                destination.url()
            )));
        }
        return Ok(());
    }
    let source = spec.origin();
    if let Some(from) = table.loaded_from.as_deref().filter(|f| *f != source) {
        if writes != LoadStrategy::Full {
            return Err(conflict(format!(
                "its rows were loaded from {from}, but its source is now {source}: a {writes} load would mix the two and apply the old source's watermark to the new one. Reload it from {source} with `dataloader load {dest} --full-refresh`, or load {source} into a new destination"
            )));
        }
    }
    if writes == LoadStrategy::AppendOnly && table.incremental_value.is_none() {
        let rows = destination
            .key_counts(&[])
            .await?
            .map_or(0, |counts| counts.rows);
        if rows > 0 {
            return Err(conflict(format!(
                "append_only has no watermark, so it would append every source row again beside the {rows} rows the table holds (a strategy change resets the watermark). Reload it with `dataloader load {dest} --full-refresh`, which replaces those rows and sets the watermark"
            )));
        }
    }
    Ok(())
}
