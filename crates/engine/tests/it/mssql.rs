//! The engine over a real SQL Server, when `DATALOADER_TEST_MSSQL_URL`
//! (`mssql://user:password@host:port/database`) names one. No SQL Server can run on this
//! project's machines, so without the variable the suite prints a notice and skips; the SQL it
//! renders and the values it decodes are unit-tested in the sources crate always.

use dataloader_core::{LoadStrategy, RunStatus, Trigger};
use dataloader_engine::LoadRequest;
use dataloader_testkit::{assert_same_rows, Canon};
use tiberius::{AuthMethod, Client, Config};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::{connection, spec_on, Lake};

struct Server {
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
}

fn server() -> Option<Server> {
    let Ok(url) = std::env::var("DATALOADER_TEST_MSSQL_URL") else {
        eprintln!("NOTICE: DATALOADER_TEST_MSSQL_URL is not set: skipping the SQL Server suite (no server runs here)");
        return None;
    };
    let rest = url.strip_prefix("mssql://")?;
    let (auth, rest) = rest.split_once('@')?;
    let (user, password) = auth.split_once(':')?;
    let (addr, database) = rest.split_once('/')?;
    let (host, port) = addr.split_once(':').unwrap_or((addr, "1433"));
    Some(Server {
        host: host.into(),
        port: port.parse().ok()?,
        user: user.into(),
        password: password.into(),
        database: database.into(),
    })
}

async fn client(s: &Server) -> Client<tokio_util::compat::Compat<TcpStream>> {
    let mut cfg = Config::new();
    cfg.host(&s.host);
    cfg.port(s.port);
    cfg.database(&s.database);
    cfg.trust_cert();
    cfg.authentication(AuthMethod::sql_server(&s.user, &s.password));
    let tcp = TcpStream::connect(cfg.get_addr())
        .await
        .expect("reach the SQL Server");
    Client::connect(cfg, tcp.compat_write())
        .await
        .expect("log in to the SQL Server")
}

async fn rows(
    c: &mut Client<tokio_util::compat::Compat<TcpStream>>,
    sql: &str,
    kinds: &[Canon],
) -> Vec<Vec<Option<String>>> {
    let rows = c
        .simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            kinds
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    r.get::<&str, _>(i)
                        .map(|v| dataloader_testkit::canon_value(*k, v))
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn sql_server_types_and_incremental_loads_match_the_source() {
    let Some(s) = server() else { return };
    std::env::set_var("DL_TEST_MSSQL_PASSWORD", &s.password);
    let mut c = client(&s).await;
    let table = format!("dl_types_{}", std::process::id());
    c.simple_query(format!(
        "IF OBJECT_ID('dbo.{table}') IS NOT NULL DROP TABLE dbo.{table};
         CREATE TABLE dbo.{table} (id int PRIMARY KEY, b bit, t tinyint, s smallint, big bigint, d decimal(12,2),
           m money, f float, r real, nv nvarchar(max), g uniqueidentifier, vb varbinary(16), dt datetime,
           dt2 datetime2(7), dt26 datetime2(6), dto datetimeoffset(3), day date, tm time, modified datetime2(6) NOT NULL);
         INSERT INTO dbo.{table} VALUES
           (1, 1, 255, -32768, 9223372036854775807, 1234567890.12, 922337203685477.5807, 2.25, 1.5, N'Zürich – 東京',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0x00ff10, '2024-02-29 13:14:15.997', '2024-02-29 13:14:15.1234567',
            '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123 +02:00', '2024-02-29', '13:14:15', '2024-01-01 00:00:00.000001'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            '2024-01-01 00:00:00.000002');"
    ))
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    let mut conn = connection(
        "ms",
        "mssql".parse().unwrap(),
        s.host.clone(),
        s.port,
        &s.database,
        &s.user,
    );
    conn.password = Some("env:DL_TEST_MSSQL_PASSWORD".into());
    conn.options
        .insert("trust_server_certificate".into(), "true".into());
    let lake = Lake::new(conn).await;
    let full = lake
        .add_spec(&spec_on(
            "ms",
            &format!("dbo.{table}"),
            "bronze.ms.types",
            LoadStrategy::Full,
        ))
        .await;
    let report = lake
        .engine
        .load(LoadRequest::new(&full, Trigger::Manual))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!((report.status, report.rows.read), (RunStatus::Succeeded, 2));
    let columns: Vec<(&str, &str, Canon)> = vec![
        ("id", "CAST(id AS varchar(20))", Canon::Text),
        (
            "b",
            "CASE WHEN b IS NULL THEN NULL WHEN b = 1 THEN 'true' ELSE 'false' END",
            Canon::Text,
        ),
        ("t", "CAST(t AS varchar(10))", Canon::Text),
        ("s", "CAST(s AS varchar(10))", Canon::Text),
        ("big", "CAST(big AS varchar(30))", Canon::Text),
        ("d", "CAST(d AS varchar(40))", Canon::Decimal),
        ("m", "CONVERT(varchar(40), m, 2)", Canon::Decimal),
        ("nv", "nv", Canon::Text),
        ("g", "LOWER(CAST(g AS varchar(36)))", Canon::Text),
        ("vb", "LOWER(CONVERT(varchar(40), vb, 2))", Canon::Text),
        ("dt2", "CONVERT(varchar(40), dt2, 121)", Canon::Text),
        (
            "dt26",
            "CAST(DATEDIFF_BIG(MICROSECOND, '1970-01-01', dt26) AS varchar(30))",
            Canon::Text,
        ),
        (
            "dto",
            "CAST(DATEDIFF_BIG(MICROSECOND, '1970-01-01 00:00:00 +00:00', dto) AS varchar(30))",
            Canon::Text,
        ),
        ("day", "CONVERT(varchar(10), day, 23)", Canon::Text),
    ];
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let kinds: Vec<Canon> = columns.iter().map(|c| c.2).collect();
    let exprs = columns.iter().map(|c| c.1).collect::<Vec<_>>().join(", ");
    let source = rows(
        &mut c,
        &format!("SELECT {exprs} FROM dbo.{table} ORDER BY id"),
        &kinds,
    )
    .await;
    assert_same_rows(
        &source,
        &lake.delta_rows(&full, &names, &kinds).await,
        &names,
    );

    let mut incr = spec_on(
        "ms",
        &format!("dbo.{table}"),
        "bronze.ms.incr",
        LoadStrategy::Incremental,
    );
    incr.primary_keys = vec!["id".into()];
    incr.incremental_column = Some("modified".into());
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
    c.simple_query(format!("UPDATE dbo.{table} SET nv = N'changed', modified = '2024-01-02 00:00:00.000003' WHERE id = 2"))
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let second = lake
        .engine
        .load(LoadRequest::new(&incr, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(
        (second.rows.read, second.watermark_after.as_deref()),
        (1, Some("2024-01-02 00:00:00.000003"))
    );
    c.simple_query(format!("DROP TABLE dbo.{table}"))
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
}
