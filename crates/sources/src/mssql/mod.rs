//! SQL Server source over `tiberius` (TDS 7.3, rustls). SQL logins, or an Azure AD service
//! principal whose secret is a reference: the token comes from the tenant's OAuth endpoint
//! through `dataloader_secrets::AzureAd` (the workspace's one Azure AD client), cached for the
//! source's life until a minute before it expires. Reads run in one transaction (SNAPSHOT isolation with `isolation=snapshot`,
//! when the database allows it), the watermark's maximum captured first and bounding the read.

mod catalog;
pub mod connector;
pub mod types;

use async_trait::async_trait;
use dataloader_core::secret::{cause_unless_secret, mask, SecretRef, SecretSetting};
use dataloader_core::{
    ConnectionConfig, Error, Probe, ReadOutput, ReadRequest, Result, Source, SourceColumn,
    SourceObject, SourceSchema, Watermark, WatermarkKind,
};
use dataloader_secrets::{AzureAd, AzureCredential};
use futures::StreamExt;
use tiberius::{AuthMethod, Client, ColumnData, Config};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::connector::{boxed, Connector};
use crate::dialect::{number_literal, SqlDialect};
use crate::read::{
    batch_schema, column_index, empty_output, not_a_watermark, query_columns, select_sql,
    watermark_kind, where_clause, BatchSender,
};
use connector::MssqlOptions;
use types::Mapping;

type Conn = Client<Compat<TcpStream>>;

/// SQL Server in the registry (`crate::connectors`); the declaration is in `connector.rs`.
pub static CONNECTOR: Connector = connector::declare(|c| boxed(MssqlSource::connect(c)));

pub struct MssqlSource {
    config: ConnectionConfig,
    password: Option<String>,
    options: MssqlOptions,
    /// `auth=aad`: the service principal's tokens.
    azure_ad: Option<AzureAd>,
}

/// Azure SQL's scope.
const AZURE_SQL_SCOPE: &str = "https://database.windows.net/.default";

pub struct MssqlDialect;

fn n_string(value: &str) -> String {
    format!("N'{}'", value.replace('\'', "''"))
}

impl SqlDialect for MssqlDialect {
    fn text(&self, expr: &str) -> String {
        format!("CAST({expr} AS NVARCHAR(MAX))")
    }

    fn quote_ident(&self, ident: &str) -> String {
        format!("[{}]", ident.replace(']', "]]"))
    }

    fn literal(&self, value: &Watermark) -> Result<String> {
        Ok(match value.kind {
            WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value)?,
            WatermarkKind::Date => format!("CAST({} AS date)", n_string(&value.value)),
            WatermarkKind::Timestamp => format!("CAST({} AS datetime2(7))", n_string(&value.value)),
            WatermarkKind::TimestampTz => {
                let utc = chrono::DateTime::from_timestamp_micros(value.timestamp_micros()?)
                    .ok_or_else(|| {
                        Error::config("incremental_value", format!("{value} is out of range"))
                    })?;
                format!(
                    "CAST('{}' AS datetimeoffset(7))",
                    utc.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f +00:00")
                )
            }
            WatermarkKind::Text => n_string(&value.value),
        })
    }
}

/// How a column's maximum is printed so it reads back exactly.
fn max_text(column: &str, data_type: &str, function: &str) -> String {
    let c = MssqlDialect.quote_ident(column);
    match data_type {
        "datetime" | "smalldatetime" | "datetime2" | "date" | "datetimeoffset" => {
            format!("CONVERT(varchar(40), {function}({c}), 121)")
        }
        "char" | "varchar" | "nchar" | "nvarchar" => format!("{function}({c})"),
        _ => format!("CAST({function}({c}) AS varchar(60))"),
    }
}

/// `2024-01-01 00:00:00.1234567 +00:00` (style 121 of a datetimeoffset) → `…+00:00`.
fn watermark_text(kind: WatermarkKind, text: String) -> Result<Watermark> {
    match kind {
        WatermarkKind::TimestampTz => Watermark::new(
            kind,
            text.replace(' ', "T")
                .replacen('T', " ", 1)
                .replace("T", ""),
        ),
        _ => Watermark::new(kind, text),
    }
}

