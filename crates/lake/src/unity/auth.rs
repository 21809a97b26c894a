//! How DataLoader authenticates to a Databricks workspace or a Unity Catalog server, from
//! Databricks' usual environment variables, read by name and never printed: a personal
//! access token (`DATABRICKS_TOKEN`), OAuth machine-to-machine (`DATABRICKS_CLIENT_ID`,
//! `DATABRICKS_CLIENT_SECRET`), or an Azure AD service principal (`ARM_TENANT_ID`,
//! `ARM_CLIENT_ID`, `ARM_CLIENT_SECRET`, and `AZURE_AUTHORITY_HOST` for another authority).
//! Each of the three secrets may be a reference instead (`azure-keyvault://…`, `aws-sm://…`,
//! `file:…`), read when a token is needed, so a rotation in the vault is picked up.
//! Tokens from a token endpoint are cached until a minute before they expire.
//!
//! The Azure AD token comes from `dataloader_secrets::AzureAd`, the workspace's one Azure AD
//! client. Databricks' own OAuth call is here, by hand: a form POST with a Basic header, where
//! Databricks' SDK would bring a cloud SDK.

use std::time::Instant;

use dataloader_core::secret::SecretSetting;
use dataloader_secrets::azure_ad::TokenAnswer;
use dataloader_secrets::{AzureAd, AzureCredential};
use tokio::sync::Mutex;

/// Azure Databricks' well-known application id: the audience of its Azure AD tokens.
const AZURE_DATABRICKS_SCOPE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default";

pub(crate) enum Auth {
    /// No credentials (a local Unity Catalog server).
    None,
    /// A personal access token, or a reference to one.
    Token(SecretSetting),
    /// Databricks OAuth M2M: a client-credentials grant at `{host}/oidc/v1/token`.
    Client(ClientCredentials),
    /// An Azure AD service principal, for Azure Databricks' scope.
    Azure(AzureAd),
}

pub(crate) struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: SecretSetting,
    cached: Mutex<Option<(String, Instant)>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The secret in variable `name`: its value, or the reference it holds.
fn secret_var(name: &str, value: &str) -> Result<SecretSetting, String> {
    SecretSetting::parse(name, value).map_err(|e| e.to_string())
}

impl Auth {
    /// The first method whose variables are set, in the order Databricks' tools use; an error
    /// names a variable whose reference is malformed.
    pub(crate) fn from_env(host: &str) -> Result<Auth, String> {
        Auth::from_vars(host, env)
    }

    fn from_vars(host: &str, env: impl Fn(&str) -> Option<String>) -> Result<Auth, String> {
        if let Some(token) = env("DATABRICKS_TOKEN") {
            return Ok(Auth::Token(secret_var("DATABRICKS_TOKEN", &token)?));
        }
        if let (Some(id), Some(secret)) =
            (env("DATABRICKS_CLIENT_ID"), env("DATABRICKS_CLIENT_SECRET"))
        {
            return Ok(Auth::Client(ClientCredentials {
                token_url: format!("{}/oidc/v1/token", host.trim_end_matches('/')),
                client_id: id,
                client_secret: secret_var("DATABRICKS_CLIENT_SECRET", &secret)?,
                cached: Mutex::new(None),
            }));
        }
        if let (Some(tenant), Some(id), Some(secret)) = (
            env("ARM_TENANT_ID"),
            env("ARM_CLIENT_ID"),
            env("ARM_CLIENT_SECRET"),
        ) {
            // Sovereign clouds (and tests) name another authority, as Azure's SDKs do.
            let authority = env("AZURE_AUTHORITY_HOST")
                .unwrap_or_else(|| dataloader_secrets::azure_ad::DEFAULT_AUTHORITY.into());
            let credential = AzureCredential::ClientSecret {
                tenant,
                client_id: id,
                secret: secret_var("ARM_CLIENT_SECRET", &secret)?,
            };
            return Ok(Auth::Azure(AzureAd::new(credential, authority).named(
                "the service principal ARM_CLIENT_ID with ARM_CLIENT_SECRET",
            )));
        }
        Ok(Auth::None)
    }

