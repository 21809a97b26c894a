//! ClickHouse source over the `clickhouse` crate (HTTP). Data comes as RowBinary — a format
//! every server version has, 18.16 included — decoded straight into Arrow builders; metadata
//! as JSONCompact. ClickHouse has no read transactions: the watermark's upper bound is
//! captured first and bounds the read, so rows arriving during a load wait for the next one.

mod arrow_answer;
mod catalog;
pub mod connector;
mod dialect;
mod https;
pub mod types;

use async_trait::async_trait;
use dataloader_core::secret::{cause_unless_secret, mask};
use dataloader_core::tls::SslMode;
use dataloader_core::{
    ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceColumn,
    SourceObject, SourceSchema, Watermark, WatermarkKind,
};

use crate::batch::ColumnBuilder;
use crate::connector::{boxed, Connector};
use crate::dialect::SqlDialect;
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, query_columns, select_sql,
    utc_watermark, watermark_kind, where_clause, BatchSender,
};
use connector::ClickHouseOptions;
pub use dialect::ClickHouseDialect;
use https::{http_client, tls_hint};
use types::{Cell, ChType, Reader};

/// ClickHouse in the registry (`crate::connectors`); the declaration is in `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(ClickHouseSource::connect(c)));

pub struct ClickHouseSource {
    config: ConnectionConfig,
    password: Option<String>,
    client: clickhouse::Client,
    /// Rows come as ArrowStream (modern servers) rather than RowBinary.
    arrow: bool,
    /// `sslmode`, and whether `sslrootcert` was given: for the hint a failure gets.
    tls: (SslMode, bool),
    described: crate::per_table::PerTable<Vec<(String, String)>>,
}

/// Appends one decoded value to the builder of its column.
fn append(builder: &mut ColumnBuilder, cell: Cell) -> std::result::Result<(), String> {
    let range = || "value out of range for its Arrow type".to_string();
    match (cell, builder) {
        (Cell::Null, b) => b.append_null(),
        (Cell::Int(i), ColumnBuilder::Int16(b)) => {
            b.append_value(i16::try_from(i).map_err(|_| range())?)
        }
        (Cell::Int(i), ColumnBuilder::Int32(b)) => {
            b.append_value(i32::try_from(i).map_err(|_| range())?)
        }
        (Cell::Int(i), ColumnBuilder::Int64(b)) => {
            b.append_value(i64::try_from(i).map_err(|_| range())?)
        }
        (Cell::Int(i), ColumnBuilder::Decimal(b, ..)) => b.append_value(i),
        (Cell::F32(f), ColumnBuilder::Float32(b)) => b.append_value(f),
        (Cell::F64(f), ColumnBuilder::Float64(b)) => b.append_value(f),
        (Cell::Text(s), ColumnBuilder::Utf8(b)) => b.append_value(s),
        (Cell::Date(d), ColumnBuilder::Date32(b)) => b.append_value(d),
        (Cell::Micros(m), ColumnBuilder::TimestampMicros(b, _)) => b.append_value(m),
        (cell, _) => {
            return Err(format!(
                "internal: {cell:?} does not fit the column builder"
            ))
        }
    }
    Ok(())
}

