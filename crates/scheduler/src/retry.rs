//! Retry analysis, the failed monitor of the Dagster loader it replaces: a failure's error kind
//! and message decide its category and what to do about it. The rules are the default and the fallback; an optional
//! LLM endpoint may only rewrite the explanation for a person.

use std::time::Duration;

use dataloader_core::{ErrorKind, FailureCategory};
use serde::Serialize;

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    RetryNow,
    RetryWithBackoff,
    DoNotRetry,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::RetryNow => "retry_now",
            Recommendation::RetryWithBackoff => "retry_with_backoff",
            Recommendation::DoNotRetry => "do_not_retry",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub category: &'static str,
    pub recommendation: Recommendation,
    pub explanation: String,
}

/// One rule: a category, its recommendation and advice, and what in an error shows it.
struct Rule {
    category: FailureCategory,
    recommendation: Recommendation,
    advice: &'static str,
    /// Error kinds that always mean this category.
    kinds: &'static [ErrorKind],
    /// Lower-case fragments of messages, whatever the database: DataLoader's own, the
    /// operating system's, HTTP's. Each connector adds its driver's
    /// (`dataloader_sources::Connector::failures`).
    fragments: &'static [&'static str],
}

impl Rule {
    fn matches(&self, text: &str) -> bool {
        let connectors = dataloader_sources::connectors()
            .iter()
            .flat_map(|c| c.failures)
            .filter(|(category, _)| *category == self.category)
            .flat_map(|(_, fragments)| *fragments);
        self.fragments
            .iter()
            .chain(connectors)
            .any(|f| text.contains(f))
    }
}

use FailureCategory as F;
use Recommendation::*;

/// Checked in order: the first rule that matches wins, so the specific come before the broad.
const RULES: &[Rule] = &[
    Rule {
        category: F::Cancelled,
        recommendation: DoNotRetry,
        advice: "the load was cancelled (too long queued or running, or shut down); it runs again at its next scheduled time — raise timeout_minutes if it needs longer",
        kinds: &[ErrorKind::Cancelled],
        fragments: &["was cancelled"],
    },
    Rule {
        category: F::Authentication,
        recommendation: DoNotRetry,
        advice: "the database refused the credentials: check the user and the password reference of the connection, then load again",
        kinds: &[ErrorKind::Auth],
        // DataLoader's own `authentication failed:`, and a secret's variable `is not set`.
        fragments: &["authentication failed", "is not set"],
    },
    Rule {
        category: F::Permission,
        recommendation: DoNotRetry,
        advice: "the user may not read this object: grant SELECT on it to the connection's user",
        kinds: &[],
        fragments: &[],
    },
    Rule {
        category: F::Lock,
        recommendation: RetryNow,
        advice: "the read met a lock, deadlock or serialization conflict; it usually passes when tried again",
        kinds: &[],
        fragments: &["deadlock"],
    },
    Rule {
        category: F::Throttling,
        recommendation: RetryWithBackoff,
        advice: "the server refused more work (too many connections or queries); retried later, or lower max_connections for this connection",
        kinds: &[],
        fragments: &[
            "rate limit",
            "throttl",
            "too many requests",
            "status 429",
            "concurrency limit",
        ],
    },
    Rule {
        category: F::Timeout,
        recommendation: RetryWithBackoff,
        advice: "a query or connection timed out; retried later — if it keeps happening, the source is overloaded or the query needs an index",
        kinds: &[],
        fragments: &["timed out", "query timeout"],
    },
    Rule {
        category: F::Network,
        recommendation: RetryWithBackoff,
        advice: "the database could not be reached; retried with backoff — check that it is up and reachable from this machine",
        kinds: &[ErrorKind::Connect],
        fragments: &[
            "connection refused",
            "cannot reach",
            "could not connect",
            "connection reset",
            "broken pipe",
            "no route to host",
            "network",
            "connection closed",
            "name or service not known",
            "failed to lookup address",
        ],
    },
    Rule {
        category: F::MissingObject,
        recommendation: DoNotRetry,
        advice: "a table or column the configuration names does not exist: fix the table's configuration or the source",
        kinds: &[],
        fragments: &["not found", "does not exist"],
    },
    Rule {
        category: F::SchemaMismatch,
        recommendation: DoNotRetry,
        advice: "the source's columns changed in a way the table's schema policy refuses: follow the remedy in the error (often `dataloader load TABLE --full-refresh`)",
        kinds: &[ErrorKind::Schema],
        fragments: &["schema_evolution", "widened from", "changed from"],
    },
    Rule {
        category: F::DataError,
        recommendation: DoNotRetry,
        advice: "a value cannot be stored exactly: fix the data, or cast the column in the source",
        kinds: &[ErrorKind::TypeMapping],
        fragments: &["out of range"],
    },
    Rule {
        category: F::ResourceExhausted,
        recommendation: RetryWithBackoff,
        advice: "the server or this machine ran out of memory or disk; retried later — free resources or load smaller chunks",
        kinds: &[],
        fragments: &["out of memory", "no space left on device", "disk full"],
    },
    Rule {
        category: F::Configuration,
        recommendation: DoNotRetry,
        advice: "the table's configuration is invalid: fix it (`dataloader table update` or `apply`)",
        kinds: &[ErrorKind::Config],
        fragments: &[],
    },
];

