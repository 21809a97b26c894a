//! The control tables' migrations: the SQL files under `src/migrations/{sqlite,postgres}/`,
//! embedded in order, one list per backend, and the sqlx migrator that runs them. A test holds
//! each list to its folder, so a file added but not listed (or listed out of order) fails.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlStr;

/// SQLite's scripts, in order: file name and SQL.
pub(crate) const SQLITE: &[(&str, &str)] = &[
    (
        "0001_control_tables.sql",
        include_str!("migrations/sqlite/0001_control_tables.sql"),
    ),
    (
        "0002_strategy_options.sql",
        include_str!("migrations/sqlite/0002_strategy_options.sql"),
    ),
    (
        "0003_scheduler.sql",
        include_str!("migrations/sqlite/0003_scheduler.sql"),
    ),
    (
        "0004_parallel_reads.sql",
        include_str!("migrations/sqlite/0004_parallel_reads.sql"),
    ),
    (
        "0005_layout.sql",
        include_str!("migrations/sqlite/0005_layout.sql"),
    ),
    (
        "0006_loaded_from.sql",
        include_str!("migrations/sqlite/0006_loaded_from.sql"),
    ),
    (
        "0007_column_types.sql",
        include_str!("migrations/sqlite/0007_column_types.sql"),
    ),
    (
        "0008_safe_control_tables.sql",
        include_str!("migrations/sqlite/0008_safe_control_tables.sql"),
    ),
    (
        "0009_api_tokens.sql",
        include_str!("migrations/sqlite/0009_api_tokens.sql"),
    ),
    (
        "0010_scheduler_workers.sql",
        include_str!("migrations/sqlite/0010_scheduler_workers.sql"),
    ),
    (
        "0011_alerts.sql",
        include_str!("migrations/sqlite/0011_alerts.sql"),
    ),
    (
        "0012_connection_history.sql",
        include_str!("migrations/sqlite/0012_connection_history.sql"),
    ),
];

/// PostgreSQL's scripts, in order: file name and SQL.
pub(crate) const POSTGRES: &[(&str, &str)] = &[
    (
        "0001_control_tables.sql",
        include_str!("migrations/postgres/0001_control_tables.sql"),
    ),
    (
        "0002_strategy_options.sql",
        include_str!("migrations/postgres/0002_strategy_options.sql"),
    ),
    (
        "0003_scheduler.sql",
        include_str!("migrations/postgres/0003_scheduler.sql"),
    ),
    (
        "0004_parallel_reads.sql",
        include_str!("migrations/postgres/0004_parallel_reads.sql"),
    ),
    (
        "0005_layout.sql",
        include_str!("migrations/postgres/0005_layout.sql"),
    ),
    (
        "0006_loaded_from.sql",
        include_str!("migrations/postgres/0006_loaded_from.sql"),
    ),
    (
        "0007_column_types.sql",
        include_str!("migrations/postgres/0007_column_types.sql"),
    ),
    (
        "0008_safe_control_tables.sql",
        include_str!("migrations/postgres/0008_safe_control_tables.sql"),
    ),
    (
        "0009_api_tokens.sql",
        include_str!("migrations/postgres/0009_api_tokens.sql"),
    ),
    (
        "0010_scheduler_workers.sql",
        include_str!("migrations/postgres/0010_scheduler_workers.sql"),
    ),
    (
        "0011_alerts.sql",
        include_str!("migrations/postgres/0011_alerts.sql"),
    ),
    (
        "0012_connection_history.sql",
        include_str!("migrations/postgres/0012_connection_history.sql"),
    ),
];

/// Scripts reworded after their release in comments only, with the checksum sqlx recorded when
/// it applied them. sqlx refuses a database whose applied script no longer hashes the same, so
/// these keep their released checksum; a test holds their SQL, comments aside, to the release.
const RELEASED_CHECKSUMS: &[(&str, &str)] = &[
    (
        POSTGRES[0].1,
        "8bf180e8f977077950564e3dc6f8a42daf239332e1ccf2dfca316ddcc371314bfeab519efc7b86cfd294ff0caf7be19a",
    ),
    (
        SQLITE[0].1,
        "c567f9735901b07b6d22b82ecbeaf05426074c872bd5f9cffc1835cc0675b54597404353cab7de072885b336e995d92e",
    ),
];

