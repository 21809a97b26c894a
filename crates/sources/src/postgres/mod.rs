//! PostgreSQL source over `tokio-postgres`. Rows come through binary COPY. Reads run in a
//! REPEATABLE READ, read-only transaction so the captured watermark and the rows come from one
//! snapshot. Connections use TLS as `sslmode` says (`tls.rs`).

mod catalog;
pub mod connector;
pub mod copy;
pub mod decode;
pub mod tls;
pub mod types;

use std::time::Duration;

use async_trait::async_trait;
use dataloader_core::secret::{cause_unless_secret, mask};
use dataloader_core::{
    Cause, ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceObject,
    SourceSchema, Watermark, WatermarkKind,
};
use futures::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::connector::{boxed, Connector};
use crate::dialect::{number_literal, quote_string, SqlDialect};
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, select_sql, watermark_kind,
    where_clause, BatchSender,
};
use types::Select;

/// PostgreSQL in the registry (`crate::connectors`); its declaration is in `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(PostgresSource::connect(c)));

pub struct PostgresSource {
    config: ConnectionConfig,
    password: Option<String>,
    tls: tls::Tls,
}

pub struct PostgresDialect;

impl SqlDialect for PostgresDialect {
    fn text(&self, expr: &str) -> String {
        format!("CAST({expr} AS text)")
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        use dataloader_core::WatermarkKind as W;
        Ok(match value.kind {
            W::Integer | W::Decimal => number_literal(value)?,
            W::Date => format!("DATE {}", quote_string(&value.value)?),
            W::Timestamp => format!("TIMESTAMP {}", quote_string(&value.value)?),
            W::TimestampTz => format!("TIMESTAMPTZ {}", quote_string(&value.value)?),
            W::Text => quote_string(&value.value)?,
        })
    }
}

/// The server's own message (with its hint), not tokio-postgres' "db error".
fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        match db.hint() {
            Some(h) => format!("{} (hint: {h})", db.message()),
            None => db.message().to_string(),
        }
    } else {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    }
}

impl PostgresSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let source = PostgresSource {
            config: config.clone(),
            password: config.resolve_password().await?,
            tls: tls::Tls::of(config).await?,
        };
        // Fail now on a wrong host or password, not in the middle of a load.
        source.client().await?;
        Ok(source)
    }

    fn message(&self, e: &tokio_postgres::Error) -> String {
        mask(&pg_message(e), self.password.as_deref().unwrap_or(""))
    }

    fn cause(&self, e: tokio_postgres::Error) -> Option<Cause> {
        cause_unless_secret(e, &[self.password.as_deref().unwrap_or("")])
    }

    async fn client(&self) -> Result<Client> {
        let c = &self.config;
        let mut pg = tokio_postgres::Config::new();
        pg.host(c.host.as_deref().unwrap_or("localhost"))
            .port(c.port.unwrap_or(connector::PORT))
            .dbname(c.database.as_deref().unwrap_or("postgres"))
            .user(c.user.as_deref().unwrap_or("postgres"))
            .application_name("dataloader")
            .connect_timeout(Duration::from_secs(10))
            .ssl_mode(self.tls.driver_mode());
        if let Some(pw) = &self.password {
            pg.password(pw);
        }
        let (client, connection) = pg.connect(self.tls.connector.clone()).await.map_err(|e| {
            let mut message = self.message(&e);
            if let Some(hint) =
                dataloader_core::tls::hint(&message, self.tls.mode, self.tls.rootcert)
            {
                message = format!("{message}; {hint}");
            }
            let auth = matches!(e.code(), Some(code)
                if *code == SqlState::INVALID_PASSWORD
                    || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
            CONNECTOR.connect_error(c, c.db_type.as_str(), auth, message, self.cause(e))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        // UTC so timestamptz text is unambiguous; ISO intervals; exact floats; literal backslashes.
        client
            .batch_execute(
                "SET TIME ZONE 'UTC'; SET intervalstyle = 'iso_8601'; \
                 SET extra_float_digits = 3; SET standard_conforming_strings = on",
            )
            .await
            .map_err(|e| self.query_error("", "set up the session", e))?;
        Ok(client)
    }

    fn query_error(&self, table: &str, step: &'static str, e: tokio_postgres::Error) -> Error {
        Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message: self.message(&e),
            source: self.cause(e),
        }
    }
}

#[async_trait]
impl Source for PostgresSource {
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject> {
        Ok(PostgresDialect.text_projection(object, columns, as_text))
    }

    async fn server_version(&self) -> Result<String> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT version()", &[])
            .await
            .map_err(|e| self.query_error("", "read the server version", e))?;
        Ok(row.get(0))
    }

    async fn column_names(&self, object: &SourceObject) -> Result<Vec<String>> {
        let client = self.client().await?;
        self.column_names_of(&client, object).await
    }

    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema> {
        let client = self.client().await?;
        self.describe_object(&client, object).await
    }

    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        self.probe_object(object, schema, probe).await
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let dialect = PostgresDialect;
        let client = self.client().await?;
        let mappings = self
            .mappings(&client, &request.object, &request.columns)
            .await?;

        let from = dialect.from(&request.object);
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.query_error(&shown, "begin the read transaction", e))?;

        let mut captured_max = None;
        if let (Some(w), Some(kind)) = (
            &request.watermark,
            watermark_kind(&request, &shown, |i| mappings[i].watermark)?,
        ) {
            let sql = format!(
                "SELECT MAX({})::text FROM {from}{}",
                dialect.quote_ident(&w.column),
                where_clause(&dialect, request.max_filter().as_ref())?
            );
            let row = client
                .query_one(sql.as_str(), &[])
                .await
                .map_err(|e| self.query_error(&shown, "capture the watermark", e))?;
            captured_max = row
                .get::<_, Option<String>>(0)
                .map(|m| Watermark::new(kind, m))
                .transpose()?;
        }
        let schema = batch_schema(&request.columns);
        let Some(filter) = request.effective_filter(captured_max.as_ref()) else {
            return Ok(empty_output(schema, captured_max));
        };

        let sql = select_sql(
            &dialect,
            &request.columns,
            |i, q| match mappings[i].select {
                Select::Plain => q,
                Select::CastText => format!("{q}::text"),
                Select::ArrayAsJson => format!("to_json({q})::text"),
            },
            &from,
            filter.as_ref(),
        )?;
        tracing::debug!(%sql, "postgres read");

        let (mut sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        // Binary COPY: the rows as one stream of the same binary values a query returns, without
        // a message and a row object per row. Started before returning, so a failing query is
        // the read's error, not the stream's.
        let copy = client
            .copy_out(format!("COPY ({sql}) TO STDOUT (FORMAT binary)").as_str())
            .await
            .map_err(|e| self.query_error(&shown, "read the rows", e))?;
        let decodes: Vec<types::Decode> = mappings.iter().map(|m| m.decode).collect();
        let fail = {
            let connection = self.config.name.clone();
            let password = self.password.clone().unwrap_or_default();
            let shown = shown.clone();
            move |message: String, e: Option<tokio_postgres::Error>| Error::SourceQuery {
                connection: connection.clone(),
                table: shown.clone(),
                step: "read the rows",
                message: mask(&message, &password),
                source: e.and_then(|e| cause_unless_secret(e, &[&password])),
            }
        };
        tokio::spawn(async move {
            let mut copy = std::pin::pin!(copy);
            let mut parser = copy::CopyParser::default();
            while let Some(chunk) = copy.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => return sender.fail(fail(pg_message(&e), Some(e))).await,
                };
                parser.push(&chunk);
                loop {
                    match parser.next_row(decodes.len()) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(message) => return sender.fail(fail(message, None)).await,
                    }
                    for (i, decode) in decodes.iter().enumerate() {
                        if let Err(message) =
                            decode::append(sender.column(i), *decode, parser.field(i))
                        {
                            return sender.value_error(i, message).await;
                        }
                    }
                    if !sender.end_row().await {
                        return;
                    }
                }
            }
            if !parser.finished() {
                return sender
                    .fail(fail(
                        "the COPY stream ended before its last row".into(),
                        None,
                    ))
                    .await;
            }
            sender.finish().await;
            let _ = client.batch_execute("COMMIT").await;
        });
        Ok(ReadOutput {
            schema,
            batches,
            captured_max,
        })
    }
}

