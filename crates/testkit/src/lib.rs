//! Test helpers shared by the crates' integration tests: a fresh PostgreSQL database per test
//! on the real server, and a canonical text form of rows so a Delta table can be compared
//! with its source row by row.

pub mod clickhouse;
pub mod http_mock;
pub mod mysql;
pub mod proxy;
pub mod workload;

use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::{
    Array, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use tokio_postgres::{Client, NoTls};

/// The test server: `DATALOADER_TEST_PG` (host:port) or PostgreSQL on 127.0.0.1:5432.
pub fn pg_host_port() -> (String, u16) {
    let hp = std::env::var("DATALOADER_TEST_PG").unwrap_or_else(|_| "127.0.0.1:5432".into());
    let (h, p) = hp.split_once(':').unwrap_or((hp.as_str(), "5432"));
    (h.to_string(), p.parse().unwrap_or(5432))
}

pub fn pg_user() -> String {
    std::env::var("DATALOADER_TEST_PG_USER").unwrap_or_else(|_| "postgres".into())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of its own on the test server, dropped when this value is.
pub struct PgTestDb {
    pub name: String,
    pub client: Client,
}

/// A new connection to the test server's database `db`.
pub async fn connect(db: &str) -> Client {
    let (host, port) = pg_host_port();
    let (client, conn) = tokio_postgres::Config::new()
        .host(&host)
        .port(port)
        .user(pg_user())
        .dbname(db)
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL at {host}:{port} is not reachable: {e}"));
    tokio::spawn(conn);
    client
}

impl PgTestDb {
    pub async fn create(prefix: &str) -> PgTestDb {
        let name = format!(
            "dl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect("postgres").await;
        // Two statements: DROP DATABASE may not share an implicit transaction.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop a leftover test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let client = connect(&name).await;
        PgTestDb { name, client }
    }

    pub fn url(&self) -> String {
        let (host, port) = pg_host_port();
        format!("postgres://{}@{host}:{port}/{}", pg_user(), self.name)
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async: a short-lived runtime of its own does the cleanup.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let admin = connect("postgres").await;
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                });
            }
        })
        .join();
    }
}

/// How a column's two text forms are made comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    /// Compared as text.
    Text,
    /// Parsed as f32 then widened (PostgreSQL `real`), compared by bits.
    Float32,
    /// Parsed as f64, compared by bits.
    Float64,
    /// Decimal text with trailing fraction zeros removed.
    Decimal,
}

fn canon(kind: Canon, s: &str) -> String {
    match kind {
        Canon::Text => s.to_string(),
        Canon::Float32 => match s.parse::<f32>() {
            Ok(v) => f64::from(v).to_bits().to_string(),
            Err(_) => format!("unparsable float {s}"),
        },
        Canon::Float64 => match s.parse::<f64>() {
            Ok(v) => v.to_bits().to_string(),
            Err(_) => format!("unparsable float {s}"),
        },
        Canon::Decimal => {
            let (neg, body) = match s.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, s),
            };
            let body = match body.split_once('.') {
                Some((i, f)) => {
                    let f = f.trim_end_matches('0');
                    if f.is_empty() {
                        i.to_string()
                    } else {
                        format!("{i}.{f}")
                    }
                }
                None => body.to_string(),
            };
            let body = body.trim_start_matches('0');
            let body = if body.is_empty() || body.starts_with('.') {
                format!("0{body}")
            } else {
                body.to_string()
            };
            if neg && body != "0" {
                format!("-{body}")
            } else {
                body
            }
        }
    }
}

/// One value's canonical text.
pub fn canon_value(kind: Canon, text: &str) -> String {
    canon(kind, text)
}

/// A decimal's text with trailing fraction zeros (and leading zeros) removed.
pub fn canon_decimal(text: &str) -> String {
    canon(Canon::Decimal, text)
}

/// Rows of a query whose every column is text, canonicalised per `kinds`.
pub async fn pg_rows(client: &Client, sql: &str, kinds: &[Canon]) -> Vec<Vec<Option<String>>> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            kinds
                .iter()
                .enumerate()
                .map(|(i, k)| row.get::<_, Option<String>>(i).map(|s| canon(*k, &s)))
                .collect()
        })
        .collect()
}

