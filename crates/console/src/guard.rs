//! What every request and response passes through, whatever its route:
//!
//! - an open console (loopback, no token needed) answers only requests addressed to a loopback
//!   name, so a page that rebinds its own domain to 127.0.0.1 (DNS rebinding) gets nothing;
//! - a request that changes something and carries no `Authorization` header (a browser's) must
//!   come from the console's own pages: `Sec-Fetch-Site` and `Origin`, when the browser sends
//!   them, must say so. With the forms' CSRF token and the API's JSON-only rule, a page of
//!   another origin cannot act, even one on another port of this machine;
//! - pages may not be framed (clickjacking), nor their types sniffed;
//! - an API error is always JSON `{"error": {"code", "message"}}`, also axum's own rejections
//!   (a path, query or body that does not parse) and unknown routes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::Console;

/// Whether `host` (a `Host` header: name and optional port) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `Err` with the reason when a browser's request to change something did not come from the
/// console's own pages.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err("this request came from another site's page");
        }
    }
    if let (Some(origin), Some(host)) = (text("origin"), text("host")) {
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        if origin != "null" && !origin_host.eq_ignore_ascii_case(host) {
            return Err("this request came from a page of another origin");
        }
        if origin == "null" {
            return Err("this request came from a page without an origin");
        }
    }
    Ok(())
}

pub(crate) async fn guard(
    State(console): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let api = request.uri().path().starts_with("/api/");
    if console.open {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !loopback_host(host) {
            return ApiError::forbidden(
                "this console answers on this machine only: open it at http://127.0.0.1:<port>/ (or serve it with tokens on another address)",
            )
            .into_response();
        }
    }
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes && !headers.contains_key(header::AUTHORIZATION) {
        if let Err(why) = same_origin(headers) {
            return ApiError::forbidden(format!(
                "{why}: the console acts only on its own pages' requests"
            ))
            .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if api {
        return json_error(response).await;
    }
    response
}

/// An API response that is an error in another shape (axum's rejections are plain text, an
/// unknown route has no body) as the API's JSON error.
async fn json_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = match (status, text.is_empty()) {
        (StatusCode::NOT_FOUND, true) => {
            "no such route in /api/v1 (see /api/v1/openapi.json)".into()
        }
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            "this route does not take that method (see /api/v1/openapi.json)".into()
        }
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "invalid",
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_told_from_others() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "127.1.2.3",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1",
            "127.0.0.1.evil.example",
            "",
            "[::2]:80",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn a_browser_post_from_another_origin_is_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&headers(&[])).is_ok(), "curl sends neither");
        assert!(same_origin(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ]))
        .is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(
            same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err(),
            "another port"
        );
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:9999"),
            ("host", "127.0.0.1:8080")
        ]))
        .is_err());
        assert!(same_origin(&headers(&[("origin", "null"), ("host", "127.0.0.1:8080")])).is_err());
    }
}
