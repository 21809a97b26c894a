//! Azure Key Vault: an Azure AD token for the vault's scope, then
//! `GET {vault}/secrets/{name}[/{version}]?api-version=7.4` with it as the bearer.
//!
//! The credential is the first that the environment configures, in the order of Azure's
//! `DefaultAzureCredential`:
//! 1. a service principal's client secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and either
//!    `DATALOADER_KEYVAULT_CLIENT_SECRET` (a reference: `env:`, `file:` or `aws-sm://`) or
//!    `AZURE_CLIENT_SECRET` (the value itself, as Azure's tools take it);
//! 2. workload identity (AKS): `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`,
//!    `AZURE_TENANT_ID`; the file is read at every token request, as the kubelet rotates it;
//! 3. managed identity: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service, Functions,
//!    Container Apps), else the VM's instance metadata service; `AZURE_CLIENT_ID` picks a
//!    user-assigned identity.
//!
//! `AZURE_AUTHORITY_HOST` names another Azure AD (sovereign clouds), `DATALOADER_KEYVAULT_DOMAIN`
//! the vaults' domain (`vault.azure.net`; `vault.azure.cn`, `vault.usgovcloudapi.net`), and
//! `DATALOADER_KEYVAULT_URL` a vault URL template with `{vault}` (a proxy, or a test server).
//! Tokens are cached until a minute before they expire. Errors never show the token, the
//! client secret or a value.

use std::time::{Duration, Instant};

use dataloader_core::secret::{cause_unless_secret, mask, SecretFailure, SecretRef};
use dataloader_core::{Error, Result};
use serde::Deserialize;
use tokio::sync::Mutex;

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_DOMAIN: &str = "vault.azure.net";
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
const API_VERSION: &str = "7.4";

