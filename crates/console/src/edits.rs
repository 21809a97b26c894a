//! The changes the console's forms and the API make to the control tables, one way for both:
//! a table's main settings, a connection, an apply file; checked as the CLI checks them, and
//! named in the audit trail. Also the API's routes for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use dataloader_core::access::Role;
use dataloader_core::connection::ConnectionChange;
use dataloader_core::{
    ConnectionConfig, Error, LoadStrategy, SourceTable, TableControl, TableSpec, TargetTable,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::views::{self, TableView};
use crate::Console;

/// `text` trimmed, or none when that leaves nothing: a blank field says "not set".
fn filled(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// A table's main settings, as the form and `POST`/`PUT /api/v1/tables` give them. A field
/// left out keeps the table's value (a new table's default); an empty text clears it. Every
/// other setting: an apply file (`/api/v1/plan`, `/api/v1/apply`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub(crate) struct TableFields {
    pub(crate) connection: String,
    /// `schema.table` in the source.
    pub(crate) source: String,
    /// `catalog.schema.table`.
    pub(crate) destination: String,
    /// Default `full`.
    #[serde(default)]
    pub(crate) strategy: Option<String>,
    #[serde(default)]
    pub(crate) primary_keys: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) incremental_column: Option<String>,
    /// Five-field cron; empty: only when asked.
    #[serde(default)]
    pub(crate) schedule: Option<String>,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default)]
    pub(crate) timezone: Option<String>,
    #[serde(default)]
    pub(crate) tags: Option<Vec<String>>,
    /// Default true.
    #[serde(default)]
    pub(crate) active: Option<bool>,
}

impl TableFields {
    pub(crate) fn of(spec: &TableSpec) -> TableFields {
        TableFields {
            connection: spec.connection.clone(),
            source: spec.source.to_string(),
            destination: spec.destination.to_string(),
            strategy: Some(spec.strategy.as_str().into()),
            primary_keys: Some(spec.primary_keys.clone()),
            incremental_column: spec.incremental_column.clone(),
            schedule: spec.schedule.clone(),
            timezone: Some(spec.timezone.clone()),
            tags: Some(spec.tags.clone()),
            active: Some(spec.is_active),
        }
    }

    /// The spec the fields make, over `base` (an edited table keeps what they leave out);
    /// an error names the field it is about.
    pub(crate) fn spec(&self, base: Option<&TableSpec>) -> Result<TableSpec, Error> {
        let source = SourceTable::parse(self.source.trim())
            .map_err(|e| Error::config("source", e.to_string()))?;
        let destination = TargetTable::parse(self.destination.trim())
            .map_err(|e| Error::config("destination", e.to_string()))?;
        let mut spec = match base {
            Some(b) => b.clone(),
            None => TableSpec::new(self.connection.trim(), source.clone(), destination.clone()),
        };
        let names = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        };
        spec.connection = self.connection.trim().to_string();
        spec.source = source;
        spec.destination = destination;
        if let Some(strategy) = &self.strategy {
            spec.strategy = strategy.trim().parse::<LoadStrategy>()?;
        }
        if let Some(keys) = &self.primary_keys {
            spec.primary_keys = names(keys);
        }
        if let Some(column) = &self.incremental_column {
            spec.incremental_column = filled(column);
        }
        if let Some(schedule) = &self.schedule {
            spec.schedule = filled(schedule);
        }
        if let Some(tz) = self.timezone.as_deref().and_then(filled) {
            spec.timezone = tz;
        }
        if let Some(tags) = &self.tags {
            spec.tags = names(tags);
        }
        if let Some(active) = self.active {
            spec.is_active = active;
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// Creates the table (`existing` none) or changes it, for `caller` (an admin, checked by the
/// route), whose name the audit rows carry; its destination.
pub(crate) async fn save_table(
    console: &Console,
    caller: &Caller,
    fields: &TableFields,
    existing: Option<&TableControl>,
) -> Result<String, Error> {
    let store = console.store.as_ref();
    let spec = fields.spec(existing.map(|t| &t.spec))?;
    store
        .require_connection(&spec.connection)
        .await
        .map_err(|e| Error::config("connection", e.to_string()))?;
    let now = Utc::now();
    let by = caller.audit_name();
    match existing {
        Some(t) => {
            store
                .update_table_spec_by(t.table_id, &spec, now, &by)
                .await?
        }
        None => {
            if store
                .table_by_destination(&spec.destination)
                .await?
                .is_some()
            {
                return Err(Error::config(
                    "destination",
                    format!("{} is defined already: edit it instead", spec.destination),
                ));
            }
            store.insert_table_by(&spec, now, &by).await?;
        }
    }
    Ok(spec.destination.to_string())
}

/// A connection as the form and `POST /api/v1/connections` give it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub(crate) struct ConnectionFields {
    pub(crate) name: String,
    /// A connector's name or alias (`postgresql`, `mysql`, `mssql`, …).
    pub(crate) db_type: String,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) port: Option<u16>,
    #[serde(default)]
    pub(crate) database: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// A reference (`env:…`, `file:…`, `azure-keyvault://…`, `aws-sm://…`), never a password.
    #[serde(default)]
    pub(crate) password_reference: Option<String>,
    #[serde(default)]
    pub(crate) options: BTreeMap<String, String>,
}

