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

use base64::Engine as _;
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
    #[serde(default)]
    expires_in: Option<u64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Auth {
    /// The first method whose variables are set, in the order Databricks' tools use.
    pub(crate) fn from_env(host: &str) -> Auth {
        if let Some(token) = env("DATABRICKS_TOKEN") {
            return Auth::Token(token);
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

    /// The `Authorization` header's value, if any; an error says which step failed and why,
    /// without a secret.
    pub(crate) async fn header(&self, http: &reqwest::Client) -> Result<Option<String>, String> {
        match self {
            Auth::None => Ok(None),
            Auth::Token(token) => Ok(Some(format!("Bearer {token}"))),
            Auth::Client(client) => client
                .token(http)
                .await
                .map(|t| Some(format!("Bearer {t}"))),
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
            let pair = format!("{}:{}", self.client_id, self.client_secret);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header("Authorization", format!("Basic {encoded}"));
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
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600).saturating_sub(60));
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
