//! MySQL and MariaDB source over `mysql_async`. Reads run in a `WITH CONSISTENT SNAPSHOT,
//! READ ONLY` transaction (InnoDB's REPEATABLE READ), so the captured watermark and the rows
//! come from one snapshot; values come in the binary protocol, typed.

mod catalog;
pub mod connector;
pub mod types;

use async_trait::async_trait;
use chrono::NaiveDate;
use dataloader_core::secret::{cause_unless_secret, mask};
use dataloader_core::tls::SslMode;
use dataloader_core::{
    Cause, ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceColumn,
    SourceObject, SourceSchema, Watermark, WatermarkKind,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};

use crate::batch::ColumnBuilder;
use crate::connector::{boxed, Connector};
use crate::dialect::{number_literal, quote_string, SqlDialect};
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, query_columns, select_sql,
    utc_watermark, watermark_kind, where_clause, BatchSender,
};
use connector::MysqlOptions;
use types::Decode;

/// MySQL and MariaDB in the registry (`crate::connectors`); the declaration is in
/// `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(MysqlSource::connect(c)));

pub struct MysqlSource {
    config: ConnectionConfig,
    password: Option<String>,
    options: MysqlOptions,
    /// `sslmode=prefer` found a server without TLS: later connections skip asking.
    plain: std::sync::atomic::AtomicBool,
}

pub struct MysqlDialect;

impl SqlDialect for MysqlDialect {
    fn text(&self, expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }

    fn quote_ident(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        Ok(match value.kind {
            WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value)?,
            WatermarkKind::Date => format!("DATE {}", quote_string(&value.value)?),
            WatermarkKind::Timestamp => format!("TIMESTAMP {}", quote_string(&value.value)?),
            // The session runs in UTC, so a timestamp column compares with the UTC instant.
            WatermarkKind::TimestampTz => {
                let utc = chrono::DateTime::from_timestamp_micros(value.timestamp_micros()?)
                    .ok_or_else(|| {
                        Error::config("incremental_value", format!("{value} is out of range"))
                    })?;
                format!(
                    "TIMESTAMP '{}'",
                    utc.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")
                )
            }
            WatermarkKind::Text => quote_string(&value.value)?,
        })
    }
}