/// Adds the connection (`editing` none) or changes the one named `editing`, checked by its
/// connector; its name. Adding over a name in use, or renaming, is refused: tables load from
/// a connection by its name.
pub(crate) async fn save_connection(
    console: &Console,
    caller: &Caller,
    fields: &ConnectionFields,
    editing: Option<&str>,
) -> Result<String, Error> {
    let given = |v: &Option<String>| v.as_deref().and_then(filled);
    let stored = console.store.connection(fields.name.trim()).await?;
    let config = console.actions.validate_connection(&ConnectionConfig {
        name: fields.name.trim().to_string(),
        db_type: fields.db_type.trim().parse()?,
        host: given(&fields.host),
        port: fields.port,
        database: given(&fields.database),
        user: given(&fields.user),
        password: given(&fields.password_reference),
        options: fields.options.clone(),
        // Not a field of the form: an edit keeps what `apply` or the CLI set.
        max_connections: stored.as_ref().and_then(|c| c.max_connections),
    })?;
    let exists = stored.is_some();
    match editing {
        None if exists => {
            return Err(Error::config(
                "name",
                format!("a connection named \"{}\" exists already", config.name),
            ))
        }
        Some(name) if name != config.name => {
            return Err(Error::config(
                "name",
                format!("a connection keeps its name (tables load from \"{name}\" by it)"),
            ))
        }
        Some(name) if !exists => {
            return Err(Error::UnknownConnection {
                name: name.to_string(),
                known: Vec::new(),
            })
        }
        _ => {}
    }
    console
        .store
        .upsert_connection_by(&config, &caller.audit_name())
        .await?;
    Ok(config.name)
}

/// `ok in N ms — <server version>`, as `connection test` says it, for an operator. A server
/// that cannot be reached is a 502; an unknown connection or a bad one, the API's usual.
pub(crate) async fn test_connection(
    console: &Console,
    caller: &Caller,
    name: &str,
) -> Result<String, ApiError> {
    caller.require(Role::Operator)?;
    let config = console.store.require_connection(name).await?;
    let started = std::time::Instant::now();
    match console.actions.test_connection(&config).await {
        Ok(version) => Ok(format!(
            "ok in {} ms — {version}",
            started.elapsed().as_millis()
        )),
        Err(e @ Error::InvalidConfig { .. }) => Err(e.into()),
        // The sources mask any secret out of their errors.
        Err(e) => Err(ApiError::bad_gateway(format!("connection {name}: {e}"))),
    }
}

// The API's routes for the above.

#[utoipa::path(post, path = "/api/v1/tables", request_body = TableFields,
    responses((status = 201, body = TableView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn create_table(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Json(fields): Json<TableFields>,
) -> Result<(StatusCode, Json<TableView>), ApiError> {
    caller.check_api_post(&headers)?;
    caller.require(Role::Admin)?;
    let name = save_table(&console, &caller, &fields, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::one(console.store.as_ref(), &name).await?),
    ))
}

#[utoipa::path(put, path = "/api/v1/tables/{name}", params(("name" = String, Path)), request_body = TableFields,
    responses((status = 200, body = TableView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_table(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(fields): Json<TableFields>,
) -> Result<Json<TableView>, ApiError> {
    caller.check_api_post(&headers)?;
    caller.require(Role::Admin)?;
    let existing = views::table(console.store.as_ref(), &name).await?;
    let saved = save_table(&console, &caller, &fields, Some(&existing)).await?;
    Ok(Json(views::one(console.store.as_ref(), &saved).await?))
}

/// A connection as the API shows it: its password's reference only.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionView {
    pub(crate) name: String,
    pub(crate) db_type: String,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) database: Option<String>,
    pub(crate) user: Option<String>,
    /// `env:…`, `file:…`, `azure-keyvault://…` or `aws-sm://…`: where the password is read.
    pub(crate) password_reference: Option<String>,
    pub(crate) options: BTreeMap<String, String>,
}

