//! The Unity Catalog REST calls registration needs (`/api/2.1/unity-catalog`: catalogs,
//! schemas, tables), with answers classified the way Databricks, the open-source server and
//! emulators spell them: by HTTP status and by the error code's suffix, since the open-source
//! server answers "already exists" with 400 and Databricks says `…_DOES_NOT_EXIST`.
//!
//! Written by hand over reqwest: the only Rust client (deltalake's `unity-experimental`) reads
//! tables and cannot create, delete or describe schemas.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::{json_body, Auth};

/// A registered table, as much of `TableInfo` as registration reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TableInfo {
    #[serde(default)]
    pub table_id: Option<String>,
    #[serde(default)]
    pub storage_location: Option<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ColumnInfo {
    pub name: String,
    #[serde(default)]
    pub type_text: Option<String>,
}

/// `POST /tables`: an external Delta table.
#[derive(Debug, Serialize)]
pub(crate) struct CreateTable<'a> {
    pub name: &'a str,
    pub catalog_name: &'a str,
    pub schema_name: &'a str,
    pub table_type: &'static str,
    pub data_source_format: &'static str,
    pub storage_location: &'a str,
    pub comment: &'a str,
    pub properties: &'a BTreeMap<String, String>,
    pub columns: &'a [dataloader_core::CatalogColumn],
}

/// What went wrong with a call.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The object (or one it needs) does not exist.
    Missing(String),
    AlreadyExists(String),
    /// The credentials were refused.
    Unauthenticated(String),
    /// The principal lacks a privilege; the text names it when the server did.
    Denied(String),
    Other(String),
}

impl Failure {
    pub(crate) fn text(&self) -> &str {
        match self {
            Failure::Missing(t) | Failure::AlreadyExists(t) | Failure::Denied(t) => t,
            Failure::Unauthenticated(t) | Failure::Other(t) => t,
        }
    }
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

pub(crate) struct Api {
    http: reqwest::Client,
    /// `https://host` without a trailing slash.
    host: String,
    pub(crate) auth: Auth,
}

const ATTEMPTS: u32 = 3;

impl Api {
    pub(crate) fn new(host: &str) -> Result<Api, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let host = host.trim_end_matches('/').to_string();
        Ok(Api {
            auth: Auth::from_env(&host)?,
            http,
            host,
        })
    }

    fn url(&self, path: &str) -> String {
        self.url_at("2.1", path)
    }

    fn url_at(&self, version: &str, path: &str) -> String {
        format!("{}/api/{version}/unity-catalog/{path}", self.host)
    }

