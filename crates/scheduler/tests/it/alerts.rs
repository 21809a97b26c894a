//! The alert monitor against a local HTTP receiver (testkit's loopback server, standing for a
//! webhook), on both control planes: one delivery per rule and event, however many passes
//! find it; the JSON and Slack bodies; retries with backoff until a receiver that keeps
//! refusing is given up, every attempt recorded without the webhook's secret path.

use std::sync::Arc;

use chrono::{Duration, Utc};
use dataloader_core::alert::{AlertEvent, AlertFormat, AlertRule, DeliveryStatus};
use dataloader_core::{
    ConnectionConfig, ErrorKind, NewRun, RowCounts, RunOwner, RunStatus, RunUpdate, SourceTable,
    StateUpdate, Store, TableSpec, TargetTable, Trigger,
};
use dataloader_scheduler::alerts::{pass, MAX_ATTEMPTS};
use dataloader_testkit::http_mock::HttpMock;
use dataloader_testkit::PgTestDb;

/// A table with runs ending as `outcomes` say, the last `ended` ago; `None` leaves it running.
async fn table_with_runs(
    store: &dyn Store,
    name: &str,
    outcomes: &[Option<RunStatus>],
    ended: Duration,
) -> i64 {
    let now = Utc::now();
    let spec = TableSpec::new(
        "erp",
        SourceTable::parse("dbo.t").unwrap(),
        TargetTable::parse(name).unwrap(),
    );
    let id = store.insert_table(&spec, now).await.unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        let at = now - ended - Duration::minutes((outcomes.len() - 1 - i) as i64 * 10);
        let run = store
            .create_run(&NewRun {
                table_id: id,
                trigger: Trigger::Schedule,
                queued_at: at - Duration::minutes(1),
                watermark_before: None,
                worker: "w".into(),
                lease_until: now + Duration::hours(1),
            })
            .await
            .unwrap();
        let started = match outcome {
            Some(_) => at - Duration::seconds(30),
            None => now - ended,
        };
        assert!(store.start_run(run, "w", started).await.unwrap());
        let update = match outcome {
            None => continue,
            Some(RunStatus::Succeeded) => RunUpdate {
                status: RunStatus::Succeeded,
                finished_at: at,
                rows: RowCounts {
                    written: 7,
                    ..Default::default()
                },
                bytes_written: 1,
                watermark_after: None,
                delta_version: Some(i as i64),
                error_class: None,
                error_text: None,
                next_load_date_time: None,
                schema_changes: None,
                notes: None,
                state: StateUpdate::default(),
            },
            Some(status) => RunUpdate::ended(
                *status,
                at,
                ErrorKind::Connect,
                "cannot reach erp.internal:1433\nsecond line",
                None,
            ),
        };
        assert!(store
            .finish_run(run, RunOwner::Worker("w"), &update)
            .await
            .unwrap());
    }
    id
}

fn rule(
    name: &str,
    event: AlertEvent,
    minutes: Option<i64>,
    url: String,
    format: AlertFormat,
) -> AlertRule {
    AlertRule {
        name: name.into(),
        event,
        threshold_minutes: minutes,
        tables: Some("main.ops.*".into()),
        url,
        format,
        is_active: true,
    }
}