impl ClickHouseSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let password = config.resolve_password().await?;
        let options = ClickHouseOptions::of(config)?;
        let mut client = http_client(config, options.mode)
            .await?
            .with_url(format!(
                "{}://{}:{}",
                options.scheme(),
                config.host.as_deref().unwrap_or("localhost"),
                config.port.unwrap_or(options.default_port())
            ))
            .with_user(config.user.clone().unwrap_or_else(|| "default".into()))
            .with_validation(false);
        if let Some(db) = &config.database {
            client = client.with_database(db.clone());
        }
        if let Some(pw) = &password {
            client = client.with_password(pw.clone());
        }
        let mut source = ClickHouseSource {
            config: config.clone(),
            password,
            client,
            arrow: false,
            tls: (
                options.mode,
                config
                    .options
                    .contains_key(dataloader_core::tls::SSLROOTCERT),
            ),
            described: Default::default(),
        };
        let version = source.server_version().await?;
        source.arrow = match options.format.as_deref() {
            None | Some("auto") => {
                arrow_answer::speaks_arrow(version.trim_start_matches("ClickHouse "))
            }
            Some("arrow") => true,
            Some("rowbinary") => false,
            Some(other) => {
                return Err(Error::config(
                    "format",
                    format!("--option format= takes auto, arrow or rowbinary, not \"{other}\""),
                ))
            }
        };
        Ok(source)
    }

    /// `e`'s message with its causes (hyper hides a TLS failure's reason in them), masked.
    fn message(&self, e: &clickhouse::error::Error) -> String {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            cause = c.source();
        }
        mask(&message, self.password.as_deref().unwrap_or(""))
    }

    fn error(&self, table: &str, step: &'static str, e: clickhouse::error::Error) -> Error {
        let message = self.message(&e);
        let lower = message.to_lowercase();
        let network = matches!(e, clickhouse::error::Error::Network(_));
        let source = cause_unless_secret(e, &[self.password.as_deref().unwrap_or("")]);
        let refused = lower.contains("authentication failed")
            || lower.contains("code: 516")
            || lower.contains("code: 192");
        if refused || network {
            let c = &self.config;
            let (mode, rootcert) = self.tls;
            let message = match tls_hint(&message, mode, rootcert) {
                Some(hint) => format!("{message}; {hint}"),
                None => message,
            };
            return CONNECTOR.connect_error(c, c.db_type.as_str(), refused, message, source);
        }
        if lower.contains("code: 60.") || lower.contains("code: 81.") {
            return Error::SourceTableNotFound {
                connection: self.config.name.clone(),
                table: table.to_string(),
            };
        }
        Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message,
            source,
        }
    }

    /// A small query's rows, through JSONCompact.
    async fn rows(
        &self,
        sql: &str,
        table: &str,
        step: &'static str,
    ) -> Result<Vec<Vec<serde_json::Value>>> {
        self.rows_on(&self.client, sql, table, step).await
    }

    async fn rows_on(
        &self,
        client: &clickhouse::Client,
        sql: &str,
        table: &str,
        step: &'static str,
    ) -> Result<Vec<Vec<serde_json::Value>>> {
        let answer = self.answer_on(client, sql, table, step).await?;
        Ok(answer["data"]
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r.as_array().cloned()).collect())
            .unwrap_or_default())
    }

    /// The whole JSONCompact answer: `meta` (each column's name and type) and `data`.
    async fn answer_on(
        &self,
        client: &clickhouse::Client,
        sql: &str,
        table: &str,
        step: &'static str,
    ) -> Result<serde_json::Value> {
        let mut cursor = client
            .query_raw(sql)
            .fetch_bytes("JSONCompact")
            .map_err(|e| self.error(table, step, e))?;
        let mut body = Vec::new();
        while let Some(chunk) = cursor
            .next()
            .await
            .map_err(|e| self.error(table, step, e))?
        {
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message: format!("unreadable answer: {e}"),
            source: Some(e.into()),
        })
    }

    /// The client for `object`: a source query is the user's SQL, run with `readonly = 2`
    /// (the server refuses anything but reading; settings stay allowed).
    fn client_for(&self, object: &SourceObject) -> clickhouse::Client {
        match object {
            SourceObject::Table(_) => self.client.clone(),
            SourceObject::Query { .. } => self.client.clone().with_setting("readonly", "2"),
        }
    }

    async fn first_text(
        &self,
        sql: &str,
        table: &str,
        step: &'static str,
    ) -> Result<Option<String>> {
        self.first_text_on(&self.client, sql, table, step).await
    }

    async fn first_text_on(
        &self,
        client: &clickhouse::Client,
        sql: &str,
        table: &str,
        step: &'static str,
    ) -> Result<Option<String>> {
        let rows = self.rows_on(client, sql, table, step).await?;
        Ok(rows.first().and_then(|r| r.first()).and_then(|v| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }))
    }

    fn text_of(column: &str, kind: WatermarkKind, function: &str) -> String {
        let d = ClickHouseDialect;
        match kind {
            WatermarkKind::Timestamp | WatermarkKind::TimestampTz => {
                format!("toString({function}({}), 'UTC')", d.quote_ident(column))
            }
            _ => format!("toString({function}({}))", d.quote_ident(column)),
        }
    }
}

