//! A database of its own on the test ClickHouse, when `DATALOADER_TEST_CLICKHOUSE`
//! (`host:http_port`) names one; `scripts/test.sh` starts a server and sets it.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{canon_value, Canon};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn address() -> Option<(String, u16)> {
    let hp = std::env::var("DATALOADER_TEST_CLICKHOUSE").ok()?;
    let (h, p) = hp.split_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

pub struct ChTestDb {
    pub name: String,
    client: clickhouse::Client,
}

fn client((host, port): &(String, u16)) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(format!("http://{host}:{port}"))
        .with_validation(false)
}

impl ChTestDb {
    /// `None`, with a notice, when no test server is configured.
    pub async fn create(prefix: &str) -> Option<ChTestDb> {
        let Some(addr) = address() else {
            eprintln!("NOTICE: DATALOADER_TEST_CLICKHOUSE is not set: skipping the ClickHouse test (scripts/test.sh starts a server and sets it)");
            return None;
        };
        let name = format!(
            "dl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = client(&addr);
        admin
            .query_raw(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute()
            .await
            .expect("drop a leftover test database");
        admin
            .query_raw(&format!("CREATE DATABASE {name}"))
            .execute()
            .await
            .expect("create the test database");
        Some(ChTestDb {
            client: client(&addr).with_database(name.clone()),
            name,
        })
    }

    /// Runs statements separated by `;` (none may contain one).
    pub async fn exec(&self, sql: &str) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            self.client
                .query_raw(statement)
                .with_setting("allow_experimental_low_cardinality_type", "1")
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
        let (Some(addr), name) = (address(), self.name.clone()) else {
            return;
        };
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
