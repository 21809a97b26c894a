//! `chunked_backfill`: load a large table in ranges of `incremental_column` — `[lo, lo +
//! chunk_size)` from the column's minimum to its maximum, both fixed when the backfill starts —
//! in order, one MERGE commit per chunk. After each commit the cursor (the next chunk's lower
//! bound) is saved, so a stopped backfill resumes where it stopped; the commit also carries
//! it, so a cursor lost to a crash is recovered from the Delta log. `chunk_size` is a number
//! of key values for integer columns and a duration for dates and timestamps.
//!
//! After the last chunk (and, with `null_watermark: include`, the rows whose column is NULL;
//! with `delete_detection: pk_scan`, a key scan deleting the rows gone from the source) the
//! table switches itself to `incremental` with the watermark at the backfill's upper
//! bound; the switch is an UPDATE of `table_control`, so `table_control_history` records it.

use dataloader_core::settings::ChunkedBackfill;
use dataloader_core::{
    Error, LoadStrategy, NullWatermark, Predicate, Probe, Result, Span, StateUpdate, Watermark,
    WatermarkKind,
};
use serde::{Deserialize, Serialize};

use crate::{fault, LoadContext, Outcome};

/// `table_control.backfill_cursor`.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// Inclusive lower bound of the next chunk.
    next: String,
    /// The last value the backfill covers (the column's maximum when it started).
    hi: String,
    kind: WatermarkKind,
}

pub async fn run(ctx: &LoadContext<'_>, settings: &ChunkedBackfill) -> Result<Outcome> {
    let spec = &ctx.table.spec;
    let column = settings.column.clone();
    let span = &settings.chunk;
    let mut cursor = match &ctx.table.backfill_cursor {
        Some(text) => serde_json::from_str::<Cursor>(text).map_err(|e| {
            Error::config(
                "backfill_cursor",
                format!(
                    "\"{text}\" is not a backfill cursor ({e}); clear it to restart the backfill"
                ),
            )
        })?,
        None => {
            let lo = ctx.probe(&Probe::Min(column.clone())).await?;
            let hi = ctx.probe(&Probe::Max(column.clone())).await?;
            match (lo, hi) {
                (Some(lo), Some(hi)) => Cursor {
                    next: lo.value,
                    hi: hi.value,
                    kind: lo.kind,
                },
                _ => {
                    return Ok(Outcome {
                        notes: vec![format!("{} is empty: switched to incremental", spec.source)],
                        state: StateUpdate {
                            backfill_cursor: Some(None),
                            strategy: Some(LoadStrategy::Incremental),
                            ..StateUpdate::default()
                        },
                        ..Outcome::default()
                    })
                }
            }
        }
    };
    match (cursor.kind, span) {
        (WatermarkKind::Integer, Span::Amount(a)) if !a.contains('.') => {}
        (WatermarkKind::Date | WatermarkKind::Timestamp | WatermarkKind::TimestampTz, Span::Duration(_)) => {}
        (kind, _) => {
            return Err(Error::config(
                "chunk_size",
                format!(
                    "\"{}\" does not fit a {} column: use a whole number of key values for integers, a duration (7 days) for dates and timestamps",
                    spec.chunk_size.as_deref().unwrap_or(""),
                    kind.as_str()
                ),
            ))
        }
    }
    let keys = ctx.dest_keys()?;
    let order_by = ctx.dest_name(&column)?.to_string();
    let hi = Watermark::new(cursor.kind, cursor.hi.clone())?;
    let mut outcome = Outcome::default();
    let mut chunks = 0;
    loop {
        let next = Watermark::new(cursor.kind, cursor.next.clone())?;
        if next.compare(&hi)? == Some(std::cmp::Ordering::Greater) {
            break;
        }
        let upper = next.shifted("chunk_size", span, true)?;
        let filter = Predicate::And(vec![
            Predicate::Ge(column.clone(), next),
            Predicate::Lt(column.clone(), upper.clone()),
            Predicate::Le(column.clone(), hi.clone()),
        ]);
        let read = ctx.read(Some(filter), None).await?;
        cursor.next = upper.value;
        let saved = serde_json::to_string(&cursor).map_err(|e| Error::Internal(e.to_string()))?;
        let tag = ctx.tag(
            None,
            &StateUpdate {
                backfill_cursor: Some(Some(saved.clone())),
                ..StateUpdate::default()
            },
        );
        let written = ctx
            .destination
            .merge(read.schema, read.batches, &keys, &order_by, &tag)
            .await?;
        chunks += 1;
        fault::point("after_chunk_commit");
        if !ctx
            .store
            .save_backfill_cursor(ctx.run_id, ctx.worker, Some(&saved))
            .await?
        {
            return Err(Error::LeaseLost {
                table: spec.destination.to_string(),
                run_id: ctx.run_id,
                message: "was closed while it saved its backfill cursor (its lease ran out); its last chunk stands and the next load resumes after it from the Delta log".into(),
            });
        }
        outcome.absorb(Outcome {
            rows: written.rows,
            delta_version: written.version,
            ..Outcome::default()
        });
    }
    if settings.nulls == NullWatermark::Include {
        let read = ctx
            .read(Some(Predicate::IsNull(column.clone())), None)
            .await?;
        let tag = ctx.tag(None, &StateUpdate::default());
        let written = ctx
            .destination
            .merge(read.schema, read.batches, &keys, &order_by, &tag)
            .await?;
        outcome.absorb(Outcome {
            rows: written.rows,
            delta_version: written.version,
            ..Outcome::default()
        });
    } else {
        outcome.notes.extend(ctx.skipped_nulls_note(&column).await?);
    }
    // The backfill is complete: with delete detection, rows gone from the source go now, not
    // only at the first incremental load, so the table ends equal to its source.
    let mut delete_scan_at = None;
    if let Some(scan) = &settings.key_scan {
        let tag = ctx.tag(None, &StateUpdate::default());
        let (deleted, version) = super::delete_missing(ctx, scan, &keys, &tag).await?;
        outcome.rows.deleted = deleted;
        outcome.delta_version = version.or(outcome.delta_version);
        delete_scan_at = Some(ctx.loaded_at);
    }
    outcome.rows.read = ctx.rows_read();
    outcome.watermark_after = Some(hi.clone());
    outcome.notes.push(format!(
        "backfill: {chunks} chunk(s) this run, up to {hi}; switched to incremental"
    ));
    outcome.state = StateUpdate {
        backfill_cursor: Some(None),
        strategy: Some(LoadStrategy::Incremental),
        delete_scan_at,
        ..StateUpdate::default()
    };
    Ok(outcome)
}