#[async_trait]
impl Source for ClickHouseSource {
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject> {
        Ok(ClickHouseDialect.text_projection(object, columns, as_text))
    }

    async fn server_version(&self) -> Result<String> {
        let v = self
            .first_text("SELECT version()", "", "read the server version")
            .await?;
        Ok(format!("ClickHouse {}", v.unwrap_or_default()))
    }

    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema> {
        let shown = object.to_string();
        let described = self.column_types(object).await?;
        if described.is_empty() {
            return Err(Error::SourceTableNotFound {
                connection: self.config.name.clone(),
                table: shown,
            });
        }
        let columns = described
            .iter()
            .cloned()
            .map(|(name, native)| {
                let data_type = types::parse(&native)
                    .and_then(|t| t.arrow())
                    .ok_or_else(|| Error::UnsupportedType {
                        table: shown.clone(),
                        column: name.clone(),
                        native_type: native.clone(),
                    })?;
                Ok(SourceColumn {
                    nullable: native.starts_with("Nullable("),
                    name,
                    native_type: native,
                    data_type,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if matches!(object, SourceObject::Query { .. }) {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            query_columns(object, &names)?;
        }
        // ClickHouse has sorting keys, not unique keys: the table's configuration names the key.
        Ok(SourceSchema {
            object: object.clone(),
            columns,
            primary_key: vec![],
        })
    }

    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        let shown = object.to_string();
        let d = ClickHouseDialect;
        let from = d.from(object);
        let (sql, kind) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let function = if matches!(probe, Probe::Min(_)) {
                    "min"
                } else {
                    "max"
                };
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let t = self
                    .parsed_types(object, &schema.columns[idx..=idx])
                    .await?;
                let kind = t[0]
                    .watermark()
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                // max() of an empty table is the type's zero, not NULL: count first.
                (
                    format!(
                        "SELECT if(count() = 0, NULL, {}) FROM {from}",
                        Self::text_of(column, kind, function)
                    ),
                    kind,
                )
            }
            Probe::RowCount => (
                format!("SELECT toString(count()) FROM {from}"),
                WatermarkKind::Integer,
            ),
            Probe::NullCount(c) => (
                format!(
                    "SELECT toString(count()) FROM {from} WHERE isNull({})",
                    d.quote_ident(c)
                ),
                WatermarkKind::Integer,
            ),
            // The user's check query (one reading statement: the table's spec is validated
            // before a load); its first value, as text.
            Probe::Query(q) => (format!("SELECT toString(({q}))"), WatermarkKind::Text),
        };
        // `readonly = 2`: the server refuses anything but reading (settings stay allowed).
        let client = match probe {
            Probe::Query(_) => self.client.clone().with_setting("readonly", "2"),
            _ => self.client_for(object),
        };
        self.first_text_on(&client, &sql, &shown, "probe the table")
            .await?
            .map(|v| utc_watermark(kind, v))
            .transpose()
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let d = ClickHouseDialect;
        let types = self.parsed_types(&request.object, &request.columns).await?;
        let from = d.from(&request.object);
        let client = self.client_for(&request.object);
        let mut captured_max = None;
        if let (Some(w), Some(kind)) = (
            &request.watermark,
            watermark_kind(&request, &shown, |i| types[i].watermark())?,
        ) {
            let sql = format!(
                "SELECT if(count() = 0, NULL, {}) FROM {from}{}",
                Self::text_of(&w.column, kind, "max"),
                where_clause(&d, request.max_filter().as_ref())?
            );
            captured_max = self
                .first_text_on(&client, &sql, &shown, "capture the watermark")
                .await?
                .map(|m| utc_watermark(kind, m))
                .transpose()?;
        }
        let schema = batch_schema(&request.columns);
        let Some(filter) = request.effective_filter(captured_max.as_ref()) else {
            return Ok(empty_output(schema, captured_max));
        };
        let sql = select_sql(&d, &request.columns, |_, q| q, &from, filter.as_ref())?;
        tracing::debug!(%sql, arrow = self.arrow, "clickhouse read");
        let mut query = client.query_raw(&sql);
        if self.arrow {
            for (k, v) in arrow_answer::ARROW_SETTINGS {
                query = query.with_setting(k, v);
            }
        }
        let mut cursor = query
            .fetch_bytes(if self.arrow {
                "ArrowStream"
            } else {
                "RowBinary"
            })
            .map_err(|e| self.error(&shown, "read the rows", e))?;
        let (mut sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        let connection = self.config.name.clone();
        let password = self.password.clone().unwrap_or_default();
        let arrow = self.arrow;
        tokio::spawn(async move {
            let fail = |message: String, e: Option<clickhouse::error::Error>| Error::SourceQuery {
                connection: connection.clone(),
                table: shown.clone(),
                step: "read the rows",
                message: mask(&message, &password),
                source: e.and_then(|e| cause_unless_secret(e, &[&password])),
            };
            if arrow {
                return read_arrow_stream(cursor, &types, sender, fail).await;
            }
            let mut buf: Vec<u8> = Vec::new();
            loop {
                match cursor.next().await {
                    Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(e) => return sender.fail(fail(e.to_string(), Some(e))).await,
                }
                let mut pos = 0;
                'rows: loop {
                    let mut reader = Reader { buf: &buf, pos };
                    let mut cells = Vec::with_capacity(types.len());
                    for (i, t) in types.iter().enumerate() {
                        match reader.cell(t) {
                            Ok(Some(cell)) => cells.push(cell),
                            Ok(None) => break 'rows,
                            Err(message) => return sender.value_error(i, message).await,
                        }
                    }
                    pos = reader.pos;
                    for (i, cell) in cells.into_iter().enumerate() {
                        if let Err(message) = append(sender.column(i), cell) {
                            return sender.value_error(i, message).await;
                        }
                    }
                    if !sender.end_row().await {
                        return;
                    }
                }
                buf.drain(..pos);
            }
            if !buf.is_empty() {
                return sender
                    .fail(fail(
                        format!("the answer ended inside a row ({} bytes left)", buf.len()),
                        None,
                    ))
                    .await;
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

/// Decodes an ArrowStream answer as it arrives, batch by batch, into the load's batches.
async fn read_arrow_stream(
    mut cursor: clickhouse::query::BytesCursor,
    types: &[ChType],
    mut sender: BatchSender,
    fail: impl Fn(String, Option<clickhouse::error::Error>) -> Error,
) {
    let mut stream = arrow_answer::ArrowStream::default();
    loop {
        let chunk = match cursor.next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return sender.fail(fail(e.to_string(), Some(e))).await,
        };
        let batches = match stream.push(&chunk) {
            Ok(batches) => batches,
            Err(message) => return sender.fail(fail(message, None)).await,
        };
        for batch in batches {
            if batch.num_columns() != types.len() {
                let message = format!(
                    "ClickHouse sent {} columns for {} requested",
                    batch.num_columns(),
                    types.len()
                );
                return sender.fail(fail(message, None)).await;
            }
            for row in 0..batch.num_rows() {
                for (i, t) in types.iter().enumerate() {
                    let cell = match arrow_answer::arrow_cell(t, batch.column(i).as_ref(), row) {
                        Ok(cell) => cell,
                        Err(message) => return sender.value_error(i, message).await,
                    };
                    if let Err(message) = append(sender.column(i), cell) {
                        return sender.value_error(i, message).await;
                    }
                }
                if !sender.end_row().await {
                    return;
                }
            }
        }
    }
    if let Err(message) = stream.finish() {
        return sender.fail(fail(message, None)).await;
    }
    sender.finish().await;
}
