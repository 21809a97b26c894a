//! Secrets are stored only as references and resolved at the moment of use.
//!
//! `env:` and `file:` are read here. Vault references (`azure-keyvault://…`, `aws-sm://…`) are
//! network reads this crate cannot make: they go to the [`VaultResolver`] the binary installs
//! once per process ([`install_vault_resolver`]; `dataloader-secrets` is the one it installs).
//! Without one, a vault reference fails with a message saying so.

use std::sync::OnceLock;

use async_trait::async_trait;

use crate::{Cause, Error, ErrorKind, Result};

/// A reference to a secret, never the secret itself: `env:NAME`, `file:/path`,
/// `azure-keyvault://<vault>/<secret>[/<version>]` or `aws-sm://<secret id>[#<json key>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    Env(String),
    File(String),
    /// A secret in Azure Key Vault; its latest version when `version` is `None`.
    AzureKeyVault {
        vault: String,
        secret: String,
        version: Option<String>,
    },
    /// A secret in AWS Secrets Manager (its `AWSCURRENT` version), by name or ARN; with `key`,
    /// the secret is a JSON object and the value is that key's.
    AwsSecretsManager {
        secret_id: String,
        key: Option<String>,
    },
}

const AZURE_PREFIX: &str = "azure-keyvault://";
const AWS_PREFIX: &str = "aws-sm://";

/// Why a secret could not be read: decides the error's [`ErrorKind`], and so its retry advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFailure {
    /// No such variable, file, secret, version, or key in the secret's JSON.
    NotFound,
    /// The credentials were accepted but may not read the secret.
    Forbidden,
    /// No credentials were found, or the vault (or its token service) refused them.
    Unauthenticated,
    /// The secret exists but is disabled, expired or not yet valid.
    Disabled,
    /// The vault or its token service did not answer, timed out or throttled: worth a retry.
    Unreachable,
    /// The secret's content is not what the reference asks for (not JSON, not text).
    Invalid,
    /// This process cannot read vault references (no resolver installed).
    Unsupported,
}

impl SecretFailure {
    /// The kind of the error this failure makes.
    pub fn kind(self) -> ErrorKind {
        match self {
            SecretFailure::Forbidden | SecretFailure::Unauthenticated => ErrorKind::Auth,
            SecretFailure::Unreachable => ErrorKind::Connect,
            _ => ErrorKind::Config,
        }
    }
}

impl Error {
    /// `reference` could not be read; `message` says why and never shows a value.
    pub fn secret(
        reference: &SecretRef,
        failure: SecretFailure,
        message: impl Into<String>,
        source: Option<Cause>,
    ) -> Self {
        Error::Secret {
            reference: reference.to_string(),
            failure,
            message: message.into(),
            source,
        }
    }
}

/// Reads vault references. The binary installs one per process with
/// [`install_vault_resolver`]; it decides how credentials are found and how long values are
/// cached.
#[async_trait]
pub trait VaultResolver: Send + Sync {
    /// The secret `reference` (an [`SecretRef::AzureKeyVault`] or
    /// [`SecretRef::AwsSecretsManager`]) names. Errors are [`Error::Secret`]s naming the
    /// reference and the reason, never a value or a token.
    async fn read(&self, reference: &SecretRef) -> Result<String>;
}

static VAULT_RESOLVER: OnceLock<Box<dyn VaultResolver>> = OnceLock::new();

/// Installs the process's vault resolver. Returns `false`, keeping the first, when one was
/// installed already.
pub fn install_vault_resolver(resolver: Box<dyn VaultResolver>) -> bool {
    VAULT_RESOLVER.set(resolver).is_ok()
}

fn vault_name_ok(name: &str) -> bool {
    (3..=24).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn keyvault_secret_ok(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A secret name or an ARN: Secrets Manager's characters, and `:` for the ARN.
fn aws_secret_id_ok(id: &str) -> bool {
    (1..=2048).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c))
}

