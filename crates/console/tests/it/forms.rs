//! The forms: a table defined and edited (with its errors said next to the field), a
//! connection added and tested, a file planned; each refused to a role too low, and each
//! change in the audit trail under the token's name.

use super::*;

/// The admin's cookies, with a CSRF token of the page's making.
async fn admin_cookies(s: &Server) -> (String, String) {
    let response = s
        .http
        .get(format!("{}/tables/new", s.url))
        .header(COOKIE, "dl_token=tok-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let set = response.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap();
    let csrf = set
        .strip_prefix("dl_csrf=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    (format!("dl_token=tok-admin; dl_csrf={csrf}"), csrf)
}

async fn post_form(
    s: &Server,
    path: &str,
    cookies: &str,
    pairs: &[(&str, &str)],
) -> (u16, String, String) {
    let response = s
        .http
        .post(format!("{}{path}", s.url))
        .header(COOKIE, cookies)
        .header(CONTENT_TYPE, FORM)
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

async fn forms(s: Server) {
    let (cookies, csrf) = admin_cookies(&s).await;
    let table = |schedule: &'static str| {
        vec![
            ("connection", "erp"),
            ("source", "dbo.payments"),
            ("destination", "main.sales.payments"),
            ("strategy", "incremental"),
            ("primary_keys", "id"),
            ("incremental_column", "paid_at"),
            ("schedule", schedule),
            ("timezone", "Europe/Amsterdam"),
            ("tags", "finance, daily"),
            ("active", "on"),
        ]
    };
    // A cron that never fires is said next to the schedule, and nothing is saved.
    let mut bad = table("0 0 30 2 *");
    bad.push(("csrf", &csrf));
    let (status, _, html) = post_form(&s, "/tables/new", &cookies, &bad).await;
    assert_eq!(status, 400, "{html}");
    let at = html.find("name=\"schedule\"").unwrap();
    let error = html
        .find("class=\"error field-error\"")
        .expect("an error by a field");
    assert!(
        error > at && html[at..error].matches("<label>").count() == 0,
        "the error is not by the schedule"
    );
    let dest = TargetTable::parse("main.sales.payments").unwrap();
    assert!(s.store.table_by_destination(&dest).await.unwrap().is_none());

    // Without the CSRF field: refused.
    let (status, _, _) = post_form(&s, "/tables/new", &cookies, &table("0 3 * * *")).await;
    assert_eq!(status, 403);

    // A valid table is created, as the fields say, in the audit trail as the admin's token.
    let mut good = table("0 3 * * *");
    good.push(("csrf", &csrf));
    let (status, location, html) = post_form(&s, "/tables/new", &cookies, &good).await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(location, "/tables/main.sales.payments?done=created");
    let made = s.store.table_by_destination(&dest).await.unwrap().unwrap();
    assert_eq!(made.spec.primary_keys, vec!["id"]);
    assert_eq!(made.spec.incremental_column.as_deref(), Some("paid_at"));
    assert_eq!(made.spec.tags, vec!["finance", "daily"]);
    assert_eq!(made.spec.timezone, "Europe/Amsterdam");
    let history = s.store.table_history(made.table_id).await.unwrap();
    assert_eq!(history[0].changed_by.as_deref(), Some("token:admin"));

    // Edited: the schedule changes, and the settings the form does not show stay.
    s.store.set_watermark(made.table_id, None).await.unwrap();
    let mut edited = table("30 4 * * *");
    edited.retain(|(k, _)| *k != "active");
    edited.push(("csrf", &csrf));
    let (status, _, html) =
        post_form(&s, "/tables/main.sales.payments/edit", &cookies, &edited).await;
    assert_eq!(status, 303, "{html}");
    let after = s.store.table(made.table_id).await.unwrap().unwrap();
    assert_eq!(after.spec.schedule.as_deref(), Some("30 4 * * *"));
    assert!(!after.spec.is_active);
    assert_eq!(after.spec.max_delete_ratio, made.spec.max_delete_ratio);

    // An operator may not define tables.
    let (status, _, _) = post_form(
        &s,
        "/tables/new",
        &format!("dl_token=tok-operator; dl_csrf={csrf}"),
        &good,
    )
    .await;
    assert_eq!(status, 403);

    // A connection: a plain password is refused by the field, a reference is kept.
    let connection = |password: &'static str| {
        vec![
            ("name", "crm"),
            ("db_type", "postgresql"),
            ("host", "crm.internal"),
            ("port", "5433"),
            ("database", "crm"),
            ("user", "loader"),
            ("password", password),
            ("options", "sslmode=verify-full"),
        ]
    };
    let mut plain = connection("hunter2");
    plain.push(("csrf", &csrf));
    let (status, _, html) = post_form(&s, "/connections/new", &cookies, &plain).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("must be a reference") && !html.contains("hunter2\""),
        "{html}"
    );
    let mut good = connection("env:CRM_PASSWORD");
    good.push(("csrf", &csrf));
    let (status, location, html) = post_form(&s, "/connections/new", &cookies, &good).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/connections?done=crm"),
        "{html}"
    );
    let crm = s.store.connection("crm").await.unwrap().unwrap();
    assert_eq!(
        (crm.port, crm.options["sslmode"].as_str()),
        (Some(5433), "verify-full")
    );
    let (status, _, html) =
        post_form(&s, "/connections/crm/test", &cookies, &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(html.contains("stand-in server for crm"), "{html}");

    // Edited: the host changes; a new name is refused (tables load from it by name).
    let mut edited = connection("env:CRM_PASSWORD");
    edited.retain(|(k, _)| *k != "host");
    edited.push(("host", "crm2.internal"));
    edited.push(("csrf", &csrf));
    let (status, _, html) = post_form(&s, "/connections/crm/edit", &cookies, &edited).await;
    assert_eq!(status, 303, "{html}");
    let crm = s.store.connection("crm").await.unwrap().unwrap();
    assert_eq!(crm.host.as_deref(), Some("crm2.internal"));
    let mut renamed = edited.clone();
    renamed.retain(|(k, _)| *k != "name");
    renamed.push(("name", "crm_new"));
    let (status, _, html) = post_form(&s, "/connections/crm/edit", &cookies, &renamed).await;
    assert_eq!(status, 400);
    assert!(html.contains("keeps its name"), "{html}");

    // A file is planned, then applied.
    let (status, _, html) = post_form(
        &s,
        "/apply",
        &cookies,
        &[("csrf", &csrf), ("yaml", "tables: []"), ("step", "plan")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("apply: false") && html.contains("Apply this plan"),
        "{html}"
    );
    let planned = hash_token("tables: []");
    assert!(
        html.contains(&planned),
        "the plan's hash rides with the form"
    );
    // Text edited after its plan is planned again, not applied; the planned text is applied.
    let apply = |yaml: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("yaml", yaml.to_string()),
            ("step", "apply".to_string()),
            ("planned", planned.clone()),
        ]
    };
    for (yaml, applied) in [("tables: [] # edited", false), ("tables: []", true)] {
        let pairs = apply(yaml);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, html) = post_form(&s, "/apply", &cookies, &pairs).await;
        assert_eq!(status, 200);
        assert!(
            html.contains(&format!("apply: {applied}")),
            "{yaml}: {html}"
        );
    }
}

#[tokio::test]
async fn forms_define_and_edit_on_sqlite() {
    forms(sqlite(false).await).await;
}

#[tokio::test]
async fn forms_define_and_edit_on_postgres() {
    forms(postgres(false).await).await;
}
