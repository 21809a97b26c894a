//! Dagster Pipes (protocol 0.1), as `dataloader load` speaks it when Dagster's
//! `PipesSubprocessClient` (or any Pipes client) starts it: the context and the messages
//! channel come from `DAGSTER_PIPES_CONTEXT` and `DAGSTER_PIPES_MESSAGES`, each
//! base64(zlib(JSON)); every message is one JSON line appended to the channel.
//!
//! Written here rather than taken from `dagster_pipes_rust` 0.1.8: that crate sends no data
//! version, no log lines and no closing exception, which are half of what we report.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use dataloader_engine::checks::{CheckResult, Severity, TableChecks};
use dataloader_engine::LoadReport;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context as LayerContext;

const PROTOCOL_VERSION: &str = "0.1";
const CONTEXT_ENV: &str = "DAGSTER_PIPES_CONTEXT";
const MESSAGES_ENV: &str = "DAGSTER_PIPES_MESSAGES";

#[derive(Debug, thiserror::Error)]
pub enum PipesError {
    #[error("Dagster Pipes: {name} is set but {missing} is not; a Pipes client sets both")]
    HalfSet {
        name: &'static str,
        missing: &'static str,
    },
    #[error(
        "Dagster Pipes: cannot decode {name} (expected base64 of zlib-compressed JSON): {message}"
    )]
    Decode { name: &'static str, message: String },
    #[error("Dagster Pipes: cannot {step} {path}: {source}")]
    File {
        step: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("Dagster Pipes: {0}")]
    Unsupported(String),
}

/// What the orchestrator tells the process (the fields DataLoader uses).
#[derive(Debug, Default, Deserialize)]
pub struct PipesContext {
    #[serde(default)]
    pub asset_keys: Option<Vec<String>>,
    #[serde(default)]
    pub extras: Map<String, Value>,
    /// The Dagster run, named in the log so the two histories can be matched.
    #[serde(default)]
    pub run_id: String,
}

enum Channel {
    File(std::fs::File),
    Stdout,
    Stderr,
}

/// An open Pipes session: the context read, the channel opened.
pub struct Pipes {
    pub context: PipesContext,
    /// The channel, and whether `closed` was sent on it (nothing may follow).
    channel: Mutex<(Channel, bool)>,
}

static SESSION: OnceLock<Pipes> = OnceLock::new();

/// The session, when this process runs under a Pipes client and [`start`] opened it.
pub fn session() -> Option<&'static Pipes> {
    SESSION.get()
}

/// Opens the session when both variables are set (and says `opened`); without them, nothing.
pub fn start() -> Result<(), PipesError> {
    let context = std::env::var(CONTEXT_ENV).ok();
    let messages = std::env::var(MESSAGES_ENV).ok();
    let (context, messages) = match (context, messages) {
        (None, None) => return Ok(()),
        (Some(_), None) => {
            return Err(PipesError::HalfSet {
                name: CONTEXT_ENV,
                missing: MESSAGES_ENV,
            })
        }
        (None, Some(_)) => {
            return Err(PipesError::HalfSet {
                name: MESSAGES_ENV,
                missing: CONTEXT_ENV,
            })
        }
        (Some(c), Some(m)) => (c, m),
    };
    let channel = open_channel(&decode_param(MESSAGES_ENV, messages.trim())?)?;
    let context = load_context(&decode_param(CONTEXT_ENV, context.trim())?)?;
    let pipes = Pipes {
        context,
        channel: Mutex::new((channel, false)),
    };
    pipes.send("opened", json!({"extras": {}}));
    SESSION.get_or_init(|| pipes);
    Ok(())
}

/// base64 → zlib → JSON, as every Pipes implementation encodes its bootstrap parameters.
fn decode_param(name: &'static str, encoded: &str) -> Result<Value, PipesError> {
    let err = |message: String| PipesError::Decode { name, message };
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

fn load_context(param: &Value) -> Result<PipesContext, PipesError> {
    let data = if let Some(path) = param.get("path").and_then(Value::as_str) {
        let text = std::fs::read_to_string(path).map_err(|source| PipesError::File {
            step: "read the context file",
            path: path.to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| PipesError::Decode {
            name: CONTEXT_ENV,
            message: format!("{path}: {e}"),
        })?
    } else if let Some(data) = param.get("data") {
        data.clone()
    } else {
        return Err(PipesError::Unsupported(format!(
            "a context given as {param}: DataLoader reads a context file (\"path\") or inline \"data\""
        )));
    };
    serde_json::from_value(data).map_err(|e| PipesError::Decode {
        name: CONTEXT_ENV,
        message: e.to_string(),
    })
}

fn open_channel(param: &Value) -> Result<Channel, PipesError> {
    if let Some(path) = param.get("path").and_then(Value::as_str) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| PipesError::File {
                step: "open the messages file",
                path: path.to_string(),
                source,
            })?;
        return Ok(Channel::File(file));
    }
    match param.get("stdio").and_then(Value::as_str) {
        Some("stdout") => Ok(Channel::Stdout),
        Some("stderr") => Ok(Channel::Stderr),
        _ => Err(PipesError::Unsupported(format!(
            "a messages channel given as {param}: DataLoader writes to a file (\"path\") or to \"stdio\""
        ))),
    }
}

