//! MySQL/MariaDB sources over TLS, against the TLS-only MariaDB of `scripts/tls-servers.sh`
//! (`require_secure_transport=ON`, the same test CA and `localhost` certificate as the
//! PostgreSQL cluster), with the same option names and meanings as PostgreSQL.

use dataloader_core::{Probe, SourceObject, SourceTable};

use crate::TlsServer;

fn server() -> Option<TlsServer> {
    TlsServer::from_env("DATALOADER_TEST_MYSQL_TLS_URL")
}

#[tokio::test]
async fn verify_full_with_the_ca_reads_over_tls() {
    let Some(server) = server() else { return };
    let options = [
        ("sslmode", "verify-full"),
        ("sslrootcert", server.ca.as_str()),
    ];
    let source = dataloader_sources::connect(&server.connection("mysql", "localhost", &options))
        .await
        .unwrap();
    let object = SourceObject::Table(SourceTable::parse("tls_rows").unwrap());
    let schema = source.describe(&object).await.unwrap();
    let probe = |sql: &str| Probe::Query(sql.into());
    let ssl = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
               WHERE VARIABLE_NAME = 'SSL_VERSION'";
    let version = source.probe(&object, &schema, &probe(ssl)).await.unwrap();
    let version = version.map(|w| w.value).unwrap_or_default();
    assert!(version.starts_with("TLS"), "not encrypted: {version:?}");
    let sum = source
        .probe(
            &object,
            &schema,
            &probe("SELECT CONCAT(COUNT(*), '/', SUM(amount)) FROM tls_rows"),
        )
        .await
        .unwrap();
    assert_eq!(sum.map(|w| w.value).as_deref(), Some("3/-1.75"));
}

#[tokio::test]
async fn tls_failures_say_what_to_set() {
    let Some(server) = server() else { return };
    let ca = server.ca.as_str();
    let err = server
        .connect_error("mysql", "localhost", &[("sslmode", "verify-full")])
        .await;
    assert!(err.contains("set sslrootcert"), "{err}");
    let err = server
        .connect_error(
            "mysql",
            "127.0.0.1",
            &[("sslmode", "verify-full"), ("sslrootcert", ca)],
        )
        .await;
    assert!(err.contains("does not carry the host name"), "{err}");
    let err = server
        .connect_error("mysql", "127.0.0.1", &[("sslmode", "disable")])
        .await;
    assert!(
        err.contains(
            "if the server requires TLS (require_secure_transport), set sslmode=verify-full"
        ),
        "{err}"
    );
    // mysql_async cannot check the CA without the name: refused, not made to mean another mode.
    let err = server
        .connect_error(
            "mysql",
            "127.0.0.1",
            &[("sslmode", "verify-ca"), ("sslrootcert", ca)],
        )
        .await;
    assert!(
        err.contains("sslmode=verify-ca is not implemented for mysql"),
        "{err}"
    );
    let err = server
        .connect_error(
            "mysql",
            "127.0.0.1",
            &[("sslmode", "require"), ("sslrootcert", ca)],
        )
        .await;
    assert!(err.contains("use sslmode=verify-full"), "{err}");
}

#[tokio::test]
async fn require_and_the_loopback_default_take_the_wrong_name() {
    let Some(server) = server() else { return };
    for options in [&[("sslmode", "require")][..], &[]] {
        dataloader_sources::connect(&server.connection("mysql", "127.0.0.1", options))
            .await
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
    }
}

#[tokio::test]
async fn prefer_falls_back_to_clear_on_a_server_without_tls() {
    // The machine's MariaDB has no TLS: `prefer` (its loopback default) connects in clear,
    // `require` is refused with what to do.
    let hp = std::env::var("DATALOADER_TEST_MYSQL").unwrap_or_else(|_| "127.0.0.1:3306".into());
    let (host, port) = hp.split_once(':').unwrap();
    let server = TlsServer {
        host: host.into(),
        port: port.parse().unwrap(),
        user: "root".into(),
        database: "test".into(),
        ca: String::new(),
        client_cert: String::new(),
        client_key: String::new(),
    };
    let plain = server.connection("mysql", host, &[("sslmode", "prefer")]);
    let source = dataloader_sources::connect(&plain).await.unwrap();
    source.server_version().await.unwrap();
    let require = server.connection("mysql", host, &[("sslmode", "require")]);
    // A server given in DATALOADER_TEST_MYSQL may have TLS: then `require` connects.
    if let Err(e) = dataloader_sources::connect(&require).await {
        assert!(e.to_string().contains("does not accept TLS"), "{e}");
    }
}