/// Where the client secret of a service principal comes from.
pub enum ClientSecret {
    /// `AZURE_CLIENT_SECRET`: the value itself.
    Value(String),
    /// `DATALOADER_KEYVAULT_CLIENT_SECRET`: a reference, resolved at each token request.
    Reference(SecretRef),
}

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
        secret: ClientSecret,
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
    /// What signs in, for messages: variable names, never values.
    fn describe(&self) -> &'static str {
        match self {
            AzureCredential::ClientSecret {
                secret: ClientSecret::Value(_),
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

pub struct AzureSettings {
    /// The vault's URL, `{vault}` replaced by its name: `https://{vault}.vault.azure.net`.
    pub keyvault_url: String,
    /// The token's scope: `https://vault.azure.net/.default`.
    pub scope: String,
    /// Azure AD: `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// The credential; an error (a setting that cannot be used) is reported at the first read.
    pub credential: std::result::Result<AzureCredential, String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AzureSettings {
    /// From the variables in the module's header.
    pub fn from_env() -> Self {
        Self::from_vars(env)
    }

    pub fn from_vars(env: impl Fn(&str) -> Option<String>) -> Self {
        let domain = env("DATALOADER_KEYVAULT_DOMAIN").unwrap_or_else(|| DEFAULT_DOMAIN.into());
        let domain = domain.trim().trim_end_matches('/').to_string();
        AzureSettings {
            keyvault_url: env("DATALOADER_KEYVAULT_URL")
                .unwrap_or_else(|| format!("https://{{vault}}.{domain}")),
            scope: format!("https://{domain}/.default"),
            authority_host: env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.into()),
            credential: credential_from(&env),
        }
    }
}

fn credential_from(
    env: &impl Fn(&str) -> Option<String>,
) -> std::result::Result<AzureCredential, String> {
    let tenant = env("AZURE_TENANT_ID");
    let client_id = env("AZURE_CLIENT_ID");
    let reference = env("DATALOADER_KEYVAULT_CLIENT_SECRET");
    let value = env("AZURE_CLIENT_SECRET");
    if reference.is_some() || value.is_some() {
        let (Some(tenant), Some(client_id)) = (tenant.clone(), client_id.clone()) else {
            return Err(
                "a client secret is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not".into(),
            );
        };
        let secret = match reference {
            Some(r) => {
                let parsed = SecretRef::parse(&r)
                    .map_err(|e| format!("DATALOADER_KEYVAULT_CLIENT_SECRET: {e}"))?;
                if matches!(parsed, SecretRef::AzureKeyVault { .. }) {
                    return Err("DATALOADER_KEYVAULT_CLIENT_SECRET cannot itself be in Key Vault (reading it would need the token it is for): use env:, file: or aws-sm://".into());
                }
                ClientSecret::Reference(parsed)
            }
            None => ClientSecret::Value(value.unwrap_or_default()),
        };
        return Ok(AzureCredential::ClientSecret {
            tenant,
            client_id,
            secret,
        });
    }
    if let Some(token_file) = env("AZURE_FEDERATED_TOKEN_FILE") {
        let (Some(tenant), Some(client_id)) = (tenant, client_id) else {
            return Err(
                "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not"
                    .into(),
            );
        };
        return Ok(AzureCredential::WorkloadIdentity {
            tenant,
            client_id,
            token_file,
        });
    }
    let endpoint = match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => ManagedIdentityEndpoint::AppService { endpoint, header },
        _ => ManagedIdentityEndpoint::Imds(IMDS.into()),
    };
    Ok(AzureCredential::ManagedIdentity {
        client_id,
        endpoint,
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; text from the v1 and managed-identity endpoints.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct SecretAnswer {
    value: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Deserialize, Default)]
struct Attributes {
    enabled: Option<bool>,
    /// Seconds since 1970: the secret must not be used after.
    exp: Option<i64>,
    /// Seconds since 1970: the secret must not be used before.
    nbf: Option<i64>,
}

pub(crate) struct KeyVault {
    settings: AzureSettings,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl KeyVault {
    pub(crate) fn new(settings: AzureSettings) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            // Only a TLS back end that cannot start fails here; the plain client then says so
            // at the first request.
            .unwrap_or_default();
        KeyVault {
            settings,
            http,
            token: Mutex::new(None),
        }
    }

    pub(crate) async fn read(&self, reference: &SecretRef) -> Result<String> {
        let SecretRef::AzureKeyVault {
            vault,
            secret,
            version,
        } = reference
        else {
            return Err(Error::secret(
                reference,
                SecretFailure::Invalid,
                "not a Key Vault reference",
                None,
            ));
        };
        let base = self.settings.keyvault_url.replace("{vault}", vault);
        let url = match version {
            Some(v) => format!(
                "{}/secrets/{secret}/{v}?api-version={API_VERSION}",
                base.trim_end_matches('/')
            ),
            None => format!(
                "{}/secrets/{secret}?api-version={API_VERSION}",
                base.trim_end_matches('/')
            ),
        };
        // A token the vault refuses (revoked, or expired early) is fetched once more.
        for attempt in 0..2 {
            let token = self.token(reference).await?;
            let fail = |failure, message: String, source: Option<reqwest::Error>| {
                let source = source.and_then(|e| cause_unless_secret(e, &[token.as_str()]));
                Error::secret(reference, failure, mask(&message, &token), source)
            };
            let response = match self.http.get(&url).bearer_auth(&token).send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(fail(
                        SecretFailure::Unreachable,
                        format!("unreachable: cannot reach the vault at {base}: {e}"),
                        Some(e),
                    ))
                }
            };
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            if status == 200 {
                return answer(reference, &body);
            }
            // Key Vault's error: {"error":{"code","message","innererror":{"code"}}}.
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = error["error"]["code"].as_str().unwrap_or("no error code");
            let inner = error["error"]["innererror"]["code"].as_str().unwrap_or("");
            let said = error["error"]["message"].as_str().unwrap_or("no message");
            let said = format!("Key Vault said HTTP {status} {code}: {said}");
            let (failure, message) = match status {
                401 if attempt == 0 => {
                    *self.token.lock().await = None;
                    continue;
                }
                401 => (SecretFailure::Unauthenticated, format!("not authenticated: the vault refused the token of {} ({said})", self.describe())),
                403 if inner == "SecretDisabled" => (SecretFailure::Disabled, format!("disabled ({said})")),
                403 => (SecretFailure::Forbidden, format!("forbidden: {} may not get this secret; grant it the \"Key Vault Secrets User\" role or a Get access policy ({said})", self.describe())),
                404 => (SecretFailure::NotFound, format!("not found: no such secret or version in vault {vault} ({said})")),
                408 | 429 | 500..=599 => (SecretFailure::Unreachable, format!("unreachable: the vault is busy or failing ({said})")),
                _ => (SecretFailure::Invalid, format!("refused ({said})")),
            };
            return Err(fail(failure, message, None));
        }
        Err(Error::secret(
            reference,
            SecretFailure::Unauthenticated,
            "not authenticated: the vault refused two tokens in a row",
            None,
        ))
    }

    fn describe(&self) -> &'static str {
        match &self.settings.credential {
            Ok(c) => c.describe(),
            Err(_) => "the configured credential",
        }
    }

    /// A token for the vault's scope, cached until a minute before it expires.
    async fn token(&self, reference: &SecretRef) -> Result<String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let credential = self.settings.credential.as_ref().map_err(|e| {
            Error::secret(
                reference,
                SecretFailure::Unauthenticated,
                format!("not authenticated: {e}"),
                None,
            )
        })?;
        let (token, lifetime) = self.request_token(reference, credential).await?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn request_token(
        &self,
        reference: &SecretRef,
        credential: &AzureCredential,
    ) -> Result<(String, Duration)> {
        let resource = self.settings.scope.trim_end_matches("/.default");
        // Every value that must not reach a message.
        let mut hidden: Vec<String> = Vec::new();
        let request = match credential {
            AzureCredential::ClientSecret {
                tenant,
                client_id,
                secret,
            } => {
                let secret = match secret {
                    ClientSecret::Value(v) => v.clone(),
                    ClientSecret::Reference(r) => r.resolve().await.map_err(|e| {
                        Error::secret(
                            reference,
                            SecretFailure::Unauthenticated,
                            format!("not authenticated: the client secret {r} cannot be read: {e}"),
                            None,
                        )
                    })?,
                };
                hidden.push(secret.clone());
                let body = form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", &secret),
                    ("scope", &self.settings.scope),
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
                    Error::secret(reference, SecretFailure::Unauthenticated, format!("not authenticated: cannot read AZURE_FEDERATED_TOKEN_FILE {token_file}: {e}"), Some(e.into()))
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
                    ("scope", &self.settings.scope),
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
        let who = credential.describe();
        let fail = |failure, message: String| {
            let message = hidden.iter().fold(message, |m, h| mask(&m, h));
            Error::secret(reference, failure, message, None)
        };
        let response = request.send().await.map_err(|e| {
            fail(
                SecretFailure::Unreachable,
                format!("unreachable: getting an Azure AD token for {who}: {e}"),
            )
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        if status != 200 {
            // Azure AD's error: {"error": "invalid_client", "error_description": "AADSTS…"}.
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
            return Err(fail(failure, format!("not authenticated: Azure AD refused a token for {who} (HTTP {status} {code}: {said})")));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            fail(
                SecretFailure::Unauthenticated,
                format!("not authenticated: Azure AD's answer for {who} held no access_token"),
            )
        })?;
        let seconds = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let lifetime = Duration::from_secs(seconds.unwrap_or(3600).saturating_sub(60));
        Ok((answer.access_token, lifetime))
    }

    fn token_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.settings.authority_host.trim_end_matches('/')
        )
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    form.finish()
}

/// The value of a 200 answer, unless its attributes say it must not be used.
fn answer(reference: &SecretRef, body: &[u8]) -> Result<String> {
    let fail = |failure, message: String| Err(Error::secret(reference, failure, message, None));
    let Ok(answer) = serde_json::from_slice::<SecretAnswer>(body) else {
        return fail(
            SecretFailure::Invalid,
            "the vault's answer is not a secret bundle".into(),
        );
    };
    let now = chrono::Utc::now().timestamp();
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
    };
    if answer.attributes.enabled == Some(false) {
        return fail(
            SecretFailure::Disabled,
            "disabled: the secret (version) is disabled".into(),
        );
    }
    if let Some(exp) = answer.attributes.exp.filter(|&exp| exp <= now) {
        return fail(
            SecretFailure::Disabled,
            format!(
                "expired: the secret expired at {}; set a new version",
                at(exp)
            ),
        );
    }
    if let Some(nbf) = answer.attributes.nbf.filter(|&nbf| nbf > now) {
        return fail(
            SecretFailure::Disabled,
            format!("not yet valid: the secret may be used from {}", at(nbf)),
        );
    }
    match answer.value {
        Some(value) => Ok(value),
        None => fail(
            SecretFailure::Invalid,
            "the vault's answer has no value".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_credential_is_the_first_the_environment_configures() {
        let pick = |pairs: &[(&str, &str)]| match AzureSettings::from_vars(vars(pairs)).credential {
            Ok(c) => c.describe().to_string(),
            Err(e) => format!("error: {e}"),
        };
        let principal = [("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")];
        assert!(
            pick(&[principal[0], principal[1], ("AZURE_CLIENT_SECRET", "s")])
                .ends_with("with AZURE_CLIENT_SECRET")
        );
        assert!(pick(&[
            principal[0],
            principal[1],
            ("DATALOADER_KEYVAULT_CLIENT_SECRET", "env:KV_SECRET"),
            ("AZURE_CLIENT_SECRET", "s")
        ])
        .ends_with("with DATALOADER_KEYVAULT_CLIENT_SECRET"));
        assert!(pick(&[
            principal[0],
            principal[1],
            ("AZURE_FEDERATED_TOKEN_FILE", "/t")
        ])
        .starts_with("workload identity"));
        assert_eq!(
            pick(&[("IDENTITY_ENDPOINT", "http://x"), ("IDENTITY_HEADER", "h")]),
            "managed identity (IDENTITY_ENDPOINT)"
        );
        assert_eq!(pick(&[]), "managed identity (instance metadata)");
        let err = pick(&[
            principal[0],
            principal[1],
            (
                "DATALOADER_KEYVAULT_CLIENT_SECRET",
                "azure-keyvault://kv1/sp",
            ),
        ]);
        assert!(err.contains("cannot itself be in Key Vault"), "{err}");
        let err = pick(&[("AZURE_CLIENT_SECRET", "hunter2")]);
        assert!(
            err.contains("AZURE_TENANT_ID") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn a_sovereign_cloud_changes_the_vault_url_and_the_scope() {
        let settings =
            AzureSettings::from_vars(vars(&[("DATALOADER_KEYVAULT_DOMAIN", "vault.azure.cn")]));
        assert_eq!(settings.keyvault_url, "https://{vault}.vault.azure.cn");
        assert_eq!(settings.scope, "https://vault.azure.cn/.default");
        assert_eq!(
            AzureSettings::from_vars(vars(&[])).authority_host,
            DEFAULT_AUTHORITY
        );
    }
}
