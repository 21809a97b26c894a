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
//! The tokens come from `azure_ad.rs` (cached until a minute before they expire; one the
//! vault refuses is fetched once more). Errors never show the token, the client secret or a
//! value.

use std::time::Duration;

use dataloader_core::secret::{cause_unless_secret, mask, SecretFailure, SecretRef, SecretSetting};
use dataloader_core::{Error, Result};
use serde::Deserialize;

use crate::azure_ad::{AzureAd, TokenError, DEFAULT_AUTHORITY, IMDS};
// The credential was first Key Vault's: its types keep their paths here.
pub use crate::azure_ad::{AzureCredential, ManagedIdentityEndpoint};

const DEFAULT_DOMAIN: &str = "vault.azure.net";
const API_VERSION: &str = "7.4";

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
                SecretSetting::Reference(parsed)
            }
            None => SecretSetting::Value(value.unwrap_or_default()),
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
    keyvault_url: String,
    scope: String,
    /// The credential's tokens; a setting that cannot be used, reported at each read.
    azure_ad: std::result::Result<AzureAd, String>,
    http: reqwest::Client,
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
        let authority_host = settings.authority_host;
        KeyVault {
            keyvault_url: settings.keyvault_url,
            scope: settings.scope,
            azure_ad: settings
                .credential
                .map(|credential| AzureAd::new(credential, authority_host)),
            http,
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
        let base = self.keyvault_url.replace("{vault}", vault);
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
                    if let Ok(azure_ad) = &self.azure_ad {
                        azure_ad.forget(&self.scope).await;
                    }
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
        match &self.azure_ad {
            Ok(azure_ad) => azure_ad.describe(),
            Err(_) => "the configured credential",
        }
    }

    /// A token for the vault's scope; a failure is the reference's, its reason first.
    async fn token(&self, reference: &SecretRef) -> Result<String> {
        let fail = |failure: SecretFailure, message: String| {
            let reason = match failure {
                SecretFailure::Unreachable => "unreachable",
                _ => "not authenticated",
            };
            Error::secret(reference, failure, format!("{reason}: {message}"), None)
        };
        let azure_ad = self
            .azure_ad
            .as_ref()
            .map_err(|e| fail(SecretFailure::Unauthenticated, e.clone()))?;
        azure_ad
            .token(&self.scope)
            .await
            .map_err(|TokenError { failure, message }| fail(failure, message))
    }
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
