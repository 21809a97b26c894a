//! A YAML file of tables and connections (as `dataloader apply -f` takes it): pasted, planned
//! (the changes shown, nothing done), then applied by an admin who has seen the plan.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dataloader_core::access::Role;
use maud::{html, Markup};
use serde::Deserialize;

use super::{refusal, Page, Viewer};
use crate::access;
use crate::edits;
use crate::Console;

pub(crate) async fn apply_page(Viewer(caller): Viewer, headers: HeaderMap) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, None) {
        return page;
    }
    let page = Page::new(&headers);
    let body = body(&page, "", None, false);
    page.render("Apply a file", &caller, body)
}

#[derive(Deserialize)]
pub(crate) struct ApplyForm {
    csrf: String,
    yaml: String,
    /// `plan` or `apply`.
    step: String,
    /// The SHA-256 of the text that was planned: only that text is applied.
    #[serde(default)]
    planned: String,
}

pub(crate) async fn apply_post(
    State(console): State<Arc<Console>>,
    Viewer(caller): Viewer,
    headers: HeaderMap,
    Form(form): Form<ApplyForm>,
) -> Response {
    if let Some(page) = refusal(&caller, Role::Admin, &headers, Some(&form.csrf)) {
        return page;
    }
    // The text may have been edited after its plan was shown: then it is planned again, not
    // applied unseen.
    let apply = form.step == "apply" && form.planned == access::hash_token(&form.yaml);
    let page = Page::new(&headers);
    let outcome = edits::planned_for(&console, &caller, &form.yaml, apply).await;
    let failed = outcome.is_err();
    let body = body(
        &page,
        &form.yaml,
        Some(outcome.map_err(|e| e.to_string())),
        apply,
    );
    let mut response = page.render("Apply a file", &caller, body);
    if failed {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

fn body(
    page: &Page,
    yaml: &str,
    outcome: Option<Result<Vec<String>, String>>,
    applied: bool,
) -> Markup {
    let planned = matches!(&outcome, Some(Ok(_))) && !applied;
    html! {
        main {
            h1 { "Apply a file" }
            p.muted { "Tables and connections as " code { "dataloader apply -f" } " and " code { "dataloader export" } " write them. Plan first: nothing changes until you apply the plan you saw." }
            @match &outcome {
                Some(Ok(lines)) => {
                    h2 { @if applied { "Applied" } @else { "Plan" } }
                    pre.plan { @for l in lines { (l) "\n" } }
                }
                Some(Err(e)) => { p.error { (e) } }
                None => {}
            }
            form.define method="post" action="/apply" {
                (page.csrf_field())
                @if planned { input type="hidden" name="planned" value=(access::hash_token(yaml)); }
                textarea name="yaml" rows="18" spellcheck="false" placeholder="tables:\n  - connection: erp\n    source: dbo.orders\n    destination: bronze.erp.orders" { (yaml) }
                p {
                    button type="submit" name="step" value="plan" class=[(!planned).then_some("primary")] { "Plan" }
                    @if planned { " " button.primary type="submit" name="step" value="apply" { "Apply this plan" } }
                }
            }
        }
    }
}