impl Pipes {
    /// Appends one message; a channel that fails is reported on stderr, never fatal to the load.
    /// Nothing is sent after `closed`.
    fn send(&self, method: &str, params: Value) {
        // One write per message: Dagster reads the file as it grows, and a line that arrived
        // without its newline would be read as two broken messages.
        let mut line = json!({
            "__dagster_pipes_version": PROTOCOL_VERSION,
            "method": method,
            "params": params,
        })
        .to_string();
        line.push('\n');
        let Ok(mut state) = self.channel.lock() else {
            return;
        };
        // Under the channel's lock: `closed` is the last message, whichever thread sends it.
        let (channel, closed) = &mut *state;
        if *closed {
            return;
        }
        *closed = method == "closed";
        let written = match channel {
            Channel::File(f) => f.write_all(line.as_bytes()),
            Channel::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Channel::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        };
        if let Err(e) = written {
            eprintln!("warning: could not send a Dagster Pipes message: {e}");
        }
    }

    /// Whether messages go to stdout, where anything else printed would break them.
    pub fn writes_to_stdout(&self) -> bool {
        self.channel
            .lock()
            .map(|state| matches!(state.0, Channel::Stdout))
            .unwrap_or(false)
    }

    /// The table to load: the context's `table` extra, else its one asset key
    /// (`catalog/schema/table`).
    pub fn table(&self) -> Result<String, PipesError> {
        if let Some(table) = self.context.extras.get("table") {
            return table.as_str().map(str::to_string).ok_or_else(|| {
                PipesError::Unsupported(format!(
                    "the \"table\" extra is {table}; it must be a string catalog.schema.table"
                ))
            });
        }
        match self.context.asset_keys.as_deref() {
            Some([key]) => Ok(key.replace('/', ".")),
            Some(keys) if keys.len() > 1 => Err(PipesError::Unsupported(format!(
                "the run has {} assets ({}) and no \"table\" extra: pass extras={{\"table\": \"catalog.schema.table\"}}",
                keys.len(),
                keys.join(", ")
            ))),
            _ => Err(PipesError::Unsupported(
                "the context names no asset and no \"table\" extra: pass extras={\"table\": \"catalog.schema.table\"}".into(),
            )),
        }
    }

