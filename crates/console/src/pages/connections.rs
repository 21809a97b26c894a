//! The connections: the list (with each password's reference, never a value), a form to add
//! one (admins; checked by its connector as `connection add` checks it) and a test button
//! (operators) that connects and says the server's version.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dataloader_core::access::Role;
use dataloader_core::connection::is_secret_option;
use dataloader_core::secret::SecretRef;
use dataloader_core::Error;
use maud::{html, Markup};
use serde::Deserialize;

use super::{encode, refusal, refused, Page, Viewer};
use crate::access::Caller;
use crate::edits::{self, ConnectionFields};
use crate::Console;

pub(crate) async fn connections(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
) -> Response {
    // Masked: a password an old version stored in clear shows as ***.
    let list = match console.store.connections().await {
        Ok(l) => l.iter().map(|c| c.masked()).collect::<Vec<_>>(),
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let page = Page::new(&headers);
    let body = html! {
        main {
            h1 { "Connections (" (list.len()) ")" }
            @if caller.role >= Role::Admin { p { a href="/connections/new" { "New connection" } } }
            div.scroll { table {
                thead { tr { th { "Name" } th { "Type" } th { "Host" } th { "Database" } th { "User" } th { "Password from" } th {} } }
                tbody { @for c in &list { tr {
                    td { (c.name) }
                    td { (c.db_type.as_str()) }
                    td { (c.host.as_deref().unwrap_or("–")) @if let Some(p) = c.port { ":" (p) } }
                    td { (c.database.as_deref().unwrap_or("–")) }
                    td { (c.user.as_deref().unwrap_or("–")) }
                    td { code { (c.password.as_deref().unwrap_or("–")) } }
                    td { @if caller.role >= Role::Admin { a href={"/connections/" (c.name) "/edit"} { "Edit" } " " }
                        @if caller.role >= Role::Operator {
                        form.inline method="post" action={"/connections/" (c.name) "/test"} {
                            (page.csrf_field()) button type="submit" { "Test" }
                        }
                    } }
                } } }
            } }
        }
    };
    page.render("Connections", &caller, body)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConnectionForm {
    #[serde(default)]
    csrf: String,
    name: String,
    db_type: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    database: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    /// `key=value`, one a line.
    #[serde(default)]
    options: String,
}

impl ConnectionForm {
    /// The fields as the API takes them; a port or option line that does not parse is said
    /// against its field.
    fn fields(&self) -> Result<ConnectionFields, Error> {
        let port = match self.port.trim() {
            "" => None,
            p => Some(
                p.parse::<u16>()
                    .map_err(|_| Error::config("port", format!("\"{p}\" is not a port number")))?,
            ),
        };
        let mut options = BTreeMap::new();
        for line in self
            .options
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| Error::config("options", format!("\"{line}\" is not key=value")))?;
            options.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(ConnectionFields {
            name: self.name.clone(),
            db_type: self.db_type.clone(),
            host: Some(self.host.clone()),
            port,
            database: Some(self.database.clone()),
            user: Some(self.user.clone()),
            password_reference: Some(self.password.clone()),
            options,
        })
    }
}

pub(crate) async fn new_connection(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, None) {
        return page;
    }
    let page = Page::new(&headers);
    let types = console.actions.db_types();
    let body = form_page(&page, &ConnectionForm::default(), &types, None, None);
    page.render("New connection", &caller, body)
}

pub(crate) async fn create_connection(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Form(form): Form<ConnectionForm>,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, Some(&form.csrf)) {
        return page;
    }
    save(&console, &caller, &headers, form, None).await
}

