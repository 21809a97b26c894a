//! Snowflake source over Snowflake's REST API (`snowflake` with a password, `snowflake_pem`
//! with a key pair). Results arrive as Arrow, inline and then in chunks fetched one at a time,
//! and are converted column by column to exact Arrow types ([`types`]). Each statement reads
//! its own snapshot: the watermark's upper bound is captured first and bounds the read.

pub mod auth;
mod catalog;
pub mod client;
pub mod connector;
pub mod types;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use dataloader_core::connection::resolve_optional;
use dataloader_core::secret::{cause_unless_secret, mask, SecretRef};
use dataloader_core::{
    ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceColumn,
    SourceObject, SourceSchema, Watermark, WatermarkKind,
};
use futures::StreamExt;

use crate::connector::{boxed, Connector};
use crate::dialect::{number_literal, SqlDialect};
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, query_columns, select_sql,
    utc_watermark, watermark_kind, where_clause, BatchSender,
};
use client::{Client, ClientError, Credential, Login, QueryResult};
use connector::SnowflakeOptions;
use types::{Kind, RowType};

/// Snowflake's "object does not exist or not authorized".
const NO_SUCH_OBJECT: &str = "002003";

pub struct SnowflakeDialect;

/// Snowflake string literals take backslash escapes as well as doubled quotes.
fn sf_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

impl SqlDialect for SnowflakeDialect {
    fn text(&self, expr: &str) -> String {
        format!("TO_VARCHAR({expr})")
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        Ok(match value.kind {
            WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value)?,
            WatermarkKind::Date => format!("{}::DATE", sf_string(&value.value)),
            WatermarkKind::Timestamp | WatermarkKind::TimestampTz => {
                let micros = value.timestamp_micros()?;
                let utc = chrono::DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| {
                        Error::config("incremental_value", format!("{value} is out of range"))
                    })?
                    .naive_utc()
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string();
                if value.kind == WatermarkKind::Timestamp {
                    format!("{}::TIMESTAMP_NTZ", sf_string(&utc))
                } else {
                    format!("{}::TIMESTAMP_TZ", sf_string(&format!("{utc} +00:00")))
                }
            }
            WatermarkKind::Text => sf_string(&value.value),
        })
    }
}

/// Snowflake with a password, in the registry (`crate::connectors`); the declarations are in
/// `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(SnowflakeSource::connect(c)));

/// Snowflake with a key pair (`snowflake_pem`), in the registry.
pub static KEY_PAIR_CONNECTOR: Connector =
    connector::declare_key_pair(|c| boxed(SnowflakeSource::connect(c)));

pub struct SnowflakeSource {
    config: ConnectionConfig,
    /// Secrets to mask in any message: the password or the key's passphrase.
    secrets: Vec<String>,
    client: Arc<Client>,
    bigint_integers: bool,
    /// Tables as named in the configuration → what a statement reads `FROM`, as Snowflake
    /// stores them (unquoted names are upper case in Snowflake; `public.orders` finds
    /// `PUBLIC.ORDERS`); a source query → itself as a derived table.
    /// Kept with the columns: a load describes, probes and reads one object, and asks
    /// Snowflake for its columns once.
    resolved: crate::per_table::PerTable<(String, Vec<RowType>)>,
}

