//! One module per load strategy; each states its semantics in its header.

pub mod append_only;
pub mod check_and_load;
pub mod chunked_backfill;
pub mod full;
pub mod incremental;
pub mod rolling;

use std::cmp::Ordering;

use dataloader_core::settings::KeyScan;
use dataloader_core::{Error, Probe, Result, Watermark};

use crate::LoadContext;

/// The key scan of `delete_detection: pk_scan`: deletes the Delta rows whose keys are gone
/// from the source, bounded by `max_delete_ratio`; how many, and the version it committed.
pub(crate) async fn delete_missing(
    ctx: &LoadContext<'_>,
    scan: &KeyScan,
    keys: &[String],
    tag: &dataloader_lake::CommitTag,
) -> Result<(u64, Option<i64>)> {
    let (key_schema, source_keys) = ctx.read_keys().await?;
    ctx.destination
        .delete_missing_keys(key_schema, source_keys, keys, scan.max_delete_ratio, tag)
        .await
}

/// The greater of the stored watermark and the one just captured: a lookback re-read never
/// moves the watermark back.
pub(crate) fn newest(
    stored: Option<&Watermark>,
    captured: Option<&Watermark>,
) -> Result<Option<Watermark>> {
    Ok(match (stored, captured) {
        (Some(s), Some(c)) => Some(if c.compare(s)? == Some(Ordering::Greater) {
            c.clone()
        } else {
            s.clone()
        }),
        (s, c) => c.or(s).cloned(),
    })
}

/// A source whose maximum fell below the stored watermark was reset or restored: reloading
/// from there silently would duplicate or lose rows, so the run stops and says so.
pub(crate) async fn check_regression(
    ctx: &LoadContext<'_>,
    column: &str,
    stored: Option<&Watermark>,
    captured: Option<&Watermark>,
) -> Result<()> {
    let Some(stored) = stored else {
        return Ok(());
    };
    if let Some(c) = captured {
        if c.compare(stored)? != Some(Ordering::Less) {
            return Ok(());
        }
    }
    let overall = ctx.probe(&Probe::Max(column.to_string())).await?;
    let regressed = match &overall {
        None => true,
        Some(max) => max.compare(stored)? == Some(Ordering::Less),
    };
    if regressed {
        return Err(Error::config(
            "incremental_value",
            format!(
                "{}: the source's MAX({column}) is {}, below the stored watermark {stored}: the source was reset or restored. Reload with `dataloader load {} --full-refresh`, or set the watermark back with `dataloader table update {} --reset-watermark`",
                ctx.table.spec.source,
                overall.map(|m| m.value).unwrap_or_else(|| "NULL (empty table)".into()),
                ctx.table.spec.destination,
                ctx.table.spec.destination,
            ),
        ));
    }
    Ok(())
}