    /// What the catalog authenticates with, for `catalog sync` and messages: never a value.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Auth::None => "no credentials",
            Auth::Token(_) => "DATABRICKS_TOKEN",
            Auth::Client(_) => "OAuth M2M (DATABRICKS_CLIENT_ID)",
            Auth::Azure(_) => "Azure AD service principal (ARM_CLIENT_ID)",
        }
    }

    /// The bearer token to send, if any; an error says which step failed and why, without a
    /// secret.
    pub(crate) async fn bearer(&self, http: &reqwest::Client) -> Result<Option<String>, String> {
        match self {
            Auth::None => Ok(None),
            // The error names the reference and the vault's reason.
            Auth::Token(token) => token
                .get()
                .await
                .map(|t| Some(t.trim().to_string()))
                .map_err(|e| format!("reading DATABRICKS_TOKEN: {e}")),
            Auth::Client(client) => client.token(http).await.map(Some),
            // The error names ARM_CLIENT_ID and Azure AD's reason, never the secret.
            Auth::Azure(azure_ad) => azure_ad
                .token(AZURE_DATABRICKS_SCOPE)
                .await
                .map(Some)
                .map_err(|e| e.message),
        }
    }

    /// Forgets a cached token the server no longer takes (revoked, or expired early).
    pub(crate) async fn forget(&self) {
        match self {
            Auth::Client(client) => *client.cached.lock().await = None,
            Auth::Azure(azure_ad) => azure_ad.forget(AZURE_DATABRICKS_SCOPE).await,
            Auth::None | Auth::Token(_) => {}
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
        let secret = self
            .client_secret
            .get()
            .await
            .map_err(|e| format!("reading DATABRICKS_CLIENT_SECRET: {e}"))?;
        // Built before any await: the serializer is not Send.
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", "all-apis")
            .finish();
        let request = http
            .post(&self.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .basic_auth(&self.client_id, Some(&secret));
        let response = request.body(body).send().await.map_err(|e| {
            format!(
                "getting a token for DATABRICKS_CLIENT_ID from {}: {e}",
                self.token_url
            )
        })?;
        let status = response.status();
        // The answer holds a token: only its status is ever shown.
        if !status.is_success() {
            return Err(format!(
                "getting a token for DATABRICKS_CLIENT_ID from {}: HTTP {status} (check the client id and secret, and that the principal may use the workspace)",
                self.token_url
            ));
        }
        let answer: TokenAnswer = json_body(response).await.map_err(|_| {
            format!(
                "getting a token for DATABRICKS_CLIENT_ID from {}: the answer held no access_token",
                self.token_url
            )
        })?;
        *cached = Some((
            answer.access_token.clone(),
            Instant::now() + answer.lifetime(),
        ));
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

    /// An Azure AD service principal whose authority is `authority`.
    fn arm_vars(authority: &str) -> impl Fn(&str) -> Option<String> {
        vars(&[
            ("ARM_TENANT_ID", "tenant-1".into()),
            ("ARM_CLIENT_ID", "sp-id".into()),
            ("ARM_CLIENT_SECRET", "sp-secret".into()),
            ("AZURE_AUTHORITY_HOST", authority.into()),
        ])
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
        )
        .unwrap();
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
        let auth =
            Auth::from_vars("https://adb-1.azuredatabricks.net", arm_vars(&mock.url())).unwrap();
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
        // Cached: a second bearer asks Azure AD nothing; a forgotten one asks again.
        let http = reqwest::Client::new();
        assert_eq!(
            auth.bearer(&http).await.unwrap().as_deref(),
            Some("aad-tok")
        );
        assert_eq!(mock.requests().len(), 1);
        auth.forget().await;
        assert_eq!(
            auth.bearer(&http).await.unwrap().as_deref(),
            Some("aad-tok")
        );
        assert_eq!(mock.requests().len(), 2);
    }

    #[tokio::test]
    async fn azure_service_principal_refused_by_a_mock_authority_names_arm_not_the_secret() {
        // An authority that echoes the form it was sent, secret and all.
        let mock = HttpMock::start(|r| {
            let said = format!("AADSTS7000215: Invalid client secret provided: {}", r.body);
            (
                401,
                serde_json::json!({"error": "invalid_client", "error_description": said})
                    .to_string(),
            )
        })
        .await;
        let auth =
            Auth::from_vars("https://adb-1.azuredatabricks.net", arm_vars(&mock.url())).unwrap();
        assert_eq!(
            auth.describe(),
            "Azure AD service principal (ARM_CLIENT_ID)"
        );
        let err = auth.bearer(&reqwest::Client::new()).await.unwrap_err();
        assert!(
            err.contains("ARM_CLIENT_ID")
                && err.contains("HTTP 401 invalid_client")
                && err.contains("AADSTS7000215"),
            "{err}"
        );
        assert!(!err.contains("sp-secret"), "{err}");
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
        )
        .unwrap();
        let err = auth.bearer(&reqwest::Client::new()).await.unwrap_err();
        assert!(
            err.contains("HTTP 401") && err.contains("DATABRICKS_CLIENT_ID"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[tokio::test]
    async fn each_secret_may_be_a_reference_read_at_each_token_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let reference = format!("file:{}", file.display());
        let http = reqwest::Client::new();

        // DATABRICKS_TOKEN: read at each request, so a rotated file is used at once.
        std::fs::write(&file, "dapi-first\n").unwrap();
        let auth = Auth::from_vars(
            "https://h",
            vars(&[("DATABRICKS_TOKEN", reference.clone())]),
        )
        .unwrap();
        assert_eq!(
            auth.bearer(&http).await.unwrap().as_deref(),
            Some("dapi-first")
        );
        std::fs::write(&file, "dapi-second").unwrap();
        assert_eq!(
            auth.bearer(&http).await.unwrap().as_deref(),
            Some("dapi-second")
        );

        // DATABRICKS_CLIENT_SECRET: the file's content is the Basic password.
        let mock = mock_token_server(200, r#"{"access_token":"m2m","expires_in":3600}"#).await;
        let auth = Auth::from_vars(
            &mock.url(),
            vars(&[
                ("DATABRICKS_CLIENT_ID", "loader-id".into()),
                ("DATABRICKS_CLIENT_SECRET", reference.clone()),
            ]),
        )
        .unwrap();
        assert_eq!(auth.bearer(&http).await.unwrap().as_deref(), Some("m2m"));
        let basic = base64::engine::general_purpose::STANDARD.encode("loader-id:dapi-second");
        let expected = format!("Basic {basic}");
        assert_eq!(
            mock.requests()[0].header("authorization"),
            Some(expected.as_str())
        );

        // ARM_CLIENT_SECRET: the file's content goes in Azure AD's form.
        let mock = mock_token_server(200, r#"{"access_token":"aad","expires_in":3600}"#).await;
        let arm = vars(&[
            ("ARM_TENANT_ID", "tenant-1".into()),
            ("ARM_CLIENT_ID", "sp-id".into()),
            ("ARM_CLIENT_SECRET", reference.clone()),
            ("AZURE_AUTHORITY_HOST", mock.url()),
        ]);
        let auth = Auth::from_vars("https://adb-1.azuredatabricks.net", arm).unwrap();
        assert_eq!(auth.bearer(&http).await.unwrap().as_deref(), Some("aad"));
        assert!(
            mock.requests()[0]
                .body
                .contains("client_secret=dapi-second"),
            "{:?}",
            mock.requests()
        );

        // An unreadable reference names the variable and the reference, and a malformed one
        // is refused when the catalog is opened.
        std::fs::remove_file(&file).unwrap();
        let auth = Auth::from_vars(
            "https://h",
            vars(&[("DATABRICKS_TOKEN", reference.clone())]),
        )
        .unwrap();
        let err = auth.bearer(&http).await.unwrap_err();
        assert!(
            err.contains("DATABRICKS_TOKEN") && err.contains(&reference),
            "{err}"
        );
        let err = Auth::from_vars(
            "https://h",
            vars(&[("DATABRICKS_TOKEN", "aws-sm://a b".into())]),
        )
        .err()
        .unwrap();
        assert!(
            err.contains("DATABRICKS_TOKEN") && err.contains("secret id"),
            "{err}"
        );
    }
}
