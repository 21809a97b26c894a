//! `dataloader serve`: the web console, the REST API under `/api/v1`, Prometheus metrics and
//! the health checks, on one axum router over the control database.
//!
//! Pages are rendered on the server (maud) and refresh themselves with htmx, vendored in
//! `assets/` and served from the binary: no front-end build, no CDN. Every page reads what the
//! API reads ([`views`]), so the two never disagree.
//!
//! Modules: `access` (tokens, roles, CSRF), `api` (JSON routes and their OpenAPI document),
//! `edits` (the changes forms and API make, and the API's routes for them), `pages` (HTML),
//! `metrics` (`/metrics`), `views` (what both show), `error` (JSON errors).

mod access;
mod api;
mod edits;
mod error;
mod guard;
mod metrics;
mod pages;
mod views;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use dataloader_core::{ConnectionConfig, Store, TableControl, TableSpec, TableStorage};

pub use access::{hash_token, new_token};
pub use api::openapi_json;

/// What the console asks of the rest of DataLoader, which this crate does not depend on: the
/// binary gives one built on the load engine, the sources' registry and `apply`.
#[async_trait]
pub trait Actions: Send + Sync {
    /// Queues a run of `table` and starts it in the background; the run's id. A table with a
    /// run queued or running is a conflict, said at once.
    async fn start_load(
        &self,
        table: &TableControl,
        full_refresh: bool,
    ) -> dataloader_core::Result<i64>;
    /// Stops the loads it started (their runs end cancelled, nothing half-committed) and
    /// waits for them: called when the server stops.
    async fn shutdown(&self) {}
    /// The connection types `connection add` takes.
    fn db_types(&self) -> Vec<String>;
    /// Checks a connection as `connection add` does (its connector's type and options), and
    /// gives it with its type's canonical name.
    fn validate_connection(
        &self,
        connection: &ConnectionConfig,
    ) -> dataloader_core::Result<ConnectionConfig>;
    /// Connects and says the server's version, as `connection test` does.
    async fn test_connection(
        &self,
        connection: &ConnectionConfig,
    ) -> dataloader_core::Result<String>;
    /// What the lake and the catalog hold of the table (its Delta version and files, its
    /// registration).
    async fn storage(&self, table: &TableSpec) -> dataloader_core::Result<TableStorage>;
    /// The changes an `apply` file makes, one line each and a summary last; carried out when
    /// `apply_as` names who applies it (the audit rows name them).
    async fn plan(
        &self,
        yaml: &str,
        apply_as: Option<&str>,
    ) -> dataloader_core::Result<Vec<String>>;
}

/// What every route works with.
pub struct Console {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) actions: Arc<dyn Actions>,
    /// Requests without a token act as an admin: only for a listener on loopback.
    pub(crate) open: bool,
}

impl Console {
    /// `open` lets requests without a token in as an admin; give it only for a loopback
    /// listener (`dataloader serve` decides from the address).
    pub fn new(store: Arc<dyn Store>, actions: Arc<dyn Actions>, open: bool) -> Arc<Console> {
        Arc::new(Console {
            store,
            actions,
            open,
        })
    }
}

/// Every route of the console, the API, `/metrics` and the health checks.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/assets/htmx.min.js", get(htmx))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            guard::guard,
        ))
        .with_state(console)
}

/// Serves `router(console)` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Arc<Console>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(console.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    console.actions.shutdown().await;
    Ok(())
}

/// The process answers.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// The control database answers and its tables are at this binary's version.
async fn readyz(
    axum::extract::State(console): axum::extract::State<Arc<Console>>,
) -> impl IntoResponse {
    match console.store.pending_migrations().await {
        Ok(0) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Ok(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "not ready",
                "reason": format!("{n} migration(s) of the control tables not applied: run dataloader init"),
            })),
        ),
        Err(e) => {
            // The store's words may name the database's host: the log has them, the probe not.
            tracing::warn!(error = %e, "readyz: the control database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({"status": "not ready", "reason": "the control database does not answer"}),
                ),
            )
        }
    }
}

const HTMX: &str = include_str!("../assets/htmx.min.js");

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX,
    )
}
