//! A random workload on a real PostgreSQL table, for differential tests: each round inserts,
//! updates (with advancing timestamps), sets NULL cursors, deletes, and can leave a row
//! committed late with an older timestamp. A fixed seed makes a run repeatable.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use tokio_postgres::Client;

/// What a round may do, to match what a strategy can see.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    pub inserts: u32,
    pub updates: u32,
    pub deletes: u32,
    pub null_cursors: u32,
    /// Open a second transaction that inserts a row stamped before the round's rows and
    /// commits only when [`Workload::commit_late`] is called (after the load).
    pub late_row: bool,
}

pub struct Workload {
    state: u64,
    next_id: i64,
    /// Seconds since 2024-01-01 of the newest stamp handed out.
    clock: i64,
    pub table: String,
    late: Option<Client>,
}

/// The table's columns, as SQL expressions giving canonical text in [`crate::Canon`] terms.
pub const COLUMNS: [(&str, &str, crate::Canon); 6] = [
    ("id", "id::text", crate::Canon::Text),
    ("grp", "grp::text", crate::Canon::Text),
    ("amount", "amount::text", crate::Canon::Decimal),
    ("note", "note", crate::Canon::Text),
    (
        "updated_at",
        "(extract(epoch from updated_at) * 1000000)::bigint::text",
        crate::Canon::Text,
    ),
    ("seq", "seq::text", crate::Canon::Text),
];

impl Workload {
    pub fn new(seed: u64, table: &str) -> Workload {
        Workload {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            next_id: 1,
            clock: 0,
            table: table.to_string(),
            late: None,
        }
    }

    fn next(&mut self, modulo: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % modulo.max(1)
    }

    fn stamp(&mut self) -> String {
        self.clock += 1 + self.next(5) as i64;
        format!("timestamp '2024-01-01' + interval '{} seconds'", self.clock)
    }

    pub async fn create(&mut self, client: &Client, initial_rows: u32) {
        client
            .batch_execute(&format!(
                "CREATE TABLE {} (id bigint PRIMARY KEY, grp int, amount numeric(12,2), note text, \
                 updated_at timestamp(6), seq bigint NOT NULL)",
                self.table
            ))
            .await
            .expect("create the workload table");
        self.insert(client, initial_rows).await;
    }

    async fn insert(&mut self, client: &Client, rows: u32) {
        let mut values = Vec::new();
        for _ in 0..rows {
            let id = self.next_id;
            self.next_id += 1;
            let stamp = self.stamp();
            let note = if self.next(4) == 0 {
                "NULL".to_string()
            } else {
                format!("'note {id} é'")
            };
            values.push(format!(
                "({id}, {}, {}.{:02}, {note}, {stamp}, {id})",
                self.next(10),
                self.next(10_000),
                self.next(100)
            ));
        }
        if !values.is_empty() {
            client
                .batch_execute(&format!(
                    "INSERT INTO {} VALUES {}",
                    self.table,
                    values.join(", ")
                ))
                .await
                .expect("insert workload rows");
        }
    }

    fn some_id(&mut self) -> i64 {
        1 + self.next(self.next_id.max(2) as u64 - 1) as i64
    }

    /// One round of changes; the late row (if any) stays uncommitted until `commit_late`.
    pub async fn round(&mut self, client: &Client, mix: Mix, late_client: Option<Client>) {
        self.insert(client, mix.inserts).await;
        for _ in 0..mix.updates {
            let id = self.some_id();
            let stamp = self.stamp();
            client
                .batch_execute(&format!(
                    "UPDATE {} SET amount = amount + 1, grp = grp + 1, updated_at = {stamp} WHERE id = {id}",
                    self.table
                ))
                .await
                .expect("update a workload row");
        }
        for _ in 0..mix.null_cursors {
            let id = self.some_id();
            client
                .batch_execute(&format!(
                    "UPDATE {} SET note = 'cursor cleared', amount = amount + 2, updated_at = NULL WHERE id = {id}",
                    self.table
                ))
                .await
                .expect("null a workload cursor");
        }
        for _ in 0..mix.deletes {
            let id = self.some_id();
            client
                .batch_execute(&format!("DELETE FROM {} WHERE id = {id}", self.table))
                .await
                .expect("delete a workload row");
        }
        if mix.late_row {
            if let Some(late) = late_client {
                // Stamped now, before the rows the next statements stamp; committed after the load.
                let id = self.next_id;
                self.next_id += 1;
                let stamp = self.stamp();
                self.clock += 600;
                late.batch_execute(&format!(
                    "BEGIN; INSERT INTO {} VALUES ({id}, 0, 1.00, 'late', {stamp}, {id})",
                    self.table
                ))
                .await
                .expect("open the late transaction");
                self.insert(client, 1).await;
                self.late = Some(late);
            }
        }
    }

    /// Commits the late row, as a slow transaction would after the load read past it.
    pub async fn commit_late(&mut self) {
        if let Some(late) = self.late.take() {
            late.batch_execute("COMMIT")
                .await
                .expect("commit the late row");
        }
    }

    /// The source rows, canonical, optionally only those matching `filter`.
    pub async fn source_rows(
        &self,
        client: &Client,
        filter: Option<&str>,
    ) -> Vec<Vec<Option<String>>> {
        let exprs = COLUMNS.iter().map(|c| c.1).collect::<Vec<_>>().join(", ");
        let kinds: Vec<crate::Canon> = COLUMNS.iter().map(|c| c.2).collect();
        let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
        crate::pg_rows(
            client,
            &format!(
                "SELECT {exprs} FROM {t}{filter} ORDER BY {t}.id",
                t = self.table
            ),
            &kinds,
        )
        .await
    }
}

/// Key (the first column) → hash of the whole canonical row.
pub fn keyed_checksum(rows: &[Vec<Option<String>>]) -> BTreeMap<String, u64> {
    rows.iter()
        .map(|row| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            row.hash(&mut h);
            (row[0].clone().unwrap_or_default(), h.finish())
        })
        .collect()
}

/// Compares two keyed checksums and names the first keys that differ.
pub fn assert_same_checksum(
    source: &[Vec<Option<String>>],
    delta: &[Vec<Option<String>>],
    context: &str,
) {
    let (s, d) = (keyed_checksum(source), keyed_checksum(delta));
    assert_eq!(
        delta.len(),
        d.len(),
        "{context}: the Delta table has duplicate keys"
    );
    if s != d {
        let missing: Vec<&String> = s.keys().filter(|k| !d.contains_key(*k)).take(5).collect();
        let extra: Vec<&String> = d.keys().filter(|k| !s.contains_key(*k)).take(5).collect();
        let differ: Vec<&String> = s
            .iter()
            .filter(|(k, v)| d.get(*k).is_some_and(|dv| dv != *v))
            .map(|(k, _)| k)
            .take(5)
            .collect();
        let show = |k: &String| -> String {
            let find = |rows: &[Vec<Option<String>>]| {
                rows.iter().find(|r| r[0].as_ref() == Some(k)).cloned()
            };
            format!("{k}: source {:?} vs Delta {:?}", find(source), find(delta))
        };
        panic!(
            "{context}: Delta differs from the source ({} vs {} rows); missing in Delta: {missing:?}; extra in Delta: {extra:?}; different: {:?}",
            s.len(),
            d.len(),
            differ.iter().map(|k| show(k)).collect::<Vec<_>>()
        );
    }
}
