//! A database of its own on each test ClickHouse: `DATALOADER_TEST_CLICKHOUSE` (`host:http_port`,
//! Debian's 18.16, read as RowBinary) and `DATALOADER_TEST_CLICKHOUSE_MODERN` (a current engine
//! through `scripts/chdb_http.py`, read as ArrowStream); `scripts/test.sh` starts both.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{canon_value, Canon};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Every configured test server; a notice when there is none.
pub fn servers() -> Vec<(String, u16)> {
    let servers: Vec<(String, u16)> = [
        "DATALOADER_TEST_CLICKHOUSE",
        "DATALOADER_TEST_CLICKHOUSE_MODERN",
    ]
    .iter()
    .filter_map(|var| {
        let hp = std::env::var(var).ok()?;
        let (h, p) = hp.split_once(':')?;
        Some((h.to_string(), p.parse().ok()?))
    })
    .collect();
    if servers.is_empty() {
        eprintln!("NOTICE: DATALOADER_TEST_CLICKHOUSE is not set: skipping the ClickHouse test (scripts/test.sh starts a server and sets it)");
    }
    servers
}

pub struct ChTestDb {
    pub name: String,
    pub addr: (String, u16),
    client: clickhouse::Client,
    /// 18.16 needs a setting for `LowCardinality` columns that later releases no longer know.
    old: bool,
}

fn client((host, port): &(String, u16)) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(format!("http://{host}:{port}"))
        .with_validation(false)
}

impl ChTestDb {
    pub async fn create(addr: &(String, u16), prefix: &str) -> ChTestDb {
        let name = format!(
            "dl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = client(addr);
        let version = admin
            .query("SELECT version()")
            .fetch_one::<String>()
            .await
            .expect("the server's version");
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .query_raw(&sql)
                .execute()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        ChTestDb {
            client: client(addr).with_database(name.clone()),
            addr: addr.clone(),
            old: version.starts_with("18.") || version.starts_with("19."),
            name,
        }
    }

    /// Runs statements separated by `;` (none may contain one).
    pub async fn exec(&self, sql: &str) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let mut query = self.client.query_raw(statement);
            if self.old {
                query = query.with_setting("allow_experimental_low_cardinality_type", "1");
            }
            query
                .execute()
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    /// Rows of a query whose every column is text (or NULL), canonicalised per `kinds`.
    pub async fn rows(&self, sql: &str, kinds: &[Canon]) -> Vec<Vec<Option<String>>> {
        let mut cursor = self
            .client
            .query_raw(sql)
            .fetch_bytes("JSONCompact")
            .expect("query");
        let mut body = Vec::new();
        while let Some(chunk) = cursor.next().await.unwrap_or_else(|e| panic!("{sql}: {e}")) {
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSONCompact");
        value["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|row| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, k)| row[i].as_str().map(|v| canon_value(*k, v)))
                    .collect()
            })
            .collect()
    }
}

impl Drop for ChTestDb {
    fn drop(&mut self) {
        let (addr, name) = (self.addr.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let _ = client(&addr)
                        .query_raw(&format!("DROP DATABASE IF EXISTS {name}"))
                        .execute()
                        .await;
                });
            }
        })
        .join();
    }
}
