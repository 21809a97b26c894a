//! `incremental`: read the rows with `incremental_column > incremental_value`, bounded above by
//! the column's maximum captured in the same snapshot, and MERGE them by primary key.
//!
//! - Source rows sharing a key are reduced to the one with the greatest incremental value.
//! - The first load (no stored value) reads everything and creates the table.
//! - `incremental_value` becomes the captured maximum, and only after the Delta commit: the
//!   engine stores it in the same control-plane transaction that marks the run `Succeeded`.
//! - Nothing new (no row past the watermark): no read of rows, no commit, watermark unchanged.

use dataloader_core::{Error, Predicate, Result};

use crate::{LoadContext, Outcome};

pub async fn run(ctx: &LoadContext<'_>) -> Result<Outcome> {
    let spec = &ctx.table.spec;
    let column = spec.incremental_column.clone().ok_or_else(|| {
        Error::config(
            "incremental_column",
            "the incremental strategy needs an incremental column",
        )
    })?;
    let filter = ctx
        .table
        .incremental_value
        .clone()
        .map(|after| Predicate::Gt(column.clone(), after));
    let read = ctx.read(filter, Some(column.clone())).await?;
    let Some(high) = read.captured_max else {
        return Ok(Outcome::default());
    };
    let keys = spec
        .primary_keys
        .iter()
        .map(|k| ctx.dest_name(k).map(str::to_string))
        .collect::<Result<Vec<_>>>()?;
    let order_by = ctx.dest_name(&column)?.to_string();
    let written = ctx
        .destination
        .merge(read.schema, read.batches, &keys, &order_by, &ctx.tag)
        .await?;
    Ok(Outcome {
        rows_read: ctx.rows_read(),
        rows_written: written.rows_written,
        rows_inserted: written.rows_inserted,
        rows_updated: written.rows_updated,
        watermark_after: Some(high),
        delta_version: written.version,
    })
}
