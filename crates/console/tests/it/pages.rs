//! The console's pages as a browser gets them: the sign-in redirect and cookie, what each page
//! shows, a button's form post with and without its CSRF token, and the viewer's missing
//! buttons.

use super::*;

/// GET `path` with `cookie`: status, `Location`, `Set-Cookie` and body.
async fn page(s: &Server, path: &str, cookie: &str) -> (u16, String, String, String) {
    let response = s
        .http
        .get(format!("{}{path}", s.url))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (location, set_cookie) = (header(LOCATION), header(reqwest::header::SET_COOKIE));
    let status = response.status().as_u16();
    (status, location, set_cookie, response.text().await.unwrap())
}

async fn pages_by_role(s: Server) {
    // Without a token a page sends the browser to sign in, and back afterwards.
    let (status, location, _, _) = page(&s, &format!("/tables/{GOOD}"), "").await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("/login?next=/tables/{GOOD}").as_str())
    );
    let signed = s
        .http
        .post(format!("{}/login", s.url))
        .header(CONTENT_TYPE, FORM)
        .body(form(&[("token", "tok-operator"), ("next", "/tables")]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status().as_u16(), 303);
    assert_eq!(signed.headers()[LOCATION], "/tables");
    let set = signed.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.starts_with("dl_token=tok-operator;") && set.contains("HttpOnly"),
        "{set}"
    );
    let wrong = s
        .http
        .post(format!("{}/login", s.url))
        .header(CONTENT_TYPE, FORM)
        .body(form(&[("token", "tok-nobody")]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // The overview: statuses, the failure with its verdict, the next loads.
    let operator = "dl_token=tok-operator";
    let (status, _, set_cookie, html) = page(&s, "/", operator).await;
    assert_eq!(status, 200, "{html}");
    for shown in [
        BAD,
        "cannot reach erp.internal:5432",
        "retry",
        "Next loads",
        "htmx.min.js",
    ] {
        assert!(html.contains(shown), "{shown} not on the overview");
    }
    let csrf = set_cookie
        .strip_prefix("dl_csrf=")
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no CSRF cookie: {set_cookie}"))
        .to_string();

    // The tables list filters like the API.
    let (_, _, _, html) = page(&s, "/tables?status=Failed", operator).await;
    assert!(
        html.contains(BAD) && !html.contains(&format!(">{GOOD}<")),
        "{html}"
    );
    let (_, _, _, html) = page(&s, "/tables?q=orders", operator).await;
    assert!(
        html.contains(GOOD) && !html.contains(&format!(">{BAD}<")),
        "{html}"
    );

    // The alerts: the rule and its delivery, the webhook by its host.
    let (status, _, _, html) = page(&s, "/alerts", operator).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("oncall") && html.contains("failure:run:2"),
        "{html}"
    );
    assert!(
        html.contains("https://hooks.slack.com/…") && !html.contains("SECRETPATH"),
        "{html}"
    );

    // A table: its run, rows, chart and buttons; a run.
    let (status, _, _, html) = page(&s, &format!("/tables/{GOOD}"), operator).await;
    assert_eq!(status, 200);
    for shown in [
        "Load now",
        "Full refresh",
        "Pause",
        "42",
        "<svg",
        "Audit trail",
        "0 2 * * *",
        "version 3, 2 files, 2,048 bytes",
        "stand-in catalog for main.sales.orders",
    ] {
        assert!(html.contains(shown), "{shown} not on the table's page");
    }
    // The live part's refresh does not read the lake again.
    let refresh = s
        .http
        .get(format!("{}/tables/{GOOD}", s.url))
        .header(COOKIE, operator)
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        refresh.contains("Load now") && !refresh.contains("2 files"),
        "{refresh}"
    );
    let storage = s
        .http
        .get(format!("{}/tables/{GOOD}?part=storage", s.url))
        .header(COOKIE, operator)
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        storage.contains("2 files"),
        "the storage part's own refresh reads it"
    );
    let run_id = s.store.runs(None, 10).await.unwrap().last().unwrap().run_id;
    let (status, _, _, html) = page(&s, &format!("/runs/{run_id}"), operator).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Rows written") && html.contains("w1"),
        "{html}"
    );

    // A button's post: refused without the CSRF token, done with it.
    let post = |cookie: String, field: &str| {
        s.http
            .post(format!("{}/tables/{GOOD}/load", s.url))
            .header(COOKIE, cookie)
            .header(CONTENT_TYPE, FORM)
            .body(form(&[("csrf", field)]))
            .send()
    };
    let forged = post(operator.to_string(), &csrf).await.unwrap();
    assert_eq!(forged.status().as_u16(), 403, "a field without its cookie");
    let cookies = format!("{operator}; dl_csrf={csrf}");
    let forged = post(cookies.clone(), "guess").await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let done = post(cookies, &csrf).await.unwrap();
    assert_eq!(done.status().as_u16(), 303);
    assert!(done.headers()[LOCATION]
        .to_str()
        .unwrap()
        .contains("done=load"));
    assert_eq!(s.loads(1).await, vec![(GOOD.to_string(), false)]);

    // A viewer sees no buttons.
    let (_, _, _, html) = page(&s, &format!("/tables/{GOOD}"), "dl_token=tok-viewer").await;
    assert!(!html.contains("Load now"), "a viewer was offered a button");
}

#[tokio::test]
async fn pages_by_role_on_sqlite() {
    pages_by_role(sqlite(false).await).await;
}

#[tokio::test]
async fn pages_by_role_on_postgres() {
    pages_by_role(postgres(false).await).await;
}
