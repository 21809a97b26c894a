//! A thin client of Snowflake's REST API, the one the official drivers speak: log in, run a
//! statement, and read its result as Arrow — the first part inline, the rest as chunks
//! fetched one at a time, so a large result is never held whole.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

use super::types::RowType;

/// Statements still running after this answer come back as "in progress"; polled until done.
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];

#[derive(Debug)]
pub enum ClientError {
    /// The service could not be reached, or answered something that is not Snowflake.
    Connect(String),
    /// Login refused.
    Auth(String),
    /// A statement failed; `code` is Snowflake's error code (`002003`: no such object).
    Query { code: String, message: String },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(m) | ClientError::Auth(m) => f.write_str(m),
            ClientError::Query { code, message } if message.contains(code.as_str()) => {
                f.write_str(message)
            }
            ClientError::Query { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

impl std::error::Error for ClientError {}

pub enum Credential {
    Password(String),
    /// A key-pair login token (see [`super::auth::KeyPair::token`]).
    Jwt(String),
}

pub struct Login<'a> {
    /// `https://<account>.snowflakecomputing.com:443`, or an emulator's address.
    pub base_url: &'a str,
    pub account: &'a str,
    pub user: &'a str,
    pub credential: Credential,
    pub database: &'a str,
    pub schema: Option<&'a str>,
    pub warehouse: Option<&'a str>,
    pub role: Option<&'a str>,
}

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: String,
    pub server_version: Option<String>,
    sequence: AtomicU64,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// No `Debug`: a chunk's URL is presigned, its query string a credential.
#[derive(Deserialize)]
pub struct ChunkRef {
    pub url: String,
    #[serde(rename = "rowCount", default)]
    pub row_count: u64,
}

/// A statement's result: its columns and where its rows are. No `Debug`: it holds presigned
/// chunk URLs and the chunks' encryption key.
#[derive(Deserialize)]
pub struct QueryResult {
    pub rowtype: Vec<RowType>,
    #[serde(rename = "queryResultFormat", default)]
    pub format: Option<String>,
    #[serde(rename = "rowsetBase64", default)]
    rowset_base64: Option<String>,
    #[serde(default)]
    pub chunks: Vec<ChunkRef>,
    /// Headers to send with each chunk request, when the service names them.
    #[serde(rename = "chunkHeaders", default)]
    chunk_headers: Option<std::collections::BTreeMap<String, String>>,
    /// The key of result chunks stored with customer-key encryption (S3 SSE-C).
    #[serde(default)]
    qrmk: Option<String>,
}

fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let h = format!(
        "{:032x}",
        nanos ^ (u128::from(n) << 64) ^ u128::from(std::process::id())
    );
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn connect_error(base_url: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Connect(format!("{base_url}: {e}"))
}

impl Client {
    pub async fn login(login: Login<'_>) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            // A stalled answer or chunk download fails instead of hanging the load.
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("DataLoader/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| connect_error(login.base_url, e))?;
        let mut url = url::Url::parse(&format!(
            "{}/session/v1/login-request",
            login.base_url.trim_end_matches('/')
        ))
        .map_err(|e| connect_error(login.base_url, e))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("databaseName", login.database);
            if let Some(s) = login.schema {
                q.append_pair("schemaName", s);
            }
            if let Some(w) = login.warehouse {
                q.append_pair("warehouse", w);
            }
            if let Some(r) = login.role {
                q.append_pair("roleName", r);
            }
            q.append_pair("requestId", &request_id());
        }
        let mut data = serde_json::json!({
            // The Go driver's identity: Snowflake answers it with Arrow results.
            "CLIENT_APP_ID": "Go",
            "CLIENT_APP_VERSION": "1.6.22",
            "ACCOUNT_NAME": login.account.split('.').next().unwrap_or(login.account),
            "LOGIN_NAME": login.user,
            "SESSION_PARAMETERS": { "TIMEZONE": "UTC" },
            "CLIENT_ENVIRONMENT": { "APPLICATION": "DataLoader" },
        });
        match login.credential {
            Credential::Password(p) => data["PASSWORD"] = p.into(),
            Credential::Jwt(t) => {
                data["AUTHENTICATOR"] = "SNOWFLAKE_JWT".into();
                data["TOKEN"] = t.into();
            }
        }
        let body = serde_json::json!({ "data": data });
        let answer = http
            .post(url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| connect_error(login.base_url, e))?;
        let envelope = read_envelope(login.base_url, answer).await?;
        if !envelope.success {
            return Err(ClientError::Auth(format!(
                "{} (code {})",
                envelope.message.unwrap_or_else(|| "login refused".into()),
                envelope.code.unwrap_or_default()
            )));
        }
        let data = envelope.data.unwrap_or_default();
        let token = data["token"]
            .as_str()
            .ok_or_else(|| connect_error(login.base_url, "the login answer has no token"))?
            .to_string();
        Ok(Client {
            http,
            base_url: login.base_url.trim_end_matches('/').to_string(),
            token,
            server_version: data["serverVersion"].as_str().map(str::to_string),
            sequence: AtomicU64::new(1),
        })
    }

    fn authorization(&self) -> String {
        format!("Snowflake Token=\"{}\"", self.token)
    }