/// Classifies a failure from its error kind (`historical_metadata.error_class`) and message.
pub fn analyze(error_class: Option<ErrorKind>, error_text: &str) -> Analysis {
    let text = error_text.to_lowercase();
    let matched = RULES.iter().find(|r| r.matches(&text)).or_else(|| {
        RULES
            .iter()
            .find(|r| error_class.is_some_and(|k| r.kinds.contains(&k)))
    });
    match matched {
        Some(rule) => Analysis {
            category: rule.category.as_str(),
            recommendation: rule.recommendation,
            explanation: rule.advice.to_string(),
        },
        None => Analysis {
            category: "unknown",
            recommendation: RetryWithBackoff,
            explanation: "an error DataLoader does not recognise; retried with backoff — read the error text, and report it if it persists".into(),
        },
    }
}

/// `base · 2^attempt`, capped, with ±20 % jitter so many failed tables do not retry at once.
pub fn backoff(base: Duration, max: Duration, attempt: i64, jitter_seed: u64) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.clamp(0, 20) as u32)
        .min(max);
    let jitter = (jitter_seed % 41) as f64 / 100.0 - 0.2;
    exp.mul_f64(1.0 + jitter)
}

/// An OpenAI-compatible chat endpoint that rewrites the explanation.
#[derive(Clone)]
pub struct LlmConfig {
    /// Base URL; `/chat/completions` is appended.
    pub url: String,
    /// The API key, already resolved from its reference.
    pub api_key: Option<String>,
    pub model: String,
    pub timeout: Duration,
}

