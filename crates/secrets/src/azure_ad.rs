//! Azure AD tokens: the workspace's one implementation of Azure AD's token calls, for Key Vault
//! (`azure.rs`), Unity Catalog on Azure Databricks (`dataloader-lake`) and SQL Server's
//! `auth=aad` (`dataloader-sources`).
//!
//! An [`AzureAd`] holds one [`AzureCredential`] and gets tokens for any scope with it:
//! - a service principal's client secret, or workload identity's federated token, in a form
//!   POST to `{authority}/{tenant}/oauth2/v2.0/token` (client credentials);
//! - managed identity: a GET of the instance metadata service, or of App Service's
//!   `IDENTITY_ENDPOINT` with its `X-IDENTITY-HEADER`, for the scope's resource.
//!
//! Tokens are cached per scope until a minute before they expire; [`AzureAd::forget`] drops
//! one a service refused. How the credential is configured (which variables or options) is
//! the caller's: [`AzureAd::named`] says how messages name it. Errors never hold a token, a
//! client secret, a federated token or an identity header.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dataloader_core::secret::{mask, SecretFailure, SecretSetting};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Azure AD's public cloud; `AZURE_AUTHORITY_HOST` names another.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The VM instance metadata service's token URL.
pub const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

pub enum ManagedIdentityEndpoint {
    /// A VM's instance metadata service (its token URL).
    Imds(String),
    /// App Service and its kin: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    AppService { endpoint: String, header: String },
}

/// How DataLoader signs in to Azure AD. No `Debug`: it may hold a client secret.
pub enum AzureCredential {
    ClientSecret {
        tenant: String,
        client_id: String,
        /// The value, or a reference resolved at each token request.
        secret: SecretSetting,
    },
    WorkloadIdentity {
        tenant: String,
        client_id: String,
        token_file: String,
    },
    ManagedIdentity {
        /// A user-assigned identity's client id; the system-assigned one when `None`.
        client_id: Option<String>,
        endpoint: ManagedIdentityEndpoint,
    },
}

impl AzureCredential {
    /// What signs in, by the variables of Azure's tools (Key Vault's): never a value.
    pub fn describe(&self) -> &'static str {
        match self {
            AzureCredential::ClientSecret {
                secret: SecretSetting::Value(_),
                ..
            } => "the service principal AZURE_CLIENT_ID with AZURE_CLIENT_SECRET",
            AzureCredential::ClientSecret { .. } => {
                "the service principal AZURE_CLIENT_ID with DATALOADER_KEYVAULT_CLIENT_SECRET"
            }
            AzureCredential::WorkloadIdentity { .. } => {
                "workload identity (AZURE_FEDERATED_TOKEN_FILE)"
            }
            AzureCredential::ManagedIdentity {
                endpoint: ManagedIdentityEndpoint::AppService { .. },
                ..
            } => "managed identity (IDENTITY_ENDPOINT)",
            AzureCredential::ManagedIdentity { .. } => "managed identity (instance metadata)",
        }
    }
}

/// Why no token came: `Unreachable` (worth a retry: no answer, throttled, a 5xx) or
/// `Unauthenticated`. The message names the credential and Azure AD's error code and first
/// line of its description, starting lower-case so a caller can prefix it.
#[derive(Debug)]
pub struct TokenError {
    pub failure: SecretFailure,
    pub message: String,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TokenError {}

/// An OAuth 2 token endpoint's answer: Azure AD's, or Databricks' (`dataloader-lake`).
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    /// Seconds; managed identity and Azure AD's v1 endpoints send it as text.
    #[serde(default)]
    pub expires_in: Option<serde_json::Value>,
}

impl TokenAnswer {
    /// How long to use the token: until a minute before it expires (an hour when unsaid).
    pub fn lifetime(&self) -> Duration {
        let seconds = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Duration::from_secs(seconds.unwrap_or(3600).saturating_sub(60))
    }
}