    /// The asset checks the orchestrator declared (the `checks` extra: a list of names, or
    /// `false` for none); `None` when it does not say, which means every check that applies.
    pub fn declared_checks(&self) -> Option<Vec<String>> {
        match self.context.extras.get("checks")? {
            Value::Bool(false) => Some(Vec::new()),
            Value::Array(names) => Some(
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The asset key to report under: the context's own, else the table's.
    fn asset_key(&self, table: &str) -> String {
        match self.context.asset_keys.as_deref() {
            Some([key]) => key.clone(),
            _ => table.replace('.', "/"),
        }
    }

    pub fn log(&self, level: &str, message: &str) {
        self.send("log", json!({"message": message, "level": level}));
    }

    /// The load's materialization; its data version is the Delta table version.
    pub fn report_materialization(
        &self,
        report: &LoadReport,
        table_version: Option<i64>,
        checks: Option<&TableChecks>,
    ) {
        let mut metadata = BTreeMap::new();
        let mut put = |name: &str, value: Value, kind: &str| {
            metadata.insert(name.to_string(), entry(value, kind));
        };
        put("status", json!(report.status.as_str()), "text");
        put("strategy", json!(report.strategy.as_str()), "text");
        put("rows_read", json!(report.rows.read), "int");
        put("rows_written", json!(report.rows.written), "int");
        put("rows_inserted", json!(report.rows.inserted), "int");
        put("rows_updated", json!(report.rows.updated), "int");
        put("rows_deleted", json!(report.rows.deleted), "int");
        put("watermark_before", json!(report.watermark_before), "text");
        put("watermark_after", json!(report.watermark_after), "text");
        put("delta_version", json!(table_version), "int");
        put("table_uri", json!(report.table_url), "url");
        put(
            "duration_s",
            json!(report.duration_ms as f64 / 1000.0),
            "float",
        );
        put("dataloader_run_id", json!(report.run_id), "int");
        put("dagster/table_name", json!(report.table), "text");
        if let Some(checks) = checks {
            put("dagster/row_count", json!(checks.delta_rows), "int");
        }
        if !report.schema_changes.is_empty() {
            put(
                "schema_changes",
                json!(report.schema_changes.join("\n")),
                "text",
            );
        }
        if !report.notes.is_empty() {
            put("notes", json!(report.notes.join("\n")), "text");
        }
        self.send(
            "report_asset_materialization",
            json!({
                "asset_key": self.asset_key(&report.table),
                "data_version": table_version.map(|v| v.to_string()),
                "metadata": metadata,
            }),
        );
    }

    pub fn report_check(&self, table: &str, check: &CheckResult) {
        let mut metadata: BTreeMap<String, Value> = check
            .figures
            .iter()
            .map(|(name, value)| (name.to_string(), entry(json!(value), "int")))
            .collect();
        metadata.insert(
            "description".into(),
            entry(json!(check.description), "text"),
        );
        self.send_check(table, check.name, check.passed, check.severity, metadata);
    }

    /// Declared checks that did not run, failed (as warnings) with why: Dagster waits for a
    /// result of every check the asset declares.
    pub fn report_checks_not_run(&self, table: &str, checks: &[&str], why: &str) {
        for check in checks {
            let metadata = BTreeMap::from([("not_run".to_string(), entry(json!(why), "text"))]);
            self.send_check(table, check, false, Severity::Warn, metadata);
        }
    }

    fn send_check(
        &self,
        table: &str,
        check: &str,
        passed: bool,
        severity: Severity,
        metadata: BTreeMap<String, Value>,
    ) {
        self.send(
            "report_asset_check",
            json!({
                "asset_key": self.asset_key(table),
                "check_name": check,
                "passed": passed,
                "severity": severity,
                "metadata": metadata,
            }),
        );
    }

    /// Ends the session; with an error, Dagster shows it as the external process's exception.
    pub fn close(&self, error: Option<(&str, &str)>) {
        // Dagster reads an "exception" key as an exception, even a null one.
        let params = match error {
            Some((name, message)) => json!({"exception": {
                "name": name, "message": message, "stack": [], "cause": null, "context": null,
            }}),
            None => json!({}),
        };
        self.send("closed", params);
    }
}

/// A metadata value as Pipes carries it; a null is typed `null`.
fn entry(value: Value, kind: &str) -> Value {
    let kind = if value.is_null() { "null" } else { kind };
    json!({"raw_value": value, "type": kind})
}

/// Closes the session, if one is open and not closed yet: the last word of a process that is
/// ending, on an error or a panic that did not close it on the way.
pub fn finish(error: Option<(&str, &str)>) {
    if let Some(pipes) = session() {
        pipes.close(error);
    }
}

/// Forwards log events to the session as Pipes `log` messages.
pub struct LogLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        let Some(pipes) = session() else { return };
        let mut text = EventText::default();
        event.record(&mut text);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            _ => "DEBUG",
        };
        pipes.log(level, &text.finish());
    }
}

/// An event as one line: its message, then its fields as `name=value`.
#[derive(Default)]
struct EventText {
    message: String,
    fields: Vec<String>,
}

impl EventText {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{} ({})", self.message, self.fields.join(", "))
        }
    }
}

impl Visit for EventText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push(format!("{}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push(format!("{}={value}", field.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &Value) -> String {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(value.to_string().as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap())
    }

    #[test]
    fn decodes_params_as_dagster_encodes_them() {
        let param = json!({"path": "/tmp/ctx.json"});
        assert_eq!(decode_param("X", &encode(&param)).unwrap(), param);
        let err = decode_param("X", "not base64!").unwrap_err().to_string();
        assert!(
            err.contains("expected base64 of zlib-compressed JSON"),
            "{err}"
        );
    }

    #[test]
    fn the_table_comes_from_the_extra_or_the_one_asset_key() {
        let pipes = |context: Value| Pipes {
            context: serde_json::from_value(context).unwrap(),
            channel: Mutex::new((Channel::Stderr, false)),
        };
        let p = pipes(json!({"asset_keys": ["bronze/sales/orders"], "run_id": "r"}));
        assert_eq!(p.table().unwrap(), "bronze.sales.orders");
        assert_eq!(p.asset_key("bronze.sales.orders"), "bronze/sales/orders");
        let p = pipes(json!({"asset_keys": ["a/b/c", "a/b/d"], "extras": {"table": "x.y.z"}}));
        assert_eq!(p.table().unwrap(), "x.y.z");
        assert_eq!(p.asset_key("x.y.z"), "x/y/z");
        let p = pipes(json!({"asset_keys": ["a/b/c", "a/b/d"]}));
        assert!(p.table().unwrap_err().to_string().contains("2 assets"));
        let p = pipes(json!({"extras": {"table": 3}}));
        assert!(p
            .table()
            .unwrap_err()
            .to_string()
            .contains("must be a string"));
        assert_eq!(p.declared_checks(), None);
        let p = pipes(json!({"extras": {"checks": false}}));
        assert_eq!(p.declared_checks(), Some(vec![]));
        let p = pipes(json!({"extras": {"checks": ["primary_key_unique"]}}));
        assert_eq!(
            p.declared_checks(),
            Some(vec!["primary_key_unique".to_string()])
        );
    }
}
