//! The API's changes: a table defined and edited, a connection added and tested, a file planned
//! and applied, a failed run retried; each refused to a role too low, each named in the audit
//! trail.

use super::*;

async fn edits(s: Server) {
    let table = r#"{"connection": "erp", "source": "dbo.payments", "destination": "main.sales.payments",
        "strategy": "incremental", "primary_keys": ["id"], "incremental_column": "paid_at",
        "schedule": "0 3 * * *", "tags": ["finance"]}"#;
    for token in ["tok-viewer", "tok-operator"] {
        let (status, body) = s.post("/api/v1/tables", Some(token), Some(table)).await;
        assert_eq!(status, 403, "{token}: {body}");
    }
    let bad = table.replace("0 3 * * *", "0 0 30 2 *");
    let (status, body) = s
        .post("/api/v1/tables", Some("tok-admin"), Some(&bad))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("schedule:"),
        "{body}"
    );
    let (status, body) = s
        .post("/api/v1/tables", Some("tok-admin"), Some(table))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "main.sales.payments");
    assert_eq!(body["strategy"], "incremental");
    let (status, body) = s
        .post("/api/v1/tables", Some("tok-admin"), Some(table))
        .await;
    assert_eq!(status, 400, "a second definition: {body}");

    // Only the schedule: the rest stays as it is.
    let edited = r#"{"connection": "erp", "source": "dbo.payments", "destination": "main.sales.payments", "schedule": "15 4 * * *"}"#;
    let response = s
        .http
        .put(format!("{}/api/v1/tables/main.sales.payments", s.url))
        .header(AUTHORIZATION, "Bearer tok-admin")
        .header(CONTENT_TYPE, "application/json")
        .body(edited)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let dest = TargetTable::parse("main.sales.payments").unwrap();
    let made = s.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(made.spec.schedule.as_deref(), Some("15 4 * * *"));
    assert_eq!(made.spec.strategy.as_str(), "incremental");
    assert_eq!(made.spec.incremental_column.as_deref(), Some("paid_at"));
    assert_eq!(made.spec.tags, vec!["finance"]);
    let history = s.store.table_history(made.table_id).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history
            .iter()
            .all(|h| h.changed_by.as_deref() == Some("token:admin")),
        "{history:?}"
    );

    // A connection: a plain password is refused and not echoed; a reference is kept.
    let connection = r#"{"name": "crm", "db_type": "postgresql", "host": "crm.internal",
        "database": "crm", "user": "loader", "password_reference": "PASSWORD"}"#;
    let (status, body) = s
        .post(
            "/api/v1/connections",
            Some("tok-admin"),
            Some(&connection.replace("PASSWORD", "hunter2")),
        )
        .await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("hunter2"), "{body}");
    let (status, body) = s
        .post(
            "/api/v1/connections",
            Some("tok-admin"),
            Some(&connection.replace("PASSWORD", "env:CRM_PASSWORD")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["password_reference"], "env:CRM_PASSWORD");
    let put = |path: &str, token: &str, body: String| {
        s.http
            .put(format!("{}{path}", s.url))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let moved = connection
        .replace("PASSWORD", "env:CRM_PASSWORD")
        .replace("crm.internal", "crm2.internal");
    let response = put("/api/v1/connections/crm", "tok-operator", moved.clone())
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let response = put("/api/v1/connections/crm", "tok-admin", moved.clone())
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let crm = s.store.connection("crm").await.unwrap().unwrap();
    assert_eq!(crm.host.as_deref(), Some("crm2.internal"));
    // Its changes, by the token's name and field, never a value.
    let changes = s
        .json("/api/v1/connections/crm/history", "tok-viewer")
        .await;
    assert_eq!(changes[0]["operation"], "UPDATE", "{changes}");
    assert_eq!(changes[0]["changed_by"], "token:admin");
    assert_eq!(changes[0]["fields"], serde_json::json!(["host"]));
    assert_eq!(changes[1]["operation"], "INSERT");
    assert!(!changes.to_string().contains("crm2.internal"), "{changes}");
    let response = put("/api/v1/connections/nothing", "tok-admin", moved)
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        400,
        "renaming through the URL is refused"
    );
    let (status, body) = s
        .post("/api/v1/connections/crm/test", Some("tok-viewer"), None)
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = s
        .post("/api/v1/connections/crm/test", Some("tok-operator"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["said"]
            .as_str()
            .unwrap()
            .contains("stand-in server for crm"),
        "{body}"
    );
    let (status, _) = s
        .post(
            "/api/v1/connections/nothing/test",
            Some("tok-operator"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // A file: planned, then applied, by an admin only.
    let file = r#"{"yaml": "tables: []\n"}"#;
    let (status, _) = s
        .post("/api/v1/plan", Some("tok-operator"), Some(file))
        .await;
    assert_eq!(status, 403);
    let (status, body) = s.post("/api/v1/plan", Some("tok-admin"), Some(file)).await;
    assert_eq!(
        (status, &body["applied"]),
        (200, &Value::Bool(false)),
        "{body}"
    );
    let (status, body) = s.post("/api/v1/apply", Some("tok-admin"), Some(file)).await;
    assert_eq!(
        (status, &body["applied"]),
        (200, &Value::Bool(true)),
        "{body}"
    );

    // The failed run is retried; the succeeded one is not.
    let runs = s.store.runs(None, 10).await.unwrap();
    let failed = runs.iter().find(|r| r.status == RunStatus::Failed).unwrap();
    let succeeded = runs
        .iter()
        .find(|r| r.status == RunStatus::Succeeded)
        .unwrap();
    let (status, body) = s
        .post(
            &format!("/api/v1/runs/{}/retry", succeeded.run_id),
            Some("tok-operator"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = s
        .post(
            &format!("/api/v1/runs/{}/retry", failed.run_id),
            Some("tok-operator"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.loads(1).await, vec![(BAD.to_string(), false)]);
}

#[tokio::test]
async fn the_api_defines_edits_tests_applies_and_retries_on_sqlite() {
    edits(sqlite(false).await).await;
}

#[tokio::test]
async fn the_api_defines_edits_tests_applies_and_retries_on_postgres() {
    edits(postgres(false).await).await;
}