/// The text form of every Arrow value, matching what `pg_rows` expects from SQL:
/// integers and decimals as numbers, floats by bits, booleans `true`/`false`, dates
/// `YYYY-MM-DD`, timestamps as microseconds since 1970, binary as lower-case hex.
pub fn arrow_rows(
    batches: &[RecordBatch],
    columns: &[&str],
    kinds: &[Canon],
) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for batch in batches {
        let arrays: Vec<_> = columns
            .iter()
            .map(|c| {
                let array = batch
                    .column_by_name(c)
                    .unwrap_or_else(|| panic!("column {c} missing from the Delta table"));
                // Partition columns come back dictionary-encoded.
                match array.data_type() {
                    DataType::Dictionary(_, values) => {
                        arrow::compute::cast(array, values).expect("dictionary values")
                    }
                    _ => array.clone(),
                }
            })
            .collect();
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(columns.len());
            for (array, kind) in arrays.iter().zip(kinds) {
                values.push(if array.is_null(row) {
                    None
                } else {
                    Some(canon(*kind, &arrow_text(array.as_ref(), row)))
                });
            }
            out.push(values);
        }
    }
    out
}

fn arrow_text(array: &dyn Array, i: usize) -> String {
    macro_rules! get {
        ($t:ty) => {
            array
                .as_any()
                .downcast_ref::<$t>()
                .expect("array type matches its data type")
                .value(i)
        };
    }
    match array.data_type() {
        DataType::Int16 => get!(Int16Array).to_string(),
        DataType::Int32 => get!(Int32Array).to_string(),
        DataType::Int64 => get!(Int64Array).to_string(),
        DataType::Float32 => get!(Float32Array).to_string(),
        DataType::Float64 => format!("{:?}", get!(Float64Array)),
        DataType::Boolean => get!(BooleanArray).to_string(),
        DataType::Utf8 => get!(StringArray).to_string(),
        DataType::Utf8View => get!(StringViewArray).to_string(),
        DataType::BinaryView => get!(BinaryViewArray)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        DataType::Binary => get!(BinaryArray)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        DataType::Decimal128(..) => array
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .expect("decimal array")
            .value_as_string(i),
        DataType::Date32 => {
            let days = get!(Date32Array);
            (chrono::NaiveDate::default() + chrono::Duration::days(i64::from(days)))
                .format("%Y-%m-%d")
                .to_string()
        }
        DataType::Timestamp(_, _) => get!(TimestampMicrosecondArray).to_string(),
        other => panic!("no text form for {other}"),
    }
}

/// The two sides, row by row, with the first difference named.
pub fn assert_same_rows(
    source: &[Vec<Option<String>>],
    delta: &[Vec<Option<String>>],
    columns: &[&str],
) {
    assert_eq!(
        source.len(),
        delta.len(),
        "row counts differ: source {} vs Delta {}",
        source.len(),
        delta.len()
    );
    for (n, (s, d)) in source.iter().zip(delta).enumerate() {
        for (c, (sv, dv)) in columns.iter().zip(s.iter().zip(d)) {
            assert_eq!(sv, dv, "row {n}, column {c}: source {sv:?} vs Delta {dv:?}");
        }
    }
}

/// A TCP proxy on `127.0.0.1:port` to the test PostgreSQL, started on demand: a database that
/// is "down" (nothing listens on the port) until the test brings it "back".
pub async fn start_pg_proxy(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("proxy port {port}: {e}"));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (host, port) = pg_host_port();
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect((host.as_str(), port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_canon() {
        assert_eq!(canon(Canon::Decimal, "12.500"), "12.5");
        assert_eq!(canon(Canon::Decimal, "-0.000"), "0");
        assert_eq!(canon(Canon::Decimal, "007.10"), "7.1");
        assert_eq!(canon(Canon::Decimal, "100"), "100");
        assert_eq!(canon(Canon::Decimal, "0.05"), "0.05");
    }
}
