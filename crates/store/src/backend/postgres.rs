//! PostgreSQL ("Lakebase"): many writers, so the claim locks the rows it takes and skips those
//! another scheduler holds. Also the URL helpers: a Lakebase URL from the environment, and
//! passwords removed from messages.
//!
//! TLS is sqlx's (rustls), set in the URL with libpq's names, as for PostgreSQL sources:
//! `?sslmode=verify-full&sslrootcert=/path/ca.pem[&sslcert=…&sslkey=…]`. A URL without
//! `sslmode` (and no `PGSSLMODE`) gets the sources' default ([`SslMode::default_for`]):
//! `require` for a host over a network, `prefer` on this machine, where sqlx would `prefer`
//! everywhere.
//!
//! A password given apart from the URL ([`crate::open_with_password`]) that is a file or vault
//! reference is read again every [`PASSWORD_REFRESH`]: when it changed, the pool's options
//! change, so a rotation reaches the connections opened after it (sqlx recycles each one
//! within 30 minutes) without a restart.

use std::str::FromStr;
use std::time::Duration;

use dataloader_core::secret::{cause_unless_secret, mask, SecretSetting};
use dataloader_core::tls::{self, SslMode};
use dataloader_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use super::{Backend, Connected, RowsAffected};
use crate::migrations;

pub struct PostgresBackend;

/// How often a rotating control-database password is read again (a vault read is cached by
/// the resolver for its own bound on top of this).
pub const PASSWORD_REFRESH: Duration = Duration::from_secs(60);

impl Backend for PostgresBackend {
    type Db = sqlx::Postgres;

    const MIGRATIONS: &'static [(&'static str, &'static str)] = migrations::POSTGRES;

    const BEGIN_WRITE: Option<&'static str> = None;

    const TABLE_FOR_RUN: &'static str =
        "SELECT destination_catalog, destination_schema, destination_table \
         FROM table_control WHERE table_id = $1 FOR UPDATE";

    /// SQLite's claim, locking the rows it returns and skipping those another claimer locked.
    const CLAIM_DUE: &'static str = "SELECT table_id FROM table_control WHERE is_active = TRUE \
         AND (next_load_date_time <= $1 OR (next_load_date_time IS NULL AND schedule IS NOT NULL)) \
         AND (status IS NULL OR status NOT IN ('Queued', 'In Progress')) \
         ORDER BY priority, COALESCE(next_load_date_time, $1), table_id LIMIT $2 \
         FOR UPDATE SKIP LOCKED";

    /// In a fixed order, skipping rows another claimer holds: two claimers never wait on
    /// each other or lock in different orders.
    const RESCHEDULE: &'static str = "SELECT table_id, schedule, timezone FROM table_control \
         WHERE schedule_changed ORDER BY table_id FOR UPDATE SKIP LOCKED";

    /// The JSON columns are `jsonb`: read as text, as SQLite keeps them.
    const HISTORY: &'static str =
        "SELECT history_id, table_id, operation, changed_at, changed_by, \
         old_values::text AS old_values, new_values::text AS new_values \
         FROM table_control_history WHERE table_id = $1 ORDER BY history_id DESC";

    const RUN_SECONDS: &'static str =
        "CAST(EXTRACT(EPOCH FROM (finished_at - started_at)) AS DOUBLE PRECISION)";

    /// `postgres://…` or `postgresql://…`.
    async fn connect(
        url: &str,
        password: Option<SecretSetting>,
    ) -> Result<Connected<sqlx::Postgres>> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::config("control_db", redact_url(&e.to_string(), url)))?;
        let options = with_default_sslmode(options, url);
        let given = match &password {
            Some(_) if url_has_password(url) => {
                return Err(Error::config(
                    "control_db_password",
                    "the control database URL holds a password already: give it in one place",
                ))
            }
            Some(setting) => setting.get().await?,
            None => String::new(),
        };
        // sqlx's verify-ca asks rustls for the process's provider, which panics when none is
        // installed and two are built in (ring for sqlx, aws-lc-rs for the others): install
        // aws-lc-rs unless the program chose one. An error means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mode = match options.get_ssl_mode() {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Allow | PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require => SslMode::Require,
            PgSslMode::VerifyCa => SslMode::VerifyCa,
            PgSslMode::VerifyFull => SslMode::VerifyFull,
        };
        let rootcert = url_sets(url, &["sslrootcert", "ssl-root-cert", "ssl-ca"])
            || std::env::var_os("PGSSLROOTCERT").is_some();
        // libpq, and our sources: `require` with a root certificate checks the chain. sqlx
        // would accept any certificate.
        let (options, mode) = match mode {
            SslMode::Require if rootcert => {
                (options.ssl_mode(PgSslMode::VerifyCa), SslMode::VerifyCa)
            }
            m => (options, m),
        };
        let location = redact_url(url, url);
        let mut secrets = password_forms(url).to_vec();
        secrets.push(given.clone());
        let with_password = |o: &PgConnectOptions, p: &str| match p {
            "" => o.clone(),
            p => o.clone().password(p),
        };
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(with_password(&options, &given))
            .await
            .map_err(|e| {
                let mut message = format!("{location}: {}", redact_url(&e.to_string(), url));
                message = mask(&message, &given);
                if let Some(hint) = tls::hint(&message, mode, rootcert) {
                    message = format!("{message}; {hint} (in the URL: ?sslmode=…&sslrootcert=…)");
                }
                Error::Store {
                    step: "connect to the PostgreSQL control database",
                    message,
                    source: cause_unless_secret(e, &secrets),
                }
            })?;
        let mut refresh = None;
        if let Some(setting) = password.filter(SecretSetting::may_rotate) {
            let pool = pool.clone();
            let task = tokio::spawn(async move {
                let mut current = given;
                let mut tick = tokio::time::interval(PASSWORD_REFRESH);
                tick.tick().await;
                while !pool.is_closed() {
                    tick.tick().await;
                    match setting.get().await {
                        Ok(read) if read != current => {
                            pool.set_connect_options(with_password(&options, &read));
                            current = read;
                            tracing::info!("the control database's password changed; new connections use the new one");
                        }
                        Ok(_) => {}
                        // The open connections still work; the next read may succeed.
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the control database's password again")
                        }
                    }
                }
            });
            refresh = Some(task.abort_handle());
        }
        Ok((pool, location, refresh))
    }
}

