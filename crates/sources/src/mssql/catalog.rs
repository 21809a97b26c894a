//! What SQL Server says about the columns a load reads: a table's, from `INFORMATION_SCHEMA`,
//! or a source query's, from `sys.dm_exec_describe_first_result_set` (described, not run).

use dataloader_core::{Error, Result, SourceObject};

use super::{Conn, MssqlSource};
use crate::dialect::derived;

impl MssqlSource {
    /// (name, data type, precision, scale, datetime precision, nullable) in column order: from
    /// `INFORMATION_SCHEMA` for a table, from `sys.dm_exec_describe_first_result_set` for a
    /// source query (described, not run).
    pub(super) async fn catalog(
        &self,
        conn: &mut Conn,
        object: &SourceObject,
    ) -> Result<Vec<(String, String, Option<u8>, Option<u8>, Option<u8>, bool)>> {
        let shown = object.to_string();
        let (sql, params, step): (&str, Vec<Option<String>>, _) = match object {
            SourceObject::Table(table) => (
                "SELECT COLUMN_NAME, DATA_TYPE, CAST(NUMERIC_PRECISION AS int), CAST(NUMERIC_SCALE AS int), \
                 CAST(DATETIME_PRECISION AS int), IS_NULLABLE, CAST(NULL AS nvarchar(4000)) FROM INFORMATION_SCHEMA.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(@P1, SCHEMA_NAME()) AND TABLE_NAME = @P2 ORDER BY ORDINAL_POSITION",
                vec![table.schema.clone(), Some(table.name.clone())],
                "describe the table",
            ),
            SourceObject::Query { sql, .. } => {
                // T-SQL reads no common table expression as a derived table.
                if dataloader_core::check_query::starts_with_with(sql) {
                    return Err(Error::config(
                        "source_query",
                        format!("{shown}: SQL Server cannot read a query that starts with WITH as a derived table; write the common table expression as a subquery, or put it in a view"),
                    ));
                }
                (
                    "SELECT name, TYPE_NAME(system_type_id), CAST(precision AS int), CAST(scale AS int), \
                     CAST(CASE WHEN TYPE_NAME(system_type_id) IN ('datetime2', 'datetimeoffset', 'time') \
                     THEN scale END AS int), CASE WHEN is_nullable = 0 THEN 'NO' ELSE 'YES' END, error_message \
                     FROM sys.dm_exec_describe_first_result_set(@P1, NULL, 0) \
                     WHERE is_hidden = 0 OR is_hidden IS NULL ORDER BY column_ordinal",
                    vec![Some(format!("SELECT * FROM {}", derived(sql)))],
                    "describe the source query",
                )
            }
        };
        let params: Vec<&dyn tiberius::ToSql> =
            params.iter().map(|p| p as &dyn tiberius::ToSql).collect();
        let rows = conn
            .query(sql, &params)
            .await
            .map_err(|e| self.fail(&shown, step, e))?
            .into_first_result()
            .await
            .map_err(|e| self.fail(&shown, step, e))?;
        // A query the server cannot describe comes back as one row naming the error.
        if let Some(message) = rows.iter().find_map(|r| r.get::<&str, _>(6)) {
            return Err(Error::SourceQuery {
                connection: self.config.name.clone(),
                table: shown,
                step,
                message: message.to_string(),
                source: None,
            });
        }
        Ok(rows
            .iter()
            .map(|r| {
                let small = |i: usize| r.get::<i32, _>(i).and_then(|v| u8::try_from(v).ok());
                (
                    r.get::<&str, _>(0).unwrap_or_default().to_string(),
                    r.get::<&str, _>(1).unwrap_or_default().to_lowercase(),
                    small(2),
                    small(3),
                    small(4),
                    r.get::<&str, _>(5) == Some("YES"),
                )
            })
            .collect())
    }
}
