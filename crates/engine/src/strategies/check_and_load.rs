//! `check_and_load`: a cheap probe first — `MAX(incremental_column)`, `COUNT(*)`, or the
//! value of a user `check_query` — compared with the value stored by the last successful load.
//! Unchanged: a `Skipped` run, with no read and no commit. Changed: the load runs with the
//! inner strategy (`full` by default, or `incremental` / `append_only`) and the probe value is
//! stored with it. The probe runs before the read, in its own snapshot: a change that lands in
//! between is loaded now and seen as a change again next time, never missed.

use dataloader_core::settings::{CheckAndLoad, CheckProbe, InnerStrategy};
use dataloader_core::{Probe, Result, StateUpdate};

use super::{append_only, full, incremental};
use crate::{LoadContext, Outcome};

pub async fn run(ctx: &LoadContext<'_>, settings: &CheckAndLoad) -> Result<Outcome> {
    let mode = settings.probe.mode();
    let probe = match &settings.probe {
        CheckProbe::Max(column) => Probe::Max(column.clone()),
        CheckProbe::RowCount => Probe::RowCount,
        CheckProbe::Query(query) => Probe::Query(query.clone()),
    };
    let value = ctx
        .probe(&probe)
        .await?
        .map(|v| v.value)
        .unwrap_or_else(|| "(null)".into());
    // A table that is not there (yet, or any more) is loaded whatever the probe says.
    if ctx.table_exists && ctx.table.last_check_value.as_deref() == Some(value.as_str()) {
        return Ok(Outcome {
            skipped: true,
            notes: vec![format!(
                "check ({mode}) unchanged at {value}: nothing loaded"
            )],
            ..Outcome::default()
        });
    }
    let state = StateUpdate {
        check_value: Some(value.clone()),
        ..StateUpdate::default()
    };
    let mut outcome = match &settings.inner {
        InnerStrategy::Incremental(inner) => incremental::run(ctx, inner, state).await?,
        InnerStrategy::AppendOnly(inner) => append_only::run(ctx, inner, state).await?,
        InnerStrategy::Full(_) => full::run(ctx, state).await?,
    };
    outcome.notes.push(format!(
        "check ({mode}) changed from {} to {value}",
        ctx.table
            .last_check_value
            .as_deref()
            .unwrap_or("(never checked)")
    ));
    Ok(outcome)
}
