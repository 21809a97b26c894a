//! Credential vending against a mock Unity Catalog on loopback (no Databricks runs here, and
//! minilake vends no credentials) and the real Azurite: the SAS the catalog vends is what the
//! load writes with, and a catalog that vends nothing leaves the lake's own credentials in use.

use std::sync::{Arc, Mutex};

use dataloader_core::{LoadStrategy, Trigger};
use dataloader_engine::{Engine, LoadRequest};
use dataloader_lake::UnityCatalog;
use dataloader_testkit::http_mock::HttpMock;
use serde_json::{json, Value};

use crate::{spec, Harness};

/// A mock Unity Catalog: every table is unknown, and `temporary-path-credentials` answers
/// `vend`.
async fn mock_catalog(vend: Arc<Mutex<Value>>) -> HttpMock {
    HttpMock::start(move |r| {
        if r.path().ends_with("/temporary-path-credentials") {
            (200, vend.lock().unwrap().to_string())
        } else {
            let unknown = json!({"error_code": "NOT_FOUND", "message": "not here"});
            (404, unknown.to_string())
        }
    })
    .await
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
    let mock = mock_catalog(vend.clone()).await;
    let catalog = Arc::new(UnityCatalog::new(&mock.url(), &root).unwrap());
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
    let requests = mock.requests();
    let location = format!("{root}/bronze/vend/t");
    assert!(
        requests.iter().any(|r| r.method == "POST"
            && r.target == "/api/2.1/unity-catalog/temporary-path-credentials"
            && r.body.contains("\"operation\":\"PATH_CREATE_TABLE\"")
            && r.body.contains(&location)),
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
