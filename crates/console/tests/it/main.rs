//! The console over HTTP, on both control planes (SQLite in a temp folder, PostgreSQL on the
//! real server): every route, every role, the CSRF check, `/metrics` read back by a Prometheus
//! text parser, and the health checks. Loads asked for go to a recording loader: the load
//! itself is the engine's, tested end to end by the CLI's console test.

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use dataloader_console::{hash_token, Actions, Console};
use dataloader_core::access::Role;
use dataloader_core::alert::{AlertEvent, AlertFormat, AlertRule, NewDelivery};
use dataloader_core::{
    ConnectionConfig, ErrorKind, NewRun, RetryVerdict, RowCounts, RunOwner, RunStatus, RunUpdate,
    SourceTable, StateUpdate, Store, TableControl, TableSpec, TableStorage, TargetTable, Trigger,
};
use dataloader_testkit::PgTestDb;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION};
use serde_json::Value;

const FORM: &str = "application/x-www-form-urlencoded";

/// A form post's body, as a browser encodes it.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Records the loads asked for; the rest stands in for the CLI's sources and `apply`, which
/// the CLI's console tests run for real.
#[derive(Default)]
struct RecordingActions(Mutex<Vec<(String, bool)>>);

#[async_trait::async_trait]
impl Actions for RecordingActions {
    async fn start_load(
        &self,
        table: &TableControl,
        full_refresh: bool,
    ) -> dataloader_core::Result<i64> {
        let mut loads = self.0.lock().unwrap();
        loads.push((table.spec.destination.to_string(), full_refresh));
        Ok(1000 + loads.len() as i64)
    }

    fn db_types(&self) -> Vec<String> {
        vec!["postgresql".into(), "sqlite".into()]
    }

    fn validate_connection(
        &self,
        connection: &ConnectionConfig,
    ) -> dataloader_core::Result<ConnectionConfig> {
        connection.validate()?;
        Ok(connection.clone())
    }

    async fn test_connection(&self, c: &ConnectionConfig) -> dataloader_core::Result<String> {
        Ok(format!("stand-in server for {}", c.name))
    }

    async fn storage(&self, t: &TableSpec) -> dataloader_core::Result<TableStorage> {
        Ok(TableStorage {
            delta_version: Some(3),
            files: Some(2),
            bytes: Some(2048),
            catalog: format!("stand-in catalog for {}", t.destination),
        })
    }

    async fn plan(
        &self,
        yaml: &str,
        apply_as: Option<&str>,
    ) -> dataloader_core::Result<Vec<String>> {
        let apply = apply_as.is_some();
        Ok(vec![format!(
            "{} line(s), apply: {apply}",
            yaml.lines().count()
        )])
    }
}

const GOOD: &str = "main.sales.orders";
const BAD: &str = "main.sales.refunds";

struct Server {
    url: String,
    store: Arc<dyn Store>,
    loads: Arc<RecordingActions>,
    http: reqwest::Client,
    _keep: Option<PgTestDb>,
    _dir: tempfile::TempDir,
}

