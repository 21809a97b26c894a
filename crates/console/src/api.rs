//! The REST API under `/api/v1`: what the console shows and does, as JSON, described by the
//! OpenAPI document at `/api/v1/openapi.json` (utoipa, from these handlers' annotations).
//! Viewers read; operators also load, pause and resume. Connections are shown with their
//! password's reference, never a value (the store holds none).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use dataloader_core::access::Role;
use dataloader_core::{RunStatus, TableControl, TableStorage};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::access::Caller;
use crate::edits::{self, ConnectionView};
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::views::{self, RunView, TableFilter, TableView};
use crate::Console;

pub(crate) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/tables", get(list_tables).post(edits::create_table))
        .route(
            "/api/v1/tables/{name}",
            get(get_table).put(edits::update_table),
        )
        .route("/api/v1/tables/{name}/runs", get(table_runs))
        .route("/api/v1/tables/{name}/load", post(load_table))
        .route("/api/v1/tables/{name}/pause", post(pause_table))
        .route("/api/v1/tables/{name}/resume", post(resume_table))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/retry", post(retry_run))
        .route(
            "/api/v1/connections",
            get(list_connections).post(edits::create_connection),
        )
        .route(
            "/api/v1/connections/{name}",
            axum::routing::put(edits::update_connection),
        )
        .route(
            "/api/v1/connections/{name}/history",
            get(edits::connection_history),
        )
        .route(
            "/api/v1/connections/{name}/test",
            post(edits::test_connection_route),
        )
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/deliveries", get(list_deliveries))
        .route("/api/v1/plan", post(edits::plan))
        .route("/api/v1/apply", post(edits::apply))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "DataLoader",
        description = "The tables DataLoader keeps in step, their runs, and the actions on them."
    ),
    paths(
        list_tables,
        get_table,
        table_runs,
        load_table,
        pause_table,
        resume_table,
        list_runs,
        get_run,
        retry_run,
        list_connections,
        list_alerts,
        list_deliveries,
        edits::create_table,
        edits::update_table,
        edits::create_connection,
        edits::update_connection,
        edits::connection_history,
        edits::test_connection_route,
        edits::plan,
        edits::apply
    ),
    components(schemas(
        TableView,
        RunView,
        TableDetail,
        HistoryView,
        ConnectionView,
        AlertView,
        edits::TableFields,
        edits::ConnectionFields,
        edits::Tested,
        edits::ApplyFile,
        edits::Planned,
        LoadRequest,
        Accepted,
        ErrorBody,
        ErrorDetail
    )),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
}

/// A table, its settings, recent runs and audit trail.
#[derive(Serialize, ToSchema)]
pub(crate) struct TableDetail {
    pub(crate) table: TableView,
    /// The table's settings as `table show --json` gives them.
    #[schema(value_type = Object)]
    pub(crate) settings: serde_json::Value,
    /// The newest 50 runs.
    pub(crate) runs: Vec<RunView>,
    /// Changes to the table's row, newest first.
    pub(crate) history: Vec<HistoryView>,
    /// The Delta table and its catalog registration; none when they could not be read (see
    /// `storage_error`).
    #[schema(value_type = Option<Object>)]
    pub(crate) storage: Option<TableStorage>,
    pub(crate) storage_error: Option<String>,
}

/// One change to a table's row, written by the control database's trigger.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryView {
    pub(crate) changed_at: DateTime<Utc>,
    pub(crate) changed_by: Option<String>,
    pub(crate) operation: String,
    #[schema(value_type = Option<Object>)]
    pub(crate) old_values: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub(crate) new_values: Option<serde_json::Value>,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct Limit {
    /// How many, newest first (default 50, at most 1000).
    limit: Option<i64>,
}

impl Limit {
    fn get(&self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub(crate) struct LoadRequest {
    /// Read the whole table and replace the Delta table, whatever the strategy.
    #[serde(default)]
    full_refresh: bool,
}

/// A load that started; follow it at `/api/v1/runs/{run_id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    run_id: i64,
    table: String,
    full_refresh: bool,
    status: String,
}

#[utoipa::path(get, path = "/api/v1/tables", params(TableFilter),
    responses((status = 200, body = [TableView]), (status = 400, body = ErrorBody)))]
async fn list_tables(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Query(filter): Query<TableFilter>,
) -> Result<Json<Vec<TableView>>, ApiError> {
    let tables = views::tables(console.store.as_ref(), Utc::now()).await?;
    Ok(Json(filter.apply(tables)?))
}

#[utoipa::path(get, path = "/api/v1/tables/{name}", params(("name" = String, Path, description = "catalog.schema.table")),
    responses((status = 200, body = TableDetail), (status = 404, body = ErrorBody)))]
