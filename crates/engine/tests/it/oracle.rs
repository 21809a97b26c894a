//! The engine over a real Oracle database, when `DATALOADER_TEST_ORACLE_URL`
//! (`oracle://user:password@host:port/service`) names one and an Instant Client is installed.
//! No Oracle can run on this project's machines, so without the variable the suite prints a
//! notice and skips; the type mapping, value conversion, SQL rendering and the missing-client
//! error are unit-tested in the sources crate always.

use dataloader_core::{LoadStrategy, RunStatus, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{assert_same_rows, canon_value, Canon};

use crate::{connection, spec_on, Lake};

#[tokio::test]
async fn oracle_types_and_incremental_loads_match_the_source() {
    let Ok(url) = std::env::var("DATALOADER_TEST_ORACLE_URL") else {
        eprintln!("NOTICE: DATALOADER_TEST_ORACLE_URL is not set: skipping the Oracle suite (no server runs here)");
        return;
    };
    let parse = || -> Option<(String, String, String, u16, String)> {
        let rest = url.strip_prefix("oracle://")?;
        let (auth, rest) = rest.split_once('@')?;
        let (user, password) = auth.split_once(':')?;
        let (addr, service) = rest.split_once('/')?;
        let (host, port) = addr.split_once(':').unwrap_or((addr, "1521"));
        Some((
            user.into(),
            password.into(),
            host.into(),
            port.parse().ok()?,
            service.into(),
        ))
    };
    let (user, password, host, port, service) =
        parse().expect("oracle://user:password@host:port/service");
    let table = format!("DL_TYPES_{}", std::process::id());
    let sql_user = user.clone();
    let sql_password = password.clone();
    let connect_string = format!("//{host}:{port}/{service}");
    let run = move |statements: Vec<String>| {
        let (u, p, c) = (
            sql_user.clone(),
            sql_password.clone(),
            connect_string.clone(),
        );
        std::thread::spawn(move || {
            let conn = oracle::Connector::new(u, p, c)
                .connect()
                .expect("connect to Oracle");
            for s in statements {
                let _ = conn.execute(&s, &[]);
            }
            conn.commit().unwrap();
        })
        .join()
        .unwrap();
    };
    run(vec![
        format!("DROP TABLE {table}"),
        format!(
            "CREATE TABLE {table} (ID NUMBER(10) PRIMARY KEY, AMOUNT NUMBER(12,2), FREE NUMBER, BF BINARY_DOUBLE, \
             NAME NVARCHAR2(100), BODY CLOB, RAWV RAW(16), D DATE, TS TIMESTAMP(6), TSTZ TIMESTAMP(6) WITH TIME ZONE, \
             MODIFIED TIMESTAMP(6) NOT NULL)"
        ),
        format!(
            "INSERT INTO {table} VALUES (1, 1234567890.12, 12345678901234567890.0123456789, 2.25, N'Zürich – 東京', 'clob text', \
             HEXTORAW('00FF10'), TO_DATE('2024-02-29 13:14:15', 'YYYY-MM-DD HH24:MI:SS'), \
             TO_TIMESTAMP('2024-02-29 13:14:15.123456', 'YYYY-MM-DD HH24:MI:SS.FF'), \
             TO_TIMESTAMP_TZ('2024-02-29 13:14:15.123456 +02:00', 'YYYY-MM-DD HH24:MI:SS.FF TZH:TZM'), \
             TO_TIMESTAMP('2024-01-01 00:00:00.000001', 'YYYY-MM-DD HH24:MI:SS.FF'))"
        ),
        format!(
            "INSERT INTO {table} (ID, MODIFIED) VALUES (2, TO_TIMESTAMP('2024-01-01 00:00:00.000002', 'YYYY-MM-DD HH24:MI:SS.FF'))"
        ),
    ]);
    std::env::set_var("DL_TEST_ORACLE_PASSWORD", &password);
    let mut conn = connection(
        "ora",
        "oracle".parse().unwrap(),
        host,
        port,
        &service,
        &user,
    );
    conn.password = Some("env:DL_TEST_ORACLE_PASSWORD".into());
    let lake = Lake::new(conn).await;
    let full = lake
        .add_spec(&spec_on(
            "ora",
            &table,
            "bronze.ora.types",
            LoadStrategy::Full,
        ))
        .await;
    let report = lake
        .engine
        .load(LoadRequest::new(&full, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 2));
    let delta = lake
        .delta_rows(
            &full,
            &["id", "amount", "free", "name", "body", "rawv"],
            &[
                Canon::Text,
                Canon::Decimal,
                Canon::Decimal,
                Canon::Text,
                Canon::Text,
                Canon::Text,
            ],
        )
        .await;
    let expected = vec![
        vec![
            Some("1".to_string()),
            Some(canon_value(Canon::Decimal, "1234567890.12")),
            Some(canon_value(
                Canon::Decimal,
                "12345678901234567890.0123456789",
            )),
            Some("Zürich – 東京".to_string()),
            Some("clob text".to_string()),
            Some("00ff10".to_string()),
        ],
        vec![Some("2".to_string()), None, None, None, None, None],
    ];
    assert_same_rows(
        &expected,
        &delta,
        &["id", "amount", "free", "name", "body", "rawv"],
    );

    let mut incr = spec_on("ora", &table, "bronze.ora.incr", LoadStrategy::Incremental);
    incr.primary_keys = vec!["ID".into()];
    incr.incremental_column = Some("MODIFIED".into());
    let incr = lake.add_spec(&incr).await;
    assert_eq!(
        lake.engine
            .load(LoadRequest::new(&incr, Trigger::Manual))
            .await
            .unwrap()
            .rows
            .read,
        2
    );
    run(vec![format!(
        "UPDATE {table} SET NAME = N'changed', MODIFIED = TO_TIMESTAMP('2024-01-02 00:00:00.000003', 'YYYY-MM-DD HH24:MI:SS.FF') WHERE ID = 2"
    )]);
    let second = lake
        .engine
        .load(LoadRequest::new(&incr, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (second.rows.read, second.watermark_after.as_deref()),
        (1, Some("2024-01-02 00:00:00.000003"))
    );
    run(vec![format!("DROP TABLE {table}")]);
}