pub(crate) async fn edit_connection(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, None) {
        return page;
    }
    let c = match console.store.require_connection(&name).await {
        Ok(c) => c.masked(),
        Err(e) => return refused(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let form = ConnectionForm {
        csrf: String::new(),
        name: c.name,
        db_type: c.db_type.as_str().to_string(),
        host: c.host.unwrap_or_default(),
        port: c.port.map(|p| p.to_string()).unwrap_or_default(),
        database: c.database.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        password: c.password.unwrap_or_default(),
        options: c
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let page = Page::new(&headers);
    let types = console.actions.db_types();
    let body = form_page(&page, &form, &types, None, Some(&name));
    page.render(&name, &caller, body)
}

pub(crate) async fn update_connection(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ConnectionForm>,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, Some(&form.csrf)) {
        return page;
    }
    save(&console, &caller, &headers, form, Some(name)).await
}

/// Saves the form (a new connection, or the one named `editing`); the form again, with what is
/// wrong, when the connector refuses it.
async fn save(
    console: &Console,
    caller: &Caller,
    headers: &HeaderMap,
    form: ConnectionForm,
    editing: Option<String>,
) -> Response {
    let saved = async {
        edits::save_connection(console, caller, &form.fields()?, editing.as_deref()).await
    };
    match saved.await {
        Ok(name) => Redirect::to(&format!("/connections?done={}", encode(&name))).into_response(),
        Err(e) => {
            let page = Page::new(headers);
            let types = console.actions.db_types();
            let body = form_page(&page, &form, &types, Some(e), editing.as_deref());
            let mut response = page.render("Connection", caller, body);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Csrf {
    csrf: String,
}

/// Connects, as `connection test` does, and says how it went.
pub(crate) async fn test_connection(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    // An operator's: the test checks the role.
    if let Some(page) = refusal(&caller, Role::Viewer, &headers, Some(&form.csrf)) {
        return page;
    }
    match edits::test_connection(&console, &caller, &name).await {
        Ok(said) => {
            let body = html! { main { h1 { "Connection " (name) } p.done { (said) } p { a href="/connections" { "Back to the connections" } } } };
            Page::new(&headers).render(&name, &caller, body)
        }
        Err(e) => refused(e.status, &e.message),
    }
}

fn form_page(
    page: &Page,
    form: &ConnectionForm,
    types: &[String],
    said: Option<Error>,
    editing: Option<&str>,
) -> Markup {
    let (field, message) = match said {
        Some(Error::InvalidConfig { field, message }) => (field, message),
        Some(other) => (String::new(), other.to_string()),
        None => (String::new(), String::new()),
    };
    let fields = [
        "name", "type", "host", "port", "database", "user", "password", "options",
    ];
    // A password typed where its reference belongs is never sent back to the page, nor a
    // secret option's value that is not a reference.
    let reference = |v: &str| SecretRef::parse(v.trim()).is_ok();
    let shown_password = match reference(&form.password) {
        true => form.password.clone(),
        false => String::new(),
    };
    let shown_options: Vec<String> = form
        .options
        .lines()
        .map(|line| match line.split_once('=') {
            Some((k, v)) if is_secret_option(k.trim()) && !reference(v) => format!("{}=", k.trim()),
            _ => line.to_string(),
        })
        .collect();
    let error = |name: &str| -> Markup {
        match field == name || (name == "type" && field == "db_type") {
            true => html! { span.error.field-error { (message) } },
            false => html! {},
        }
    };
    let text = |name: &str, label: &str, value: &str, hint: &str| {
        html! { label { span { (label) } input type="text" name=(name) id=(name) value=(value) placeholder=(hint); (error(name)) } }
    };
    html! {
        main.narrow.wide-form {
            h1 { @match editing { Some(name) => { "Edit " (name) }, None => { "New connection" } } }
            @if !message.is_empty() && !fields.contains(&field.as_str()) && field != "db_type" {
                p.error { @if !field.is_empty() { (field) ": " } (message) }
            }
            form.define method="post" action=(match editing { Some(name) => format!("/connections/{name}/edit"), None => "/connections/new".into() }) {
                (page.csrf_field())
                (text("name", "Name", &form.name, "erp"))
                label { span { "Type" } select name="db_type" id="db_type" {
                    @for t in types { option value=(t) selected[*t == form.db_type] { (t) } }
                } (error("type")) }
                (text("host", "Host", &form.host, "erp.db.internal"))
                (text("port", "Port", &form.port, "the type's default"))
                (text("database", "Database", &form.database, "erp"))
                (text("user", "User", &form.user, "loader"))
                (text("password", "Password reference", &shown_password, "env:ERP_PASSWORD, azure-keyvault://kv/secret, aws-sm://id#key"))
                label { span { "Options (key=value, one a line)" }
                    textarea name="options" id="options" rows="3" placeholder="sslmode=verify-full" { (shown_options.join("\n")) }
                    (error("options")) }
                p { button.primary type="submit" { "Save" } " " a href="/connections" { "Cancel" } }
            }
        }
    }
}