/// A store with two tables: `GOOD` loaded once (42 rows), `BAD` failed with a verdict; and one
/// token of each role, named after it, whose value is `tok-<role>`.
async fn seeded(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store
        .upsert_connection(&ConnectionConfig {
            name: "erp".into(),
            db_type: "postgresql".parse().unwrap(),
            host: Some("erp.internal".into()),
            port: Some(5432),
            database: Some("erp".into()),
            user: Some("loader".into()),
            password: Some("aws-sm://prod/erp#password".into()),
            options: Default::default(),
            max_connections: None,
        })
        .await
        .unwrap();
    let now = Utc::now();
    for (dest, source) in [(GOOD, "dbo.orders"), (BAD, "dbo.refunds")] {
        let mut spec = TableSpec::new(
            "erp",
            SourceTable::parse(source).unwrap(),
            TargetTable::parse(dest).unwrap(),
        );
        spec.schedule = Some("0 2 * * *".into());
        spec.tags = vec!["finance".into()];
        let id = store.insert_table(&spec, now).await.unwrap();
        let run = store
            .create_run(&NewRun {
                table_id: id,
                trigger: Trigger::Schedule,
                queued_at: now - Duration::seconds(30),
                watermark_before: None,
                worker: "w1".into(),
                lease_until: now + Duration::minutes(5),
            })
            .await
            .unwrap();
        assert!(store
            .start_run(run, "w1", now - Duration::seconds(20))
            .await
            .unwrap());
        let update = match dest {
            GOOD => RunUpdate {
                status: RunStatus::Succeeded,
                finished_at: now - Duration::seconds(10),
                rows: RowCounts {
                    read: 42,
                    written: 42,
                    ..Default::default()
                },
                bytes_written: 4096,
                watermark_after: None,
                delta_version: Some(0),
                error_class: None,
                error_text: None,
                next_load_date_time: Some(now + Duration::hours(1)),
                schema_changes: None,
                notes: None,
                state: StateUpdate::default(),
            },
            _ => RunUpdate::ended(
                RunStatus::Failed,
                now - Duration::seconds(8),
                ErrorKind::Connect,
                "cannot reach erp.internal:5432",
                Some(now + Duration::hours(1)),
            ),
        };
        assert!(store
            .finish_run(run, RunOwner::Worker("w1"), &update)
            .await
            .unwrap());
        if dest == BAD {
            store
                .record_verdict(
                    run,
                    &RetryVerdict {
                        category: "transient".into(),
                        recommendation: "retry".into(),
                        explanation: "the server did not answer".into(),
                        retry_at: None,
                    },
                )
                .await
                .unwrap();
        }
    }
    // An alert rule with a Slack webhook (its path is a secret) and one delivery.
    store
        .save_alert_rule(
            &AlertRule {
                name: "oncall".into(),
                event: AlertEvent::Failure,
                threshold_minutes: None,
                tables: None,
                url: "https://hooks.slack.com/services/T0/B0/SECRETPATH".into(),
                format: AlertFormat::Slack,
                is_active: true,
            },
            now,
        )
        .await
        .unwrap();
    store
        .queue_delivery(
            &NewDelivery {
                rule: "oncall".into(),
                event_key: "failure:run:2".into(),
                table_id: None,
                run_id: Some(2),
                payload: r#"{"text":"failed"}"#.into(),
            },
            now,
        )
        .await
        .unwrap();
    for role in Role::ALL {
        let name = role.as_str();
        store
            .create_token(name, role, &hash_token(&format!("tok-{name}")), now)
            .await
            .unwrap();
    }
}

async fn start(
    store: Arc<dyn Store>,
    open: bool,
    keep: Option<PgTestDb>,
    dir: tempfile::TempDir,
) -> Server {
    seeded(store.clone()).await;
    let loads = Arc::new(RecordingActions::default());
    let console = Console::new(store.clone(), loads.clone(), open);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dataloader_console::serve(
        listener,
        console,
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Server {
        url,
        store,
        loads,
        http,
        _keep: keep,
        _dir: dir,
    }
}

async fn sqlite(open: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("control.db").display());
    let store = dataloader_store::open(&url).await.unwrap();
    start(store, open, None, dir).await
}

async fn postgres(open: bool) -> Server {
    let db = PgTestDb::create("console").await;
    let store = dataloader_store::open(&db.url()).await.unwrap();
    start(store, open, Some(db), tempfile::tempdir().unwrap()).await
}

impl Server {
    /// GET `path` as `token` (`None`: no Authorization header): status and body.
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, Some(token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// POST `path` as `token`, with a JSON body or none.
    async fn post(&self, path: &str, token: Option<&str>, json: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(body) = json {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The loads asked for so far, once `n` have arrived (they are spawned).
    async fn loads(&self, n: usize) -> Vec<(String, bool)> {
        for _ in 0..100 {
            let seen = self.loads.0.lock().unwrap().clone();
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{n} load(s) were not asked for")
    }
}

mod api_edits;
mod forms;
mod pages;
mod routes;
