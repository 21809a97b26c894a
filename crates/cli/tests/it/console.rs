//! `dataloader serve` after the quickstart, as a newcomer meets it: the three demo tables with
//! their runs and rows, a token made by `dataloader token create`, a load started through the
//! API and finished by the engine in the server's process, and `/metrics` counting it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dataloader_lake::DeltaDestination;
use serde_json::Value;

use crate::{dataloader, dataloader_command, dataloader_env};

const CONTROL: [&str; 2] = ["--control-db", "sqlite://dataloader.db"];

/// The serve process, stopped when the test ends however it ends.
pub(crate) struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on `listen` in `dir` (the quickstart's folder): the process, the base URL on
/// loopback, and the line it printed.
pub(crate) fn serve(dir: &std::path::Path, listen: &str) -> (Served, String, String) {
    spawn_console(dir, &["serve", "--listen", listen])
}

/// Starts `args` (a command that serves the console) in `dir` and reads its stderr up to the
/// line that says where the console is.
fn spawn_console(dir: &std::path::Path, args: &[&str]) -> (Served, String, String) {
    let mut all = CONTROL.to_vec();
    all.extend_from_slice(args);
    let mut child = dataloader_command(dir, &all, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let served = Served(child);
    let line = lines
        .map(Result::unwrap)
        .find(|l| l.contains("DataLoader console:"))
        .expect("the console's address");
    let port = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.rsplit(':').next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();
    (served, format!("http://127.0.0.1:{port}"), line)
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn tables(base: &str, token: &str) -> Vec<Value> {
    let (status, body) = get(&format!("{base}/api/v1/tables"), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_quickstart_and_loads_a_table_asked_for_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    dataloader(dir.path(), &["quickstart", "--dir", "qs"]).ok();
    let qs = dir.path().join("qs");
    let mut args = CONTROL.to_vec();
    args.extend(["token", "create", "ci", "--role", "operator"]);
    let made = dataloader_env(&qs, &args, &[]).ok();
    let token = made.stdout.trim().to_string();
    assert!(token.starts_with("dl_"), "{}", made.stdout);
    let mut args = CONTROL.to_vec();
    args.extend(["token", "list"]);
    let listed = dataloader_env(&qs, &args, &[]).ok();
    assert!(listed.stdout.contains("ci") && listed.stdout.contains("operator"));
    assert!(!listed.stdout.contains(&token), "a token was shown again");

    // Not on loopback: every request needs the token.
    let (_served, base, line) = serve(&qs, "0.0.0.0:0");
    assert!(line.contains("tokens required"), "{line}");
    let (status, _) = get(&format!("{base}/api/v1/tables"), None).await;
    assert_eq!(status, 401);

    let (status, html) = get(&format!("{base}/"), Some(&token)).await;
    assert_eq!(status, 200);
    for table in [
        "bronze.demo.customers",
        "bronze.demo.products",
        "bronze.demo.orders",
    ] {
        assert!(html.contains(table), "{table} not on the overview");
    }
    let rows: Vec<(String, i64)> = tables(&base, &token)
        .await
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["last_run"]["rows_written"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("bronze.demo.customers".to_string(), 500),
            ("bronze.demo.orders".to_string(), 5000),
            ("bronze.demo.products".to_string(), 120),
        ]
    );

    // A full refresh of the orders, asked for over the API and run by the server.
    let orders = "bronze.demo.orders";
    let before = tables(&base, &token).await[1]["last_run"]["run_id"]
        .as_i64()
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/tables/{orders}/load"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"full_refresh": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let run_id = accepted["run_id"].as_i64().expect("the queued run's id");
    assert!(run_id > before, "a new run: {accepted}");
    let started = Instant::now();
    let last = loop {
        let table = tables(&base, &token).await[1].clone();
        let run = table["last_run"].clone();
        if run["run_id"].as_i64() == Some(run_id) && run["status"] == "Succeeded" {
            break run;
        }
        assert!(run["status"] != "Failed", "{run}");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the load did not end: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(last["rows_written"], 5000, "{last}");
    assert_eq!(last["trigger"], "manual");
    let url = format!("file://{}/lakehouse/bronze/demo/orders", qs.display());
    let delta = DeltaDestination::new(&url, orders)
        .unwrap()
        .read_all(&["order_id"])
        .await
        .unwrap();
    assert_eq!(delta.iter().map(|b| b.num_rows()).sum::<usize>(), 5000);
    // The table's page: the Delta table's version and files, read by the server.
    let (status, body) = get(&format!("{base}/api/v1/tables/{orders}"), Some(&token)).await;
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&body).unwrap();
    let storage = &detail["storage"];
    assert_eq!(storage["delta_version"], 1, "{storage}");
    assert!(storage["files"].as_u64().unwrap() >= 1, "{storage}");
    assert!(storage["bytes"].as_u64().unwrap() > 0, "{storage}");
    assert!(
        storage["catalog"]
            .as_str()
            .unwrap()
            .contains("found by its path"),
        "{storage}"
    );

    // The quickstart's own file, one schedule changed, applied over the API: the audit row
    // names the token.
    let file = std::fs::read_to_string(qs.join("tables.yaml")).unwrap();
    let changed = file.replacen("*/15 * * * *", "*/20 * * * *", 1);
    assert_ne!(changed, file, "the orders' schedule is in the file");
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/apply"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "yaml": changed }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "an operator may not apply");
    let mut args = CONTROL.to_vec();
    args.extend(["token", "create", "lead", "--role", "admin"]);
    let admin = dataloader_env(&qs, &args, &[])
        .ok()
        .stdout
        .trim()
        .to_string();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/apply"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "yaml": changed }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let applied: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        applied["changes"][0]
            .as_str()
            .unwrap()
            .contains("change table bronze.demo.orders"),
        "{applied}"
    );
    let mut args = CONTROL.to_vec();
    args.extend(["history", orders, "--changes", "--json"]);
    let history = dataloader_env(&qs, &args, &[]).ok().json();
    assert_eq!(history[0]["changed_by"], "token:lead", "{history}");

    let (status, metrics) = get(&format!("{base}/metrics"), Some(&token)).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!(
            "dataloader_loads_total{{table=\"{orders}\",strategy=\"incremental\",outcome=\"Succeeded\"}} 2"
        )),
        "{metrics}"
    );
}

/// `run --serve`: the scheduler and the console in one process; the overview and `/metrics`
/// show the scheduler's ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_console_beside_the_scheduler_and_shows_its_ticks() {
    let dir = tempfile::tempdir().unwrap();
    dataloader(dir.path(), &["quickstart", "--dir", "qs"]).ok();
    let qs = dir.path().join("qs");
    let (_served, base, _) = spawn_console(
        &qs,
        &["run", "--serve", "127.0.0.1:0", "--poll-interval", "1s"],
    );
    let started = Instant::now();
    let metrics = loop {
        let (status, metrics) = get(&format!("{base}/metrics"), None).await;
        assert_eq!(status, 200);
        if metrics.contains("dataloader_scheduler_tick_seconds{") {
            break metrics;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no tick:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metrics.contains("dataloader_scheduler_last_tick_age_seconds{worker="),
        "{metrics}"
    );
    let (status, html) = get(&format!("{base}/"), None).await;
    assert_eq!(status, 200);
    assert!(html.contains("Schedulers (1)"), "{html}");
}
