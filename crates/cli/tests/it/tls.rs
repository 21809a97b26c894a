//! TLS end to end through the CLI, against the TLS-only cluster of `scripts/tls-servers.sh`:
//! the control database and the source both on it with `sslmode=verify-full` and the test CA,
//! and a load of its `tls_rows`. The cluster is thrown away after each `scripts/test.sh`; the
//! names carry the process id so a rerun against the same cluster starts afresh.

use crate::dataloader_env;

#[tokio::test]
async fn a_control_database_and_a_source_over_verify_full_load_the_rows() {
    let Ok(url) = std::env::var("DATALOADER_TEST_PG_TLS_URL") else {
        eprintln!("NOTICE: DATALOADER_TEST_PG_TLS_URL is not set: skipping (scripts/test.sh starts the TLS cluster)");
        return;
    };
    let ca = std::env::var("DATALOADER_TEST_TLS_CA").expect("DATALOADER_TEST_TLS_CA");
    let port = url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let control = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| dataloader_env(dir.path(), args, &[]);
    let with_control = |args: &[&str]| {
        let mut all = vec!["--control-db", control.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };

    with_control(&["init"]).ok();
    let name = format!("tls{}", std::process::id());
    let dest = format!("bronze.tls.rows_{}", std::process::id());
    let rootcert = format!("sslrootcert={ca}");
    with_control(&[
        "connection",
        "add",
        &name,
        "--type",
        "postgresql",
        "--host",
        "localhost",
        "--port",
        &port,
        "--database",
        "dataloader_tls",
        "--user",
        "postgres",
        "--option",
        "sslmode=verify-full",
        "--option",
        &rootcert,
    ])
    .ok();
    let test = with_control(&["connection", "test", &name]).ok();
    assert!(test.stdout.contains("PostgreSQL 1"), "{}", test.stdout);
    with_control(&[
        "table",
        "add",
        "--connection",
        &name,
        "--source",
        "public.tls_rows",
        "--dest",
        &dest,
    ])
    .ok();
    let load = with_control(&["load", &dest, "--json"]).ok().json();
    assert_eq!(load["rows_read"], 3, "{load}");
    let list = with_control(&["table", "list"]).ok();
    assert!(list.stdout.contains(&dest), "{}", list.stdout);

    // Without the CA, the control database's error says what to set.
    let bare = format!("{url}?sslmode=verify-full");
    let refused = run(&["--control-db", &bare, "table", "list"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("set sslrootcert"),
        "{}",
        refused.stderr
    );
}