/// The token client of an `auth=aad` connection, `None` for a SQL login. Its client secret is
/// resolved here, once per source as the password is; a missing option is named.
async fn azure_ad(o: &MssqlOptions) -> Result<Option<AzureAd>> {
    if !o.aad {
        return Ok(None);
    }
    let get = |value: &Option<String>, k: &str| {
        value
            .clone()
            .ok_or_else(|| Error::config(k, format!("an auth=aad connection needs --option {k}=…")))
    };
    let secret = SecretRef::parse(&get(&o.client_secret, "client_secret")?)?
        .resolve()
        .await?;
    let credential = AzureCredential::ClientSecret {
        tenant: get(&o.tenant_id, "tenant_id")?,
        client_id: get(&o.client_id, "client_id")?,
        secret: SecretSetting::Value(secret),
    };
    Ok(Some(AzureAd::new(credential, &o.aad_authority).named(
        "the connection's service principal (options client_id, client_secret)",
    )))
}

impl MssqlSource {
    pub async fn connect(config: &ConnectionConfig) -> Result<Self> {
        let options = MssqlOptions::of(config)?;
        let source = MssqlSource {
            config: config.clone(),
            password: config.resolve_password().await?,
            azure_ad: azure_ad(&options).await?,
            options,
        };
        source.conn().await?;
        Ok(source)
    }

    fn fail(&self, table: &str, step: &'static str, e: tiberius::error::Error) -> Error {
        let password = self.password.as_deref().unwrap_or("");
        Error::SourceQuery {
            connection: self.config.name.clone(),
            table: table.to_string(),
            step,
            message: mask(&e.to_string(), password),
            source: cause_unless_secret(e, &[password]),
        }
    }

    async fn conn(&self) -> Result<Conn> {
        let c = &self.config;
        let o = &self.options;
        let mut cfg = Config::new();
        cfg.host(c.host.as_deref().unwrap_or("localhost"));
        cfg.port(c.port.unwrap_or(connector::PORT));
        if let Some(db) = &c.database {
            cfg.database(db);
        }
        o.tls.apply(&mut cfg);
        let cannot_reach = |e: std::io::Error| {
            CONNECTOR.connect_error(c, "mssql", false, e.to_string(), Some(e.into()))
        };
        if let Some(azure_ad) = &self.azure_ad {
            // The message names the options and Azure AD's reason, never the secret.
            let token = azure_ad
                .token(AZURE_SQL_SCOPE)
                .await
                .map_err(|e| Error::Auth {
                    connection: c.name.clone(),
                    message: e.message,
                    source: None,
                })?;
            cfg.authentication(AuthMethod::aad_token(token));
        } else {
            cfg.authentication(AuthMethod::sql_server(
                c.user.clone().unwrap_or_default(),
                self.password.clone().unwrap_or_default(),
            ));
        }
        let tcp = TcpStream::connect(cfg.get_addr())
            .await
            .map_err(cannot_reach)?;
        tcp.set_nodelay(true).map_err(cannot_reach)?;
        Client::connect(cfg, tcp.compat_write()).await.map_err(|e| {
            let password = self.password.as_deref().unwrap_or("");
            let mut message = mask(&e.to_string(), password);
            let source = cause_unless_secret(e, &[password]);
            let refused = message.contains("Login failed") || message.contains("18456");
            let rootcert = o.tls.rootcert.is_some();
            if let Some(hint) = dataloader_core::tls::hint(&message, o.tls.mode, rootcert) {
                message = format!("{message}; {hint}");
            }
            CONNECTOR.connect_error(c, "mssql", refused, message, source)
        })
    }

    fn mapping(
        &self,
        table: &str,
        column: &str,
        entry: &(String, String, Option<u8>, Option<u8>, Option<u8>, bool),
    ) -> Result<Mapping> {
        types::map(&entry.1, entry.2, entry.3, entry.4, &self.options.map).ok_or_else(|| {
            Error::UnsupportedType {
                table: table.to_string(),
                column: column.to_string(),
                native_type: entry.1.clone(),
            }
        })
    }

