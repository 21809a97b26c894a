//! The PostgreSQL control database over TLS, against the TLS-only cluster of
//! `scripts/tls-servers.sh` (certificate for `localhost` only, signed by a test CA).

use sqlx::{AssertSqlSafe, Connection};

/// `postgres://postgres@localhost:PORT` and the CA file, or `None` (with a notice).
fn server() -> Option<(String, String)> {
    let Ok(url) = std::env::var("DATALOADER_TEST_PG_TLS_URL") else {
        eprintln!("NOTICE: DATALOADER_TEST_PG_TLS_URL is not set: skipping (scripts/test.sh starts the TLS cluster)");
        return None;
    };
    let base = url.rsplit_once('/').expect("…/database").0.to_string();
    let ca = std::env::var("DATALOADER_TEST_TLS_CA").expect("DATALOADER_TEST_TLS_CA");
    Some((base, ca))
}

/// The error opening the store at `url`.
async fn open_error(url: &str) -> String {
    match dataloader_store::open(url).await {
        Ok(_) => panic!("opened {url}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn verify_full_with_the_ca_runs_the_control_database() {
    let Some((base, ca)) = server() else { return };
    let tls = format!("?sslmode=verify-full&sslrootcert={ca}");
    let name = format!("dl_tls_store_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/dataloader_tls{tls}"))
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();

    let store = dataloader_store::open(&format!("{base}/{name}{tls}"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.connections().await.unwrap().is_empty());
    assert!(store.tables().await.unwrap().is_empty());
    drop(store);
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tls_failure_of_the_control_database_says_what_to_set() {
    let Some((base, ca)) = server() else { return };
    let db = format!("{base}/dataloader_tls");
    let err = open_error(&format!("{db}?sslmode=verify-full")).await;
    assert!(err.contains("set sslrootcert"), "{err}");

    let by_ip = format!("{}/dataloader_tls", base.replace("localhost", "127.0.0.1"));
    let err = open_error(&format!("{by_ip}?sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(err.contains("does not carry the host name"), "{err}");
    dataloader_store::open(&format!("{by_ip}?sslmode=verify-ca&sslrootcert={ca}"))
        .await
        .unwrap();

    let err = open_error(&format!("{by_ip}?sslmode=disable")).await;
    assert!(err.contains("no encryption"), "{err}");
    assert!(err.contains("set sslmode=verify-full"), "{err}");
    // With no sslmode, this machine's server is asked for TLS first (`prefer`).
    dataloader_store::open(&by_ip).await.unwrap();
}