impl SnowflakeSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let o = SnowflakeOptions::of(config);
        let account = o
            .account
            .clone()
            .or_else(|| {
                config
                    .host
                    .as_deref()
                    .and_then(|h| h.split('.').next())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let host = config
            .host
            .clone()
            .unwrap_or_else(|| format!("{account}.snowflakecomputing.com"));
        let protocol = o.protocol.as_deref().unwrap_or("https");
        if protocol != "https" && protocol != "http" {
            return Err(Error::config(
                "protocol",
                format!("--option protocol= takes https or http, not \"{protocol}\""),
            ));
        }
        let base_url = format!(
            "{protocol}://{host}:{}",
            config.port.unwrap_or(connector::PORT)
        );
        let user = config.user.clone().unwrap_or_default();
        let mut secrets = Vec::new();
        let key_pair =
            KEY_PAIR_CONNECTOR.is_named(config.db_type.as_str()) || o.private_key.is_some();
        let credential = if key_pair {
            let pem = SecretRef::parse(o.private_key.as_deref().unwrap_or(""))?
                .resolve()
                .await?;
            let passphrase = resolve_optional(o.private_key_passphrase.as_deref()).await?;
            secrets.extend(passphrase.clone());
            let key = auth::KeyPair::from_pem(&pem, passphrase.as_deref())
                .map_err(|e| Error::config("private_key", e))?;
            let token = key
                .token(&account, &user, chrono::Utc::now().timestamp())
                .map_err(|e| Error::config("private_key", e))?;
            Credential::Jwt(token)
        } else {
            let password = config.resolve_password().await?.unwrap_or_default();
            secrets.push(password.clone());
            Credential::Password(password)
        };
        let login = Login {
            base_url: &base_url,
            account: &account,
            user: &user,
            credential,
            database: config.database.as_deref().unwrap_or(""),
            schema: o.schema.as_deref(),
            warehouse: o.warehouse.as_deref(),
            role: o.role.as_deref(),
        };
        let hide = |m: String| secrets.iter().fold(m, |m, s| mask(&m, s));
        let client = Client::login(login).await.map_err(|e| {
            let message = hide(e.to_string());
            let auth = matches!(e, ClientError::Auth(_));
            let source = cause_unless_secret(e, &secrets);
            CONNECTOR.connect_error(config, config.db_type.as_str(), auth, message, source)
        })?;
        let bigint_integers = match o.integers.as_deref() {
            None | Some("decimal") => false,
            Some("bigint") => true,
            Some(other) => {
                return Err(Error::config(
                    "integers",
                    format!("--option integers= takes decimal or bigint, not \"{other}\""),
                ))
            }
        };
        Ok(SnowflakeSource {
            config: config.clone(),
            secrets,
            client: Arc::new(client),
            bigint_integers,
            resolved: Default::default(),
        })
    }

    fn error(&self, table: &str, step: &'static str, e: ClientError) -> Error {
        let hide = |m: String| self.secrets.iter().fold(m, |m, s| mask(&m, s));
        match e {
            ClientError::Query { code, .. } if code == NO_SUCH_OBJECT => {
                Error::SourceTableNotFound {
                    connection: self.config.name.clone(),
                    table: table.to_string(),
                }
            }
            e => {
                let message = hide(e.to_string());
                let auth = matches!(e, ClientError::Auth(_));
                let source = cause_unless_secret(e, &self.secrets);
                if auth {
                    Error::Auth {
                        connection: self.config.name.clone(),
                        message,
                        source,
                    }
                } else {
                    Error::SourceQuery {
                        connection: self.config.name.clone(),
                        table: table.to_string(),
                        step,
                        message,
                        source,
                    }
                }
            }
        }
    }

    async fn query(&self, sql: &str, table: &str, step: &'static str) -> Result<QueryResult> {
        tracing::debug!(%sql, "snowflake query");
        self.client
            .query(sql)
            .await
            .map_err(|e| self.error(table, step, e))
    }

    /// The first value of a one-row, one-column query, as watermark text.
    async fn single_value(
        &self,
        sql: &str,
        kind: Kind,
        table: &str,
        step: &'static str,
    ) -> Result<Option<String>> {
        let result = self.query(sql, table, step).await?;
        let batches = self
            .client
            .part(&result, 0)
            .await
            .map_err(|e| self.error(table, step, e))?;
        let Some(column) = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| b.column(0))
        else {
            return Ok(None);
        };
        let converted = types::convert(kind, column).map_err(|message| Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message,
            source: None,
        })?;
        Ok(value_text(&converted))
    }
}

/// Row 0 of a converted column as a watermark's text; `None` when it is NULL.
fn value_text(array: &ArrayRef) -> Option<String> {
    if array.is_null(0) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(0).to_string(),
        DataType::Decimal128(..) => array
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value_as_string(0),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .value_as_date(0)?
            .to_string(),
        DataType::Timestamp(..) => array
            .as_primitive::<TimestampMicrosecondType>()
            .value_as_datetime(0)?
            .format("%Y-%m-%d %H:%M:%S%.f")
            .to_string(),
        DataType::Utf8 => array.as_string::<i32>().value(0).to_string(),
        _ => return None,
    })
}