impl SecretRef {
    pub fn parse(reference: &str) -> Result<Self> {
        if let Some(name) = reference.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::config(
                    "password",
                    "an env: reference needs a variable name, for example env:PGPASSWORD",
                ));
            }
            return Ok(SecretRef::Env(name.to_string()));
        }
        if let Some(path) = reference.strip_prefix("file:") {
            if path.is_empty() {
                return Err(Error::config(
                    "password",
                    "a file: reference needs a path, for example file:/run/secrets/pg",
                ));
            }
            return Ok(SecretRef::File(path.to_string()));
        }
        if let Some(rest) = reference.strip_prefix(AZURE_PREFIX) {
            return Self::parse_azure(rest);
        }
        if let Some(rest) = reference.strip_prefix(AWS_PREFIX) {
            return Self::parse_aws(rest);
        }
        // Deliberately does not echo the value: it may be a password typed in by mistake.
        Err(Error::config(
            "password",
            "must be a reference (env:VAR, file:/path, azure-keyvault://VAULT/SECRET or aws-sm://SECRET_ID), never the secret itself",
        ))
    }

    fn parse_azure(rest: &str) -> Result<Self> {
        let form = "an azure-keyvault reference is azure-keyvault://<vault>/<secret>[/<version>], for example azure-keyvault://prod-kv/pg-password";
        let parts: Vec<&str> = rest.split('/').collect();
        let (vault, secret, version) = match parts[..] {
            [vault, secret] => (vault, secret, None),
            [vault, secret, version] => (vault, secret, Some(version)),
            _ => return Err(Error::config("password", form)),
        };
        if !vault_name_ok(vault) {
            return Err(Error::config(
                "password",
                format!(
                    "{form}: the vault name \"{vault}\" must be 3 to 24 letters, digits or hyphens"
                ),
            ));
        }
        if !keyvault_secret_ok(secret) {
            return Err(Error::config(
                "password",
                format!("{form}: the secret name must be 1 to 127 letters, digits or hyphens"),
            ));
        }
        if version.is_some_and(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric())) {
            return Err(Error::config(
                "password",
                format!("{form}: the version is the secret version's id (letters and digits)"),
            ));
        }
        Ok(SecretRef::AzureKeyVault {
            vault: vault.to_string(),
            secret: secret.to_string(),
            version: version.map(str::to_string),
        })
    }

    fn parse_aws(rest: &str) -> Result<Self> {
        let form = "an aws-sm reference is aws-sm://<secret name or ARN>[#<json key>], for example aws-sm://prod/pg#password";
        let (id, key) = match rest.split_once('#') {
            Some((id, key)) => (id, Some(key)),
            None => (rest, None),
        };
        if !aws_secret_id_ok(id) {
            return Err(Error::config(
                "password",
                format!("{form}: the secret id must be letters, digits and /_+=.@-: only"),
            ));
        }
        if key.is_some_and(str::is_empty) {
            return Err(Error::config(
                "password",
                format!("{form}: a # needs the JSON key after it"),
            ));
        }
        Ok(SecretRef::AwsSecretsManager {
            secret_id: id.to_string(),
            key: key.map(str::to_string),
        })
    }

    /// Whether reading this reference is a network call to a vault.
    pub fn is_vault(&self) -> bool {
        matches!(
            self,
            SecretRef::AzureKeyVault { .. } | SecretRef::AwsSecretsManager { .. }
        )
    }

    /// Reads the secret: `env:` and `file:` here, a vault reference through the installed
    /// [`VaultResolver`]. Errors name the reference, never the value.
    pub async fn resolve(&self) -> Result<String> {
        match self {
            SecretRef::Env(name) => std::env::var(name).map_err(|e| {
                Error::secret(
                    self,
                    SecretFailure::NotFound,
                    format!("environment variable {name} is not set"),
                    Some(e.into()),
                )
            }),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| {
                    let failure = match e.kind() {
                        std::io::ErrorKind::NotFound => SecretFailure::NotFound,
                        std::io::ErrorKind::PermissionDenied => SecretFailure::Forbidden,
                        _ => SecretFailure::Invalid,
                    };
                    Error::secret(
                        self,
                        failure,
                        format!("cannot read file: {e}"),
                        Some(e.into()),
                    )
                }),
            SecretRef::AzureKeyVault { .. } | SecretRef::AwsSecretsManager { .. } => {
                match VAULT_RESOLVER.get() {
                    Some(resolver) => resolver.read(self).await,
                    None => Err(Error::secret(
                        self,
                        SecretFailure::Unsupported,
                        "this process cannot read vault references (no vault resolver is installed; the dataloader command installs one)",
                        None,
                    )),
                }
            }
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
            SecretRef::AzureKeyVault {
                vault,
                secret,
                version,
            } => {
                write!(f, "{AZURE_PREFIX}{vault}/{secret}")?;
                match version {
                    Some(v) => write!(f, "/{v}"),
                    None => Ok(()),
                }
            }
            SecretRef::AwsSecretsManager { secret_id, key } => {
                write!(f, "{AWS_PREFIX}{secret_id}")?;
                match key {
                    Some(k) => write!(f, "#{k}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// How every reference begins: a setting that begins so is read as a reference.
const REFERENCE_PREFIXES: [&str; 4] = ["env:", "file:", AZURE_PREFIX, AWS_PREFIX];

/// A credential given in a setting of its own (an environment variable such as
/// `DATABRICKS_TOKEN` or `LAKEBASE_PASSWORD`): the value itself, as the tools that own the
/// variable expect, or a reference when the text begins as one does, so that the credential
/// can stay in a vault. No `Debug`: it may hold a value.
pub enum SecretSetting {
    Value(String),
    Reference(SecretRef),
}

impl SecretSetting {
    /// `text`, the value of `setting`; an error names the setting, never the text.
    pub fn parse(setting: &str, text: &str) -> Result<Self> {
        let text = text.trim();
        if !REFERENCE_PREFIXES.iter().any(|p| text.starts_with(p)) {
            return Ok(SecretSetting::Value(text.to_string()));
        }
        SecretRef::parse(text)
            .map(SecretSetting::Reference)
            .map_err(|e| match e {
                Error::InvalidConfig { message, .. } => Error::config(setting, message),
                other => other,
            })
    }

    /// The value: read through its reference at each call (a vault's value is cached by the
    /// resolver for a bounded time, so a rotation is picked up).
    pub async fn get(&self) -> Result<String> {
        match self {
            SecretSetting::Value(value) => Ok(value.clone()),
            SecretSetting::Reference(reference) => reference.resolve().await,
        }
    }

    /// Whether the value can change while the process runs (a file or a vault).
    pub fn may_rotate(&self) -> bool {
        matches!(
            self,
            SecretSetting::Reference(r) if !matches!(r, SecretRef::Env(_))
        )
    }
}

/// Replaces every occurrence of `secret` in `text`; for messages that may echo a DSN.
pub fn mask(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

/// `err` as the [`Cause`] of an error whose message was [`mask`]ed, or `None` when `err` (its
/// text, a cause's text or its debug form) shows one of `secrets`: a kept error must not carry
/// a secret past the mask.
pub fn cause_unless_secret<E>(err: E, secrets: &[impl AsRef<str>]) -> Option<Cause>
where
    E: std::error::Error + Send + Sync + 'static,
{
    kept_unless_secret(err.into(), secrets)
}

/// [`cause_unless_secret`] for an error already boxed as a [`Cause`].
pub fn kept_unless_secret(cause: Cause, secrets: &[impl AsRef<str>]) -> Option<Cause> {
    let shows = |text: &str| {
        secrets.iter().map(AsRef::as_ref).any(|s| {
            !s.is_empty() && (text.contains(s) || text.contains(&s.escape_debug().to_string()))
        })
    };
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(cause.as_ref());
    while let Some(e) = link {
        if shows(&e.to_string()) {
            return None;
        }
        link = e.source();
    }
    if shows(&format!("{cause:?}")) {
        return None;
    }
    Some(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_plain_secrets_are_refused() {
        assert_eq!(
            SecretRef::parse("env:PGPASSWORD").unwrap(),
            SecretRef::Env("PGPASSWORD".into())
        );
        assert_eq!(
            SecretRef::parse("file:/run/s").unwrap(),
            SecretRef::File("/run/s".into())
        );
        let err = SecretRef::parse("hunter2").unwrap_err().to_string();
        assert!(err.contains("reference"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn vault_references_parse_and_print_back() {
        for text in [
            "azure-keyvault://prod-kv/pg-password",
            "azure-keyvault://prod-kv/pg-password/0123456789abcdef0123456789abcdef",
            "aws-sm://prod/pg",
            "aws-sm://prod/pg#password",
            "aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/pg-AbCdEf#user",
        ] {
            let parsed = SecretRef::parse(text).unwrap();
            assert!(parsed.is_vault(), "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(
            SecretRef::parse("azure-keyvault://kv1/s/v1").unwrap(),
            SecretRef::AzureKeyVault {
                vault: "kv1".into(),
                secret: "s".into(),
                version: Some("v1".into())
            }
        );
        assert_eq!(
            SecretRef::parse("aws-sm://a/b#k").unwrap(),
            SecretRef::AwsSecretsManager {
                secret_id: "a/b".into(),
                key: Some("k".into())
            }
        );
    }

    #[test]
    fn a_setting_is_its_value_unless_it_begins_as_a_reference() {
        let value = SecretSetting::parse("DATABRICKS_TOKEN", " dapi-123 ").unwrap();
        assert!(matches!(&value, SecretSetting::Value(v) if v == "dapi-123"));
        assert!(!value.may_rotate());
        let vault = SecretSetting::parse("DATABRICKS_TOKEN", "aws-sm://prod/dbx#token").unwrap();
        assert!(matches!(&vault, SecretSetting::Reference(r) if r.is_vault()));
        assert!(vault.may_rotate());
        let env = SecretSetting::parse("LAKEBASE_PASSWORD", "env:PGPASS").unwrap();
        assert!(!env.may_rotate());
        let err = SecretSetting::parse("ARM_CLIENT_SECRET", "azure-keyvault://kv/s")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ARM_CLIENT_SECRET"), "{err}");
        assert!(err.contains("vault name"), "{err}");
    }

    #[test]
    fn a_malformed_vault_reference_says_what_is_wrong() {
        for (text, says) in [
            ("azure-keyvault://kv", "azure-keyvault://<vault>/<secret>"),
            ("azure-keyvault://kv/s", "vault name \"kv\""),
            ("azure-keyvault://prod-kv/", "secret name"),
            ("azure-keyvault://prod-kv/a_b", "secret name"),
            ("azure-keyvault://prod-kv/s/", "version"),
            (
                "azure-keyvault://prod-kv/s/v/x",
                "azure-keyvault://<vault>/<secret>",
            ),
            ("aws-sm://", "secret id"),
            ("aws-sm://a b", "secret id"),
            ("aws-sm://prod/pg#", "JSON key"),
        ] {
            let err = SecretRef::parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_vault_reference_without_a_resolver_says_this_process_cannot_read_vaults() {
        let reference = SecretRef::parse("aws-sm://prod/pg").unwrap();
        let err = futures::executor::block_on(reference.resolve()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("secret aws-sm://prod/pg: this process cannot read vault"),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[test]
    fn an_installed_resolver_reads_vault_references() {
        struct Fixed;
        #[async_trait]
        impl VaultResolver for Fixed {
            async fn read(&self, reference: &SecretRef) -> Result<String> {
                match reference {
                    SecretRef::AwsSecretsManager { .. } => Ok("from-the-vault".into()),
                    _ => Err(Error::secret(
                        reference,
                        SecretFailure::Unreachable,
                        "no answer",
                        None,
                    )),
                }
            }
        }
        assert!(install_vault_resolver(Box::new(Fixed)));
        assert!(!install_vault_resolver(Box::new(Fixed)), "the first stays");
        let read = |text: &str| futures::executor::block_on(SecretRef::parse(text)?.resolve());
        assert_eq!(read("aws-sm://a").unwrap(), "from-the-vault");
        let err = read("azure-keyvault://kv1/s").unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Connect,
            "unreachable is worth a retry"
        );
    }

    #[test]
    fn mask_hides_the_secret() {
        assert_eq!(mask("password=abc host", "abc"), "password=*** host");
    }

    /// The I/O error stays reachable under the unchanged message.
    #[test]
    fn an_unreadable_secret_file_keeps_its_io_error() {
        let reference = SecretRef::File("/nonexistent/dataloader/secret".into());
        let err = futures::executor::block_on(reference.resolve()).unwrap_err();
        assert!(matches!(
            err,
            Error::Secret {
                failure: SecretFailure::NotFound,
                ..
            }
        ));
        assert!(
            err.to_string().starts_with(
                "secret file:/nonexistent/dataloader/secret: cannot read file: No such file"
            ),
            "{err}"
        );
        let io = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_cause_that_shows_a_secret_is_not_kept() {
        /// Says nothing in its text; its debug form shows the DSN.
        #[derive(Debug)]
        struct Dsn(#[allow(dead_code)] &'static str);
        impl std::fmt::Display for Dsn {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("cannot connect")
            }
        }
        impl std::error::Error for Dsn {}

        let io = |text: &str| std::io::Error::other(text.to_string());
        assert!(cause_unless_secret(io("login as bob failed"), &["hunter2"]).is_some());
        assert!(cause_unless_secret(io("fine"), &[""]).is_some());
        assert!(cause_unless_secret(io("dsn password=hunter2"), &["", "hunter2"]).is_none());
        assert!(cause_unless_secret(Dsn("password=a\"b"), &["a\"b"]).is_none());
        let masked = Error::Write {
            table: "t".into(),
            step: "write",
            message: "password=***".into(),
            source: Some(io("password=hunter2").into()),
        };
        assert!(cause_unless_secret(masked, &["hunter2"]).is_none());
    }
}
