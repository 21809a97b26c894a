//! Defining and editing a table in a form (admins): the fields go to `edits::save_table`, as
//! the API's do, which checks them as `table add` and `apply` do; an error is said next to the
//! field it names.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dataloader_core::access::Role;
use dataloader_core::{Error, LoadStrategy, Store, TableSpec};
use maud::{html, Markup};
use serde::Deserialize;

use super::{encode, refusal, refused, Page, Viewer};
use crate::access::Caller;
use crate::edits::{self, TableFields};
use crate::views;
use crate::Console;

/// The form's fields, as posted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TableForm {
    #[serde(default)]
    csrf: String,
    connection: String,
    source: String,
    destination: String,
    strategy: String,
    #[serde(default)]
    primary_keys: String,
    #[serde(default)]
    incremental_column: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    tags: String,
    /// A checkbox: present when ticked.
    active: Option<String>,
}

impl TableForm {
    fn of(spec: &TableSpec) -> TableForm {
        let fields = TableFields::of(spec);
        TableForm {
            csrf: String::new(),
            connection: fields.connection,
            source: fields.source,
            destination: fields.destination,
            strategy: fields.strategy.unwrap_or_default(),
            primary_keys: fields.primary_keys.unwrap_or_default().join(", "),
            incremental_column: fields.incremental_column.unwrap_or_default(),
            schedule: fields.schedule.unwrap_or_default(),
            timezone: fields.timezone.unwrap_or_default(),
            tags: fields.tags.unwrap_or_default().join(", "),
            active: fields.active.unwrap_or(true).then(|| "on".into()),
        }
    }

    /// The fields as the API takes them: every one given (a blank clears it), lists split at
    /// commas.
    fn fields(&self) -> TableFields {
        let list = |text: &str| Some(text.split(',').map(|s| s.trim().to_string()).collect());
        TableFields {
            connection: self.connection.clone(),
            source: self.source.clone(),
            destination: self.destination.clone(),
            strategy: Some(self.strategy.clone()),
            primary_keys: list(&self.primary_keys),
            incremental_column: Some(self.incremental_column.clone()),
            schedule: Some(self.schedule.clone()),
            timezone: Some(self.timezone.clone()),
            tags: list(&self.tags),
            active: Some(self.active.is_some()),
        }
    }
}

/// An error said next to its field, or above the form when it names none of them.
struct Said {
    field: String,
    message: String,
}

impl From<Error> for Said {
    fn from(e: Error) -> Said {
        match e {
            Error::InvalidConfig { field, message } => Said { field, message },
            other => Said {
                field: String::new(),
                message: other.to_string(),
            },
        }
    }
}

pub(crate) async fn new_table(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, None) {
        return page;
    }
    let form = TableForm {
        strategy: "full".into(),
        timezone: "UTC".into(),
        active: Some("on".into()),
        ..TableForm::default()
    };
    let connections = connection_names(console.store.as_ref()).await;
    let page = Page::new(&headers);
    let body = form_page(&page, "New table", "/tables/new", &form, &connections, None);
    page.render("New table", &caller, body)
}

pub(crate) async fn edit_table(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, None) {
        return page;
    }
    let table = match views::table(console.store.as_ref(), &name).await {
        Ok(t) => t,
        Err(e) => return refused(e.status, &e.message),
    };
    let connections = connection_names(console.store.as_ref()).await;
    let page = Page::new(&headers);
    let action = format!("/tables/{name}/edit");
    let form = TableForm::of(&table.spec);
    let body = form_page(
        &page,
        &format!("Edit {name}"),
        &action,
        &form,
        &connections,
        None,
    );
    page.render(&name, &caller, body)
}

pub(crate) async fn create_table(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Form(form): Form<TableForm>,
) -> Response {
    save(&console, &caller, &headers, form, None).await
}

pub(crate) async fn update_table(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<TableForm>,
) -> Response {
    save(&console, &caller, &headers, form, Some(name)).await
}