    /// Runs one statement and waits for its result.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, ClientError> {
        let url = format!(
            "{}/queries/v1/query-request?requestId={}",
            self.base_url,
            request_id()
        );
        let body = serde_json::json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": self.sequence.fetch_add(1, Ordering::Relaxed),
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
        });
        let answer = self
            .http
            .post(&url)
            .header("accept", "application/snowflake")
            .header("content-type", "application/json")
            .header("authorization", self.authorization())
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| connect_error(&self.base_url, e))?;
        let mut envelope = read_envelope(&self.base_url, answer).await?;
        let mut wait = Duration::from_millis(100);
        while envelope
            .code
            .as_deref()
            .is_some_and(|c| IN_PROGRESS.contains(&c))
        {
            let path = envelope
                .data
                .as_ref()
                .and_then(|d| d["getResultUrl"].as_str())
                .ok_or_else(|| {
                    connect_error(&self.base_url, "a running statement without getResultUrl")
                })?
                .to_string();
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let answer = self
                .http
                .get(format!("{}{path}", self.base_url))
                .header("accept", "application/snowflake")
                .header("authorization", self.authorization())
                .send()
                .await
                .map_err(|e| connect_error(&self.base_url, e))?;
            envelope = read_envelope(&self.base_url, answer).await?;
        }
        if !envelope.success {
            let data = envelope.data.unwrap_or_default();
            return Err(ClientError::Query {
                code: envelope
                    .code
                    .or_else(|| data["errorCode"].as_str().map(str::to_string))
                    .unwrap_or_default(),
                message: envelope
                    .message
                    .unwrap_or_else(|| "the statement failed".into()),
            });
        }
        serde_json::from_value(envelope.data.unwrap_or_default())
            .map_err(|e| connect_error(&self.base_url, format!("unreadable result: {e}")))
    }

    /// Batches of part `part` of a result: 0 is the inline part, 1… the chunks.
    pub async fn part(
        &self,
        result: &QueryResult,
        part: usize,
    ) -> Result<Vec<RecordBatch>, ClientError> {
        // Part 0 is the rowset inline in the response; part n the n-th chunk.
        let chunk = part.checked_sub(1).map(|i| &result.chunks[i]);
        let bytes = match chunk {
            None => match result.rowset_base64.as_deref() {
                None | Some("") => return Ok(Vec::new()),
                Some(b64) => STANDARD
                    .decode(b64)
                    .map_err(|e| connect_error(&self.base_url, format!("bad rowsetBase64: {e}")))?,
            },
            Some(chunk) => self.chunk(result, chunk).await?,
        };
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| {
            connect_error(&self.base_url, format!("unreadable Arrow result: {e}"))
        })?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| connect_error(&self.base_url, format!("unreadable Arrow result: {e}")))?;
        // A chunk says how many rows it holds: fewer decoded means a cut-off download.
        if let Some(chunk) = chunk {
            let decoded: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if chunk.row_count > 0 && decoded as u64 != chunk.row_count {
                return Err(ClientError::Connect(format!(
                    "result chunk {part} holds {decoded} rows, not the {} Snowflake announced",
                    chunk.row_count
                )));
            }
        }
        Ok(batches)
    }

    async fn chunk(&self, result: &QueryResult, chunk: &ChunkRef) -> Result<Vec<u8>, ClientError> {
        // The chunk URL is presigned: its query string is a credential, so messages show the
        // URL without it (and reqwest's errors without the URL).
        let shown = chunk.url.split('?').next().unwrap_or_default().to_string();
        let mut request = self.http.get(&chunk.url);
        if let Some(headers) = &result.chunk_headers {
            for (k, v) in headers {
                request = request.header(k, v);
            }
        } else if let Some(key) = &result.qrmk {
            request = request
                .header("x-amz-server-side-encryption-customer-algorithm", "AES256")
                .header("x-amz-server-side-encryption-customer-key", key);
        }
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let Some(req) = request.try_clone() else {
                break;
            };
            match req.send().await {
                Ok(answer) if answer.status().is_success() => {
                    let body = answer
                        .bytes()
                        .await
                        .map_err(|e| connect_error(&shown, e.without_url()))?;
                    return gunzip(&body).map_err(|e| connect_error(&shown, e));
                }
                Ok(answer) => last_error = format!("HTTP {}", answer.status()),
                Err(e) => last_error = e.without_url().to_string(),
            }
        }
        Err(ClientError::Connect(format!(
            "result chunk {shown} could not be fetched: {last_error}"
        )))
    }
}

/// Chunks are stored gzip-compressed; some stores decompress them on the way.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| format!("corrupt gzip chunk: {e}"))?;
        Ok(out)
    } else {
        Ok(body.to_vec())
    }
}

async fn read_envelope(base_url: &str, answer: reqwest::Response) -> Result<Envelope, ClientError> {
    let status = answer.status();
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| connect_error(base_url, e))?;
    match serde_json::from_slice::<Envelope>(&bytes) {
        Ok(e) => Ok(e),
        Err(_)
            if status == reqwest::StatusCode::FORBIDDEN
                || status == reqwest::StatusCode::UNAUTHORIZED =>
        {
            Err(ClientError::Auth(format!("HTTP {status}")))
        }
        Err(_) => Err(connect_error(
            base_url,
            format!(
                "HTTP {status}, not a Snowflake answer: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        )),
    }
}
