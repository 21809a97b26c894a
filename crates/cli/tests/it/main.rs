//! The `dataloader` binary as a user runs it: each test in a fresh folder, against the real
//! PostgreSQL on 127.0.0.1:5432 where a source is needed.

mod alerts;
mod apply;
mod bad_input;
mod browser;
mod column_types;
mod console;
mod crash;
#[cfg(feature = "dagster")]
mod dagster;
mod environments;
mod plain_sql;
mod postgres;
mod quickstart;
mod scheduler;
mod source_query;
mod strategies;
mod tls;
mod unity;
mod vault;

use std::path::Path;
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `connection add NAME` for the test PostgreSQL server's `database`.
pub fn pg_connection_args(name: &str, database: &str) -> Vec<String> {
    let (host, port) = dataloader_testkit::pg_host_port();
    let port = port.to_string();
    let user = dataloader_testkit::pg_user();
    [
        "connection",
        "add",
        name,
        "--type",
        "postgresql",
        "--host",
        &host,
        "--port",
        &port,
        "--database",
        database,
        "--user",
        &user,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A source and a PostgreSQL control database on the test server, and a folder the CLI runs
/// in against them, after `init` and `connection add pg`.
pub struct PgControl {
    pub source: dataloader_testkit::PgTestDb,
    pub control: dataloader_testkit::PgTestDb,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl PgControl {
    pub async fn new(prefix: &str, source_sql: &str) -> PgControl {
        let source = dataloader_testkit::PgTestDb::create(prefix).await;
        source.client.batch_execute(source_sql).await.unwrap();
        let control = dataloader_testkit::PgTestDb::create(&format!("{prefix}_ctl")).await;
        let url = control.url();
        let setup = PgControl {
            source,
            control,
            dir: tempfile::tempdir().unwrap(),
            url,
        };
        setup.run(&["init"]).ok();
        let args = pg_connection_args("pg", &setup.source.name);
        setup
            .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .ok();
        setup
    }

    pub fn run(&self, args: &[&str]) -> Run {
        dataloader_env(
            self.dir.path(),
            args,
            &[("DATALOADER_CONTROL_DB", self.url.as_str())],
        )
    }
}

/// Runs `dataloader` in `dir` with a clean DataLoader environment.
pub fn dataloader(dir: &Path, args: &[&str]) -> Run {
    dataloader_env(dir, args, &[])
}

/// The dataloader command in `dir`, with the settings of the caller's environment removed and
/// `env` set.
pub fn dataloader_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dataloader"));
    cmd.args(args).current_dir(dir);
    for var in [
        "DATALOADER_CONTROL_DB",
        "DATALOADER_LAKE_ROOT",
        "DATALOADER_CATALOG",
        "DATALOADER_CONFIG",
        "DATALOADER_BATCH_SIZE",
        "DATALOADER_FAULT",
        "DATALOADER_LEASE",
        "DATALOADER_SECRET_CACHE_TTL",
        "DATALOADER_LOG",
        "DATALOADER_DAGSTER_LOG",
        "DAGSTER_PIPES_CONTEXT",
        "DAGSTER_PIPES_MESSAGES",
        "LAKEBASE_HOST",
        "LAKEBASE_PASSWORD",
        "DATALOADER_CONTROL_DB_PASSWORD",
        "DATABRICKS_TOKEN",
        "DATABRICKS_CLIENT_ID",
        "ARM_CLIENT_ID",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn dataloader_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = dataloader_command(dir, args, env);
    let out = cmd.output().expect("run dataloader");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// A failure with exactly one `error:` line that contains `expected`.
    #[track_caller]
    pub fn fails_with(self, expected: &str) -> Run {
        assert_ne!(self.code, 0, "expected failure\nstdout: {}", self.stdout);
        assert!(
            self.stderr.starts_with("error: "),
            "stderr: {}",
            self.stderr
        );
        assert!(
            self.stderr.contains(expected),
            "expected {expected:?} in stderr: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}