    /// One call, retried on a lost connection, throttling or a server error; `Ok(None)` for a
    /// 200 without a body worth reading.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<serde_json::Value, Failure> {
        self.call_url(method, self.url(path), body).await
    }

    async fn call_url(
        &self,
        method: Method,
        url: String,
        body: Option<String>,
    ) -> Result<serde_json::Value, Failure> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let token = self.auth.bearer(&self.http).await.map_err(Failure::Other)?;
            let mut request = self.http.request(method.clone(), &url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(b) = &body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(b.clone());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{} {url}: {e}", method);
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| Failure::Other(e.to_string()))?;
                return Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null));
            }
            // A token refused once may have been revoked or expired early: a new one is
            // asked for, once.
            let reauthenticate = status == StatusCode::UNAUTHORIZED && attempt == 0;
            if reauthenticate {
                self.auth.forget().await;
            }
            let retried = reauthenticate
                || status == StatusCode::TOO_MANY_REQUESTS
                || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            let error: ErrorBody = json_body(response).await.unwrap_or_default();
            let text = describe(status, &error);
            if retried {
                last = text;
                continue;
            }
            return Err(classify(status, &error, text));
        }
        Err(Failure::Other(format!(
            "{last} (after {ATTEMPTS} attempts)"
        )))
    }

    pub(crate) async fn get_table(&self, full_name: &str) -> Result<Option<TableInfo>, Failure> {
        match self
            .call(Method::GET, &format!("tables/{full_name}"), None)
            .await
        {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Failure::Other(format!("reading table {full_name}: {e}"))),
            Err(Failure::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn exists(&self, path: &str) -> Result<bool, Failure> {
        match self.call(Method::GET, path, None).await {
            Ok(_) => Ok(true),
            Err(Failure::Missing(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn create_schema(&self, catalog: &str, schema: &str) -> Result<(), Failure> {
        let body = serde_json::json!({
            "name": schema,
            "catalog_name": catalog,
            "comment": "Created by DataLoader for the tables it loads",
        });
        match self
            .call(Method::POST, "schemas", Some(body.to_string()))
            .await
        {
            Ok(_) | Err(Failure::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn create_table(&self, table: &CreateTable<'_>) -> Result<(), Failure> {
        let body = serde_json::to_string(table).map_err(|e| Failure::Other(e.to_string()))?;
        self.call(Method::POST, "tables", Some(body))
            .await
            .map(|_| ())
    }

    /// A temporary-credentials call (`temporary-table-credentials` or
    /// `temporary-path-credentials`): Unity Catalog serves them under 2.1, Databricks
    /// documents 2.0; the other is tried when one is not there.
    pub(crate) async fn credentials(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let first = self
            .call_url(
                Method::POST,
                self.url_at("2.1", path),
                Some(body.to_string()),
            )
            .await;
        match first {
            Err(Failure::Other(text)) if text.contains("404") || text.contains("501") => {
                self.call_url(
                    Method::POST,
                    self.url_at("2.0", path),
                    Some(body.to_string()),
                )
                .await
            }
            other => other,
        }
    }

    pub(crate) async fn delete_table(&self, full_name: &str) -> Result<(), Failure> {
        match self
            .call(Method::DELETE, &format!("tables/{full_name}"), None)
            .await
        {
            Ok(_) | Err(Failure::Missing(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `HTTP 403 PERMISSION_DENIED: message`.
fn describe(status: StatusCode, error: &ErrorBody) -> String {
    match (error.error_code.is_empty(), error.message.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (true, false) => format!("HTTP {status}: {}", error.message),
        _ => format!("HTTP {status} {}: {}", error.error_code, error.message),
    }
}

fn classify(status: StatusCode, error: &ErrorBody, text: String) -> Failure {
    let code = error.error_code.as_str();
    // Only an object the API says is missing: a 404 without Unity Catalog's error body is a
    // wrong address (a proxy, a path), and a missing endpoint or metastore is no object.
    let wrong_place =
        code.is_empty() || code == "ENDPOINT_NOT_FOUND" || code.starts_with("METASTORE");
    if !wrong_place
        && (status == StatusCode::NOT_FOUND
            || code.ends_with("NOT_FOUND")
            || code.ends_with("DOES_NOT_EXIST"))
    {
        Failure::Missing(text)
    } else if status == StatusCode::CONFLICT || code.ends_with("ALREADY_EXISTS") {
        Failure::AlreadyExists(text)
    } else if status == StatusCode::UNAUTHORIZED || code == "UNAUTHENTICATED" {
        Failure::Unauthenticated(text)
    } else if status == StatusCode::FORBIDDEN || code == "PERMISSION_DENIED" {
        // Databricks names the missing privilege in the error's details.
        let privilege = error
            .details
            .iter()
            .find_map(|d| d.pointer("/metadata/msg").and_then(|m| m.as_str()));
        Failure::Denied(match privilege {
            Some(p) => format!("{text} (missing privilege: {p})"),
            None => text,
        })
    } else {
        Failure::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> ErrorBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn answers_are_classified_by_status_and_code() {
        let open_source_exists =
            body(serde_json::json!({"error_code": "TABLE_ALREADY_EXISTS", "message": "x"}));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &open_source_exists, "t".into()),
            Failure::AlreadyExists(_)
        ));
        let databricks_missing = body(serde_json::json!({"error_code": "SCHEMA_DOES_NOT_EXIST"}));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &databricks_missing, "t".into()),
            Failure::Missing(_)
        ));
        let denied = body(serde_json::json!({
            "error_code": "PERMISSION_DENIED",
            "message": "User does not have EXTERNAL USE SCHEMA on Schema 'bronze.sales'.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "metadata": {"msg": "EXTERNAL USE SCHEMA", "resourceName": "bronze.sales"}}]
        }));
        let text = describe(StatusCode::FORBIDDEN, &denied);
        match classify(StatusCode::FORBIDDEN, &denied, text) {
            Failure::Denied(t) => assert!(
                t.ends_with("(missing privilege: EXTERNAL USE SCHEMA)"),
                "{t}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &ErrorBody::default(), "t".into()),
            Failure::Other(_)
        ));
        // A 404 from something that is not Unity Catalog is no missing table.
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &ErrorBody::default(), "t".into()),
            Failure::Other(_)
        ));
        let no_endpoint = body(serde_json::json!({"error_code": "ENDPOINT_NOT_FOUND"}));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &no_endpoint, "t".into()),
            Failure::Other(_)
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &ErrorBody::default(), "t".into()),
            Failure::Unauthenticated(_)
        ));
    }
}
