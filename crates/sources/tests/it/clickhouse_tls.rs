//! ClickHouse over HTTPS, against the second ClickHouse of `scripts/tls-servers.sh` (18.16 with
//! the test CA's `localhost` certificate on its `https_port`), with the option names and
//! meanings of PostgreSQL.

use dataloader_core::{Probe, SourceObject, SourceTable};

use crate::TlsServer;

fn server() -> Option<TlsServer> {
    TlsServer::from_env("DATALOADER_TEST_CLICKHOUSE_TLS_URL")
}

#[tokio::test]
async fn verify_full_with_the_ca_reads_over_https() {
    let Some(server) = server() else { return };
    let ca = server.ca.as_str();
    for options in [
        &[("sslmode", "verify-full"), ("sslrootcert", ca)][..],
        // The old spelling means verify-full.
        &[("protocol", "https"), ("sslrootcert", ca)],
    ] {
        let connection = server.connection("clickhouse", "localhost", options);
        let source = dataloader_sources::connect(&connection).await.unwrap();
        let object = SourceObject::Table(SourceTable::parse("tls_rows").unwrap());
        let schema = source.describe(&object).await.unwrap();
        let names: Vec<_> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "amount"]);
        let sql = "SELECT concat(toString(count()), '/', toString(sum(amount))) FROM tls_rows";
        let sum = source
            .probe(&object, &schema, &Probe::Query(sql.into()))
            .await
            .unwrap();
        assert_eq!(sum.map(|w| w.value).as_deref(), Some("3/-1.75"));
    }
}

#[tokio::test]
async fn https_failures_say_what_to_set() {
    let Some(server) = server() else { return };
    let ca = server.ca.as_str();
    let err = server
        .connect_error("clickhouse", "localhost", &[("sslmode", "verify-full")])
        .await;
    assert!(err.contains("set sslrootcert"), "{err}");
    let err = server
        .connect_error(
            "clickhouse",
            "127.0.0.1",
            &[("sslmode", "verify-full"), ("sslrootcert", ca)],
        )
        .await;
    assert!(err.contains("does not carry the host name"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    let err = server
        .connect_error("clickhouse", "127.0.0.1", &[("sslmode", "disable")])
        .await;
    assert!(
        err.contains("if this port is ClickHouse's https_port"),
        "{err}"
    );
}

#[tokio::test]
async fn require_and_verify_ca_take_the_wrong_name() {
    let Some(server) = server() else { return };
    let ca = server.ca.as_str();
    for options in [
        &[("sslmode", "require")][..],
        &[("sslmode", "verify-ca"), ("sslrootcert", ca)],
    ] {
        dataloader_sources::connect(&server.connection("clickhouse", "127.0.0.1", options))
            .await
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
    }
}
