//! Reads DataLoader's vault references: Azure Key Vault (`azure-keyvault://<vault>/<secret>
//! [/<version>]`) and AWS Secrets Manager (`aws-sm://<secret id>[#<json key>]`).
//!
//! Core parses references and resolves `env:` and `file:` itself; it has no network client, so
//! the binary installs [`Vaults`] as the process's [`VaultResolver`] at start ([`install`]).
//! Every `SecretRef::resolve` of a vault reference then comes here, when a load connects.
//!
//! - Values are cached for a bounded time ([`VaultSettings::cache_ttl`], 5 minutes by
//!   default; zero turns the cache off) so a rotated secret is read again; failures are not
//!   cached. One `aws-sm` secret read serves all its `#key`s.
//! - Nothing here logs a value or a token, nor puts one in an error: errors are core's
//!   `Error::Secret`, naming the reference and the reason ([`SecretFailure`]).
//! - `azure_ad.rs`: Azure AD tokens (client secret, workload identity, managed identity), the
//!   workspace's one implementation: the Unity catalog (`dataloader-lake`) and SQL Server's
//!   `auth=aad` (`dataloader-sources`) use it too. `azure.rs`: the Key Vault GET. Both by hand
//!   over reqwest, two REST calls, where Azure's SDK would bring its own HTTP stack.
//! - `aws.rs`, behind the `aws` feature (the binary turns it on): `GetSecretValue` through
//!   `aws-sdk-secretsmanager` and the standard credential chain (`aws-config`, already built for
//!   the S3 lake). Without it an `aws-sm` reference fails as unsupported, and the crates that
//!   only need Azure AD tokens build without the Secrets Manager SDK.

#[cfg(feature = "aws")]
mod aws;
pub mod azure;
pub mod azure_ad;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dataloader_core::secret::{install_vault_resolver, SecretFailure, SecretRef, VaultResolver};
use dataloader_core::{Error, Result};

pub use azure::AzureSettings;
pub use azure_ad::{AzureAd, AzureCredential, ManagedIdentityEndpoint, TokenError};

/// How long a value read from a vault is used before it is read again, by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// What [`Vaults`] needs to know; [`VaultSettings::from_env`] reads it as Azure's and AWS's
/// tools do.
pub struct VaultSettings {
    /// How long a value is used before it is read again; zero reads on every use.
    pub cache_ttl: Duration,
    pub azure: AzureSettings,
}

impl VaultSettings {
    /// Azure's settings from the process environment (see [`AzureSettings::from_env`]); AWS's
    /// are found by the SDK's own chain at the first `aws-sm` read.
    pub fn from_env(cache_ttl: Duration) -> Self {
        VaultSettings {
            cache_ttl,
            azure: AzureSettings::from_env(),
        }
    }
}

/// The vault clients and the value cache. Its values are never printed: it has no `Debug`.
pub struct Vaults {
    cache_ttl: Duration,
    /// Keyed by what was read (`aws-sm://id`, the whole Key Vault reference): never a value.
    cache: Mutex<HashMap<String, (String, Instant)>>,
    #[cfg(feature = "aws")]
    aws: aws::SecretsManager,
    azure: azure::KeyVault,
}

impl Vaults {
    pub fn new(settings: VaultSettings) -> Self {
        Vaults {
            cache_ttl: settings.cache_ttl,
            cache: Mutex::new(HashMap::new()),
            #[cfg(feature = "aws")]
            aws: aws::SecretsManager::new(),
            azure: azure::KeyVault::new(settings.azure),
        }
    }

    /// The secret `reference` names; `env:` and `file:` are read as core reads them.
    pub async fn read(&self, reference: &SecretRef) -> Result<String> {
        match reference {
            SecretRef::AwsSecretsManager { secret_id, key } => {
                let text = self
                    .cached(format!("aws-sm://{secret_id}"), || {
                        self.read_aws(reference, secret_id)
                    })
                    .await?;
                match key {
                    Some(key) => json_key(reference, &text, key),
                    None => Ok(text),
                }
            }
            SecretRef::AzureKeyVault { .. } => {
                self.cached(reference.to_string(), || self.azure.read(reference))
                    .await
            }
            SecretRef::Env(_) | SecretRef::File(_) => reference.resolve().await,
        }
    }

    #[cfg(feature = "aws")]
    async fn read_aws(&self, reference: &SecretRef, secret_id: &str) -> Result<String> {
        self.aws.read(reference, secret_id).await
    }

    #[cfg(not(feature = "aws"))]
    async fn read_aws(&self, reference: &SecretRef, _secret_id: &str) -> Result<String> {
        Err(Error::secret(
            reference,
            SecretFailure::Unsupported,
            "unsupported: this build reads no AWS Secrets Manager references (dataloader-secrets was built without its `aws` feature)",
            None,
        ))
    }

    async fn cached<F, Fut>(&self, key: String, fetch: F) -> Result<String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        if let Some((value, read_at)) = self.cache_lock().get(&key) {
            if read_at.elapsed() < self.cache_ttl {
                return Ok(value.clone());
            }
        }
        // Not held across the read: two loads starting together may both read; both get a
        // current value.
        let value = fetch().await?;
        if !self.cache_ttl.is_zero() {
            self.cache_lock()
                .insert(key, (value.clone(), Instant::now()));
        }
        Ok(value)
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while the lock was held left at worst a stale entry, which expires.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl VaultResolver for Vaults {
    async fn read(&self, reference: &SecretRef) -> Result<String> {
        Vaults::read(self, reference).await
    }
}

/// Installs `vaults` as the process's vault resolver; `false` when one was installed already.
pub fn install(vaults: Vaults) -> bool {
    install_vault_resolver(Box::new(vaults))
}

/// `key`'s value in the JSON object `text`. Errors name keys, never values.
fn json_key(reference: &SecretRef, text: &str, key: &str) -> Result<String> {
    let fail = |failure, message: String| Err(Error::secret(reference, failure, message, None));
    // serde_json's message is left out: it could quote the text.
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return fail(
            SecretFailure::Invalid,
            format!("the secret is not a JSON object, so it has no key \"{key}\""),
        );
    };
    match object.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        Some(_) => fail(
            SecretFailure::Invalid,
            format!("the secret's key \"{key}\" holds no text, number or boolean"),
        ),
        None => {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            fail(
                SecretFailure::NotFound,
                format!(
                    "not found: the secret's JSON has no key \"{key}\" (keys: {})",
                    keys.join(", ")
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(key: &str) -> SecretRef {
        SecretRef::parse(&format!("aws-sm://prod/pg#{key}")).unwrap()
    }

    #[test]
    fn a_json_key_is_read_and_a_missing_one_names_the_keys_not_the_values() {
        let text = r#"{"username":"loader","password":"hunter2","port":5432}"#;
        assert_eq!(
            json_key(&aws("password"), text, "password").unwrap(),
            "hunter2"
        );
        assert_eq!(json_key(&aws("port"), text, "port").unwrap(), "5432");
        let err = json_key(&aws("pass"), text, "pass")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("secret aws-sm://prod/pg#pass: not found"),
            "{err}"
        );
        assert!(err.contains("keys: password, port, username"), "{err}");
        assert!(
            !err.contains("hunter2") && !err.contains("loader\""),
            "{err}"
        );
        let err = json_key(&aws("k"), "hunter2", "k").unwrap_err().to_string();
        assert!(
            err.contains("not a JSON object") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