async fn get_table(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TableDetail>, ApiError> {
    Ok(Json(table_detail(&console, &name, true).await?))
}

/// What the API and the table's page show of one table; the lake and the catalog are read when
/// `with_storage` (not at a page's every refresh).
pub(crate) async fn table_detail(
    console: &Console,
    name: &str,
    with_storage: bool,
) -> Result<TableDetail, ApiError> {
    let store = console.store.as_ref();
    let table = views::table(store, name).await?;
    let runs = store.runs(Some(table.table_id), 50).await?;
    // Whenever it was: the newest 50 runs may all have failed.
    let last_success = views::last_success(store, table.table_id).await?;
    let history = store.table_history(table.table_id).await?;
    let settings = serde_json::to_value(&table).unwrap_or_default();
    // The lake may be out of reach (credentials, network): the page still shows the rest.
    let (storage, storage_error) = match with_storage {
        false => (None, None),
        true => match console.actions.storage(&table.spec).await {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let last = table
        .last_run_id
        .and_then(|id| runs.iter().find(|r| r.run_id == id).cloned());
    Ok(TableDetail {
        table: views::table_view(table, last, last_success, Utc::now()),
        settings,
        runs: runs.into_iter().map(RunView::from).collect(),
        history: history
            .into_iter()
            .map(|h| HistoryView {
                changed_at: h.changed_at,
                changed_by: h.changed_by,
                operation: h.operation,
                old_values: h.old_values,
                new_values: h.new_values,
            })
            .collect(),
        storage,
        storage_error,
    })
}

#[utoipa::path(get, path = "/api/v1/tables/{name}/runs", params(("name" = String, Path), Limit),
    responses((status = 200, body = [RunView]), (status = 404, body = ErrorBody)))]
async fn table_runs(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Path(name): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let table = views::table(console.store.as_ref(), &name).await?;
    let runs = console
        .store
        .runs(Some(table.table_id), limit.get())
        .await?;
    Ok(Json(runs.into_iter().map(RunView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/runs", params(Limit), responses((status = 200, body = [RunView])))]
async fn list_runs(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let runs = console.store.runs(None, limit.get()).await?;
    Ok(Json(runs.into_iter().map(RunView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<RunView>, ApiError> {
    let run = console
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    Ok(Json(run.into()))
}

#[utoipa::path(get, path = "/api/v1/connections", responses((status = 200, body = [ConnectionView])))]
async fn list_connections(
    State(console): State<Arc<Console>>,
    _caller: Caller,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let connections = console.store.connections().await?;
    Ok(Json(
        connections.into_iter().map(ConnectionView::from).collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/tables/{name}/load", params(("name" = String, Path)),
    request_body(content = LoadRequest, description = "optional"),
    responses((status = 202, body = Accepted), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn load_table(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Option<Json<LoadRequest>>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.check_api_post(&headers)?;
    let full_refresh = body.map(|Json(b)| b.full_refresh).unwrap_or_default();
    let run_id = start_load(&console, &caller, &name, full_refresh).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            run_id,
            table: name,
            full_refresh,
            status: "started".into(),
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", params(("id" = i64, Path)),
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_run(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.check_api_post(&headers)?;
    let run = console
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    if run.status != RunStatus::Failed && run.status != RunStatus::Cancelled {
        return Err(ApiError::conflict(format!(
            "run {id} is {}: only a failed or cancelled run is retried",
            run.status
        )));
    }
    let run_id = start_load(&console, &caller, &run.destination, false).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            run_id,
            table: run.destination,
            full_refresh: false,
            status: "started".into(),
        }),
    ))
}

/// Starts a load of `name` for `caller` (an operator), unless one is queued or running; the
/// run's id.
pub(crate) async fn start_load(
    console: &Console,
    caller: &Caller,
    name: &str,
    full_refresh: bool,
) -> Result<i64, ApiError> {
    caller.require(Role::Operator)?;
    let table = views::table(console.store.as_ref(), name).await?;
    if matches!(
        table.status,
        Some(RunStatus::Queued | RunStatus::InProgress)
    ) {
        return Err(ApiError::conflict(format!(
            "{name} is {} now: wait for that run to end",
            table.status.map(|s| s.as_str()).unwrap_or_default()
        )));
    }
    tracing::info!(table = %name, by = %caller.name, full_refresh, "load asked for in the console");
    // Queued before the answer: a run another worker started meanwhile is a 409 here.
    Ok(console.actions.start_load(&table, full_refresh).await?)
}

#[utoipa::path(post, path = "/api/v1/tables/{name}/pause", params(("name" = String, Path)),
    responses((status = 200, body = TableView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pause_table(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<TableView>, ApiError> {
    caller.check_api_post(&headers)?;
    set_active(&console, &caller, &name, false).await.map(Json)
}

#[utoipa::path(post, path = "/api/v1/tables/{name}/resume", params(("name" = String, Path)),
    responses((status = 200, body = TableView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn resume_table(
    State(console): State<Arc<Console>>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<TableView>, ApiError> {
    caller.check_api_post(&headers)?;
    set_active(&console, &caller, &name, true).await.map(Json)
}

/// Pauses or resumes `name` for `caller` (an operator); the table as it is then.
pub(crate) async fn set_active(
    console: &Console,
    caller: &Caller,
    name: &str,
    active: bool,
) -> Result<TableView, ApiError> {
    caller.require(Role::Operator)?;
    let store = console.store.as_ref();
    let table: TableControl = views::table(store, name).await?;
    store
        .set_active(table.table_id, active, Utc::now(), &caller.audit_name())
        .await?;
    views::one(store, name).await
}

/// An alert rule, its webhook shown by its host or its reference, never its URL's path.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertView {
    name: String,
    /// `failure`, `recovery`, `long_run` or `freshness`.
    event: String,
    threshold_minutes: Option<i64>,
    tables: Option<String>,
    format: String,
    webhook: String,
    active: bool,
}

#[utoipa::path(get, path = "/api/v1/alerts", responses((status = 200, body = [AlertView])))]
async fn list_alerts(
    State(console): State<Arc<Console>>,
    _caller: Caller,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let rules = console.store.alert_rules().await?;
    Ok(Json(
        rules
            .into_iter()
            .map(|r| AlertView {
                webhook: r.shown_url(),
                name: r.name,
                event: r.event.as_str().into(),
                threshold_minutes: r.threshold_minutes,
                tables: r.tables,
                format: r.format.as_str().into(),
                active: r.is_active,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/alerts/deliveries", params(Limit),
    responses((status = 200, body = [Object])))]
async fn list_deliveries(
    State(console): State<Arc<Console>>,
    _caller: Caller,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<dataloader_core::alert::Delivery>>, ApiError> {
    Ok(Json(console.store.deliveries(limit.get()).await?))
}
