//! The API's routes by role, `/metrics` and the health checks.

use std::collections::HashMap;

use super::*;

async fn every_route_by_role(s: Server) {
    // No token, a wrong one: 401 with a JSON error that says what to do.
    for token in [None, Some("not-a-token")] {
        let (status, body) = s.get("/api/v1/tables", token).await;
        assert_eq!(status, 401, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "unauthorized", "{body}");
    }
    let (status, body) = s.get("/api/v1/tables", None).await;
    assert!(body.contains("dataloader token create"), "{status} {body}");

    // A viewer reads everything.
    let tables = s.json("/api/v1/tables", "tok-viewer").await;
    let by_name: HashMap<&str, &Value> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    assert_eq!(by_name.len(), 2, "{tables}");
    assert_eq!(by_name[GOOD]["status"], "Succeeded");
    assert_eq!(by_name[GOOD]["last_run"]["rows_written"], 42);
    assert!(by_name[GOOD]["lag_seconds"].as_i64().unwrap() >= 10);
    assert_eq!(by_name[BAD]["status"], "Failed");
    assert_eq!(by_name[BAD]["last_run"]["retry_recommendation"], "retry");
    assert!(by_name[BAD]["last_success"].is_null());

    let failed = s.json("/api/v1/tables?status=Failed", "tok-viewer").await;
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["name"], BAD);
    let sorted = s.json("/api/v1/tables?sort=-name", "tok-viewer").await;
    assert_eq!(sorted[0]["name"], BAD, "{sorted}");
    let (status, body) = s.get("/api/v1/tables?sort=size", Some("tok-viewer")).await;
    assert!(
        status == 400 && body.contains("not one of name"),
        "{status} {body}"
    );

    let detail = s
        .json(&format!("/api/v1/tables/{GOOD}"), "tok-viewer")
        .await;
    assert_eq!(detail["runs"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["settings"]["schedule"], "0 2 * * *");
    assert_eq!(detail["storage"]["files"], 2, "{detail}");
    assert_eq!(
        detail["storage"]["catalog"],
        format!("stand-in catalog for {GOOD}")
    );
    let run_id = detail["runs"][0]["run_id"].as_i64().unwrap();
    let run = s
        .json(&format!("/api/v1/runs/{run_id}"), "tok-viewer")
        .await;
    assert_eq!(run["rows_written"], 42);
    assert_eq!(run["bytes_written"], 4096);
    assert_eq!(run["duration_seconds"], 10.0);
    let runs = s.json("/api/v1/runs?limit=1", "tok-viewer").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let table_runs = s
        .json(&format!("/api/v1/tables/{BAD}/runs"), "tok-viewer")
        .await;
    assert_eq!(table_runs[0]["error_class"], "Connect", "{table_runs}");
    let (status, body) = s
        .get("/api/v1/tables/main.sales.nothing", Some("tok-viewer"))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
    let (status, _) = s.get("/api/v1/runs/999999", Some("tok-viewer")).await;
    assert_eq!(status, 404);
    // Errors the router makes are the API's JSON too.
    for (path, status, code) in [
        ("/api/v1/runs/abc", 400, "invalid"),
        ("/api/v1/nothing", 404, "not_found"),
        ("/api/v1/runs?limit=x", 400, "invalid"),
    ] {
        let (got, body) = s.get(path, Some("tok-viewer")).await;
        let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert_eq!(
            (got, error["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }

    // Alerts: the webhook by its host, never its secret path; the deliveries.
    let alerts = s.json("/api/v1/alerts", "tok-viewer").await;
    assert_eq!(
        alerts[0]["webhook"], "https://hooks.slack.com/…",
        "{alerts}"
    );
    assert!(!alerts.to_string().contains("SECRETPATH"), "{alerts}");
    let deliveries = s.json("/api/v1/alerts/deliveries", "tok-viewer").await;
    assert_eq!(deliveries[0]["event_key"], "failure:run:2", "{deliveries}");
    assert_eq!(deliveries[0]["status"], "pending");

    // Connections: the password's reference, never a value.
    let connections = s.json("/api/v1/connections", "tok-viewer").await;
    assert_eq!(
        connections[0]["password_reference"],
        "aws-sm://prod/erp#password"
    );
    assert_eq!(connections[0]["host"], "erp.internal");

    // A viewer cannot act; an operator can.
    let load = format!("/api/v1/tables/{GOOD}/load");
    let (status, body) = s.post(&load, Some("tok-viewer"), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(s.loads.0.lock().unwrap().is_empty());
    let (status, body) = s
        .post(
            &load,
            Some("tok-operator"),
            Some(r#"{"full_refresh": true}"#),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["run_id"], 1001, "the run the actions queued: {body}");
    assert_eq!(s.loads(1).await, vec![(GOOD.to_string(), true)]);

    let (status, body) = s
        .post(
            &format!("/api/v1/tables/{GOOD}/pause"),
            Some("tok-operator"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    let table = s
        .store
        .table_by_destination(&TargetTable::parse(GOOD).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!table.spec.is_active);
    let history = s.store.table_history(table.table_id).await.unwrap();
    assert_eq!(
        history[0].changed_by.as_deref(),
        Some("token:operator"),
        "{history:?}"
    );
    let (status, body) = s
        .post(
            &format!("/api/v1/tables/{GOOD}/resume"),
            Some("tok-admin"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);

    // A revoked token is refused from then on.
    assert!(s.store.revoke_token("operator", Utc::now()).await.unwrap());
    let (status, body) = s.post(&load, Some("tok-operator"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));

    // The OpenAPI document lists the routes and the bearer scheme.
    let doc = s.json("/api/v1/openapi.json", "tok-viewer").await;
    for path in [
        "/api/v1/tables",
        "/api/v1/tables/{name}",
        "/api/v1/tables/{name}/load",
        "/api/v1/runs/{id}",
        "/api/v1/connections",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_route_by_role_on_sqlite() {
    every_route_by_role(sqlite(false).await).await;
}

#[tokio::test]
async fn every_route_by_role_on_postgres() {
    every_route_by_role(postgres(false).await).await;
}

/// On loopback without a token: reads and JSON posts are let in, a form-encoded post (what
/// another site's page could send) is not.
#[tokio::test]
async fn an_open_console_refuses_a_post_another_site_could_forge() {
    let s = sqlite(true).await;
    let (status, _) = s.get("/api/v1/tables", None).await;
    assert_eq!(status, 200);
    let load = format!("{}/api/v1/tables/{GOOD}/load", s.url);
    // What a page on another site can send without CORS: a form's types (refused as not
    // JSON), or a body without a type (refused as not from a JSON client).
    for (content_type, status) in [(Some(FORM), 415), (Some("text/plain"), 415), (None, 403)] {
        let mut forged = s.http.post(&load);
        if let Some(t) = content_type {
            forged = forged.header(CONTENT_TYPE, t).body("full_refresh=true");
        }
        let forged = forged.send().await.unwrap();
        assert_eq!(forged.status().as_u16(), status, "{content_type:?}");
    }
    assert!(s.loads.0.lock().unwrap().is_empty());
    // A browser's post from another origin, or a request for another host name (a rebound
    // DNS name), is refused whatever it carries.
    let cross = s
        .http
        .post(&load)
        .header(CONTENT_TYPE, "application/json")
        .header("origin", "http://127.0.0.1:1")
        .header("sec-fetch-site", "same-site")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    let rebound = s
        .http
        .get(format!("{}/api/v1/tables", s.url))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    let said = rebound.text().await.unwrap();
    assert!(said.contains("on this machine only"), "{said}");
    assert!(s.loads.0.lock().unwrap().is_empty());
    let (status, body) = s
        .post(&format!("/api/v1/tables/{GOOD}/load"), None, Some("{}"))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.loads(1).await, vec![(GOOD.to_string(), false)]);
    let history = s.store.table_history(1).await.unwrap();
    assert!(history
        .iter()
        .all(|h| h.changed_by.as_deref() != Some("token:admin")));
}

async fn metrics_and_health(s: Server) {
    let (status, _) = s.get("/metrics", None).await;
    assert_eq!(status, 401, "/metrics needs a token off loopback");
    let (status, text) = s.get("/metrics", Some("tok-viewer")).await;
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} not in:\n{text}"))
    };
    assert_eq!(
        value(
            "dataloader_loads_total",
            &[
                ("table", GOOD),
                ("strategy", "full"),
                ("outcome", "Succeeded")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            "dataloader_loads_total",
            &[("table", BAD), ("outcome", "Failed")]
        ),
        1.0
    );
    assert_eq!(
        value("dataloader_rows_written_total", &[("table", GOOD)]),
        42.0
    );
    assert_eq!(
        value("dataloader_bytes_written_total", &[("table", GOOD)]),
        4096.0
    );
    assert_eq!(
        value(
            "dataloader_retry_verdicts_total",
            &[("recommendation", "retry")]
        ),
        1.0
    );
    assert_eq!(value("dataloader_runs", &[("status", "In Progress")]), 0.0);
    assert!(
        !text.contains("outcome=\"Queued\"") && !text.contains("outcome=\"In Progress\""),
        "an open run is not an outcome:\n{text}"
    );
    let lag = value("dataloader_freshness_lag_seconds", &[("table", GOOD)]);
    assert!((10.0..120.0).contains(&lag), "{lag}");
    // Two finished runs of 10 and 12 seconds: both in the 15 s bucket, none in the 5 s one.
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "dataloader_load_duration_seconds")
        .unwrap_or_else(|| panic!("no histogram in:\n{text}"));
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
        panic!("{:?}", histogram.value)
    };
    let at = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
    assert_eq!(
        (at(5.0), at(15.0), at(f64::INFINITY)),
        (0.0, 2.0, 2.0),
        "{text}"
    );
    assert!(
        text.contains("dataloader_load_duration_seconds_sum{strategy=\"full\"} 22"),
        "{text}"
    );

    let (status, body) = s.get("/healthz", None).await;
    assert_eq!((status, body.contains("ok")), (200, true));
    let (status, body) = s.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn metrics_count_the_runs_and_the_health_checks_answer_on_sqlite() {
    metrics_and_health(sqlite(false).await).await;
}

#[tokio::test]
async fn metrics_count_the_runs_and_the_health_checks_answer_on_postgres() {
    metrics_and_health(postgres(false).await).await;
}

#[tokio::test]
async fn readyz_says_when_the_control_tables_are_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let store = dataloader_store::open(&url).await.unwrap();
    let console = Console::new(store, Arc::new(RecordingActions::default()), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    tokio::spawn(dataloader_console::serve(
        listener,
        console,
        std::future::pending(),
    ));
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(body.contains("run dataloader init"), "{body}");
}
