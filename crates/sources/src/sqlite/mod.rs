//! SQLite source over `sqlx`: the quickstart's demo database and small local files. Reads run
//! in one transaction, so the captured watermark and the rows come from one snapshot.

pub mod connector;
pub mod types;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime};
use dataloader_core::{
    ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceColumn,
    SourceObject, SourceSchema, Watermark, WatermarkKind,
};
use futures::StreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use crate::batch::ColumnBuilder;
use crate::connector::{boxed, Connector};
use crate::dialect::{derived, number_literal, quote_string, SqlDialect};
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, query_columns, select_sql,
    watermark_kind, where_clause, BatchSender,
};
use types::Decode;

/// SQLite in the registry (`crate::connectors`); the declaration is in `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(SqliteSource::connect(c)));

pub struct SqliteSource {
    name: String,
    path: String,
    pool: SqlitePool,
}

pub struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn text(&self, expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        match value.kind {
            WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value),
            // Dates and times are text in SQLite; ISO text sorts in time order.
            _ => quote_string(&value.value),
        }
    }
}

impl SqliteSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let path = config.database.clone().unwrap_or_default();
        if !std::path::Path::new(&path).exists() {
            return Err(Error::Connect {
                connection: config.name.clone(),
                db_type: "sqlite".into(),
                address: path,
                message: "no such file".into(),
                source: None,
            });
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| Error::config("database", e.to_string()))?
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| Error::Connect {
                connection: config.name.clone(),
                db_type: "sqlite".into(),
                address: path.clone(),
                message: e.to_string(),
                source: Some(e.into()),
            })?;
        Ok(SqliteSource {
            name: config.name.clone(),
            path,
            pool,
        })
    }

    fn query_error(
        &self,
        table: &str,
        step: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::SourceQuery {
            connection: self.name.clone(),
            table: table.to_string(),
            step,
            message: e.to_string(),
            source: Some(e.into()),
        }
    }

    /// (name, declared type, not null, position in the primary key) of each column.
    async fn columns(&self, object: &SourceObject) -> Result<Vec<(String, String, bool, i64)>> {
        let shown = object.to_string();
        let table = match object {
            SourceObject::Table(table) => table,
            SourceObject::Query { sql, .. } => return self.query_columns(sql, &shown).await,
        };
        let rows = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1, COALESCE($2, 'main')) ORDER BY cid",
        )
        .bind(&table.name)
        .bind(&table.schema)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(&shown, "describe the table", e))?;
        if rows.is_empty() {
            return Err(Error::SourceTableNotFound {
                connection: self.name.clone(),
                table: shown,
            });
        }
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)
                        .map_err(|e| self.query_error(&shown, "describe the table", e))?,
                    r.try_get::<String, _>(1)
                        .map_err(|e| self.query_error(&shown, "describe the table", e))?,
                    r.try_get::<bool, _>(2)
                        .map_err(|e| self.query_error(&shown, "describe the table", e))?,
                    r.try_get::<i64, _>(3)
                        .map_err(|e| self.query_error(&shown, "describe the table", e))?,
                ))
            })
            .collect()
    }
}

impl SqliteSource {
    /// A source query's columns, from a temporary view over it: SQLite gives a view's column
    /// the declared type of the table column it reads, and a computed one none. The view lives
    /// in the connection's own `temp` schema, so the database file is not written.
    async fn query_columns(
        &self,
        sql: &str,
        shown: &str,
    ) -> Result<Vec<(String, String, bool, i64)>> {
        static VIEWS: AtomicU64 = AtomicU64::new(0);
        let view = format!(
            "dataloader_source_query_{}",
            VIEWS.fetch_add(1, Ordering::Relaxed)
        );
        let step = "describe the source query";
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.query_error(shown, step, e))?;
        let create = format!(
            "CREATE TEMP VIEW \"{view}\" AS SELECT * FROM {}",
            derived(sql)
        );
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut *conn)
            .await
            .map_err(|e| self.query_error(shown, step, e))?;
        let rows = sqlx::query("SELECT name, type FROM pragma_table_info($1, 'temp') ORDER BY cid")
            .bind(&view)
            .fetch_all(&mut *conn)
            .await;
        let drop = format!("DROP VIEW temp.\"{view}\"");
        if sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut *conn)
            .await
            .is_err()
        {
            // The view goes with the connection.
            conn.detach();
        }
        rows.map_err(|e| self.query_error(shown, step, e))?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)
                        .map_err(|e| self.query_error(shown, step, e))?,
                    r.try_get::<Option<String>, _>(1)
                        .map_err(|e| self.query_error(shown, step, e))?
                        .unwrap_or_default(),
                    false,
                    0,
                ))
            })
            .collect()
    }
}