fn mysql_message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("{} (MySQL error {})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Appends one binary-protocol value; the caller adds table and column to an error.
fn append(
    builder: &mut ColumnBuilder,
    decode: Decode,
    value: &Value,
) -> std::result::Result<(), String> {
    if matches!(value, Value::NULL) {
        builder.append_null();
        return Ok(());
    }
    let int = |v: &Value| -> std::result::Result<i128, String> {
        match v {
            Value::Int(i) => Ok(i128::from(*i)),
            Value::UInt(u) => Ok(i128::from(*u)),
            Value::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| "not an integer".to_string()),
            other => Err(format!("unexpected value {other:?} for an integer")),
        }
    };
    let bytes = |v: &Value| -> std::result::Result<Vec<u8>, String> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(format!("unexpected value {other:?}")),
        }
    };
    let out_of_range = |what: &str| format!("{what} is out of range for its Arrow type");
    match (decode, builder) {
        (Decode::Int16, ColumnBuilder::Int16(b)) => {
            b.append_value(i16::try_from(int(value)?).map_err(|_| out_of_range("value"))?)
        }
        (Decode::Int32, ColumnBuilder::Int32(b)) => {
            b.append_value(i32::try_from(int(value)?).map_err(|_| out_of_range("value"))?)
        }
        (Decode::Int64, ColumnBuilder::Int64(b)) => {
            b.append_value(i64::try_from(int(value)?).map_err(|_| out_of_range("value"))?)
        }
        (Decode::UInt64AsDecimal, ColumnBuilder::Decimal(b, ..)) => b.append_value(int(value)?),
        (Decode::Float, ColumnBuilder::Float32(b)) => match value {
            Value::Float(f) => b.append_value(*f),
            Value::Double(d) => b.append_value(*d as f32),
            other => return Err(format!("unexpected value {other:?} for a float")),
        },
        (Decode::Double, ColumnBuilder::Float64(b)) => match value {
            Value::Double(d) => b.append_value(*d),
            Value::Float(f) => b.append_value(f64::from(*f)),
            other => return Err(format!("unexpected value {other:?} for a double")),
        },
        (Decode::DecimalText, ColumnBuilder::Decimal(b, p, s)) => {
            let text = String::from_utf8(bytes(value)?).map_err(|e| e.to_string())?;
            b.append_value(
                dataloader_core::decimal::parse_scaled(&text, *p, *s).map_err(|e| e.to_string())?,
            )
        }
        (Decode::Bit1, ColumnBuilder::Boolean(b)) => {
            b.append_value(bytes(value)?.iter().any(|x| *x != 0))
        }
        (Decode::BitsAsInt, ColumnBuilder::Int64(b)) => {
            let raw = bytes(value)?;
            if raw.len() > 8 {
                return Err(out_of_range("bit value"));
            }
            let v = raw.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
            b.append_value(i64::try_from(v).map_err(|_| out_of_range("bit value"))?)
        }
        (Decode::Text, ColumnBuilder::Utf8(b)) => b.append_value(
            String::from_utf8(bytes(value)?).map_err(|e| format!("invalid UTF-8: {e}"))?,
        ),
        (Decode::Bytes, ColumnBuilder::Binary(b)) => b.append_value(bytes(value)?),
        (Decode::Date, ColumnBuilder::Date32(b)) => match value {
            Value::Date(0, 0, 0, ..) => b.append_null(),
            Value::Date(y, m, d, ..) => {
                let date = NaiveDate::from_ymd_opt(i32::from(*y), u32::from(*m), u32::from(*d))
                    .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} is not a date"))?;
                b.append_value((date - NaiveDate::default()).num_days() as i32)
            }
            other => return Err(format!("unexpected value {other:?} for a date")),
        },
        (Decode::DateTime, ColumnBuilder::TimestampMicros(b, _)) => match value {
            Value::Date(0, 0, 0, ..) => b.append_null(),
            Value::Date(y, mo, d, h, mi, s, us) => {
                let t = NaiveDate::from_ymd_opt(i32::from(*y), u32::from(*mo), u32::from(*d))
                    .and_then(|d| {
                        d.and_hms_micro_opt(u32::from(*h), u32::from(*mi), u32::from(*s), *us)
                    })
                    .ok_or_else(|| {
                        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} is not a timestamp")
                    })?;
                b.append_value(t.and_utc().timestamp_micros())
            }
            other => return Err(format!("unexpected value {other:?} for a timestamp")),
        },
        (Decode::Time, ColumnBuilder::Utf8(b)) => match value {
            Value::Time(neg, days, h, m, s, us) => {
                let hours = u64::from(*days) * 24 + u64::from(*h);
                let frac = if *us > 0 {
                    format!(".{us:06}")
                } else {
                    String::new()
                };
                b.append_value(format!(
                    "{}{hours:02}:{m:02}:{s:02}{frac}",
                    if *neg { "-" } else { "" }
                ))
            }
            Value::Bytes(t) => b.append_value(String::from_utf8_lossy(t)),
            other => return Err(format!("unexpected value {other:?} for a time")),
        },
        (d, _) => {
            return Err(format!(
                "internal: decoder {d:?} does not fit the column builder"
            ))
        }
    }
    Ok(())
}

impl MysqlSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let source = MysqlSource {
            config: config.clone(),
            password: config.resolve_password().await?,
            options: MysqlOptions::of(config)?,
            plain: Default::default(),
        };
        source.conn().await?;
        Ok(source)
    }

    fn message(&self, e: &mysql_async::Error) -> String {
        mask(&mysql_message(e), self.password.as_deref().unwrap_or(""))
    }

    fn cause(&self, e: mysql_async::Error) -> Option<Cause> {
        cause_unless_secret(e, &[self.password.as_deref().unwrap_or("")])
    }

    fn query_error(&self, table: &str, step: &'static str, e: mysql_async::Error) -> Error {
        Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message: self.message(&e),
            source: self.cause(e),
        }
    }

    async fn conn(&self) -> Result<Conn> {
        let c = &self.config;
        let mut opts = OptsBuilder::default()
            .ip_or_hostname(c.host.clone().unwrap_or_else(|| "localhost".into()))
            .tcp_port(c.port.unwrap_or(connector::PORT))
            .user(c.user.clone())
            .pass(self.password.clone())
            .db_name(c.database.clone())
            .prefer_socket(false);
        use std::sync::atomic::Ordering::Relaxed;
        let prefer = self.options.mode == SslMode::Prefer;
        let ssl = self.options.ssl_opts().await?;
        if ssl.is_some() && !(prefer && self.plain.load(Relaxed)) {
            // mysql_async builds its rustls configuration with the process's provider, which
            // panics when none is installed and two are built in: aws-lc-rs, as `main` would.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            opts = opts.ssl_opts(ssl);
        }
        let mut conn = match Conn::new(opts.clone()).await {
            // `prefer`: the server has no TLS, so in clear (libpq's meaning).
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if prefer => {
                self.plain.store(true, Relaxed);
                Conn::new(opts.ssl_opts(None)).await
            }
            other => other,
        }
        .map_err(|e| {
            let mut message = self.message(&e);
            let rootcert = self.options.rootcert.is_some();
            if let Some(hint) = dataloader_core::tls::hint(&message, self.options.mode, rootcert) {
                message = format!("{message}; {hint}");
            }
            let auth = matches!(
                &e,
                mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1698)
            );
            // MariaDB refuses a login in clear under require_secure_transport as it refuses a
            // wrong password.
            if auth && self.options.mode == SslMode::Disable {
                message.push_str("; if the server requires TLS (require_secure_transport), set sslmode=verify-full (with sslrootcert) or require");
            }
            CONNECTOR.connect_error(c, c.db_type.as_str(), auth, message, self.cause(e))
        })?;
        // UTC so `timestamp` values are instants; no backslash escapes so string literals are
        // standard SQL.
        conn.query_drop(
            "SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')",
        )
        .await
        .map_err(|e| self.query_error("", "set up the session", e))?;
        Ok(conn)
    }

    async fn first_text(
        &self,
        conn: &mut Conn,
        sql: String,
        table: &str,
        step: &'static str,
    ) -> Result<Option<String>> {
        let value: Option<Option<String>> = conn
            .query_first(sql)
            .await
            .map_err(|e| self.query_error(table, step, e))?;
        Ok(value.flatten())
    }
}

