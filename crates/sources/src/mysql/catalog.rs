//! What MySQL and MariaDB say about the columns a load reads: a table's, from
//! `information_schema`, or a source query's, from the column definitions of its prepared
//! statement (not run).

use dataloader_core::{Error, Result, SourceColumn, SourceObject};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::types::{self, Mapping};
use super::MysqlSource;
use crate::dialect::derived;

impl MysqlSource {
    /// (name, DATA_TYPE, COLUMN_TYPE, nullable, precision, scale) of each column: from
    /// `information_schema` for a table, from the prepared statement's column definitions for
    /// a source query (nothing executed; every query column may be NULL).
    pub(super) async fn catalog(
        &self,
        conn: &mut Conn,
        object: &SourceObject,
    ) -> Result<Vec<(String, String, String, bool, Option<u64>, Option<u64>)>> {
        let shown = object.to_string();
        let table = match object {
            SourceObject::Table(table) => table,
            SourceObject::Query { sql, .. } => {
                let statement = conn
                    .prep(format!("SELECT * FROM {}", derived(sql)))
                    .await
                    .map_err(|e| self.query_error(&shown, "describe the source query", e))?;
                let columns = statement.columns().iter().map(types::of_column).collect();
                conn.close(statement)
                    .await
                    .map_err(|e| self.query_error(&shown, "describe the source query", e))?;
                return Ok(columns);
            }
        };
        let rows: Vec<Row> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (table.schema.clone(), table.name.clone()),
            )
            .await
            .map_err(|e| self.query_error(&shown, "describe the table", e))?;
        rows.into_iter()
            .map(|mut r| {
                let text = |r: &mut Row, i: usize| -> String {
                    r.take::<Option<String>, _>(i).flatten().unwrap_or_default()
                };
                let name = text(&mut r, 0);
                let data_type = text(&mut r, 1);
                let column_type = text(&mut r, 2);
                let nullable = text(&mut r, 3) == "YES";
                let precision = r.take::<Option<u64>, _>(4).flatten();
                let scale = r.take::<Option<u64>, _>(5).flatten();
                Ok((name, data_type, column_type, nullable, precision, scale))
            })
            .collect()
    }

    pub(super) async fn mappings(
        &self,
        conn: &mut Conn,
        object: &SourceObject,
        columns: &[SourceColumn],
    ) -> Result<Vec<Mapping>> {
        let shown = object.to_string();
        let catalog = self.catalog(conn, object).await?;
        columns
            .iter()
            .map(|col| {
                let (_, data_type, column_type, _, p, s) = catalog
                    .iter()
                    .find(|c| c.0 == col.name)
                    .ok_or_else(|| Error::ColumnNotFound {
                        table: shown.clone(),
                        column: col.name.clone(),
                        role: "requested",
                        columns: catalog.iter().map(|c| c.0.clone()).collect(),
                    })?;
                types::map(data_type, column_type, *p, *s).ok_or_else(|| Error::UnsupportedType {
                    table: shown.clone(),
                    column: col.name.clone(),
                    native_type: column_type.clone(),
                })
            })
            .collect()
    }
}
