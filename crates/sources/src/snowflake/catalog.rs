//! What Snowflake says about the columns a load reads: the rowtype of a `LIMIT 0` query over the
//! table (as Snowflake names it) or over the source query.

use std::sync::Arc;

use dataloader_core::{Error, Result, SourceColumn, SourceObject, SourceTable};

use super::types::{self, Kind, RowType};
use super::{SnowflakeDialect, SnowflakeSource};
use crate::dialect::SqlDialect;

impl SnowflakeSource {
    /// What a statement reads `FROM` (the table as Snowflake names it, or the source query),
    /// and its columns (a `LIMIT 0` query's rowtype).
    pub(super) async fn resolve(
        &self,
        object: &SourceObject,
    ) -> Result<Arc<(String, Vec<RowType>)>> {
        if let Some(known) = self.resolved.get(object) {
            return Ok(known);
        }
        let shown = object.to_string();
        let table = match object {
            SourceObject::Table(table) => table,
            SourceObject::Query { .. } => {
                let from = SnowflakeDialect.from(object);
                let sql = format!("SELECT * FROM {from} LIMIT 0");
                let result = self
                    .query(&sql, &shown, "describe the source query")
                    .await?;
                return Ok(self.resolved.put(object, (from, result.rowtype)));
            }
        };
        let upper = SourceTable {
            schema: table.schema.as_ref().map(|s| s.to_uppercase()),
            name: table.name.to_uppercase(),
        };
        let candidates = if upper != *table {
            vec![table.clone(), upper]
        } else {
            vec![table.clone()]
        };
        let mut last = None;
        for candidate in candidates {
            let from = SnowflakeDialect.table(&candidate);
            let sql = format!("SELECT * FROM {from} LIMIT 0");
            match self.query(&sql, &shown, "describe the table").await {
                Ok(result) => {
                    return Ok(self.resolved.put(object, (from, result.rowtype)));
                }
                Err(e @ Error::SourceTableNotFound { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::SourceTableNotFound {
            connection: self.config.name.clone(),
            table: shown,
        }))
    }

    pub(super) fn kind(&self, table: &str, column: &RowType) -> Result<Kind> {
        Kind::of(column, self.bigint_integers).ok_or_else(|| Error::UnsupportedType {
            table: table.to_string(),
            column: column.name.clone(),
            native_type: types::native_type(column),
        })
    }

    /// What to read `FROM`, and the kinds of `columns`, in their order, from the rowtype.
    pub(super) async fn kinds(
        &self,
        object: &SourceObject,
        columns: &[SourceColumn],
    ) -> Result<(String, Vec<Kind>)> {
        let shown = object.to_string();
        let found = self.resolve(object).await?;
        let (resolved, rowtype) = &*found;
        let kinds = columns
            .iter()
            .map(|c| {
                let column = rowtype.iter().find(|r| r.name == c.name).ok_or_else(|| {
                    Error::ColumnNotFound {
                        table: shown.clone(),
                        column: c.name.clone(),
                        role: "requested",
                        columns: rowtype.iter().map(|r| r.name.clone()).collect(),
                    }
                })?;
                self.kind(&shown, column)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((resolved.clone(), kinds))
    }
}