fn url_has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// `options` with the sources' default `sslmode` for its host, unless the URL (or `PGSSLMODE`)
/// sets one.
fn with_default_sslmode(options: PgConnectOptions, url: &str) -> PgConnectOptions {
    if url_sets(url, &["sslmode", "ssl-mode"]) || std::env::var_os("PGSSLMODE").is_some() {
        return options;
    }
    let local = options.get_socket().is_some() || tls::is_local(options.get_host());
    options.ssl_mode(if local {
        PgSslMode::Prefer
    } else {
        PgSslMode::Require
    })
}

/// Whether the URL's query sets one of `keys`.
fn url_sets(url: &str, keys: &[&str]) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.query_pairs().any(|(k, _)| keys.contains(&k.as_ref())))
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// The `LAKEBASE_*` variables (as the Databricks loader DataLoader replaces names them) as a
/// PostgreSQL URL without a password, when `LAKEBASE_HOST` is set. `LAKEBASE_PASSWORD`, a
/// value or a reference, is given to [`crate::open_with_password`] apart.
pub fn lakebase_url_from_env() -> Option<String> {
    let host = std::env::var("LAKEBASE_HOST").ok()?;
    let port = std::env::var("LAKEBASE_PORT").unwrap_or_else(|_| "5432".into());
    let db = std::env::var("LAKEBASE_DATABASE").unwrap_or_else(|_| "dataloader".into());
    let user = std::env::var("LAKEBASE_USER").unwrap_or_else(|_| "postgres".into());
    Some(format!(
        "postgres://{}@{host}:{port}/{db}",
        url_escape(&user)
    ))
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Removes the password of `url` from `text` (and from the URL form itself). The URL is read
/// by a URL parser, so a password holding `@`, `:` or `/` is found whole; both its written
/// (percent-encoded) and its decoded forms are masked.
pub fn redact_url(text: &str, url: &str) -> String {
    let mut masked = text.to_string();
    for form in password_forms(url).iter().filter(|f| !f.is_empty()) {
        masked = masked.replace(form.as_str(), "***");
    }
    masked
}

/// The forms the password of `url` can take in a message, longest first (so that a form that
/// contains another is masked whole); empty when absent.
fn password_forms(url: &str) -> [String; 3] {
    // As a URL parser reads it (a valid URL), and as written up to the last `@` (a password
    // that holds an unescaped `/` or `@` makes the URL invalid, and still must not show).
    let parsed = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
        .unwrap_or_default();
    let decoded = percent_decoded(&parsed);
    let written = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut forms = [written, parsed, decoded];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

/// `%XX` sequences as the bytes they stand for (a URL's userinfo carries no other escape).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_host_requires_tls_unless_the_url_says_otherwise() {
        let mode = |url: &str| {
            with_default_sslmode(PgConnectOptions::from_str(url).unwrap(), url).get_ssl_mode()
        };
        if std::env::var_os("PGSSLMODE").is_some() {
            return; // The environment decides.
        }
        assert!(matches!(
            mode("postgres://u@db.example.com/d"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@10.1.2.3:5432/d"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@localhost/d"),
            PgSslMode::Prefer
        ));
        assert!(matches!(
            mode("postgres://u@127.0.0.1:5432/d"),
            PgSslMode::Prefer
        ));
        assert!(matches!(
            mode("postgres://u@db.example.com/d?sslmode=disable"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@db.example.com/d?sslmode=verify-full&sslrootcert=/ca.pem"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://u@localhost/d?ssl-mode=require"),
            PgSslMode::Require
        ));
    }

    #[test]
    fn redacts_passwords() {
        let url = "postgres://u:s3cret@h:5432/db";
        assert_eq!(redact_url(url, url), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("error at s3cret", url), "error at ***");
        // A password holding `@` (written raw, or percent-encoded) is masked whole.
        let raw = "postgres://u:p@ss:w/rd@h:5432/db";
        let redacted = redact_url(&format!("cannot reach {raw}: p@ss:w/rd rejected"), raw);
        assert!(
            !redacted.contains("ss:w") && !redacted.contains("rd@"),
            "{redacted}"
        );
        assert!(redacted.contains("@h:5432/db"), "{redacted}");
        let encoded = "postgres://u:p%40ss%2Fx@h/db";
        let redacted = redact_url(&format!("{encoded} said p@ss/x is wrong"), encoded);
        assert_eq!(redacted, "postgres://u:***@h/db said *** is wrong");
        assert_eq!(redact_url("no secret", "postgres://u@h/db"), "no secret");
    }
}
