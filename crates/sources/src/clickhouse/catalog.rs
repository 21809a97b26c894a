//! What ClickHouse says about the columns a load reads: a table's, from `DESCRIBE TABLE`, or a
//! source query's, from the `meta` of an answer to it without rows.

use std::sync::Arc;

use dataloader_core::{Error, Result, SourceColumn, SourceObject};

use super::types::{self, ChType};
use super::{ClickHouseDialect, ClickHouseSource};
use crate::dialect::{derived, SqlDialect};

impl ClickHouseSource {
    /// (name, type) of each column; asked of the server once per table (or source query) and
    /// source (a load describes, probes and reads the same one). A query's are the `meta` of
    /// an answer to it without rows.
    pub(super) async fn column_types(
        &self,
        object: &SourceObject,
    ) -> Result<Arc<Vec<(String, String)>>> {
        if let Some(known) = self.described.get(object) {
            return Ok(known);
        }
        let shown = object.to_string();
        let columns: Vec<(String, String)> = match object {
            SourceObject::Table(table) => self
                .rows(
                    &format!("DESCRIBE TABLE {}", ClickHouseDialect.table(table)),
                    &shown,
                    "describe the table",
                )
                .await?
                .into_iter()
                .filter_map(|r| {
                    Some((
                        r.first()?.as_str()?.to_string(),
                        r.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect(),
            SourceObject::Query { sql, .. } => {
                let sql = format!("SELECT * FROM {} LIMIT 0", derived(sql));
                let answer = self
                    .answer_on(
                        &self.client_for(object),
                        &sql,
                        &shown,
                        "describe the source query",
                    )
                    .await?;
                let meta = answer["meta"].as_array().cloned().unwrap_or_default();
                meta.iter()
                    .filter_map(|c| {
                        Some((
                            c["name"].as_str()?.to_string(),
                            c["type"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            }
        };
        Ok(self.described.put(object, columns))
    }

    pub(super) async fn parsed_types(
        &self,
        object: &SourceObject,
        columns: &[SourceColumn],
    ) -> Result<Vec<ChType>> {
        let shown = object.to_string();
        let described = self.column_types(object).await?;
        columns
            .iter()
            .map(|c| {
                let native = described
                    .iter()
                    .find(|(n, _)| n == &c.name)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| Error::ColumnNotFound {
                        table: shown.clone(),
                        column: c.name.clone(),
                        role: "requested",
                        columns: described.iter().map(|(n, _)| n.clone()).collect(),
                    })?;
                types::parse(&native).ok_or_else(|| Error::UnsupportedType {
                    table: shown.clone(),
                    column: c.name.clone(),
                    native_type: native,
                })
            })
            .collect()
    }
}
