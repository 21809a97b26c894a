//! Oracle source over the `oracle` crate (ODPI-C; Oracle Instant Client is loaded at run time,
//! and a missing one is a clear error saying what to install). The driver is synchronous: each
//! read runs on a blocking thread and feeds the bounded batch channel. Reads run in a `READ
//! ONLY` transaction, Oracle's transaction-level read consistency: the captured watermark and
//! the rows come from one snapshot.

mod catalog;
pub mod connector;
pub mod types;

use async_trait::async_trait;
use dataloader_core::secret::{cause_unless_secret, mask};
use dataloader_core::{
    ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceColumn,
    SourceObject, SourceSchema, Watermark, WatermarkKind,
};

use crate::batch::ColumnBuilder;
use crate::connector::{boxed, Connector};
use crate::dialect::{number_literal, quote_string, SqlDialect};
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, query_columns, select_sql,
    watermark_kind, where_clause, BatchSender,
};
use connector::OracleOptions;
use types::{Mapping, Read};

/// Oracle in the registry (`crate::connectors`); the declaration is in `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(OracleSource::connect(c)));

pub struct OracleSource {
    config: ConnectionConfig,
    password: Option<String>,
    micro_timestamps: bool,
}

pub struct OracleDialect;

impl SqlDialect for OracleDialect {
    fn text(&self, expr: &str) -> String {
        format!("TO_CHAR({expr})")
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        Ok(match value.kind {
            WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value)?,
            WatermarkKind::Date => {
                format!("TO_DATE({}, 'YYYY-MM-DD')", quote_string(&value.value)?)
            }
            WatermarkKind::Timestamp => {
                format!(
                    "TO_TIMESTAMP({}, 'YYYY-MM-DD HH24:MI:SS.FF')",
                    quote_string(&value.value)?
                )
            }
            WatermarkKind::TimestampTz => {
                let utc = chrono::DateTime::from_timestamp_micros(value.timestamp_micros()?)
                    .ok_or_else(|| {
                        Error::config("incremental_value", format!("{value} is out of range"))
                    })?;
                format!(
                    "TO_TIMESTAMP_TZ('{} +00:00', 'YYYY-MM-DD HH24:MI:SS.FF TZH:TZM')",
                    utc.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")
                )
            }
            WatermarkKind::Text => quote_string(&value.value)?,
        })
    }
}

/// How a column's extreme is printed so it reads back exactly.
fn extreme_text(column: &str, m: &Mapping, function: &str) -> String {
    let c = OracleDialect.quote_ident(column);
    match (m.read, &m.data_type) {
        (Read::TimestampUtc, _) => {
            format!(
                "TO_CHAR(SYS_EXTRACT_UTC({function}({c})), 'YYYY-MM-DD HH24:MI:SS.FF6') || '+00'"
            )
        }
        (Read::Timestamp, _) => format!("TO_CHAR({function}({c}), 'YYYY-MM-DD HH24:MI:SS.FF6')"),
        (Read::NumberText, _) => format!("TO_CHAR({function}({c}), 'TM9')"),
        _ => format!("{function}({c})"),
    }
}

fn append(
    b: &mut ColumnBuilder,
    read: Read,
    row: &oracle::Row,
    i: usize,
) -> std::result::Result<(), String> {
    let e = |e: oracle::Error| e.to_string();
    match (read, b) {
        (Read::NumberText, ColumnBuilder::Decimal(b, p, s)) => {
            match row.get::<usize, Option<String>>(i).map_err(e)? {
                None => b.append_null(),
                Some(t) => b.append_value(
                    dataloader_core::decimal::parse_scaled(&t, *p, *s)
                        .map_err(|e| e.to_string())?,
                ),
            }
        }
        (Read::Float, ColumnBuilder::Float32(b)) => {
            b.append_option(row.get::<usize, Option<f32>>(i).map_err(e)?)
        }
        (Read::Double, ColumnBuilder::Float64(b)) => {
            b.append_option(row.get::<usize, Option<f64>>(i).map_err(e)?)
        }
        (Read::Text, ColumnBuilder::Utf8(b)) => {
            b.append_option(row.get::<usize, Option<String>>(i).map_err(e)?)
        }
        (Read::Bytes, ColumnBuilder::Binary(b)) => {
            b.append_option(row.get::<usize, Option<Vec<u8>>>(i).map_err(e)?)
        }
        (Read::Timestamp | Read::TimestampUtc, ColumnBuilder::TimestampMicros(b, _)) => {
            match row
                .get::<usize, Option<oracle::sql_type::Timestamp>>(i)
                .map_err(e)?
            {
                None => b.append_null(),
                Some(t) => b.append_value(types::micros(&t, read == Read::TimestampUtc)?),
            }
        }
        (Read::TimestampText(zoned), ColumnBuilder::Utf8(b)) => {
            match row
                .get::<usize, Option<oracle::sql_type::Timestamp>>(i)
                .map_err(e)?
            {
                None => b.append_null(),
                Some(t) => b.append_value(types::text(&t, zoned)?),
            }
        }
        (r, _) => {
            return Err(format!(
                "internal: reader {r:?} does not fit the column builder"
            ))
        }
    }
    Ok(())
}

