//! Who is asking, and may they: bearer tokens (`dataloader token create`), kept in the control
//! database as a SHA-256 and looked up at each request; a browser keeps its token in an
//! HttpOnly cookie after the login page. A listener on loopback lets a request without a token
//! in as an admin (`local`); a wrong or revoked token is refused everywhere.
//!
//! Forms are protected against cross-site request forgery by a double-submit token: a random
//! `dl_csrf` cookie (SameSite=Strict) that each form repeats in a hidden field. The API takes a
//! POST from a browser session only as JSON, which another site's page cannot send without
//! CORS, which the console never allows.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use dataloader_core::access::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::Console;

/// The cookie a browser keeps its token in.
pub(crate) const TOKEN_COOKIE: &str = "dl_token";
/// The double-submit cookie of the forms.
pub(crate) const CSRF_COOKIE: &str = "dl_csrf";

/// A new token: `dl_` and 256 random bits in hex. Shown once; only [`hash_token`] is kept.
pub fn new_token() -> String {
    format!("dl_{}", random_hex(32))
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller of a request: a token's name and role, or `local` on an open console.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) name: String,
    pub(crate) role: Role,
    /// Authenticated by an `Authorization` header: not a browser's ambient credential, so no
    /// CSRF check is needed.
    pub(crate) by_header: bool,
    /// Came with a token (`false`: the open console's `local`).
    pub(crate) token: bool,
}

impl Caller {
    /// `Err(403)` unless the caller's role is at least `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{} is a {} token: this needs {role} or above",
            self.name, self.role
        )))
    }

    /// How the audit trail names the caller: `token:NAME`, or `local` on an open console.
    pub(crate) fn audit_name(&self) -> String {
        match self.token {
            true => format!("token:{}", self.name),
            false => "local".into(),
        }
    }

    /// For an API POST: `Err(403)` when a browser session (cookie or open console) sends
    /// anything but JSON, as a forged form would.
    pub(crate) fn check_api_post(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if self.by_header || json {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "send the request as application/json, or with an Authorization: Bearer header",
        ))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether a form's `csrf` field repeats the request's CSRF cookie.
pub(crate) fn csrf_ok(headers: &HeaderMap, field: &str) -> bool {
    // As long as the pages make it: a short value is one the console never set.
    cookie(headers, CSRF_COOKIE).is_some_and(|c| c.len() >= 32 && c == field)
}

impl FromRequestParts<Arc<Console>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| match v.split_once(' ') {
                // The scheme is case-insensitive (RFC 9110).
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => v.trim(),
            })
            .map(str::to_string);
        let by_header = bearer.is_some();
        let token = bearer.or_else(|| cookie(&parts.headers, TOKEN_COOKIE));
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            if console.open {
                return Ok(Caller {
                    name: "local".into(),
                    role: Role::Admin,
                    by_header: false,
                    token: false,
                });
            }
            let how = if parts.method == Method::GET {
                "sign in at /login, or send Authorization: Bearer <token>"
            } else {
                "send Authorization: Bearer <token>"
            };
            return Err(ApiError::unauthorized(format!(
                "this console needs a token ({how}; dataloader token create makes one)"
            )));
        };
        Caller::of_token(console, &token, by_header).await
    }
}

impl Caller {
    /// The caller a token makes: its name and role, unless it is unknown or revoked.
    pub(crate) async fn of_token(
        console: &Console,
        token: &str,
        by_header: bool,
    ) -> Result<Caller, ApiError> {
        let found = console
            .store
            .token_by_hash(&hash_token(token), chrono::Utc::now())
            .await?;
        match found {
            Some(t) if t.revoked_at.is_none() => Ok(Caller {
                name: t.name,
                role: t.role,
                by_header,
                token: true,
            }),
            Some(t) => Err(ApiError::unauthorized(format!(
                "the token {} was revoked",
                t.name
            ))),
            None => Err(ApiError::unauthorized("the token is not known here")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed_as_hex_sha256() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("dl_") && a.len() == 3 + 64, "{a}");
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cookies_are_read_by_name_and_csrf_needs_both_halves_equal() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; dl_csrf=0123456789abcdef0123456789abcdef; dl_token=t"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&headers, "dl_token").as_deref(), Some("t"));
        assert!(csrf_ok(&headers, "0123456789abcdef0123456789abcdef"));
        assert!(!csrf_ok(&headers, "0123456789abcdef0123456789abcde"));
        let short: HeaderMap = [(header::COOKIE, "dl_csrf=xyz".parse().unwrap())]
            .into_iter()
            .collect();
        assert!(!csrf_ok(&short, "xyz"), "a value the pages never make");
        assert!(!csrf_ok(&HeaderMap::new(), ""));
    }

    #[test]
    fn roles_are_checked_in_order() {
        let viewer = Caller {
            name: "ci".into(),
            role: Role::Viewer,
            by_header: true,
            token: true,
        };
        assert_eq!(viewer.audit_name(), "token:ci");
        assert!(viewer.require(Role::Viewer).is_ok());
        let refused = viewer.require(Role::Operator).unwrap_err();
        assert_eq!(refused.status.as_u16(), 403);
        assert!(
            refused.message.contains("ci is a viewer token"),
            "{}",
            refused.message
        );
    }
}