/// Without the key: a configuration printed in a log must not carry it.
impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Asks the endpoint for a one-line explanation; `None` on any failure (the rules stand).
pub async fn llm_explain(
    llm: &LlmConfig,
    table: &str,
    error_text: &str,
    analysis: &Analysis,
) -> Option<String> {
    let body = serde_json::json!({
        "model": llm.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You explain data-load failures to data engineers in one sentence: the cause and what to do."},
            {"role": "user", "content": format!(
                "Table {table} failed. Category: {}. Recommendation: {}. Error: {error_text}",
                analysis.category, analysis.recommendation.as_str()
            )},
        ],
    });
    let client = reqwest::Client::builder()
        .timeout(llm.timeout)
        .build()
        .ok()?;
    let mut request = client
        .post(format!(
            "{}/chat/completions",
            llm.url.trim_end_matches('/')
        ))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = &llm.api_key {
        request = request.bearer_auth(key);
    }
    let response = match request.send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::warn!(status = %r.status(), "retry analysis endpoint refused; using the rules");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "retry analysis endpoint failed; using the rules");
            return None;
        }
    };
    let value: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    let text = value["choices"][0]["message"]["content"].as_str()?.trim();
    (!text.is_empty()).then(|| text.lines().next().unwrap_or(text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real messages from the drivers of every source DataLoader reads (their fragments are in
    /// each connector's `connector.rs`), and DataLoader's own.
    #[test]
    fn classifies_real_driver_messages() {
        let cases: &[(Option<ErrorKind>, &str, &str, Recommendation)] = &[
            // PostgreSQL
            (Some(ErrorKind::Connect), "connection \"pg\": cannot reach postgresql at 127.0.0.1:1/x: error connecting to server: Connection refused (os error 111)", "network", RetryWithBackoff),
            (Some(ErrorKind::Auth), "connection \"pg\": authentication failed: password authentication failed for user \"loader\"", "authentication", DoNotRetry),
            (Some(ErrorKind::Auth), "role \"ghost\" does not exist", "authentication", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "deadlock detected", "lock", RetryNow),
            (Some(ErrorKind::SourceQuery), "could not serialize access due to concurrent update", "lock", RetryNow),
            (Some(ErrorKind::SourceQuery), "canceling statement due to statement timeout", "timeout", RetryWithBackoff),
            (Some(ErrorKind::Connect), "sorry, too many clients already: remaining connection slots are reserved for non-replication superuser connections", "throttling", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "permission denied for table orders", "permission", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "relation \"public.orders\" does not exist", "missing object", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "invalid input syntax for type numeric: \"abc\"", "data error", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "could not resize shared memory segment: No space left on device", "resource exhausted", RetryWithBackoff),
            // MySQL / MariaDB
            (Some(ErrorKind::Auth), "Access denied for user 'loader'@'10.0.0.5' (using password: YES)", "authentication", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "Lock wait timeout exceeded; try restarting transaction", "lock", RetryNow),
            (Some(ErrorKind::Connect), "Too many connections", "throttling", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "Table 'erp.orders' doesn't exist", "missing object", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "SELECT command denied to user 'loader'@'%' for table 'orders'", "permission", DoNotRetry),
            (Some(ErrorKind::Connect), "Communications link failure: The last packet sent successfully to the server was 0 milliseconds ago", "network", RetryWithBackoff),
            // SQL Server
            (Some(ErrorKind::Auth), "Login failed for user 'loader'. (18456)", "authentication", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "Transaction (Process ID 54) was deadlocked on lock resources with another process and has been chosen as the deadlock victim.", "lock", RetryNow),
            (Some(ErrorKind::SourceQuery), "Invalid object name 'dbo.Orders'.", "missing object", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "The SELECT permission was denied on the object 'Orders', database 'ERP', schema 'dbo'.", "permission", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "Execution Timeout Expired.  The timeout period elapsed prior to completion of the operation", "timeout", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "Conversion failed when converting the varchar value 'x' to data type int.", "data error", DoNotRetry),
            // Oracle
            (Some(ErrorKind::Auth), "ORA-01017: invalid username/password; logon denied", "authentication", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "ORA-00942: table or view does not exist", "missing object", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "ORA-00060: deadlock detected while waiting for resource", "lock", RetryNow),
            (Some(ErrorKind::Connect), "ORA-12541: TNS:no listener", "network", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "ORA-01722: invalid number", "data error", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "ORA-04031: unable to allocate 4160 bytes of shared memory", "resource exhausted", RetryWithBackoff),
            // Snowflake
            (Some(ErrorKind::Auth), "390100 (08004): Incorrect username or password was specified.", "authentication", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "002003 (42S02): SQL compilation error: Object 'ERP.PUBLIC.ORDERS' does not exist or not authorized.", "missing object", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "000630 (57014): Statement reached its statement or warehouse timeout of 3,600 second(s) and was canceled.", "timeout", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "HTTP status 429: Too Many Requests", "throttling", RetryWithBackoff),
            // ClickHouse
            (Some(ErrorKind::Auth), "Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with such name.", "authentication", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "Code: 60. DB::Exception: Table erp.orders doesn't exist.", "missing object", DoNotRetry),
            (Some(ErrorKind::SourceQuery), "Code: 241. DB::Exception: Memory limit (for query) exceeded: would use 9.31 GiB", "resource exhausted", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "Code: 202. DB::Exception: Too many simultaneous queries. Maximum: 100.", "throttling", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "Code: 497. DB::Exception: default: Not enough privileges.", "permission", DoNotRetry),
            // DataLoader's own
            (Some(ErrorKind::Schema), "destination b.s.t: column \"n\" widened from Int32 to Int64 in the source", "schema mismatch", DoNotRetry),
            (Some(ErrorKind::TypeMapping), "public.t: column \"amount\": numeric NaN, which Delta's decimal cannot store", "data error", DoNotRetry),
            (Some(ErrorKind::Cancelled), "load of b.s.t was cancelled", "cancelled", DoNotRetry),
            (Some(ErrorKind::Config), "secret env:PW: environment variable PW is not set", "authentication", DoNotRetry),
            (Some(ErrorKind::Config), "incremental_column: the incremental strategy needs an incremental column", "configuration", DoNotRetry),
            (Some(ErrorKind::Internal), "something nobody has seen", "unknown", RetryWithBackoff),
            // Numbers in addresses and names are not error codes.
            (Some(ErrorKind::Connect), "connection \"pg\": cannot reach postgresql at 127.0.0.1:42953/db_429: Connection refused", "network", RetryWithBackoff),
            (Some(ErrorKind::SourceQuery), "column \"patterns: x\" is ambiguous", "unknown", RetryWithBackoff),
        ];
        for (kind, message, category, recommendation) in cases {
            let a = analyze(*kind, message);
            assert_eq!(
                (a.category, a.recommendation),
                (*category, *recommendation),
                "{message}"
            );
            assert!(!a.explanation.is_empty());
        }
    }

    /// A connector's fragment shows the category it is declared under: no earlier rule takes
    /// it first.
    #[test]
    fn each_connector_fragment_shows_its_category() {
        for c in dataloader_sources::connectors() {
            for (category, fragments) in c.failures {
                for f in *fragments {
                    assert_eq!(
                        analyze(None, f).category,
                        category.as_str(),
                        "{}: {f}",
                        c.name
                    );
                }
            }
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(3600);
        let b0 = backoff(base, max, 0, 20);
        let b3 = backoff(base, max, 3, 20);
        assert_eq!(b0, Duration::from_secs(60));
        assert_eq!(b3, Duration::from_secs(480));
        assert_eq!(backoff(base, max, 10, 20), max);
        let low = backoff(base, max, 0, 0);
        let high = backoff(base, max, 0, 40);
        assert!(low >= Duration::from_secs(48) && high <= Duration::from_secs(72) && low < high);
    }
}
