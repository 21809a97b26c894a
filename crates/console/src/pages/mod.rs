//! The console's HTML pages, rendered on the server with maud: the overview, the tables, a
//! table, a run, and the sign-in page; the buttons' form posts. A page's live part reloads
//! itself every few seconds with htmx (`hx-trigger="every 5s"`, swapping only that part).
//! Times are written as UTC `<time>` elements that a few lines of script show in the viewer's
//! zone.

mod alerts;
mod apply;
mod connections;
mod define;
mod layout;
mod overview;
mod table;
mod tables;

use std::sync::Arc;

use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use dataloader_core::access::Role;
use maud::html;
use serde::Deserialize;

use crate::access::{self, Caller, TOKEN_COOKIE};
use crate::api;
use crate::error::ApiError;
use crate::Console;

pub(crate) use layout::Page;

pub(crate) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/tables", get(tables::tables))
        .route(
            "/tables/new",
            get(define::new_table).post(define::create_table),
        )
        .route("/tables/{name}", get(table::table))
        .route(
            "/tables/{name}/edit",
            get(define::edit_table).post(define::update_table),
        )
        .route("/tables/{name}/{action}", post(act))
        .route("/runs/{id}", get(table::run))
        .route("/connections", get(connections::connections))
        .route("/alerts", get(alerts::alerts))
        .route(
            "/connections/new",
            get(connections::new_connection).post(connections::create_connection),
        )
        .route(
            "/connections/{name}/edit",
            get(connections::edit_connection).post(connections::update_connection),
        )
        .route(
            "/connections/{name}/test",
            post(connections::test_connection),
        )
        .route("/apply", get(apply::apply_page).post(apply::apply_post))
        .route("/login", get(login).post(sign_in))
        .route("/logout", post(sign_out))
}

/// A page's caller; without a valid token a page sends the browser to the sign-in page.
pub(crate) struct Viewer(pub(crate) Caller);

impl FromRequestParts<Arc<Console>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, console).await {
            Ok(caller) => Ok(Viewer(caller)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                let next = parts.uri.path().to_string();
                Err(Redirect::to(&format!("/login?next={}", encode(&next))).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// `text` for a URL's query.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a form post whose CSRF token does not match its cookie is told.
pub(crate) const CSRF_REFUSED: &str = "This form is out of date or came from another site (its CSRF token does not match): reload the page and try again.";

/// A button's form post.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
}

/// `load`, `full-refresh`, `pause` or `resume` from a table's page; back to the page, which
/// says what happened.
async fn act(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    // The role each action needs is checked by the action.
    if let Some(page) = refusal(&caller, Role::Viewer, &headers, Some(&form.csrf)) {
        return page;
    }
    let done = match action.as_str() {
        "load" => api::start_load(&console, &caller, &name, false)
            .await
            .map(|_| ()),
        "full-refresh" => api::start_load(&console, &caller, &name, true)
            .await
            .map(|_| ()),
        "pause" => api::set_active(&console, &caller, &name, false)
            .await
            .map(|_| ()),
        "resume" => api::set_active(&console, &caller, &name, true)
            .await
            .map(|_| ()),
        other => Err(ApiError::not_found(format!("no action {other}"))),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/tables/{}?done={action}", encode(&name))).into_response(),
        Err(e) => refused(e.status, &e.message),
    }
}

/// The page that says why, unless `caller` has `role` and, for a form post (`csrf` given),
/// the form's CSRF token matches its cookie.
pub(crate) fn refusal(
    caller: &Caller,
    role: Role,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Option<Response> {
    if let Err(e) = caller.require(role) {
        return Some(refused(e.status, &e.message));
    }
    match csrf {
        Some(field) if !access::csrf_ok(headers, field) => {
            Some(refused(StatusCode::FORBIDDEN, CSRF_REFUSED))
        }
        _ => None,
    }
}

/// A short page for a refused action.
fn refused(status: StatusCode, message: &str) -> Response {
    let body = html! {
        main {
            h1 { "Not done" }
            p.error { (message) }
            p { a href="javascript:history.back()" { "Back" } }
        }
    };
    (status, layout::shell("Not done", None, body)).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> impl IntoResponse {
    let next = q.next.unwrap_or_else(|| "/".into());
    let body = html! {
        main.narrow {
            h1 { "Sign in" }
            p { "Paste a token made with " code { "dataloader token create --role viewer|operator|admin" } "." }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" autocomplete="off" required; }
                button type="submit" { "Sign in" }
            }
        }
    };
    layout::shell("Sign in", None, body)
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
    next: Option<String>,
}

/// Checks the token and keeps it in an HttpOnly cookie.
async fn sign_in(State(console): State<Arc<Console>>, Form(form): Form<SignIn>) -> Response {
    let token = form.token.trim();
    match Caller::of_token(&console, token, false).await {
        Ok(_) => {
            let next = form
                .next
                .filter(|n| local_path(n))
                .unwrap_or_else(|| "/".into());
            let cookie =
                format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(e) => refused(e.status, &e.message),
    }
}

/// Whether `next` is a path on this site, never an open redirect: `/x` but not `//host`,
/// `/\host` (which browsers read as `//host`), nor anything with a backslash or a control
/// character.
fn local_path(next: &str) -> bool {
    let mut chars = next.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.chars().any(|c| c == '\\' || c.is_control())
}

async fn sign_out() -> Response {
    let cookie = format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// Whether `caller` may press the operators' buttons.
pub(crate) fn may_operate(caller: &Caller) -> bool {
    caller.role >= Role::Operator
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_a_path_on_this_site_is_followed_after_sign_in() {
        for ok in ["/", "/tables", "/tables/main.a.b?done=load"] {
            assert!(local_path(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "evil",
            "",
            "/a\\b",
        ] {
            assert!(!local_path(bad), "{bad}");
        }
    }
}
