//! How DataLoader authenticates to a Databricks workspace or a Unity Catalog server, from
//! Databricks' usual environment variables, read by name and never printed: a personal
//! access token (`DATABRICKS_TOKEN`), OAuth machine-to-machine (`DATABRICKS_CLIENT_ID`,
//! `DATABRICKS_CLIENT_SECRET`), or an Azure AD service principal (`ARM_TENANT_ID`,
//! `ARM_CLIENT_ID`, `ARM_CLIENT_SECRET`). Tokens from a token endpoint are cached until a
//! minute before they expire.
//!
//! Written by hand: the two client-credential calls are a form POST each, and no maintained
//! crate speaks both Databricks' and Azure AD's without pulling in a cloud SDK.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

/// Azure Databricks' well-known application id: the audience of its Azure AD tokens.
const AZURE_DATABRICKS_SCOPE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default";

pub(crate) enum Auth {
    /// No credentials (a local Unity Catalog server).
    None,
    /// A personal access token.
    Token(String),
    /// A client-credentials grant at `token_url`.
    Client(ClientCredentials),
}

pub(crate) struct ClientCredentials {
    /// `DATABRICKS_CLIENT_ID` or `ARM_CLIENT_ID`, for messages.
    pub(crate) source: &'static str,
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: &'static str,
    /// Databricks takes the client in a Basic header, Azure AD in the form.
    basic: bool,
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; Azure AD's v1 endpoints send it as text.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Auth {
    /// The first method whose variables are set, in the order Databricks' tools use.
    pub(crate) fn from_env(host: &str) -> Auth {
        Auth::from_vars(host, env)
    }

    fn from_vars(host: &str, env: impl Fn(&str) -> Option<String>) -> Auth {
        if let Some(token) = env("DATABRICKS_TOKEN") {
            return Auth::Token(token.trim().to_string());
        }
        if let (Some(id), Some(secret)) =
            (env("DATABRICKS_CLIENT_ID"), env("DATABRICKS_CLIENT_SECRET"))
        {
            return Auth::Client(ClientCredentials {
                source: "DATABRICKS_CLIENT_ID",
                token_url: format!("{}/oidc/v1/token", host.trim_end_matches('/')),
                client_id: id,
                client_secret: secret,
                scope: "all-apis",
                basic: true,
                cached: Mutex::new(None),
            });
        }
        if let (Some(tenant), Some(id), Some(secret)) = (
            env("ARM_TENANT_ID"),
            env("ARM_CLIENT_ID"),
            env("ARM_CLIENT_SECRET"),
        ) {
            // Sovereign clouds (and tests) name another authority, as Azure's SDKs do.
            let authority = env("AZURE_AUTHORITY_HOST")
                .unwrap_or_else(|| "https://login.microsoftonline.com".into());
            return Auth::Client(ClientCredentials {
                source: "ARM_CLIENT_ID",
                token_url: format!(
                    "{}/{tenant}/oauth2/v2.0/token",
                    authority.trim_end_matches('/')
                ),
                client_id: id,
                client_secret: secret,
                scope: AZURE_DATABRICKS_SCOPE,
                basic: false,
                cached: Mutex::new(None),
            });
        }
        Auth::None
    }

    /// What the catalog authenticates with, for `catalog sync` and messages: never a value.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Auth::None => "no credentials",
            Auth::Token(_) => "DATABRICKS_TOKEN",
            Auth::Client(c) if c.basic => "OAuth M2M (DATABRICKS_CLIENT_ID)",
            Auth::Client(_) => "Azure AD service principal (ARM_CLIENT_ID)",
        }
    }

    /// The bearer token to send, if any; an error says which step failed and why, without a
    /// secret.
    pub(crate) async fn bearer(&self, http: &reqwest::Client) -> Result<Option<String>, String> {
        match self {
            Auth::None => Ok(None),
            Auth::Token(token) => Ok(Some(token.clone())),
            Auth::Client(client) => client.token(http).await.map(Some),
        }
    }

    /// Forgets a cached token the server no longer takes (revoked, or expired early).
    pub(crate) async fn forget(&self) {
        if let Auth::Client(client) = self {
            *client.cached.lock().await = None;
        }
    }
}

