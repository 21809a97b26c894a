//! A database of its own on the test MariaDB (`DATALOADER_TEST_MYSQL`, default
//! 127.0.0.1:3306, user root without a password), and its rows in canonical text.

use std::sync::atomic::{AtomicU32, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::{canon_value, Canon};

pub fn host_port() -> (String, u16) {
    let hp = std::env::var("DATALOADER_TEST_MYSQL").unwrap_or_else(|_| "127.0.0.1:3306".into());
    let (h, p) = hp.split_once(':').unwrap_or((hp.as_str(), "3306"));
    (h.to_string(), p.parse().unwrap_or(3306))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct MyTestDb {
    pub name: String,
}

async fn connect(db: Option<&str>) -> Conn {
    let (host, port) = host_port();
    let opts = OptsBuilder::default()
        .ip_or_hostname(host.clone())
        .tcp_port(port)
        .user(Some("root"))
        .db_name(db.map(str::to_string))
        .prefer_socket(false);
    let mut conn = Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("test MariaDB at {host}:{port} is not reachable: {e}"));
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .expect("session time zone");
    conn
}

impl MyTestDb {
    pub async fn create(prefix: &str) -> MyTestDb {
        let name = format!(
            "dl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = connect(None).await;
        conn.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .expect("drop a leftover test database");
        conn.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .await
            .expect("create the test database");
        MyTestDb { name }
    }

    pub async fn conn(&self) -> Conn {
        connect(Some(&self.name)).await
    }

    /// Runs statements separated by `;` (none may contain one).
    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            conn.query_drop(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    /// Runs one statement as written (a routine's body may hold `;`).
    pub async fn exec_one(&self, sql: &str) {
        self.conn()
            .await
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of a query whose every column is text, canonicalised per `kinds`.
    pub async fn rows(&self, sql: &str, kinds: &[Canon]) -> Vec<Vec<Option<String>>> {
        let mut conn = self.conn().await;
        let rows: Vec<mysql_async::Row> = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|mut row| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        row.take::<Option<String>, _>(i)
                            .flatten()
                            .map(|v| canon_value(*k, &v))
                    })
                    .collect()
            })
            .collect()
    }
}

impl Drop for MyTestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let mut conn = connect(None).await;
                    let _ = conn
                        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                        .await;
                    let _ = conn.disconnect().await;
                });
            }
        })
        .join();
    }
}