#[async_trait]
impl Source for SnowflakeSource {
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject> {
        Ok(SnowflakeDialect.text_projection(object, columns, as_text))
    }

    async fn server_version(&self) -> Result<String> {
        let version = match &self.client.server_version {
            Some(v) => v.clone(),
            None => self
                .single_value(
                    "SELECT CURRENT_VERSION()",
                    Kind::Text,
                    "",
                    "read the server version",
                )
                .await?
                .unwrap_or_default(),
        };
        Ok(format!("Snowflake {version}"))
    }

    async fn describe(&self, object: &SourceObject) -> Result<SourceSchema> {
        let shown = object.to_string();
        let found = self.resolve(object).await?;
        let rowtype = &found.1;
        let columns = rowtype
            .iter()
            .map(|r| {
                Ok(SourceColumn {
                    name: r.name.clone(),
                    native_type: types::native_type(r),
                    data_type: self.kind(&shown, r)?.arrow(),
                    nullable: r.nullable,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if matches!(object, SourceObject::Query { .. }) {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            query_columns(object, &names)?;
        }
        // Snowflake does not enforce keys: the table's configuration names the key.
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
        let d = SnowflakeDialect;
        let (sql, kind, watermark) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let (from, kinds) = self.kinds(object, &schema.columns[idx..=idx]).await?;
                let watermark = kinds[0]
                    .watermark()
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                let function = if matches!(probe, Probe::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                (
                    format!("SELECT {function}({}) FROM {from}", d.quote_ident(column)),
                    kinds[0],
                    watermark,
                )
            }
            Probe::RowCount | Probe::NullCount(_) => {
                let found = self.resolve(object).await?;
                let from = &found.0;
                let filter = match probe {
                    Probe::NullCount(c) => format!(" WHERE {} IS NULL", d.quote_ident(c)),
                    _ => String::new(),
                };
                (
                    format!("SELECT COUNT(*) FROM {from}{filter}"),
                    Kind::Integer,
                    WatermarkKind::Integer,
                )
            }
            // The user's check query (one reading statement, see core's check_query); its
            // first value, as text.
            Probe::Query(q) => (
                format!("SELECT CAST(({q}) AS VARCHAR)"),
                Kind::Text,
                WatermarkKind::Text,
            ),
        };
        self.single_value(&sql, kind, &shown, "probe the table")
            .await?
            .map(|v| utc_watermark(watermark, v))
            .transpose()
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let d = SnowflakeDialect;
        let (from, kinds) = self.kinds(&request.object, &request.columns).await?;
        let mut captured_max = None;
        if let (Some(w), Some(kind)) = (
            &request.watermark,
            watermark_kind(&request, &shown, |i| kinds[i].watermark())?,
        ) {
            let idx = column_index(&request.columns, &w.column, &shown, "incremental")?;
            let sql = format!(
                "SELECT MAX({}) FROM {from}{}",
                d.quote_ident(&w.column),
                where_clause(&d, request.max_filter().as_ref())?
            );
            captured_max = self
                .single_value(&sql, kinds[idx], &shown, "capture the watermark")
                .await?
                .map(|m| utc_watermark(kind, m))
                .transpose()?;
        }
        let schema = batch_schema(&request.columns);
        let Some(filter) = request.effective_filter(captured_max.as_ref()) else {
            return Ok(empty_output(schema, captured_max));
        };
        let sql = select_sql(&d, &request.columns, |_, q| q, &from, filter.as_ref())?;
        let result = self.query(&sql, &shown, "read the rows").await?;
        if result
            .format
            .as_deref()
            .is_some_and(|f| !f.eq_ignore_ascii_case("arrow"))
        {
            return Err(Error::SourceQuery {
                connection: self.config.name.clone(),
                table: shown,
                step: "read the rows",
                message: "Snowflake answered in JSON; DataLoader reads Arrow results (run ALTER USER <user> SET GO_QUERY_RESULT_FORMAT = 'ARROW')".into(),
                source: None,
            });
        }
        let (sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        let source = ReadTask {
            client: self.client.clone(),
            result: Arc::new(result),
            kinds,
            schema: schema.clone(),
            names: request.columns.iter().map(|c| c.name.clone()).collect(),
            connection: self.config.name.clone(),
            table: shown,
            secrets: self.secrets.clone(),
        };
        tokio::spawn(source.run(sender));
        Ok(ReadOutput {
            schema,
            batches,
            captured_max,
        })
    }
}

/// Streams a result part by part, fetching the next chunk while the writer takes the batches of
/// the current one: at most two chunks are held at once.
struct ReadTask {
    client: Arc<Client>,
    result: Arc<QueryResult>,
    kinds: Vec<Kind>,
    schema: arrow::datatypes::SchemaRef,
    names: Vec<String>,
    connection: String,
    table: String,
    secrets: Vec<String>,
}

impl ReadTask {
    async fn run(self, sender: BatchSender) {
        let mut parts = futures::stream::iter(0..=self.result.chunks.len())
            .map(|part| {
                let (client, result) = (self.client.clone(), self.result.clone());
                async move { client.part(&result, part).await }
            })
            .buffered(2);
        while let Some(part) = parts.next().await {
            let batches = match part {
                Ok(b) => b,
                Err(e) => {
                    let message = self.secrets.iter().fold(e.to_string(), |m, s| mask(&m, s));
                    return sender
                        .fail(Error::SourceQuery {
                            connection: self.connection.clone(),
                            table: self.table.clone(),
                            step: "read the rows",
                            message,
                            source: cause_unless_secret(e, &self.secrets),
                        })
                        .await;
                }
            };
            for batch in batches {
                match self.convert(&batch) {
                    Ok(converted) => {
                        if !sender.send_batch(converted).await {
                            return;
                        }
                    }
                    Err(e) => return sender.fail(e).await,
                }
            }
        }
        sender.finish().await;
    }

    fn convert(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if batch.num_columns() != self.kinds.len() {
            return Err(Error::SourceQuery {
                connection: self.connection.clone(),
                table: self.table.clone(),
                step: "read the rows",
                message: format!(
                    "Snowflake sent {} columns for {} requested",
                    batch.num_columns(),
                    self.kinds.len()
                ),
                source: None,
            });
        }
        let columns = self
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                types::convert(*kind, batch.column(i)).map_err(|message| {
                    Error::UnrepresentableValue {
                        table: self.table.clone(),
                        column: self.names[i].clone(),
                        message,
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| Error::SourceQuery {
            connection: self.connection.clone(),
            table: self.table.clone(),
            step: "read the rows",
            message: e.to_string(),
            source: Some(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::comparisons;

    #[test]
    fn renders_snowflake_sql() {
        let p = comparisons(&[
            (
                ">",
                "TS",
                WatermarkKind::TimestampTz,
                "2024-01-02 03:04:05+00",
            ),
            (
                "<=",
                "NTZ",
                WatermarkKind::Timestamp,
                "2024-01-02 03:04:05.25",
            ),
            (">", "name", WatermarkKind::Text, "it's \\ here"),
            (">=", "DAY", WatermarkKind::Date, "2024-01-01"),
            ("<=", "AMOUNT", WatermarkKind::Decimal, "-12.50"),
        ]);
        assert_eq!(
            SnowflakeDialect.render(&p).unwrap(),
            "(\"TS\" > '2024-01-02 03:04:05.000000 +00:00'::TIMESTAMP_TZ) \
             AND (\"NTZ\" <= '2024-01-02 03:04:05.250000'::TIMESTAMP_NTZ) \
             AND (\"name\" > 'it''s \\\\ here') AND (\"DAY\" >= '2024-01-01'::DATE) \
             AND (\"AMOUNT\" <= -12.50)"
        );
        assert_eq!(SnowflakeDialect.quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