impl ClientCredentials {
    async fn token(&self, http: &reqwest::Client) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        // Built before any await: the serializer is not Send.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("scope", self.scope);
            if !self.basic {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", &self.client_secret);
            }
            form.finish()
        };
        let mut request = http
            .post(&self.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded");
        if self.basic {
            request = request.basic_auth(&self.client_id, Some(&self.client_secret));
        }
        let response = request.body(body).send().await.map_err(|e| {
            format!(
                "getting a token for {} from {}: {e}",
                self.source, self.token_url
            )
        })?;
        let status = response.status();
        // The answer holds a token: only its status is ever shown.
        if !status.is_success() {
            return Err(format!(
                "getting a token for {} from {}: HTTP {status} (check the client id and secret, and that the principal may use the workspace)",
                self.source, self.token_url
            ));
        }
        let answer: TokenAnswer = json_body(response).await.map_err(|_| {
            format!(
                "getting a token for {} from {}: the answer held no access_token",
                self.source, self.token_url
            )
        })?;
        let seconds = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let lifetime = Duration::from_secs(seconds.unwrap_or(3600).saturating_sub(60));
        *cached = Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }
}

/// A JSON body, without reqwest's `json` feature.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, String> {
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    //! Against a mock token server on loopback: no Databricks or Azure AD runs here.
    use base64::Engine as _;
    use dataloader_testkit::http_mock::HttpMock;

    use super::*;

    /// Answers every request with `status` and `body`.
    async fn mock_token_server(status: u16, body: &'static str) -> HttpMock {
        HttpMock::start(move |_| (status, body.to_string())).await
    }

    fn vars(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[tokio::test]
    async fn oauth_m2m_against_a_mock_token_server_sends_basic_auth_and_caches_the_token() {
        let mock = mock_token_server(
            200,
            r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#,
        )
        .await;
        let auth = Auth::from_vars(
            &mock.url(),
            vars(&[
                ("DATABRICKS_CLIENT_ID", "loader-id".into()),
                ("DATABRICKS_CLIENT_SECRET", "s3cret".into()),
            ]),
        );
        assert_eq!(auth.describe(), "OAuth M2M (DATABRICKS_CLIENT_ID)");
        let http = reqwest::Client::new();
        for _ in 0..2 {
            assert_eq!(auth.bearer(&http).await.unwrap().as_deref(), Some("tok-1"));
        }
        let seen = mock.requests();
        assert_eq!(seen.len(), 1, "the token is cached: {seen:?}");
        let request = &seen[0];
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", "/oidc/v1/token"),
            "{request:?}"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("loader-id:s3cret");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Basic {basic}").as_str()),
            "{request:?}"
        );
        assert!(
            request
                .body
                .ends_with("grant_type=client_credentials&scope=all-apis"),
            "{request:?}"
        );
    }

    #[tokio::test]
    async fn azure_service_principal_against_a_mock_authority_posts_the_client_in_the_form() {
        let mock =
            mock_token_server(200, r#"{"access_token":"aad-tok","expires_in":"3599"}"#).await;
        let auth = Auth::from_vars(
            "https://adb-1.azuredatabricks.net",
            vars(&[
                ("ARM_TENANT_ID", "tenant-1".into()),
                ("ARM_CLIENT_ID", "sp-id".into()),
                ("ARM_CLIENT_SECRET", "sp-secret".into()),
                ("AZURE_AUTHORITY_HOST", mock.url()),
            ]),
        );
        let header = auth.bearer(&reqwest::Client::new()).await;
        let seen = mock.requests();
        let request = &seen[0];
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", "/tenant-1/oauth2/v2.0/token"),
            "{request:?}"
        );
        assert!(
            request
                .body
                .contains("client_id=sp-id&client_secret=sp-secret")
                && request
                    .body
                    .contains("scope=2ff814a6-3304-4ab8-85cb-cd0e6f879c1d%2F.default"),
            "{request:?}"
        );
        // expires_in as text, as Azure AD's v1 endpoints send it, is read too.
        assert_eq!(header.unwrap().as_deref(), Some("aad-tok"));
    }

    #[tokio::test]
    async fn a_refused_client_is_an_error_without_the_secret() {
        let mock = mock_token_server(401, r#"{"error":"invalid_client","echo":"s3cret"}"#).await;
        let auth = Auth::from_vars(
            &mock.url(),
            vars(&[
                ("DATABRICKS_CLIENT_ID", "loader-id".into()),
                ("DATABRICKS_CLIENT_SECRET", "s3cret".into()),
            ]),
        );
        let err = auth.bearer(&reqwest::Client::new()).await.unwrap_err();
        assert!(
            err.contains("HTTP 401") && err.contains("DATABRICKS_CLIENT_ID"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
}