    async fn first_text(
        &self,
        conn: &mut Conn,
        sql: &str,
        table: &str,
        step: &'static str,
    ) -> Result<Option<String>> {
        let row = conn
            .simple_query(sql)
            .await
            .map_err(|e| self.fail(table, step, e))?
            .into_row()
            .await
            .map_err(|e| self.fail(table, step, e))?;
        Ok(row.and_then(|r| r.get::<&str, _>(0).map(str::to_string)))
    }
}

#[async_trait]
impl Source for MssqlSource {
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> Result<SourceObject> {
        Ok(MssqlDialect.text_projection(object, columns, as_text))
    }

    async fn server_version(&self) -> Result<String> {
        let mut conn = self.conn().await?;
        Ok(self
            .first_text(&mut conn, "SELECT @@VERSION", "", "read the server version")
            .await?
            .unwrap_or_default())
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
        let columns = catalog
            .iter()
            .map(|entry| {
                let m = self.mapping(&shown, &entry.0, entry)?;
                Ok(SourceColumn {
                    name: entry.0.clone(),
                    native_type: entry.1.clone(),
                    data_type: m.data_type,
                    nullable: entry.5,
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
        let keys = conn
            .query(
                "SELECT k.COLUMN_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS c \
                 JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k ON k.CONSTRAINT_NAME = c.CONSTRAINT_NAME \
                 AND k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
                 WHERE c.CONSTRAINT_TYPE = 'PRIMARY KEY' AND c.TABLE_SCHEMA = COALESCE(@P1, SCHEMA_NAME()) \
                 AND c.TABLE_NAME = @P2 ORDER BY k.ORDINAL_POSITION",
                &[&table.schema.as_deref(), &table.name.as_str()],
            )
            .await
            .map_err(|e| self.fail(&shown, "read the primary key", e))?
            .into_first_result()
            .await
            .map_err(|e| self.fail(&shown, "read the primary key", e))?;
        Ok(SourceSchema {
            object: object.clone(),
            columns,
            primary_key: keys
                .iter()
                .filter_map(|r| r.get::<&str, _>(0).map(str::to_string))
                .collect(),
        })
    }

    async fn probe(
        &self,
        object: &SourceObject,
        schema: &SourceSchema,
        probe: &Probe,
    ) -> Result<Option<Watermark>> {
        let shown = object.to_string();
        let d = MssqlDialect;
        let from = d.from(object);
        let mut conn = self.conn().await?;
        let (sql, kind) = match probe {
            Probe::Min(column) | Probe::Max(column) => {
                let function = if matches!(probe, Probe::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                let idx = column_index(&schema.columns, column, &shown, "incremental")?;
                let catalog = self.catalog(&mut conn, object).await?;
                let entry = catalog
                    .iter()
                    .find(|e| &e.0 == column)
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                let kind = self
                    .mapping(&shown, column, entry)?
                    .watermark
                    .ok_or_else(|| not_a_watermark(&schema.columns[idx], &shown))?;
                (
                    format!(
                        "SELECT {} FROM {from}",
                        max_text(column, &entry.1, function)
                    ),
                    kind,
                )
            }
            Probe::RowCount => (
                format!("SELECT CAST(COUNT_BIG(*) AS varchar(30)) FROM {from}"),
                WatermarkKind::Integer,
            ),
            Probe::NullCount(c) => (
                format!(
                    "SELECT CAST(COUNT_BIG(*) AS varchar(30)) FROM {from} WHERE {} IS NULL",
                    d.quote_ident(c)
                ),
                WatermarkKind::Integer,
            ),
            // The user's check query (one reading statement, see core's check_query); its
            // first value, as text.
            Probe::Query(q) => (
                format!("SELECT CAST(({q}) AS nvarchar(4000))"),
                WatermarkKind::Text,
            ),
        };
        self.first_text(&mut conn, &sql, &shown, "probe the table")
            .await?
            .map(|v| watermark_text(kind, v))
            .transpose()
    }

    async fn read(&self, request: ReadRequest) -> Result<ReadOutput> {
        let shown = request.object.to_string();
        let d = MssqlDialect;
        let mut conn = self.conn().await?;
        let catalog = self.catalog(&mut conn, &request.object).await?;
        let entries = request
            .columns
            .iter()
            .map(|c| {
                catalog
                    .iter()
                    .find(|e| e.0 == c.name)
                    .cloned()
                    .ok_or_else(|| Error::ColumnNotFound {
                        table: shown.clone(),
                        column: c.name.clone(),
                        role: "requested",
                        columns: catalog.iter().map(|e| e.0.clone()).collect(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let mappings = entries
            .iter()
            .map(|e| self.mapping(&shown, &e.0, e))
            .collect::<Result<Vec<_>>>()?;
        let from = d.from(&request.object);
        let isolation = if self.options.snapshot {
            "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; "
        } else {
            ""
        };
        conn.simple_query(format!("{isolation}BEGIN TRANSACTION"))
            .await
            .map_err(|e| self.fail(&shown, "begin the read transaction", e))?
            .into_results()
            .await
            .map_err(|e| self.fail(&shown, "begin the read transaction", e))?;
        let mut captured_max = None;
        if let (Some(w), Some(kind)) = (
            &request.watermark,
            watermark_kind(&request, &shown, |i| mappings[i].watermark)?,
        ) {
            let idx = column_index(&request.columns, &w.column, &shown, "incremental")?;
            let sql = format!(
                "SELECT {} FROM {from}{}",
                max_text(&w.column, &entries[idx].1, "MAX"),
                where_clause(&d, request.max_filter().as_ref())?
            );
            captured_max = self
                .first_text(&mut conn, &sql, &shown, "capture the watermark")
                .await?
                .map(|m| watermark_text(kind, m))
                .transpose()?;
        }
        let schema = batch_schema(&request.columns);
        let Some(filter) = request.effective_filter(captured_max.as_ref()) else {
            return Ok(empty_output(schema, captured_max));
        };
        let sql = select_sql(&d, &request.columns, |_, q| q, &from, filter.as_ref())?;
        let (mut sender, batches) = BatchSender::new(schema.clone(), request.batch_size, &shown)?;
        let tz = self.options.map.source_timezone;
        let connection = self.config.name.clone();
        let password = self.password.clone().unwrap_or_default();
        tokio::spawn(async move {
            let fail = |e: tiberius::error::Error| Error::SourceQuery {
                connection: connection.clone(),
                table: shown.clone(),
                step: "read the rows",
                message: mask(&e.to_string(), &password),
                source: cause_unless_secret(e, &[&password]),
            };
            let stream = match conn.simple_query(sql).await {
                Ok(s) => s,
                Err(e) => return sender.fail(fail(e)).await,
            };
            let mut rows = stream.into_row_stream();
            while let Some(row) = rows.next().await {
                let row = match row {
                    Ok(r) => r,
                    Err(e) => return sender.fail(fail(e)).await,
                };
                for (i, value) in row.into_iter().enumerate() {
                    let value: ColumnData<'static> = value;
                    if let Err(message) = types::append(sender.column(i), &value, &mappings[i], tz)
                    {
                        return sender.value_error(i, message).await;
                    }
                }
                if !sender.end_row().await {
                    return;
                }
            }
            drop(rows);
            sender.finish().await;
            let _ = conn.simple_query("COMMIT").await;
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
    use dataloader_testkit::http_mock::HttpMock;

    #[test]
    fn renders_tsql() {
        let p = comparisons(&[
            (
                ">",
                "Modified]At",
                WatermarkKind::Timestamp,
                "2024-01-02 03:04:05.1234567",
            ),
            ("<=", "Id", WatermarkKind::Integer, "42"),
            (">", "Name", WatermarkKind::Text, "O'Hara"),
        ]);
        assert_eq!(
            MssqlDialect.render(&p).unwrap(),
            "([Modified]]At] > CAST(N'2024-01-02 03:04:05.1234567' AS datetime2(7))) AND ([Id] <= 42) AND ([Name] > N'O''Hara')"
        );
        assert_eq!(
            MssqlDialect.table(&SourceTable::parse("dbo.Order Lines").unwrap()),
            "[dbo].[Order Lines]"
        );
        assert_eq!(
            max_text("ModifiedAt", "datetime2", "MAX"),
            "CONVERT(varchar(40), MAX([ModifiedAt]), 121)"
        );
    }

    /// An `auth=aad` connection's options, its client secret in a file.
    fn aad_options(authority: &str, secret: &str) -> MssqlOptions {
        let file = std::env::temp_dir().join(format!(
            "dataloader-mssql-aad-{}-{}",
            std::process::id(),
            secret.len()
        ));
        std::fs::write(&file, secret).unwrap();
        let config = ConnectionConfig {
            name: "sql".into(),
            db_type: "mssql".parse().unwrap(),
            host: Some("h".into()),
            port: None,
            database: Some("d".into()),
            user: None,
            password: None,
            options: [
                ("auth", "aad".to_string()),
                ("tenant_id", "my-tenant".into()),
                ("client_id", "app-id".into()),
                ("client_secret", format!("file:{}", file.display())),
                ("aad_authority", authority.into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            max_connections: None,
        };
        MssqlOptions::of(&config).unwrap()
    }

    /// The token request against a local HTTP server standing in for Azure AD.
    #[tokio::test]
    async fn azure_ad_token_request_mock_server() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let granted =
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAi.test.token"}"#;
        let refusal = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        // The first request gets a token, the second is refused.
        let answered = AtomicUsize::new(0);
        let server = HttpMock::start(move |_| match answered.fetch_add(1, Ordering::SeqCst) {
            0 => (200, granted.into()),
            _ => (401, refusal.into()),
        })
        .await;
        let authority = server.url();
        let client = azure_ad(&aad_options(&authority, "s3cr3t&="))
            .await
            .unwrap()
            .unwrap();
        let token = client.token(AZURE_SQL_SCOPE).await.unwrap();
        assert_eq!(token, "eyJ0eXAi.test.token");
        // Cached: the source's next connection asks Azure AD nothing.
        assert_eq!(client.token(AZURE_SQL_SCOPE).await.unwrap(), token);
        assert_eq!(server.requests().len(), 1);
        let refused = azure_ad(&aad_options(&authority, "wrong"))
            .await
            .unwrap()
            .unwrap()
            .token(AZURE_SQL_SCOPE)
            .await
            .unwrap_err()
            .message;
        assert!(
            refused.contains("AADSTS7000215: Invalid client secret provided."),
            "{refused}"
        );
        assert!(
            refused.contains("client_id, client_secret") && !refused.contains("wrong"),
            "{refused}"
        );
        let seen = server.requests();
        assert!(
            seen[0].method == "POST" && seen[0].target.starts_with("/my-tenant/oauth2/v2.0/token"),
            "{:?}",
            seen[0]
        );
        assert!(seen[0].body.contains("grant_type=client_credentials"));
        assert!(
            seen[0].body.contains("client_secret=s3cr3t%26%3D"),
            "the secret is form-encoded"
        );
        assert!(seen[0]
            .body
            .contains("scope=https%3A%2F%2Fdatabase.windows.net%2F.default"));
    }

    #[tokio::test]
    async fn an_azure_ad_connection_without_its_options_names_the_missing_one() {
        let mut options = aad_options("http://127.0.0.1:9", "s");
        options.tenant_id = None;
        let err = azure_ad(&options).await.err().unwrap().to_string();
        assert!(err.contains("tenant_id"), "{err}");
        let sql_login = MssqlOptions {
            aad: false,
            ..aad_options("http://127.0.0.1:9", "s")
        };
        assert!(azure_ad(&sql_login).await.unwrap().is_none());
    }
}
