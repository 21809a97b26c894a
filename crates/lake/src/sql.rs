//! SQL text the operations hand to DataFusion: quoted column names, key comparisons, the
//! newest row per key, and a one-row count. Shared here so every operation quotes and compares
//! keys the same way.

use deltalake::arrow::array::Int64Array;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::SessionContext;

/// Memory for grouping keys (duplicate counts, a first load's reduction) before DataFusion spills.
pub(crate) const KEY_GROUPING_MEMORY: usize = 128 << 20;

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `left.k = right.k AND …` over the key columns (`target`/`source` for delta-rs' MERGE).
pub(crate) fn key_predicate(keys: &[String], left: &str, right: &str) -> String {
    keys_compared(keys, left, right, "=")
}

pub(crate) fn keys_compared(keys: &[String], left: &str, right: &str, operator: &str) -> String {
    keys.iter()
        .map(|k| format!("{left}.{q} {operator} {right}.{q}", q = quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `"a", "b"`: columns quoted for SQL.
pub(crate) fn quoted_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `source_rows` with one row per key: the one with the greatest `order_by` value (NULL
/// counts as the oldest; among equal values any one of them).
pub(crate) fn newest_per_key(keys: &[String], order_by: &str) -> String {
    format!(
        "SELECT * EXCEPT (__dl_rank) FROM (SELECT *, row_number() OVER (PARTITION BY {} ORDER BY {} DESC NULLS LAST) AS __dl_rank FROM source_rows) WHERE __dl_rank = 1",
        quoted_list(keys),
        quote(order_by)
    )
}

/// The value of a one-row `SELECT COUNT(*) …`.
pub(crate) async fn count(ctx: &SessionContext, sql: &str) -> Result<u64, DataFusionError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>())
        .map(|a| a.value(0) as u64)
        .ok_or_else(|| DataFusionError::Internal(format!("{sql} returned no count")))
}
