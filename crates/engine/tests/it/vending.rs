//! Credential vending against a mock Unity Catalog on loopback (no Databricks runs here, and
//! minilake vends no credentials) and the real Azurite: the SAS the catalog vends is what the
//! load writes with, and a catalog that vends nothing leaves the lake's own credentials in use.

use std::sync::{Arc, Mutex};

use dataloader_core::{LoadStrategy, Trigger};
use dataloader_engine::{Engine, LoadRequest};
use dataloader_lake::UnityCatalog;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{spec, Harness};

/// A mock Unity Catalog: every table is unknown, and `temporary-path-credentials` answers
/// `vend`. Keeps each request's first line and body.
async fn mock_catalog(vend: Arc<Mutex<Value>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                let Some(end) = text.find("\r\n\r\n") else {
                    if n == 0 {
                        break;
                    }
                    continue;
                };
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length || n == 0 {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&request).to_string();
            let first = text.lines().next().unwrap_or_default().to_string();
            let body = text
                .split("\r\n\r\n")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            log.lock().unwrap().push(format!("{first} {body}"));
            let (status, answer) = if first.contains("/temporary-path-credentials") {
                (200, vend.lock().unwrap().to_string())
            } else {
                (
                    404,
                    json!({"error_code": "NOT_FOUND", "message": "not here"}).to_string(),
                )
            };
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_vended_sas_is_what_an_azure_load_writes_with_against_a_mock_catalog() {
    let Ok(container) = std::env::var("DATALOADER_TEST_AZURE_CONTAINER") else {
        eprintln!("NOTICE: DATALOADER_TEST_AZURE_CONTAINER is not set: skipping the credential vending test (scripts/test.sh starts Azurite)");
        return;
    };
    let h = Harness::new("vend").await;
    h.source
        .client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 20);",
        )
        .await
        .unwrap();
    let root = format!(
        "abfss://{container}@devstoreaccount1.dfs.core.windows.net/vend-{}",
        std::process::id()
    );
    let vend = Arc::new(Mutex::new(json!({
        "azure_user_delegation_sas": {"sas_token": "sv=2021-08-06&ss=b&srt=co&sp=rwdlac&se=2099-01-01T00:00:00Z&sig=bm90LWEtc2lnbmF0dXJl"},
        "expiration_time": chrono::Utc::now().timestamp_millis() + 3_600_000
    })));
    let (url, seen) = mock_catalog(vend.clone()).await;
    let catalog = Arc::new(UnityCatalog::new(&url, &root).unwrap());
    let engine = Engine::new(h.store.clone(), catalog, h.clock.clone());
    let dest = h
        .add_spec(&spec("public.t", "bronze.vend.t", LoadStrategy::Full))
        .await;

    // A SAS Azurite cannot verify: the write is refused, so the vended SAS is what it used
    // (the emulator's own key, in the environment, would have been accepted).
    let refused = engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(refused.contains("403"), "{refused}");
    assert!(
        !refused.contains("bm90LWEtc2lnbmF0dXJl"),
        "no SAS in the error: {refused}"
    );
    let requests = seen.lock().unwrap().clone();
    let location = format!("{root}/bronze/vend/t");
    assert!(
        requests.iter().any(|r| r
            .starts_with("POST /api/2.1/unity-catalog/temporary-path-credentials ")
            && r.contains("\"operation\":\"PATH_CREATE_TABLE\"")
            && r.contains(&location)),
        "{requests:#?}"
    );

    // A catalog that vends nothing (a local path, a server without vending): the lake's own
    // credentials load the table.
    *vend.lock().unwrap() = json!({"aws_temp_credentials": null, "azure_user_delegation_sas": null, "expiration_time": null});
    let loaded = engine
        .load(LoadRequest::new(&dest, Trigger::Manual))
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(loaded.rows.read, 20);
    let note = loaded.notes.join(" ");
    assert!(
        note.contains("registering it in the catalog failed"),
        "the mock registers nothing: {note}"
    );
}