/// Creates (`editing` none) or updates the table; the form again, with what is wrong, when
/// the fields do not make a valid table.
async fn save(
    console: &Console,
    caller: &Caller,
    headers: &HeaderMap,
    form: TableForm,
    editing: Option<String>,
) -> Response {
    if let Some(page) = refusal(caller, Role::Admin, headers, Some(&form.csrf)) {
        return page;
    }
    let store = console.store.as_ref();
    let existing = match &editing {
        Some(name) => match views::table(store, name).await {
            Ok(t) => Some(t),
            Err(e) => return refused(e.status, &e.message),
        },
        None => None,
    };
    let fields = form.fields();
    match edits::save_table(console, caller, &fields, existing.as_ref()).await {
        Ok(name) => {
            let said = if editing.is_some() {
                "updated"
            } else {
                "created"
            };
            Redirect::to(&format!("/tables/{}?done={said}", encode(&name))).into_response()
        }
        Err(e) => {
            let connections = connection_names(store).await;
            let page = Page::new(headers);
            let (title, action) = match &editing {
                Some(name) => (format!("Edit {name}"), format!("/tables/{name}/edit")),
                None => ("New table".to_string(), "/tables/new".to_string()),
            };
            let body = form_page(&page, &title, &action, &form, &connections, Some(e.into()));
            let mut response = page.render(&title, caller, body);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
    }
}

async fn connection_names(store: &dyn Store) -> Vec<String> {
    store
        .connections()
        .await
        .map(|c| c.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

fn form_page(
    page: &Page,
    title: &str,
    action: &str,
    form: &TableForm,
    connections: &[String],
    said: Option<Said>,
) -> Markup {
    let error = |field: &str| -> Markup {
        match &said {
            Some(s) if s.field == field => html! { span.error.field-error { (s.message) } },
            _ => html! {},
        }
    };
    let fields = [
        "connection",
        "source",
        "destination",
        "strategy",
        "primary_keys",
        "incremental_column",
        "schedule",
        "timezone",
        "tags",
    ];
    let text = |name: &str, label: &str, value: &str, hint: &str| {
        html! {
            label {
                span { (label) }
                input type="text" name=(name) id=(name) value=(value) placeholder=(hint);
                (error(name))
            }
        }
    };
    html! {
        main.narrow.wide-form {
            h1 { (title) }
            @if let Some(s) = said.as_ref().filter(|s| !fields.contains(&s.field.as_str())) {
                p.error { @if !s.field.is_empty() { (s.field) ": " } (s.message) }
            }
            form.define method="post" action=(action) {
                (page.csrf_field())
                label {
                    span { "Connection" }
                    select name="connection" id="connection" {
                        @for c in connections {
                            option value=(c) selected[*c == form.connection] { (c) }
                        }
                    }
                    (error("connection"))
                }
                (text("source", "Source table", &form.source, "schema.table"))
                (text("destination", "Destination", &form.destination, "catalog.schema.table"))
                label {
                    span { "Strategy" }
                    select name="strategy" id="strategy" {
                        @for s in LoadStrategy::ALL {
                            option value=(s.as_str()) selected[s.as_str() == form.strategy] { (s.as_str()) }
                        }
                    }
                    (error("strategy"))
                }
                (text("primary_keys", "Primary keys", &form.primary_keys, "id, line_no"))
                (text("incremental_column", "Incremental column", &form.incremental_column, "updated_at"))
                (text("schedule", "Schedule (cron)", &form.schedule, "0 2 * * *  (empty: only when asked)"))
                (text("timezone", "Time zone", &form.timezone, "UTC"))
                (text("tags", "Tags", &form.tags, "finance, daily"))
                label.check {
                    input type="checkbox" name="active" checked[form.active.is_some()];
                    " Active (the scheduler loads it)"
                }
                p { button.primary type="submit" { "Save" } " " a href="/tables" { "Cancel" } }
                p.muted { "Every other setting: " a href="/apply" { "a YAML file" } " or " code { "dataloader table update" } "." }
            }
        }
    }
}