fn append(
    builder: &mut ColumnBuilder,
    decode: Decode,
    row: &SqliteRow,
    i: usize,
) -> std::result::Result<(), String> {
    let text = |row: &SqliteRow| {
        row.try_get::<Option<String>, _>(i)
            .map_err(|e| e.to_string())
    };
    match (decode, builder) {
        (Decode::Integer, ColumnBuilder::Int64(b)) => b.append_option(
            row.try_get::<Option<i64>, _>(i)
                .map_err(|e| e.to_string())?,
        ),
        (Decode::Boolean, ColumnBuilder::Boolean(b)) => b.append_option(
            row.try_get::<Option<i64>, _>(i)
                .map_err(|e| e.to_string())?
                .map(|v| v != 0),
        ),
        (Decode::Real, ColumnBuilder::Float64(b)) => b.append_option(
            row.try_get::<Option<f64>, _>(i)
                .map_err(|e| e.to_string())?,
        ),
        (Decode::Text, ColumnBuilder::Utf8(b)) => b.append_option(text(row)?),
        (Decode::Blob, ColumnBuilder::Binary(b)) => b.append_option(
            row.try_get::<Option<Vec<u8>>, _>(i)
                .map_err(|e| e.to_string())?,
        ),
        (Decode::DecimalText, ColumnBuilder::Decimal(b, p, s)) => match text(row)? {
            None => b.append_null(),
            Some(t) => b.append_value(
                dataloader_core::decimal::parse_scaled(&t, *p, *s).map_err(|e| e.to_string())?,
            ),
        },
        (Decode::DateText, ColumnBuilder::Date32(b)) => match text(row)? {
            None => b.append_null(),
            Some(t) => {
                let d = NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                    .map_err(|e| format!("\"{t}\" is not a YYYY-MM-DD date: {e}"))?;
                b.append_value((d - NaiveDate::default()).num_days() as i32)
            }
        },
        (Decode::TimestampText, ColumnBuilder::TimestampMicros(b, _)) => match text(row)? {
            None => b.append_null(),
            Some(t) => {
                let ts = NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%dT%H:%M:%S%.f"))
                    .map_err(|e| format!("\"{t}\" is not a YYYY-MM-DD HH:MM:SS timestamp: {e}"))?;
                b.append_value(ts.and_utc().timestamp_micros())
            }
        },
        (d, _) => {
            return Err(format!(
                "internal: decoder {d:?} does not fit the column builder"
            ))
        }
    }
    Ok(())
}

#[async_trait]
impl Source for SqliteSource {
    fn text_projection(
        &self,
        _object: &SourceObject,
        _columns: &[String],
        _as_text: &[&str],
    ) -> Result<SourceObject> {
        // A query's column is typed by its declared type only, and a cast has none.
        Err(Error::config(
            "column_types",
            "SQLite types a column by its declared type, so it cannot convert one to text for a load: declare the column TEXT, or leave it out of column_types",
        ))
    }