impl PostgresSource {
    pub async fn probe_object(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        let shown = object.to_string();
        let dialect = PostgresDialect;
        let client = self.client().await?;
        let from = dialect.from(object);
        // The SQL, the step it is, and the kind of its one value (as text).
        let (sql, step, kind) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let function = if matches!(probe, Probe::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let mapping = self
                    .mappings(&client, object, &schema.columns[idx..=idx])
                    .await?;
                let kind = mapping[0]
                    .watermark
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                (
                    format!(
                        "SELECT {function}({})::text FROM {from}",
                        dialect.quote_ident(column)
                    ),
                    "probe the table",
                    kind,
                )
            }
            Probe::RowCount => (
                format!("SELECT COUNT(*)::text FROM {from}"),
                "count rows",
                WatermarkKind::Integer,
            ),
            Probe::NullCount(c) => (
                format!(
                    "SELECT COUNT(*)::text FROM {from} WHERE {} IS NULL",
                    dialect.quote_ident(c)
                ),
                "count rows",
                WatermarkKind::Integer,
            ),
            // The user's check query (one reading statement: the table's spec is validated
            // before a load), run as written; its first value, as text.
            Probe::Query(query) => (query.clone(), "run the check query", WatermarkKind::Text),
        };
        // The user's SQL — a check query, or a source query under the probe — runs in a
        // read-only transaction, which also refuses a function that writes.
        let read_only = crate::read::runs_user_sql(object, probe);
        if read_only {
            client
                .batch_execute("BEGIN TRANSACTION READ ONLY")
                .await
                .map_err(|e| self.query_error(&shown, "begin the probe transaction", e))?;
        }
        // The simple protocol answers in text, whatever the type of a check query's value.
        let messages = client
            .simple_query(&sql)
            .await
            .map_err(|e| self.query_error(&shown, step, e));
        if read_only {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        let value = messages?.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
            _ => None,
        });
        value.flatten().map(|v| Watermark::new(kind, v)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::comparisons;
    use dataloader_core::SourceTable;

    #[test]
    fn renders_typed_literals() {
        let p = comparisons(&[
            (
                ">",
                "updated_at",
                WatermarkKind::Timestamp,
                "2024-01-02 03:04:05.123456",
            ),
            ("<=", "id", WatermarkKind::Integer, "42"),
        ]);
        assert_eq!(
            PostgresDialect.render(&p).unwrap(),
            "(\"updated_at\" > TIMESTAMP '2024-01-02 03:04:05.123456') AND (\"id\" <= 42)"
        );
        assert_eq!(
            PostgresDialect.table(&SourceTable::parse("Sales.Order Lines").unwrap()),
            "\"Sales\".\"Order Lines\""
        );
    }
}