impl From<ConnectionConfig> for ConnectionView {
    fn from(c: ConnectionConfig) -> ConnectionView {
        // Options that hold secrets hold references (the store refuses values); masked still.
        let c = c.masked();
        ConnectionView {
            db_type: c.db_type.as_str().to_string(),
            name: c.name,
            host: c.host,
            port: c.port,
            database: c.database,
            user: c.user,
            password_reference: c.password,
            options: c.options,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/connections", request_body = ConnectionFields,
    responses((status = 201, body = ConnectionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn create_connection(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Json(fields): Json<ConnectionFields>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    caller.check_api_post(&headers)?;
    caller.require(Role::Admin)?;
    let name = save_connection(&console, &caller, &fields, None).await?;
    let saved = console.store.require_connection(&name).await?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

#[utoipa::path(put, path = "/api/v1/connections/{name}", params(("name" = String, Path)), request_body = ConnectionFields,
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_connection(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(fields): Json<ConnectionFields>,
) -> Result<Json<ConnectionView>, ApiError> {
    caller.check_api_post(&headers)?;
    caller.require(Role::Admin)?;
    save_connection(&console, &caller, &fields, Some(&name)).await?;
    Ok(Json(console.store.require_connection(&name).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/connections/{name}/history", params(("name" = String, Path)),
    responses((status = 200, body = [Object]), (status = 404, body = ErrorBody)))]
pub(crate) async fn connection_history(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<ConnectionChange>>, ApiError> {
    console.store.require_connection(&name).await?;
    Ok(Json(console.store.connection_history(&name).await?))
}

/// How a connection test went.
#[derive(Serialize, ToSchema)]
pub(crate) struct Tested {
    connection: String,
    said: String,
}

#[utoipa::path(post, path = "/api/v1/connections/{name}/test", params(("name" = String, Path)),
    responses((status = 200, body = Tested), (status = 502, body = ErrorBody)))]
pub(crate) async fn test_connection_route(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Tested>, ApiError> {
    caller.check_api_post(&headers)?;
    let said = test_connection(&console, &caller, &name).await?;
    Ok(Json(Tested {
        connection: name,
        said,
    }))
}

/// An apply file, as `dataloader apply -f` reads it.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ApplyFile {
    yaml: String,
}

/// The changes, one line each and a summary last.
#[derive(Serialize, ToSchema)]
pub(crate) struct Planned {
    changes: Vec<String>,
    applied: bool,
}

#[utoipa::path(post, path = "/api/v1/plan", request_body = ApplyFile,
    responses((status = 200, body = Planned), (status = 400, body = ErrorBody)))]
pub(crate) async fn plan(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Json(file): Json<ApplyFile>,
) -> Result<Json<Planned>, ApiError> {
    planned(&console, &caller, &headers, &file.yaml, false).await
}

#[utoipa::path(post, path = "/api/v1/apply", request_body = ApplyFile,
    responses((status = 200, body = Planned), (status = 400, body = ErrorBody)))]
pub(crate) async fn apply(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Json(file): Json<ApplyFile>,
) -> Result<Json<Planned>, ApiError> {
    planned(&console, &caller, &headers, &file.yaml, true).await
}

async fn planned(
    console: &Console,
    caller: &Caller,
    headers: &HeaderMap,
    yaml: &str,
    apply: bool,
) -> Result<Json<Planned>, ApiError> {
    caller.check_api_post(headers)?;
    caller.require(Role::Admin)?;
    planned_for(console, caller, yaml, apply)
        .await
        .map(|changes| {
            Json(Planned {
                changes,
                applied: apply,
            })
        })
        .map_err(ApiError::from)
}

/// The plan of `yaml`, carried out when `apply`, its audit rows naming `caller`.
pub(crate) async fn planned_for(
    console: &Console,
    caller: &Caller,
    yaml: &str,
    apply: bool,
) -> Result<Vec<String>, Error> {
    console
        .actions
        .plan(yaml, apply.then(|| caller.audit_name()).as_deref())
        .await
}