    async fn server_version(&self) -> Result<String> {
        let v: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.query_error("", "read the version", e))?;
        Ok(format!("SQLite {v} ({})", self.path))
    }

    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema> {
        let shown = object.to_string();
        let cols = self.columns(object).await?;
        let mut columns = Vec::with_capacity(cols.len());
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (name, declared, not_null, pk_pos) in cols {
            let mapping = types::map(&declared).ok_or_else(|| match object {
                // A cast does not help here: SQLite types a column by its declaration only.
                SourceObject::Query { .. } if declared.is_empty() => Error::config(
                    "source_query",
                    format!("column \"{name}\" of {shown} is computed, and SQLite gives a computed column no type: select table columns as they are (their declared types map them)"),
                ),
                _ => Error::UnsupportedType {
                    table: shown.clone(),
                    column: name.clone(),
                    native_type: if declared.is_empty() {
                        "(no declared type)".into()
                    } else {
                        declared.clone()
                    },
                },
            })?;
            if pk_pos > 0 {
                pk.push((pk_pos, name.clone()));
            }
            columns.push(SourceColumn {
                name,
                native_type: declared,
                data_type: mapping.data_type,
                nullable: !not_null,
            });
        }
        pk.sort();
        if matches!(object, SourceObject::Query { .. }) {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            query_columns(object, &names)?;
        }
        Ok(SourceSchema {
            object: object.clone(),
            columns,
            primary_key: pk.into_iter().map(|(_, n)| n).collect(),
        })
    }

    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        let shown = object.to_string();
        let dialect = SqliteDialect;
        let from = dialect.from(object);
        let (sql, kind) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let function = if matches!(probe, Probe::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let kind = types::map(&schema.columns[idx].native_type)
                    .and_then(|m| m.watermark)
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                (
                    format!(
                        "SELECT CAST({function}({}) AS TEXT) FROM {from}",
                        dialect.quote_ident(column)
                    ),
                    kind,
                )
            }
            Probe::RowCount => (
                format!("SELECT CAST(COUNT(*) AS TEXT) FROM {from}"),
                WatermarkKind::Integer,
            ),
            Probe::NullCount(c) => (
                format!(
                    "SELECT CAST(COUNT(*) AS TEXT) FROM {from} WHERE {} IS NULL",
                    dialect.quote_ident(c)
                ),
                WatermarkKind::Integer,
            ),
            // The user's check query (one reading statement, see core's check_query), on a
            // `query_only` connection; its first value, as text.
            Probe::Query(q) => (format!("SELECT CAST(({q}) AS TEXT)"), WatermarkKind::Text),
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.query_error(&shown, "probe the table", e))?;
        // The user's SQL — a check query, or a source query under the probe — runs on a
        // connection that refuses to write (`query_only`).
        let check = crate::read::runs_user_sql(object, probe);
        if check {
            sqlx::query("PRAGMA query_only = ON")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.query_error(&shown, "begin the check", e))?;
        }
        let value: std::result::Result<Option<Option<String>>, _> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&mut *conn)
                .await;
        if check {
            // The connection goes back to the pool: it must write again for the next user.
            if let Err(e) = sqlx::query("PRAGMA query_only = OFF")
                .execute(&mut *conn)
                .await
            {
                conn.detach();
                tracing::warn!(error = %e, "a check connection could not leave query_only: closed");
            }
        }
        let value = value
            .map_err(|e| self.query_error(&shown, "probe the table", e))?
            .flatten();
        value.map(|v| Watermark::new(kind, v)).transpose()
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let dialect = SqliteDialect;
        let mappings = request
            .columns
            .iter()
            .map(|c| {
                types::map(&c.native_type).ok_or_else(|| Error::UnsupportedType {
                    table: shown.clone(),
                    column: c.name.clone(),
                    native_type: c.native_type.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let from = dialect.from(&request.object);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error(&shown, "begin the read transaction", e))?;
        let mut captured_max = None;
        if let (Some(w), Some(kind)) = (
            &request.watermark,
            watermark_kind(&request, &shown, |i| mappings[i].watermark)?,
        ) {
            let sql = format!(
                "SELECT CAST(MAX({}) AS TEXT) FROM {from}{}",
                dialect.quote_ident(&w.column),
                where_clause(&dialect, request.max_filter().as_ref())?
            );
            let max: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.query_error(&shown, "capture the watermark", e))?;
            captured_max = max.map(|m| Watermark::new(kind, m)).transpose()?;
        }
        let schema = batch_schema(&request.columns);
        let Some(filter) = request.effective_filter(captured_max.as_ref()) else {
            return Ok(empty_output(schema, captured_max));
        };
        let sql = select_sql(
            &dialect,
            &request.columns,
            |i, q| match mappings[i].decode {
                Decode::DecimalText => format!("CAST({q} AS TEXT)"),
                _ => q,
            },
            &from,
            filter.as_ref(),
        )?;
        let (mut sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        let decodes: Vec<Decode> = mappings.iter().map(|m| m.decode).collect();
        let connection = self.name.clone();
        tokio::spawn(async move {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
            while let Some(row) = rows.next().await {
                let row = match row {
                    Ok(r) => r,
                    Err(e) => {
                        return sender
                            .fail(Error::SourceQuery {
                                connection: connection.clone(),
                                table: shown.clone(),
                                step: "read the rows",
                                message: e.to_string(),
                                source: Some(e.into()),
                            })
                            .await
                    }
                };
                for (i, decode) in decodes.iter().enumerate() {
                    if let Err(message) = append(sender.column(i), *decode, &row, i) {
                        return sender.value_error(i, message).await;
                    }
                }
                if !sender.end_row().await {
                    return;
                }
            }
            sender.finish().await;
        });
        Ok(ReadOutput {
            schema,
            batches,
            captured_max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, TimeUnit};
    use dataloader_core::{Predicate, SourceTable};

    /// A source query over a SQLite file: typed by the declared types of the table columns it
    /// reads, probed and filtered as a derived table; a computed column is refused by name.
    #[tokio::test]
    async fn a_source_query_takes_the_declared_types_of_its_tables() {
        let path = std::env::temp_dir().join(format!("dl_sqlite_query_{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        for sql in [
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount DECIMAL(10,2), status TEXT, updated_at DATETIME)",
            "INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo')",
            "INSERT INTO orders VALUES (1, 1, 1.50, 'open', '2024-01-01 00:00:01'), (2, 2, 2.50, 'cancelled', '2024-01-01 00:00:02'), (3, 2, 3.50, 'open', '2024-01-01 00:00:03')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let config = ConnectionConfig {
            name: "lite".into(),
            db_type: "sqlite".parse().unwrap(),
            host: None,
            port: None,
            database: Some(path.display().to_string()),
            user: None,
            password: None,
            options: Default::default(),
            max_connections: None,
        };
        let source = SqliteSource::connect(&config).await.unwrap();
        let query = |sql: &str| SourceObject::Query {
            sql: sql.into(),
            label: SourceTable::parse("orders_named").unwrap(),
        };
        let object = query(
            "SELECT o.id, c.name AS customer, o.amount, o.updated_at FROM orders o \
             JOIN customers c ON c.id = o.customer_id WHERE o.status <> 'cancelled' -- open only",
        );
        let schema = source.describe(&object).await.unwrap();
        let types: Vec<&DataType> = schema.columns.iter().map(|c| &c.data_type).collect();
        assert_eq!(
            types,
            [
                &DataType::Int64,
                &DataType::Utf8,
                &DataType::Decimal128(10, 2),
                &DataType::Timestamp(TimeUnit::Microsecond, None)
            ]
        );
        let max = source
            .probe(&object, &schema, &Probe::Max("updated_at".into()))
            .await
            .unwrap();
        assert_eq!(max.unwrap().value, "2024-01-01 00:00:03");
        let count = source
            .probe(&object, &schema, &Probe::RowCount)
            .await
            .unwrap();
        assert_eq!(count.unwrap().value, "2", "the WHERE is the query's");
        let output = source
            .read(ReadRequest {
                object: object.clone(),
                columns: schema.columns.clone(),
                filter: Some(Predicate::Gt(
                    "id".into(),
                    Watermark::new(WatermarkKind::Integer, "1").unwrap(),
                )),
                watermark: None,
                batch_size: 10,
            })
            .await
            .unwrap();
        let batches: Vec<_> = output.batches.collect::<Vec<_>>().await;
        let rows: usize = batches.iter().map(|b| b.as_ref().unwrap().num_rows()).sum();
        assert_eq!(rows, 1, "order 3: past the filter and open");

        let computed = source
            .describe(&query("SELECT id, amount * 2 AS doubled FROM orders"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            computed.starts_with(
                "source_query: column \"doubled\" of orders_named (source query) is computed"
            ),
            "{computed}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
