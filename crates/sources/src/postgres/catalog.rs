//! What PostgreSQL says about the columns a load reads: a table's, from the catalog, or a
//! source query's, from the server's description of its prepared statement (not run).

use dataloader_core::{Error, Result, SourceColumn, SourceObject, SourceSchema};
use tokio_postgres::Client;

use super::types::{self, Mapping, PgType};
use super::PostgresSource;
use crate::dialect::derived;
use crate::read::query_columns;

impl PostgresSource {
    /// The columns of a table from the catalog, or of a source query as the server describes
    /// its prepared statement (the types and modifiers of the result, nothing executed).
    async fn columns(&self, client: &Client, object: &SourceObject) -> Result<Vec<PgColumn>> {
        let shown = object.to_string();
        let table = match object {
            SourceObject::Table(table) => table,
            SourceObject::Query { sql, .. } => {
                return self.query_columns(client, sql, &shown).await
            }
        };
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, \
                 t.typtype::text, t.typcategory::text, et.typname::text, a.atttypmod, a.attnotnull \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
                 WHERE n.nspname = COALESCE($1, current_schema()) AND c.relname = $2 \
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(|e| self.query_error(&shown, "describe the table", e))?;
        Ok(rows
            .iter()
            .map(|row| PgColumn {
                name: row.get(0),
                native: row.get(1),
                typname: row.get(2),
                typtype: row.get(3),
                category: row.get(4),
                element: row.get(5),
                typmod: row.get(6),
                not_null: row.get(7),
            })
            .collect())
    }

    /// A source query's columns: its prepared statement's result description (a domain comes
    /// as its base type), with each type's catalog facts. Every column may be NULL: an outer
    /// join can make any of them so.
    async fn query_columns(
        &self,
        client: &Client,
        sql: &str,
        shown: &str,
    ) -> Result<Vec<PgColumn>> {
        let statement = client
            .prepare(&format!("SELECT * FROM {}", derived(sql)))
            .await
            .map_err(|e| self.query_error(shown, "describe the source query", e))?;
        let oids: Vec<u32> = statement
            .columns()
            .iter()
            .map(|c| c.type_().oid())
            .collect();
        let typmods: Vec<i32> = statement
            .columns()
            .iter()
            .map(|c| c.type_modifier())
            .collect();
        let types = client
            .query(
                "SELECT format_type(c.oid, c.typmod), t.typname::text, t.typtype::text, \
                 t.typcategory::text, et.typname::text \
                 FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS c(oid, typmod, n) \
                 JOIN pg_type t ON t.oid = c.oid \
                 LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
                 ORDER BY c.n",
                &[&oids, &typmods],
            )
            .await
            .map_err(|e| self.query_error(shown, "describe the source query", e))?;
        if types.len() != oids.len() {
            return Err(Error::Internal(format!(
                "{shown}: {} of the query's {} column types are in pg_type",
                types.len(),
                oids.len()
            )));
        }
        Ok(statement
            .columns()
            .iter()
            .zip(&types)
            .map(|(column, t)| PgColumn {
                name: column.name().to_string(),
                native: t.get(0),
                typname: t.get(1),
                typtype: t.get(2),
                category: t.get(3),
                element: t.get(4),
                typmod: column.type_modifier(),
                not_null: false,
            })
            .collect())
    }

    /// The columns' names, unmapped types included; none is an error, as in `describe`.
    pub(super) async fn column_names_of(
        &self,
        client: &Client,
        object: &SourceObject,
    ) -> Result<Vec<String>> {
        let found = self.columns(client, object).await?;
        if found.is_empty() {
            return Err(Error::SourceTableNotFound {
                connection: self.config.name.clone(),
                table: object.to_string(),
            });
        }
        Ok(found.into_iter().map(|c| c.name).collect())
    }

    pub(super) async fn describe_object(
        &self,
        client: &Client,
        object: &SourceObject,
    ) -> Result<SourceSchema> {
        let shown = object.to_string();
        let found = self.columns(client, object).await?;
        if found.is_empty() {
            return Err(match object {
                SourceObject::Table(_) => Error::SourceTableNotFound {
                    connection: self.config.name.clone(),
                    table: shown,
                },
                SourceObject::Query { .. } => {
                    Error::config("source_query", format!("{shown} returns no columns"))
                }
            });
        }
        let mut columns = Vec::with_capacity(found.len());
        for column in found {
            let mapping = types::map(&column.pg_type()).ok_or_else(|| Error::UnsupportedType {
                table: shown.clone(),
                column: column.name.clone(),
                native_type: column.native.clone(),
            })?;
            columns.push(SourceColumn {
                name: column.name,
                native_type: column.native,
                data_type: mapping.data_type,
                nullable: !column.not_null,
            });
        }
        let table = match object {
            SourceObject::Table(table) => table,
            // A query declares no key: the table's configuration names it.
            SourceObject::Query { .. } => {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                query_columns(object, &names)?;
                return Ok(SourceSchema {
                    object: object.clone(),
                    columns,
                    primary_key: vec![],
                });
            }
        };
        let pk_rows = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey) \
                 WHERE i.indisprimary AND n.nspname = COALESCE($1, current_schema()) AND c.relname = $2 \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(|e| self.query_error(&shown, "read the primary key", e))?;
        Ok(SourceSchema {
            object: object.clone(),
            columns,
            primary_key: pk_rows.iter().map(|r| r.get(0)).collect(),
        })
    }

    /// The mapping of each requested column, re-derived from the catalog (or the query's
    /// description) so the read cannot disagree with `describe`.
    pub(super) async fn mappings(
        &self,
        client: &Client,
        object: &SourceObject,
        columns: &[SourceColumn],
    ) -> Result<Vec<Mapping>> {
        let shown = object.to_string();
        let found = self.columns(client, object).await?;
        columns
            .iter()
            .map(|col| {
                let column = found.iter().find(|c| c.name == col.name).ok_or_else(|| {
                    Error::ColumnNotFound {
                        table: shown.clone(),
                        column: col.name.clone(),
                        role: "requested",
                        columns: found.iter().map(|c| c.name.clone()).collect(),
                    }
                })?;
                types::map(&column.pg_type()).ok_or_else(|| Error::UnsupportedType {
                    table: shown.clone(),
                    column: col.name.clone(),
                    native_type: col.native_type.clone(),
                })
            })
            .collect()
    }
}

/// One column, as the catalog or a query's description knows it.
struct PgColumn {
    name: String,
    /// `format_type`'s spelling, for messages: `numeric(12,2)`.
    native: String,
    typname: String,
    typtype: String,
    category: String,
    element: Option<String>,
    typmod: i32,
    not_null: bool,
}

impl PgColumn {
    fn pg_type(&self) -> PgType<'_> {
        PgType {
            name: &self.typname,
            kind: &self.typtype,
            category: &self.category,
            element: self.element.as_deref(),
            typmod: self.typmod,
        }
    }
}