/// The driver's error, made actionable when it is the missing Instant Client.
pub fn connect_message(e: &oracle::Error) -> String {
    let text = e.to_string();
    if text.contains("DPI-1047") {
        format!(
            "Oracle Instant Client is not installed (libclntsh.so not found): install Oracle Instant Client \
             Basic or Basic Light (19c or later) and put its folder on LD_LIBRARY_PATH, then try again (driver: {text})"
        )
    } else {
        text
    }
}

impl OracleSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let source = OracleSource {
            config: config.clone(),
            password: config.resolve_password().await?,
            micro_timestamps: OracleOptions::of(config).microsecond_timestamps,
        };
        let probe = source.clone_parts();
        tokio::task::spawn_blocking(move || probe.open().map(|_| ()))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(source)
    }

    fn clone_parts(&self) -> Parts {
        Parts {
            config: self.config.clone(),
            password: self.password.clone(),
        }
    }

    fn mapping(
        &self,
        table: &str,
        column: &str,
        (dt, p, s): &(String, Option<i64>, Option<i64>),
    ) -> Result<Mapping> {
        types::map(dt, *p, *s, self.micro_timestamps).ok_or_else(|| Error::UnsupportedType {
            table: table.to_string(),
            column: column.to_string(),
            native_type: dt.clone(),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&oracle::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let parts = self.clone_parts();
        tokio::task::spawn_blocking(move || {
            let conn = parts.open()?;
            work(&conn)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }
}

/// What a blocking thread needs to open its own connection.
struct Parts {
    config: ConnectionConfig,
    password: Option<String>,
}

impl Parts {
    fn fail(&self, table: &str, step: &'static str, e: oracle::Error) -> Error {
        let password = self.password.as_deref().unwrap_or("");
        Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message: mask(&e.to_string(), password),
            source: cause_unless_secret(e, &[password]),
        }
    }

    fn open(&self) -> Result<oracle::Connection> {
        let c = &self.config;
        let connect_string = OracleOptions::of(c).connect_string.unwrap_or_else(|| {
            format!(
                "//{}:{}/{}",
                c.host.as_deref().unwrap_or("localhost"),
                c.port.unwrap_or(connector::PORT),
                c.database.as_deref().unwrap_or("")
            )
        });
        let conn = oracle::Connector::new(
            c.user.clone().unwrap_or_default(),
            self.password.clone().unwrap_or_default(),
            connect_string,
        )
        .connect()
        .map_err(|e| {
            let password = self.password.as_deref().unwrap_or("");
            let message = mask(&connect_message(&e), password);
            let source = cause_unless_secret(e, &[password]);
            let refused = message.contains("ORA-01017");
            CONNECTOR.connect_error(c, "oracle", refused, message, source)
        })?;
        // UTC so WITH LOCAL TIME ZONE values and SYSTIMESTAMP read as instants.
        conn.execute("ALTER SESSION SET TIME_ZONE = 'UTC'", &[])
            .map_err(|e| self.fail("", "set up the session", e))?;
        Ok(conn)
    }
}

#[async_trait]
impl Source for OracleSource {
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject> {
        Ok(OracleDialect.text_projection(object, columns, as_text))
    }

    async fn server_version(&self) -> Result<String> {
        let parts = self.clone_parts();
        self.blocking(move |conn| {
            let (version, _) = conn
                .server_version()
                .map_err(|e| parts.fail("", "read the server version", e))?;
            Ok(format!("Oracle {version}"))
        })
        .await
    }

    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema> {
        let shown = object.to_string();
        let catalog = self.catalog(object).await?;
        if catalog.is_empty() {
            return Err(Error::SourceTableNotFound {
                connection: self.config.name.clone(),
                table: shown,
            });
        }
        let columns = catalog
            .iter()
            .map(|(name, t, nullable)| {
                Ok(SourceColumn {
                    name: name.clone(),
                    native_type: t.0.clone(),
                    data_type: self.mapping(&shown, name, t)?.data_type,
                    nullable: *nullable,
                })
            })
            .collect::<Result<Vec<_>>>()?;
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
        let (schema, name) = (table.schema.clone(), table.name.clone());
        let parts = self.clone_parts();
        let shown_pk = shown.clone();
        let primary_key = self
            .blocking(move |conn| {
                let rows = conn
                    .query(
                        "SELECT cc.COLUMN_NAME FROM ALL_CONSTRAINTS c JOIN ALL_CONS_COLUMNS cc \
                         ON cc.OWNER = c.OWNER AND cc.CONSTRAINT_NAME = c.CONSTRAINT_NAME \
                         WHERE c.CONSTRAINT_TYPE = 'P' AND c.OWNER = NVL(:1, USER) AND c.TABLE_NAME = :2 ORDER BY cc.POSITION",
                        &[&schema, &name],
                    )
                    .map_err(|e| parts.fail(&shown_pk, "read the primary key", e))?;
                rows.map(|r| {
                    r.and_then(|r| r.get::<usize, String>(0)).map_err(|e| parts.fail(&shown_pk, "read the primary key", e))
                })
                .collect()
            })
            .await?;
        Ok(SourceSchema {
            object: object.clone(),
            columns,
            primary_key,
        })
    }

    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        let shown = object.to_string();
        let d = OracleDialect;
        let from = d.from(object);
        let (sql, kind) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let function = if matches!(probe, Probe::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let catalog = self.catalog(object).await?;
                let t = catalog
                    .iter()
                    .find(|c| &c.0 == column)
                    .map(|c| c.1.clone())
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                let m = self.mapping(&shown, column, &t)?;
                let kind = m
                    .watermark
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                (
                    format!("SELECT {} FROM {from}", extreme_text(column, &m, function)),
                    kind,
                )
            }
            Probe::RowCount => (
                format!("SELECT TO_CHAR(COUNT(*)) FROM {from}"),
                WatermarkKind::Integer,
            ),
            Probe::NullCount(c) => (
                format!(
                    "SELECT TO_CHAR(COUNT(*)) FROM {from} WHERE {} IS NULL",
                    d.quote_ident(c)
                ),
                WatermarkKind::Integer,
            ),
            // The user's check query (one reading statement, see core's check_query), in a
            // read-only transaction; its first value, as text.
            Probe::Query(q) => (
                format!("SELECT TO_CHAR(({q})) FROM DUAL"),
                WatermarkKind::Text,
            ),
        };
        let parts = self.clone_parts();
        // The user's SQL — a check query, or a source query under the probe — runs in a
        // read-only transaction.
        let check = crate::read::runs_user_sql(object, probe);
        let value = self
            .blocking(move |conn| {
                if check {
                    conn.execute("SET TRANSACTION READ ONLY", &[])
                        .map_err(|e| parts.fail(&shown, "begin the probe transaction", e))?;
                }
                let value = conn
                    .query_row(&sql, &[])
                    .and_then(|row| row.get::<usize, Option<String>>(0))
                    .map_err(|e| parts.fail(&shown, "probe the table", e));
                if check {
                    let _ = conn.rollback();
                }
                value
            })
            .await?;
        value.map(|v| Watermark::new(kind, v)).transpose()
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let d = OracleDialect;
        let catalog = self.catalog(&request.object).await?;
        let mappings = request
            .columns
            .iter()
            .map(|c| {
                let t = catalog
                    .iter()
                    .find(|e| e.0 == c.name)
                    .map(|e| e.1.clone())
                    .ok_or_else(|| Error::ColumnNotFound {
                        table: shown.clone(),
                        column: c.name.clone(),
                        role: "requested",
                        columns: catalog.iter().map(|e| e.0.clone()).collect(),
                    })?;
                self.mapping(&shown, &c.name, &t)
            })
            .collect::<Result<Vec<_>>>()?;
        let from = d.from(&request.object);
        let max_sql = match (
            &request.watermark,
            watermark_kind(&request, &shown, |i| mappings[i].watermark)?,
        ) {
            (Some(w), Some(kind)) => {
                let idx = column_index(&request.columns, &w.column, &shown, "incremental")?;
                Some((
                    format!(
                        "SELECT {} FROM {from}{}",
                        extreme_text(&w.column, &mappings[idx], "MAX"),
                        where_clause(&d, request.max_filter().as_ref())?
                    ),
                    kind,
                ))
            }
            _ => None,
        };
        let schema = batch_schema(&request.columns);
        let (mut sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<Option<Watermark>>>();
        let parts = self.clone_parts();
        let columns = request.columns.clone();
        let reads: Vec<Read> = mappings.iter().map(|m| m.read).collect();
        let request_for_thread = request.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match parts.open() {
                Ok(c) => c,
                Err(e) => return drop(started_tx.send(Err(e))),
            };
            if let Err(e) = conn.execute("SET TRANSACTION READ ONLY", &[]) {
                return drop(started_tx.send(Err(parts.fail(
                    &shown,
                    "begin the read transaction",
                    e,
                ))));
            }
            let mut captured = None;
            if let Some((sql, kind)) = max_sql {
                let max = conn
                    .query_row(&sql, &[])
                    .and_then(|r| r.get::<usize, Option<String>>(0))
                    .map_err(|e| parts.fail(&shown, "capture the watermark", e))
                    .and_then(|v| v.map(|v| Watermark::new(kind, v)).transpose());
                match max {
                    Ok(m) => captured = m,
                    Err(e) => return drop(started_tx.send(Err(e))),
                }
            }
            let Some(filter) = request_for_thread.effective_filter(captured.as_ref()) else {
                let _ = started_tx.send(Ok(captured));
                return;
            };
            let sql = match select_sql(&OracleDialect, &columns, |_, q| q, &from, filter.as_ref()) {
                Ok(sql) => sql,
                Err(e) => return drop(started_tx.send(Err(e))),
            };
            let rows = match conn.query(&sql, &[]) {
                Ok(rows) => rows,
                Err(e) => {
                    return drop(started_tx.send(Err(parts.fail(&shown, "read the rows", e))))
                }
            };
            if started_tx.send(Ok(captured)).is_err() {
                return;
            }
            for row in rows {
                let row = match row {
                    Ok(r) => r,
                    Err(e) => return sender.fail_blocking(parts.fail(&shown, "read the rows", e)),
                };
                for (i, read) in reads.iter().enumerate() {
                    if let Err(message) = append(sender.column(i), *read, &row, i) {
                        return sender.value_error_blocking(i, message);
                    }
                }
                if !sender.end_row_blocking() {
                    return;
                }
            }
            sender.finish_blocking();
            let _ = conn.commit();
        });
        let captured_max = started_rx
            .await
            .map_err(|_| Error::Internal("the oracle reader stopped before starting".into()))??;
        if request.effective_filter(captured_max.as_ref()).is_none() {
            return Ok(empty_output(schema, captured_max));
        }
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
    use crate::dialect::comparisons;

    #[test]
    fn renders_oracle_sql() {
        let p = comparisons(&[
            (
                ">",
                "UPDATED_AT",
                WatermarkKind::Timestamp,
                "2024-01-02 03:04:05.123456",
            ),
            (
                "<=",
                "TS",
                WatermarkKind::TimestampTz,
                "2024-01-02 03:04:05+02",
            ),
            (">", "NAME", WatermarkKind::Text, "O'Hara"),
        ]);
        assert_eq!(
            OracleDialect.render(&p).unwrap(),
            "(\"UPDATED_AT\" > TO_TIMESTAMP('2024-01-02 03:04:05.123456', 'YYYY-MM-DD HH24:MI:SS.FF')) \
             AND (\"TS\" <= TO_TIMESTAMP_TZ('2024-01-02 01:04:05.000000 +00:00', 'YYYY-MM-DD HH24:MI:SS.FF TZH:TZM')) \
             AND (\"NAME\" > 'O''Hara')"
        );
    }

    /// This machine has no Oracle Instant Client: connecting must say what to install.
    #[tokio::test]
    async fn a_missing_instant_client_says_what_to_install() {
        if std::env::var("DATALOADER_TEST_ORACLE_URL").is_ok() {
            return; // an Instant Client is there
        }
        let config = ConnectionConfig {
            name: "ora".into(),
            db_type: "oracle".parse().unwrap(),
            host: Some("127.0.0.1".into()),
            port: Some(1521),
            database: Some("FREEPDB1".into()),
            user: Some("loader".into()),
            password: None,
            options: Default::default(),
            max_connections: None,
        };
        let message = match OracleSource::connect(&config).await {
            Ok(_) => panic!("no Oracle client or server here"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains("Oracle Instant Client is not installed"),
            "{message}"
        );
        assert!(message.contains("LD_LIBRARY_PATH"), "{message}");
    }
}