async fn alerts(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store
        .upsert_connection(&ConnectionConfig {
            name: "erp".into(),
            db_type: "postgresql".parse().unwrap(),
            host: Some("erp.internal".into()),
            port: None,
            database: Some("erp".into()),
            user: Some("loader".into()),
            password: Some("env:ERP".into()),
            options: Default::default(),
            max_connections: None,
        })
        .await
        .unwrap();
    let ok = HttpMock::start(|_| (200, "ok".into())).await;
    let refusing = HttpMock::start(|_| (500, "{}".into())).await;
    let secret_path = "/services/T000/B000/XXXXSECRET";
    let now = Utc::now();
    let failed = table_with_runs(
        store.as_ref(),
        "main.ops.failed",
        &[Some(RunStatus::Failed)],
        Duration::seconds(5),
    )
    .await;
    table_with_runs(
        store.as_ref(),
        "main.ops.back",
        &[Some(RunStatus::Failed), Some(RunStatus::Succeeded)],
        Duration::seconds(5),
    )
    .await;
    table_with_runs(
        store.as_ref(),
        "main.ops.slow",
        &[None],
        Duration::minutes(90),
    )
    .await;
    table_with_runs(
        store.as_ref(),
        "main.ops.stale",
        &[Some(RunStatus::Succeeded)],
        Duration::hours(3),
    )
    .await;
    // Outside the rules' tables: never alerted.
    table_with_runs(
        store.as_ref(),
        "main.other.failed",
        &[Some(RunStatus::Failed)],
        Duration::seconds(5),
    )
    .await;
    for r in [
        rule(
            "failures",
            AlertEvent::Failure,
            None,
            format!("{}/hook", ok.url()),
            AlertFormat::Json,
        ),
        rule(
            "recoveries",
            AlertEvent::Recovery,
            None,
            format!("{}{secret_path}", ok.url()),
            AlertFormat::Slack,
        ),
        rule(
            "slow",
            AlertEvent::LongRun,
            Some(60),
            format!("{}/hook", ok.url()),
            AlertFormat::Json,
        ),
        rule(
            "stale",
            AlertEvent::Freshness,
            Some(120),
            format!("{}/hook", ok.url()),
            AlertFormat::Json,
        ),
        rule(
            "refused",
            AlertEvent::Failure,
            None,
            format!("{}{secret_path}", refusing.url()),
            AlertFormat::Slack,
        ),
    ] {
        store.save_alert_rule(&r, now).await.unwrap();
    }

    let http = reqwest::Client::new();
    let since = now - Duration::minutes(10);
    let first = pass(store.as_ref(), &http, now, since).await.unwrap();
    assert_eq!(
        (first.queued, first.delivered, first.retried),
        (5, 4, 1),
        "{first:?}"
    );
    let bodies: Vec<serde_json::Value> = ok
        .requests()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let of = |event: &str| {
        bodies
            .iter()
            .find(|b| b["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {bodies:?}"))
    };
    assert_eq!(of("failure")["table"], "main.ops.failed");
    assert_eq!(of("failure")["error_class"], "Connect");
    assert!(of("failure")["message"]
        .as_str()
        .unwrap()
        .ends_with("cannot reach erp.internal:1433"));
    assert_eq!(of("long_run")["table"], "main.ops.slow");
    assert_eq!(of("long_run")["status"], "In Progress");
    assert!(of("long_run")["run_id"].as_i64().is_some(), "{bodies:?}");
    assert_eq!(of("freshness")["table"], "main.ops.stale");
    let slack = bodies
        .iter()
        .find(|b| b.get("text").is_some())
        .expect("a Slack body");
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("main.ops.back recovered"),
        "{slack}"
    );
    assert_eq!(bodies.len(), 4, "{bodies:#?}");

    // Passes that find the same events send nothing again.
    for _ in 0..2 {
        let again = pass(store.as_ref(), &http, now, since).await.unwrap();
        assert_eq!((again.queued, again.delivered), (0, 0), "{again:?}");
    }
    assert_eq!(ok.requests().len(), 4);

    // The refusing receiver: retried with backoff, then given up after MAX_ATTEMPTS.
    let mut at = now;
    for _ in 1..MAX_ATTEMPTS {
        at += Duration::hours(1);
        pass(store.as_ref(), &http, at, since).await.unwrap();
    }
    assert_eq!(refusing.requests().len() as i64, MAX_ATTEMPTS);
    let deliveries = store.deliveries(20).await.unwrap();
    let refused = deliveries.iter().find(|d| d.rule == "refused").unwrap();
    assert_eq!(
        (refused.status, refused.attempts),
        (DeliveryStatus::Failed, MAX_ATTEMPTS)
    );
    let error = refused.last_error.as_deref().unwrap();
    assert!(
        error.contains("HTTP 500") && !error.contains("SECRET"),
        "{error}"
    );
    assert_eq!(
        refused.event_key,
        format!(
            "failure:run:{}",
            store
                .table(failed)
                .await
                .unwrap()
                .unwrap()
                .last_run_id
                .unwrap()
        )
    );
    let delivered = deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Delivered)
        .count();
    // Four hours on, main.ops.back (last success five seconds before the start) went stale
    // too: one more alert, once.
    assert_eq!(delivered, 5);
    let last: serde_json::Value =
        serde_json::from_str(&ok.requests().last().unwrap().body).unwrap();
    assert_eq!(
        (&last["event"], &last["table"]),
        (&"freshness".into(), &"main.ops.back".into())
    );
    assert_eq!(ok.requests().len(), 5);
    assert!(deliveries.iter().all(|d| !d.event_key.contains("other")));
}

#[tokio::test]
async fn alerts_are_delivered_once_and_retried_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = dataloader_store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await
        .unwrap();
    alerts(store).await;
}

#[tokio::test]
async fn alerts_are_delivered_once_and_retried_on_postgres() {
    let db = PgTestDb::create("sched_alerts").await;
    let store = dataloader_store::open(&db.url()).await.unwrap();
    alerts(store).await;
}