/// Tokens of one credential, cached per scope. No `Debug`: it holds the credential and tokens.
pub struct AzureAd {
    credential: AzureCredential,
    authority_host: String,
    /// How messages name the credential; [`AzureCredential::describe`] unless
    /// [`AzureAd::named`].
    name: Option<&'static str>,
    http: reqwest::Client,
    /// Scope → token and when to stop using it.
    cached: Mutex<HashMap<String, (String, Instant)>>,
}

impl AzureAd {
    /// Signs in with `credential` at `authority_host` (`https://login.microsoftonline.com`,
    /// or a sovereign cloud's; unused by managed identity).
    pub fn new(credential: AzureCredential, authority_host: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            // Only a TLS back end that cannot start fails here; the plain client then says so
            // at the first request.
            .unwrap_or_default();
        AzureAd {
            credential,
            authority_host: authority_host.into(),
            name: None,
            http,
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// Names the credential in messages as its caller configures it
    /// (`the Azure AD service principal ARM_CLIENT_ID`): variable or option names, never values.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// What signs in, for messages.
    pub fn describe(&self) -> &'static str {
        self.name.unwrap_or_else(|| self.credential.describe())
    }

    /// A token for `scope` (`https://vault.azure.net/.default`), cached until a minute before
    /// it expires.
    pub async fn token(&self, scope: &str) -> Result<String, TokenError> {
        // Held across the request: loads starting together ask Azure AD once.
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.get(scope) {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.request(scope).await?;
        cached.insert(
            scope.to_string(),
            (token.clone(), Instant::now() + lifetime),
        );
        Ok(token)
    }

    /// Forgets the cached token for `scope`, one a service refused (revoked, or expired early).
    pub async fn forget(&self, scope: &str) {
        self.cached.lock().await.remove(scope);
    }

    async fn request(&self, scope: &str) -> Result<(String, Duration), TokenError> {
        let who = self.describe();
        // Every value that must not reach a message.
        let mut hidden: Vec<String> = Vec::new();
        let unauthenticated = |message: String| TokenError {
            failure: SecretFailure::Unauthenticated,
            message,
        };
        let request = match &self.credential {
            AzureCredential::ClientSecret {
                tenant,
                client_id,
                secret,
            } => {
                let secret = match secret {
                    SecretSetting::Value(v) => v.clone(),
                    SecretSetting::Reference(r) => r.resolve().await.map_err(|e| {
                        unauthenticated(format!(
                            "the client secret {r} of {who} cannot be read: {e}"
                        ))
                    })?,
                };
                hidden.push(secret.clone());
                let body = form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", &secret),
                    ("scope", scope),
                ]);
                self.http
                    .post(self.token_url(tenant))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            AzureCredential::WorkloadIdentity {
                tenant,
                client_id,
                token_file,
            } => {
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    unauthenticated(format!(
                        "cannot read AZURE_FEDERATED_TOKEN_FILE {token_file}: {e}"
                    ))
                })?;
                let assertion = assertion.trim().to_string();
                hidden.push(assertion.clone());
                let body = form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", scope),
                ]);
                self.http
                    .post(self.token_url(tenant))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            AzureCredential::ManagedIdentity {
                client_id,
                endpoint,
            } => {
                let resource = scope.trim_end_matches("/.default");
                let (base, version) = match endpoint {
                    ManagedIdentityEndpoint::Imds(url) => (url.as_str(), "2018-02-01"),
                    ManagedIdentityEndpoint::AppService { endpoint, .. } => {
                        (endpoint.as_str(), "2019-08-01")
                    }
                };
                let mut pairs = vec![("api-version", version), ("resource", resource)];
                if let Some(id) = client_id {
                    pairs.push(("client_id", id));
                }
                let url = format!("{base}?{}", form(&pairs));
                let request = self.http.get(url);
                match endpoint {
                    ManagedIdentityEndpoint::Imds(_) => request.header("Metadata", "true"),
                    ManagedIdentityEndpoint::AppService { header, .. } => {
                        hidden.push(header.clone());
                        request.header("X-IDENTITY-HEADER", header)
                    }
                }
            }
        };
        let fail = |failure, message: String| TokenError {
            failure,
            message: hidden.iter().fold(message, |m, h| mask(&m, h)),
        };
        let response = request.send().await.map_err(|e| {
            fail(
                SecretFailure::Unreachable,
                format!("getting an Azure AD token for {who}: {e}"),
            )
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        if status != 200 {
            // Azure AD's error: {"error": "invalid_client", "error_description": "AADSTS…"}.
            // Its description is kept to the first line: the rest is trace and timestamps.
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = error["error"].as_str().unwrap_or("no error code");
            let said = error["error_description"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("");
            let failure = match status {
                408 | 429 | 500..=599 => SecretFailure::Unreachable,
                _ => SecretFailure::Unauthenticated,
            };
            return Err(fail(
                failure,
                format!("Azure AD refused a token for {who} (HTTP {status} {code}: {said})"),
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            fail(
                SecretFailure::Unauthenticated,
                format!("Azure AD's answer for {who} held no access_token"),
            )
        })?;
        let lifetime = answer.lifetime();
        Ok((answer.access_token, lifetime))
    }

    fn token_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.authority_host.trim_end_matches('/')
        )
    }
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    form.finish()
}