/// The checksum a script's applied version carries in `_dataloader_migrations`.
fn checksum(sql: &'static str) -> Option<Vec<u8>> {
    let (_, hex) = RELEASED_CHECKSUMS
        .iter()
        .find(|(script, _)| *script == sql)?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// The migrator for `scripts`: version N is the N-th script, described by its file name as
/// sqlx does (`0001_control_tables.sql` is "control tables"); the applied versions are kept in
/// `_dataloader_migrations`.
pub(crate) fn migrator(scripts: &'static [(&'static str, &'static str)]) -> Migrator {
    let mut migrator = Migrator::with_migrations(
        scripts
            .iter()
            .enumerate()
            .map(|(i, (file, sql))| {
                let mut migration = Migration::new(
                    i as i64 + 1,
                    Cow::Owned(description(file)),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                );
                if let Some(released) = checksum(sql) {
                    migration.checksum = Cow::Owned(released);
                }
                migration
            })
            .collect(),
    );
    migrator.table_name = Cow::Borrowed("_dataloader_migrations");
    migrator
}

/// `0001_control_tables.sql` as "control tables".
fn description(file: &str) -> String {
    let name = file.split_once('_').map_or(file, |(_, rest)| rest);
    name.trim_end_matches(".sql").replace('_', " ")
}

#[cfg(test)]
mod upgrade_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The `.sql` files of `src/migrations/<folder>`: name and SQL, by name.
    fn files(folder: &str) -> Vec<(String, String)> {
        let dir = format!("{}/src/migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn each_list_is_its_folder_in_order() {
        for (folder, scripts) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let listed: Vec<&str> = scripts.iter().map(|(file, _)| *file).collect();
            let files = files(folder);
            let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(
                listed, names,
                "src/migrations/{folder}: list every file in migrations.rs, in order"
            );
            for (i, ((file, sql), (_, text))) in scripts.iter().zip(&files).enumerate() {
                assert_eq!(sql, text, "{folder}/{file}: its entry embeds another file");
                // The file's number is its version: its place in the list.
                assert_eq!(
                    file.split_once('_')
                        .and_then(|(n, _)| n.parse::<usize>().ok()),
                    Some(i + 1),
                    "src/migrations/{folder}/{file}: number it {:04}",
                    i + 1
                );
            }
        }
    }

    /// A script that keeps its released checksum changed in its comments only: its SQL is the
    /// SQL that was released and applied.
    #[test]
    fn a_script_keeping_its_released_checksum_changed_only_in_comments() {
        let released_sql = [
            "d24ce2bc3f27b5575699ee066e71f74fec46bbf439a8fbf6f7d64397b46b41f8d1c1215e4940fe4d44835f6af26d86d1",
            "ea94f42adf0a75459d4099f40846427353cc6a6b66687bd78225aad9917d4c63a023931239a879f6096be7946af18c87",
        ];
        assert_eq!(RELEASED_CHECKSUMS.len(), released_sql.len());
        for ((sql, _), released) in RELEASED_CHECKSUMS.iter().zip(released_sql) {
            let statements: String = sql
                .lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .map(|line| format!("{line}\n"))
                .collect();
            let hashed = Migration::new(
                1,
                Cow::Borrowed(""),
                MigrationType::Simple,
                SqlStr::from_static(Box::leak(statements.into_boxed_str())),
                false,
            )
            .checksum;
            let hex: String = hashed.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, released);
            let kept = checksum(sql).unwrap();
            assert_eq!(kept.len(), 48, "a SHA-384");
        }
    }

    #[test]
    fn descriptions_come_from_the_file_names() {
        // As the versions already applied were recorded.
        let recorded = [
            "control tables",
            "strategy options",
            "scheduler",
            "parallel reads",
            "layout",
            "loaded from",
            "column types",
            "safe control tables",
            "api tokens",
            "scheduler workers",
            "alerts",
            "connection history",
        ];
        for scripts in [SQLITE, POSTGRES] {
            let described: Vec<String> =
                scripts.iter().map(|(file, _)| description(file)).collect();
            assert_eq!(described, recorded);
        }
    }
}
