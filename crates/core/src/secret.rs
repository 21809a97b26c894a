//! Secrets are stored only as references and resolved at the moment of use.

use crate::{Error, Result};

/// A reference to a secret: `env:NAME` or `file:/path`. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
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
        // Deliberately does not echo the value: it may be a password typed in by mistake.
        Err(Error::config(
            "password",
            "must be a reference (env:VAR or file:/path), never the secret itself",
        ))
    }

    /// Reads the secret. Errors name the reference, never the value.
    pub fn resolve(&self) -> Result<String> {
        match self {
            SecretRef::Env(name) => std::env::var(name).map_err(|_| Error::Secret {
                reference: self.to_string(),
                message: format!("environment variable {name} is not set"),
            }),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| Error::Secret {
                    reference: self.to_string(),
                    message: format!("cannot read file: {e}"),
                }),
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
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
    fn mask_hides_the_secret() {
        assert_eq!(mask("password=abc host", "abc"), "password=*** host");
    }
}