#[cfg(test)]
mod tests {
    //! Against testkit's loopback `HttpMock` standing in for Azure AD.
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dataloader_testkit::http_mock::HttpMock;

    use super::*;

    fn principal(secret: &str) -> AzureCredential {
        AzureCredential::ClientSecret {
            tenant: "tenant-1".into(),
            client_id: "sp-id".into(),
            secret: SecretSetting::Value(secret.into()),
        }
    }

    #[tokio::test]
    async fn tokens_from_a_mock_authority_are_cached_per_scope_until_forgotten() {
        let issued = AtomicUsize::new(0);
        let mock = HttpMock::start(move |_| {
            let n = issued.fetch_add(1, Ordering::SeqCst);
            (
                200,
                format!(r#"{{"access_token":"tok-{n}","expires_in":3599}}"#),
            )
        })
        .await;
        let azure_ad = AzureAd::new(principal("sp-secret"), mock.url());
        let (a, b) = ("https://a.example/.default", "https://b.example/.default");
        assert_eq!(azure_ad.token(a).await.unwrap(), "tok-0");
        assert_eq!(azure_ad.token(a).await.unwrap(), "tok-0");
        assert_eq!(azure_ad.token(b).await.unwrap(), "tok-1");
        azure_ad.forget(a).await;
        assert_eq!(azure_ad.token(a).await.unwrap(), "tok-2");
        assert_eq!(azure_ad.token(b).await.unwrap(), "tok-1");
        let seen = mock.requests();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0].path(), "/tenant-1/oauth2/v2.0/token");
        assert!(
            seen[1]
                .body
                .contains("scope=https%3A%2F%2Fb.example%2F.default"),
            "{:?}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn a_token_refused_by_a_mock_authority_names_the_credential_never_the_secret() {
        let mock = HttpMock::start(|r| match r.body.contains("client_secret=busy") {
            true => (503, r#"{"error":"temporarily_unavailable"}"#.into()),
            // An authority that echoes what it was sent.
            false => (
                401,
                format!(
                    r#"{{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: {}\r\nTrace ID: 1"}}"#,
                    r.body
                ),
            ),
        })
        .await;
        let err = AzureAd::new(principal("hunter2"), mock.url())
            .named("the service principal ARM_CLIENT_ID")
            .token("https://x/.default")
            .await
            .unwrap_err();
        assert_eq!(err.failure, SecretFailure::Unauthenticated);
        assert!(
            err.message.starts_with(
                "Azure AD refused a token for the service principal ARM_CLIENT_ID (HTTP 401 invalid_client: AADSTS7000215"
            ),
            "{err}"
        );
        assert!(
            !err.message.contains("hunter2") && !err.message.contains("Trace ID"),
            "{err}"
        );
        let err = AzureAd::new(principal("busy"), mock.url())
            .token("https://x/.default")
            .await
            .unwrap_err();
        assert_eq!(err.failure, SecretFailure::Unreachable, "{err}");
        assert!(err.message.contains("AZURE_CLIENT_SECRET"), "{err}");
    }
}