#[async_trait]
impl Source for MysqlSource {
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject> {
        Ok(MysqlDialect.text_projection(object, columns, as_text))
    }

    async fn server_version(&self) -> Result<String> {
        let mut conn = self.conn().await?;
        let v = self
            .first_text(
                &mut conn,
                "SELECT CONCAT('MySQL-compatible ', VERSION())".into(),
                "",
                "read the server version",
            )
            .await?;
        Ok(v.unwrap_or_default())
    }

    async fn column_names(&self, object: &SourceObject) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let catalog = self.catalog(&mut conn, object).await?;
        if catalog.is_empty() {
            return Err(Error::SourceTableNotFound {
                connection: self.config.name.clone(),
                table: object.to_string(),
            });
        }
        Ok(catalog.into_iter().map(|c| c.0).collect())
    }

    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema> {
        let shown = object.to_string();
        let mut conn = self.conn().await?;
        let catalog = self.catalog(&mut conn, object).await?;
        if catalog.is_empty() {
            return Err(Error::SourceTableNotFound {
                connection: self.config.name.clone(),
                table: shown,
            });
        }
        let mut columns = Vec::with_capacity(catalog.len());
        for (name, data_type, column_type, nullable, p, s) in catalog {
            let mapping = types::map(&data_type, &column_type, p, s).ok_or_else(|| {
                Error::UnsupportedType {
                    table: shown.clone(),
                    column: name.clone(),
                    native_type: column_type.clone(),
                }
            })?;
            columns.push(SourceColumn {
                name,
                native_type: column_type,
                data_type: mapping.data_type,
                nullable,
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
        let keys: Vec<Option<String>> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                (table.schema.clone(), table.name.clone()),
            )
            .await
            .map_err(|e| self.query_error(&shown, "read the primary key", e))?;
        Ok(SourceSchema {
            object: object.clone(),
            columns,
            primary_key: keys.into_iter().flatten().collect(),
        })
    }

    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        let shown = object.to_string();
        let dialect = MysqlDialect;
        let from = dialect.from(object);
        let mut conn = self.conn().await?;
        let (sql, kind) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let function = if matches!(probe, Probe::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let mapping = self
                    .mappings(&mut conn, object, &schema.columns[idx..=idx])
                    .await?;
                let kind = mapping[0]
                    .watermark
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                (
                    format!(
                        "SELECT CAST({function}({}) AS CHAR) FROM {from}",
                        dialect.quote_ident(column)
                    ),
                    kind,
                )
            }
            Probe::RowCount => (
                format!("SELECT CAST(COUNT(*) AS CHAR) FROM {from}"),
                WatermarkKind::Integer,
            ),
            Probe::NullCount(c) => (
                format!(
                    "SELECT CAST(COUNT(*) AS CHAR) FROM {from} WHERE {} IS NULL",
                    dialect.quote_ident(c)
                ),
                WatermarkKind::Integer,
            ),
            // The user's check query (one reading statement: the table's spec is validated
            // before a load); its first value, as text.
            Probe::Query(q) => (format!("SELECT CAST(({q}) AS CHAR)"), WatermarkKind::Text),
        };
        // The user's SQL — a check query, or a source query under the probe — runs in a
        // read-only transaction.
        let read_only = crate::read::runs_user_sql(object, probe);
        if read_only {
            conn.query_drop("START TRANSACTION READ ONLY")
                .await
                .map_err(|e| self.query_error(&shown, "begin the probe transaction", e))?;
        }
        let value = self
            .first_text(&mut conn, sql, &shown, "probe the table")
            .await;
        if read_only {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        value?.map(|v| utc_watermark(kind, v)).transpose()
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let dialect = MysqlDialect;
        let mut conn = self.conn().await?;
        let mappings = self
            .mappings(&mut conn, &request.object, &request.columns)
            .await?;
        let from = dialect.from(&request.object);
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(|e| self.query_error(&shown, "begin the read transaction", e))?;
        let mut captured_max = None;
        if let (Some(w), Some(kind)) = (
            &request.watermark,
            watermark_kind(&request, &shown, |i| mappings[i].watermark)?,
        ) {
            let sql = format!(
                "SELECT CAST(MAX({}) AS CHAR) FROM {from}{}",
                dialect.quote_ident(&w.column),
                where_clause(&dialect, request.max_filter().as_ref())?
            );
            captured_max = self
                .first_text(&mut conn, sql, &shown, "capture the watermark")
                .await?
                .map(|m| utc_watermark(kind, m))
                .transpose()?;
        }
        let schema = batch_schema(&request.columns);
        let Some(filter) = request.effective_filter(captured_max.as_ref()) else {
            return Ok(empty_output(schema, captured_max));
        };
        let sql = select_sql(&dialect, &request.columns, |_, q| q, &from, filter.as_ref())?;
        tracing::debug!(%sql, "mysql read");
        let (mut sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        let decodes: Vec<Decode> = mappings.iter().map(|m| m.decode).collect();
        let connection = self.config.name.clone();
        let password = self.password.clone().unwrap_or_default();
        tokio::spawn(async move {
            let fail = |step: &'static str, e: mysql_async::Error| Error::SourceQuery {
                connection: connection.clone(),
                table: shown.clone(),
                step,
                message: mask(&mysql_message(&e), &password),
                source: cause_unless_secret(e, &[&password]),
            };
            let mut result = match conn.exec_iter(sql.as_str(), ()).await {
                Ok(r) => r,
                Err(e) => return sender.fail(fail("read the rows", e)).await,
            };
            loop {
                let row: Row = match result.next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) => return sender.fail(fail("read the rows", e)).await,
                };
                for (i, decode) in decodes.iter().enumerate() {
                    let value = row.as_ref(i).unwrap_or(&Value::NULL);
                    if let Err(message) = append(sender.column(i), *decode, value) {
                        return sender.value_error(i, message).await;
                    }
                }
                if !sender.end_row().await {
                    return;
                }
            }
            drop(result);
            sender.finish().await;
            let _ = conn.query_drop("COMMIT").await;
            let _ = conn.disconnect().await;
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
    use crate::dialect::comparisons;
    use dataloader_core::SourceTable;

    #[test]
    fn renders_backticks_and_typed_literals() {
        let p = comparisons(&[
            (
                ">",
                "updated`at",
                WatermarkKind::TimestampTz,
                "2024-01-02 03:04:05.5+02",
            ),
            ("<=", "id", WatermarkKind::Integer, "42"),
            (">", "name", WatermarkKind::Text, "O'Hara\\"),
        ]);
        assert_eq!(
            MysqlDialect.render(&p).unwrap(),
            "(`updated``at` > TIMESTAMP '2024-01-02 01:04:05.500000') AND (`id` <= 42) AND (`name` > 'O''Hara\\')"
        );
        assert_eq!(
            MysqlDialect.table(&SourceTable::parse("erp.order lines").unwrap()),
            "`erp`.`order lines`"
        );
    }

    #[test]
    fn decodes_binary_protocol_values() {
        let mut b = ColumnBuilder::new(&arrow::datatypes::DataType::Decimal128(20, 0), 4).unwrap();
        append(&mut b, Decode::UInt64AsDecimal, &Value::UInt(u64::MAX)).unwrap();
        let mut t = ColumnBuilder::new(&arrow::datatypes::DataType::Utf8, 4).unwrap();
        append(&mut t, Decode::Time, &Value::Time(true, 1, 2, 3, 4, 500)).unwrap();
        let mut d = ColumnBuilder::new(&arrow::datatypes::DataType::Date32, 4).unwrap();
        append(&mut d, Decode::Date, &Value::Date(0, 0, 0, 0, 0, 0, 0)).unwrap();
        append(&mut d, Decode::Date, &Value::Date(1970, 1, 2, 0, 0, 0, 0)).unwrap();
        let mut bits = ColumnBuilder::new(&arrow::datatypes::DataType::Int64, 4).unwrap();
        append(&mut bits, Decode::BitsAsInt, &Value::Bytes(vec![1, 2])).unwrap();
        use arrow::array::{Array, AsArray};
        let dec = b.finish();
        assert_eq!(
            dec.as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(0),
            i128::from(u64::MAX)
        );
        assert_eq!(t.finish().as_string::<i32>().value(0), "-26:03:04.000500");
        let dates = d.finish();
        assert!(dates.is_null(0), "zero date → NULL");
        assert_eq!(
            dates
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(1),
            1
        );
        assert_eq!(
            bits.finish()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            258
        );
    }
}
