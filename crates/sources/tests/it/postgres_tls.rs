//! PostgreSQL sources over TLS, against the TLS-only cluster of `scripts/tls-servers.sh`: its
//! certificate is for `localhost` only, signed by a throwaway test CA; its pg_hba.conf has
//! hostssl lines only, and `certuser` must present a client certificate.

use dataloader_core::{ReadRequest, SourceObject, SourceTable};
use dataloader_testkit::{arrow_rows, assert_same_rows, Canon};
use futures::TryStreamExt;

use crate::TlsServer;

fn server() -> Option<TlsServer> {
    TlsServer::from_env("DATALOADER_TEST_PG_TLS_URL")
}

#[tokio::test]
async fn verify_full_with_the_ca_reads_the_rows() {
    let Some(server) = server() else { return };
    let options = [
        ("sslmode", "verify-full"),
        ("sslrootcert", server.ca.as_str()),
    ];
    let source =
        dataloader_sources::connect(&server.connection("postgresql", "localhost", &options))
            .await
            .unwrap();
    assert!(source
        .server_version()
        .await
        .unwrap()
        .starts_with("PostgreSQL"));
    let object = SourceObject::Table(SourceTable::parse("public.tls_rows").unwrap());
    let schema = source.describe(&object).await.unwrap();
    // The session really is encrypted.
    let ssl = source
        .probe(
            &object,
            &schema,
            &dataloader_core::Probe::Query(
                "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()".into(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(ssl.map(|w| w.value).as_deref(), Some("true"));

    let output = source
        .read(ReadRequest {
            object,
            columns: schema.columns.clone(),
            filter: None,
            watermark: None,
            batch_size: 2,
        })
        .await
        .unwrap();
    let batches: Vec<_> = output.batches.try_collect().await.unwrap();
    let columns = ["id", "name", "amount"];
    let kinds = [Canon::Text, Canon::Text, Canon::Decimal];
    let mut read = arrow_rows(&batches, &columns, &kinds);
    read.sort();
    // scripts/tls-servers.sh's rows.
    let expected: Vec<Vec<Option<String>>> = [
        ["1", "one", "1.5"].map(Some).to_vec(),
        vec![Some("2"), Some("two"), None],
        ["3", "three", "-3.25"].map(Some).to_vec(),
    ]
    .into_iter()
    .map(|row| row.into_iter().map(|v| v.map(String::from)).collect())
    .collect();
    assert_same_rows(&expected, &read, &columns);
}

#[tokio::test]
async fn without_the_ca_verify_full_says_to_set_sslrootcert() {
    let Some(server) = server() else { return };
    let err = server
        .connect_error("postgresql", "localhost", &[("sslmode", "verify-full")])
        .await;
    assert!(err.contains("set sslrootcert"), "{err}");
    assert!(
        err.contains("not signed by a CA this machine trusts"),
        "{err}"
    );
    let err = server
        .connect_error("postgresql", "localhost", &[("sslmode", "verify-ca")])
        .await;
    assert!(err.contains("set sslrootcert"), "{err}");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name_and_verify_ca_takes_it() {
    let Some(server) = server() else { return };
    let ca = server.ca.as_str();
    let err = server
        .connect_error(
            "postgresql",
            "127.0.0.1",
            &[("sslmode", "verify-full"), ("sslrootcert", ca)],
        )
        .await;
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(err.contains("does not carry the host name"), "{err}");
    assert!(err.contains("verify-ca"), "{err}");
    for mode in ["verify-ca", "require"] {
        let options = [("sslmode", mode), ("sslrootcert", ca)];
        dataloader_sources::connect(&server.connection("postgresql", "127.0.0.1", &options))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
}

#[tokio::test]
async fn require_and_the_loopback_default_encrypt_without_a_ca() {
    let Some(server) = server() else { return };
    // `require` checks nothing; with no sslmode, a loopback host prefers TLS, and the
    // TLS-only server takes it.
    for options in [&[("sslmode", "require")][..], &[]] {
        dataloader_sources::connect(&server.connection("postgresql", "127.0.0.1", options))
            .await
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
    }
}

#[tokio::test]
async fn disable_is_refused_by_a_tls_only_server_with_what_to_set() {
    let Some(server) = server() else { return };
    let err = server
        .connect_error("postgresql", "127.0.0.1", &[("sslmode", "disable")])
        .await;
    assert!(err.contains("no encryption"), "{err}");
    assert!(
        err.contains("accepts only TLS connections and sslmode is disable"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_certificate_logs_in_and_its_key_never_shows() {
    let Some(server) = server() else { return };
    let ca = server.ca.as_str();
    let key = format!("file:{}", server.client_key);
    let mut config = server.connection(
        "postgresql",
        "localhost",
        &[
            ("sslmode", "verify-full"),
            ("sslrootcert", ca),
            ("sslcert", server.client_cert.as_str()),
            ("sslkey", key.as_str()),
        ],
    );
    config.user = Some("certuser".into());
    let source = dataloader_sources::connect(&config).await.unwrap();
    source.server_version().await.unwrap();
    // Without the certificate, the server's refusal says what to set.
    config.options.remove("sslcert");
    config.options.remove("sslkey");
    let err = dataloader_sources::connect(&config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("set sslcert and sslkey"), "{err}");
    // The key's content appears nowhere, even in a connection's debug form.
    let pem = std::fs::read_to_string(&server.client_key).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!format!("{config:?} {err}").contains(body));
}

#[tokio::test]
async fn the_machines_own_server_still_connects_with_no_tls_option() {
    // Loopback: `prefer`, whether or not that server has TLS on (Debian's has, self-signed).
    let (host, port) = dataloader_testkit::pg_host_port();
    let mut config = TlsServer {
        host: host.clone(),
        port,
        user: dataloader_testkit::pg_user(),
        database: "postgres".into(),
        ca: String::new(),
        client_cert: String::new(),
        client_key: String::new(),
    }
    .connection("postgresql", &host, &[]);
    config.password = None;
    let source = dataloader_sources::connect(&config).await.unwrap();
    source.server_version().await.unwrap();
}
