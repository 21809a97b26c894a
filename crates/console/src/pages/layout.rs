//! The page shell (head, navigation, style, htmx, local times) and the small pieces every page
//! writes: times, durations, counts, status badges, and the forms' CSRF field.

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use dataloader_core::access::Role;

use crate::access::{self, Caller, CSRF_COOKIE};

const STYLE: &str = r#"
:root { --fg:#1d232b; --muted:#5c6773; --line:#dde2e8; --bg:#f7f8fa; --ok:#1a7f37; --bad:#c62828; --run:#0b62c4; --wait:#8a6d00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; flex-wrap:wrap; gap:1rem; align-items:center; padding:.6rem 1rem; background:#1d232b; color:#fff; }
header a { color:#fff; text-decoration:none; font-weight:600; }
header .who { margin-left:auto; color:#c9d1d9; font-size:12px; }
main { padding:1rem; max-width:1200px; margin:0 auto; }
main.narrow { max-width:420px; }
h1 { font-size:1.35rem; margin:.2rem 0 1rem; word-break:break-all; }
h2 { font-size:1.05rem; margin:1.4rem 0 .5rem; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(120px,1fr)); gap:.6rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.6rem .8rem; text-decoration:none; color:inherit; }
.card b { display:block; font-size:1.5rem; }
.scroll { overflow-x:auto; background:#fff; border:1px solid var(--line); border-radius:6px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:.35rem .6rem; border-bottom:1px solid var(--line); white-space:nowrap; vertical-align:top; }
th a { color:inherit; }
td.wrap { white-space:normal; min-width:16rem; }
.num { text-align:right; font-variant-numeric:tabular-nums; }
.badge { display:inline-block; padding:0 .45rem; border-radius:9px; font-size:12px; color:#fff; background:var(--muted); }
.badge.Succeeded { background:var(--ok); } .badge.Failed { background:var(--bad); }
.badge.In.Progress, .badge.running { background:var(--run); } .badge.Queued { background:var(--wait); }
.error { color:var(--bad); white-space:pre-wrap; word-break:break-word; }
.muted { color:var(--muted); }
.done { background:#e6f4ea; border:1px solid #b7dfc3; padding:.4rem .7rem; border-radius:6px; }
form.inline { display:inline; }
button { font:inherit; padding:.3rem .8rem; border:1px solid #9aa5b1; border-radius:5px; background:#fff; cursor:pointer; }
button.primary { background:var(--run); color:#fff; border-color:var(--run); }
.filters { display:flex; flex-wrap:wrap; gap:.5rem; margin-bottom:.8rem; }
.filters input, .filters select { font:inherit; padding:.25rem .4rem; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; background:#fff; border:1px solid var(--line); border-radius:6px; padding:.6rem .8rem; margin:0; }
dl.kv.storage { margin-bottom:.6rem; }
dl.kv dt { color:var(--muted); } dl.kv dd { margin:0; word-break:break-word; }
form.define label { display:block; margin:.5rem 0; }
form.define label > span { display:block; color:var(--muted); font-size:12px; }
form.define input[type=text], form.define select, form.define textarea { font:inherit; width:100%; padding:.35rem .45rem; border:1px solid #9aa5b1; border-radius:5px; }
form.define textarea { font-family:ui-monospace,monospace; }
form.define label.check { display:flex; gap:.4rem; align-items:center; }
main.wide-form { max-width:640px; }
.field-error { display:block; font-size:12px; }
pre.plan { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.6rem .8rem; white-space:pre-wrap; }
svg.chart { width:100%; height:160px; background:#fff; border:1px solid var(--line); border-radius:6px; }
@media (max-width: 600px) { main { padding:.6rem; } dl.kv { grid-template-columns:1fr; } }
"#;

/// Shows every `<time>` in the viewer's zone, now and after each htmx swap.
const LOCAL_TIMES: &str = r#"
function dlLocalTimes(root) {
  root.querySelectorAll('time[datetime]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute('datetime'); }
  });
}
document.addEventListener('DOMContentLoaded', function () { dlLocalTimes(document); });
document.addEventListener('htmx:afterSwap', function (e) { dlLocalTimes(e.target); });
"#;

/// The whole document around `body`.
pub(crate) fn shell(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · DataLoader" }
                style { (PreEscaped(STYLE)) }
                script src="/assets/htmx.min.js" {}
                script { (PreEscaped(LOCAL_TIMES)) }
            }
            body {
                header {
                    a href="/" { "DataLoader" }
                    a href="/" { "Overview" }
                    a href="/tables" { "Tables" }
                    a href="/connections" { "Connections" }
                    a href="/alerts" { "Alerts" }
                    @if caller.is_some_and(|c| c.role >= Role::Admin) { a href="/apply" { "Apply a file" } }
                    a href="/api/v1/openapi.json" { "API" }
                    @if let Some(c) = caller {
                        span.who {
                            (c.name) " · " (c.role)
                            @if c.token {
                                " "
                                form.inline method="post" action="/logout" {
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                (body)
            }
        }
    }
}

/// A page being answered: its CSRF token (the request's cookie, or a new one it sets).
pub(crate) struct Page {
    csrf: String,
    new_cookie: bool,
}

impl Page {
    pub(crate) fn new(headers: &HeaderMap) -> Page {
        match access::cookie(headers, CSRF_COOKIE).filter(|c| c.len() >= 32) {
            Some(csrf) => Page {
                csrf,
                new_cookie: false,
            },
            None => Page {
                csrf: access::random_hex(16),
                new_cookie: true,
            },
        }
    }

    /// The hidden field every form carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    pub(crate) fn render(self, title: &str, caller: &Caller, body: Markup) -> Response {
        let page = shell(title, Some(caller), body);
        if !self.new_cookie {
            return page.into_response();
        }
        let cookie = format!("{CSRF_COOKIE}={}; Path=/; SameSite=Strict", self.csrf);
        ([(header::SET_COOKIE, cookie)], page).into_response()
    }
}

/// A UTC time the script shows in the viewer's zone; a dash when there is none.
pub(crate) fn time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(t) => {
            let iso = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            html! { time datetime=(iso) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
        }
        None => html! { span.muted { "–" } },
    }
}

/// `1h 02m`, `3m 05s`, `4.2s`.
pub(crate) fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "–".into();
    };
    let whole = s.round() as i64;
    match whole {
        _ if s < 60.0 => format!("{s:.1}s"),
        w if w < 3600 => format!("{}m {:02}s", w / 60, w % 60),
        w if w < 86_400 => format!("{}h {:02}m", w / 3600, (w % 3600) / 60),
        w => format!("{}d {:02}h", w / 86_400, (w % 86_400) / 3600),
    }
}

/// `1,234,567`; a dash for none.
pub(crate) fn count(n: Option<i64>) -> String {
    let Some(n) = n else {
        return "–".into();
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

pub(crate) fn badge(status: Option<&str>) -> Markup {
    match status {
        Some(s) => html! { span class={"badge " (s)} { (s) } },
        None => html! { span.badge { "never loaded" } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_read_well() {
        assert_eq!(count(Some(1234567)), "1,234,567");
        assert_eq!(count(Some(-1000)), "-1,000");
        assert_eq!(count(Some(12)), "12");
        assert_eq!(count(None), "–");
        assert_eq!(duration(Some(4.25)), "4.2s");
        assert_eq!(duration(Some(185.0)), "3m 05s");
        assert_eq!(duration(Some(3720.0)), "1h 02m");
        assert_eq!(duration(Some(90000.0)), "1d 01h");
    }
}
