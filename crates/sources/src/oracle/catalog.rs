//! What Oracle says about the columns a load reads: a table's, from `ALL_TAB_COLUMNS`, or a
//! source query's, from the driver's description of its result.

use dataloader_core::{Result, SourceObject};

use super::{types, OracleSource};
use crate::dialect::derived;

impl OracleSource {
    /// (name, (DATA_TYPE, precision, scale), nullable) of each column: from `ALL_TAB_COLUMNS`
    /// for a table, from the driver's description of a source query's result (run to match
    /// nothing: `WHERE 1 = 0`). Every query column may be NULL (an outer join).
    pub(super) async fn catalog(
        &self,
        object: &SourceObject,
    ) -> Result<Vec<(String, (String, Option<i64>, Option<i64>), bool)>> {
        let shown = object.to_string();
        let parts = self.clone_parts();
        let table = match object {
            SourceObject::Table(table) => table.clone(),
            SourceObject::Query { sql, .. } => {
                let sql = format!("SELECT * FROM {} WHERE 1 = 0", derived(sql));
                return self
                    .blocking(move |conn| {
                        let rows = conn
                            .query(&sql, &[])
                            .map_err(|e| parts.fail(&shown, "describe the source query", e))?;
                        Ok(rows
                            .column_info()
                            .iter()
                            .map(|c| {
                                let t = types::from_oracle_type(c.oracle_type());
                                (c.name().to_string(), t, true)
                            })
                            .collect())
                    })
                    .await;
            }
        };
        let (schema, name) = (table.schema.clone(), table.name.clone());
        self.blocking(move |conn| {
            let rows = conn
                .query(
                    "SELECT COLUMN_NAME, DATA_TYPE, DATA_PRECISION, DATA_SCALE, NULLABLE FROM ALL_TAB_COLUMNS \
                     WHERE OWNER = NVL(:1, USER) AND TABLE_NAME = :2 ORDER BY COLUMN_ID",
                    &[&schema, &name],
                )
                .map_err(|e| parts.fail(&shown, "describe the table", e))?;
            rows.map(|r| {
                let r = r.map_err(|e| parts.fail(&shown, "describe the table", e))?;
                let get = |i: usize| r.get::<usize, Option<String>>(i).ok().flatten();
                let int = |i: usize| r.get::<usize, Option<i64>>(i).ok().flatten();
                Ok((get(0).unwrap_or_default(), (get(1).unwrap_or_default(), int(2), int(3)), get(4).as_deref() == Some("Y")))
            })
            .collect()
        })
        .await
    }
}
