//! Defining and editing a table in a form (admins): the spec is built from the fields and
//! checked by `TableSpec::validate` and the connection's existence, as `table add` and `apply`
//! check it; an error is said next to the field it names. The audit rows the change writes
//! name the caller.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use dataloader_core::access::Role;
use dataloader_core::{Error, LoadStrategy, SourceTable, Store, TableSpec, TargetTable};
use maud::{html, Markup};
use serde::Deserialize;

use super::{encode, refused, Page, Viewer};
use crate::access::{self, Caller};
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
        TableForm {
            csrf: String::new(),
            connection: spec.connection.clone(),
            source: spec.source.to_string(),
            destination: spec.destination.to_string(),
            strategy: spec.strategy.as_str().into(),
            primary_keys: spec.primary_keys.join(", "),
            incremental_column: spec.incremental_column.clone().unwrap_or_default(),
            schedule: spec.schedule.clone().unwrap_or_default(),
            timezone: spec.timezone.clone(),
            tags: spec.tags.join(", "),
            active: spec.is_active.then(|| "on".into()),
        }
    }

    /// The spec the fields make, over `base` (an edited table keeps what the form does not
    /// show); an error names the field it is about.
    fn spec(&self, base: Option<&TableSpec>) -> Result<TableSpec, Error> {
        let source = SourceTable::parse(self.source.trim())
            .map_err(|e| Error::config("source", e.to_string()))?;
        let destination = TargetTable::parse(self.destination.trim())
            .map_err(|e| Error::config("destination", e.to_string()))?;
        let mut spec = match base {
            Some(b) => b.clone(),
            None => TableSpec::new(self.connection.trim(), source.clone(), destination.clone()),
        };
        spec.connection = self.connection.trim().to_string();
        spec.source = source;
        spec.destination = destination;
        spec.strategy = self.strategy.parse::<LoadStrategy>()?;
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let optional = |text: &str| Some(text.trim().to_string()).filter(|s| !s.is_empty());
        spec.primary_keys = list(&self.primary_keys);
        spec.incremental_column = optional(&self.incremental_column);
        spec.schedule = optional(&self.schedule);
        if let Some(tz) = optional(&self.timezone) {
            spec.timezone = tz;
        }
        spec.tags = list(&self.tags);
        spec.is_active = self.active.is_some();
        spec.validate()?;
        Ok(spec)
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
    if let Err(e) = caller.require(Role::Admin) {
        return refused(e.status, &e.message);
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
    if let Err(e) = caller.require(Role::Admin) {
        return refused(e.status, &e.message);
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
    if let Err(e) = caller.require(Role::Admin) {
        return refused(e.status, &e.message);
    }
    if !access::csrf_ok(headers, &form.csrf) {
        return refused(StatusCode::FORBIDDEN, super::CSRF_REFUSED);
    }
    let store = console.store.as_ref();
    let existing = match &editing {
        Some(name) => match views::table(store, name).await {
            Ok(t) => Some(t),
            Err(e) => return refused(e.status, &e.message),
        },
        None => None,
    };
    let saved = async {
        let spec = form.spec(existing.as_ref().map(|t| &t.spec))?;
        store
            .require_connection(&spec.connection)
            .await
            .map_err(|e| Error::config("connection", e.to_string()))?;
        let now = Utc::now();
        let (table_id, mark) = match &existing {
            Some(t) => {
                let mark = store
                    .table_history(t.table_id)
                    .await?
                    .first()
                    .map(|h| h.history_id);
                store.update_table_spec(t.table_id, &spec, now).await?;
                (t.table_id, mark.unwrap_or(0))
            }
            None => (store.insert_table(&spec, now).await?, 0),
        };
        store
            .attribute_changes(table_id, mark, &caller.audit_name())
            .await?;
        Ok::<_, Error>(spec.destination.to_string())
    };
    match saved.await {
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
