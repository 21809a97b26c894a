//! Secrets are stored only as references and resolved at the moment of use.

use crate::{Cause, Error, Result};

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
            SecretRef::Env(name) => std::env::var(name).map_err(|e| Error::Secret {
                reference: self.to_string(),
                message: format!("environment variable {name} is not set"),
                source: Some(e.into()),
            }),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| Error::Secret {
                    reference: self.to_string(),
                    message: format!("cannot read file: {e}"),
                    source: Some(e.into()),
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

/// `err` as the [`Cause`] of an error whose message was [`mask`]ed, or `None` when `err` (its
/// text, a cause's text or its debug form) shows one of `secrets`: a kept error must not carry
/// a secret past the mask.
pub fn cause_unless_secret<E>(err: E, secrets: &[impl AsRef<str>]) -> Option<Cause>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let shows = |text: &str| {
        secrets.iter().map(AsRef::as_ref).any(|s| {
            !s.is_empty() && (text.contains(s) || text.contains(&s.escape_debug().to_string()))
        })
    };
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = link {
        if shows(&e.to_string()) {
            return None;
        }
        link = e.source();
    }
    if shows(&format!("{err:?}")) {
        return None;
    }
    Some(err.into())
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

    /// The I/O error stays reachable under the unchanged message.
    #[test]
    fn an_unreadable_secret_file_keeps_its_io_error() {
        let reference = SecretRef::File("/nonexistent/dataloader/secret".into());
        let err = reference.resolve().unwrap_err();
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
