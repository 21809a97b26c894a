//! The one error type the seams speak. Variants carry context (table, connection, step), and
//! the foreign error they wrap as their `source` ([`Cause`]); [`ErrorKind`] groups them for
//! retry analysis and exit codes; [`FailureCategory`] names what a failure shows.

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The foreign error (a driver's, an I/O, a parse error) a variant wraps, kept so that callers
/// and retry rules can inspect it. The variant's `message` already says what it says: print
/// [`Error`] alone, not its chain of sources. Under a masked message, keep it only through
/// [`crate::secret::cause_unless_secret`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    Config,
    Connect,
    Auth,
    SourceQuery,
    TypeMapping,
    Write,
    Conflict,
    Schema,
    Store,
    Catalog,
    Cancelled,
    /// The run lost its lease (its process stalled or lost the control database): it stopped
    /// and committed nothing more; another worker may own the table now.
    WorkerLost,
    Internal,
}

impl ErrorKind {
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Config,
        ErrorKind::Connect,
        ErrorKind::Auth,
        ErrorKind::SourceQuery,
        ErrorKind::TypeMapping,
        ErrorKind::Write,
        ErrorKind::Conflict,
        ErrorKind::Schema,
        ErrorKind::Store,
        ErrorKind::Catalog,
        ErrorKind::Cancelled,
        ErrorKind::WorkerLost,
        ErrorKind::Internal,
    ];

    /// The name `historical_metadata.error_class` keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "Config",
            ErrorKind::Connect => "Connect",
            ErrorKind::Auth => "Auth",
            ErrorKind::SourceQuery => "SourceQuery",
            ErrorKind::TypeMapping => "TypeMapping",
            ErrorKind::Write => "Write",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Schema => "Schema",
            ErrorKind::Store => "Store",
            ErrorKind::Catalog => "Catalog",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::WorkerLost => "WorkerLost",
            ErrorKind::Internal => "Internal",
        }
    }

    /// The kind an `error_class` names; `None` for text no DataLoader kind has (a row the
    /// replaced loader wrote, or one edited by hand).
    pub fn from_class(class: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.as_str() == class)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failure shows, as the retry analysis names it: the scheduler's rules give each
/// category its recommendation, and each connector says which of its driver's messages show
/// which category (`dataloader_sources::Connector::failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCategory {
    Cancelled,
    Authentication,
    Permission,
    Lock,
    Throttling,
    Timeout,
    Network,
    MissingObject,
    SchemaMismatch,
    DataError,
    ResourceExhausted,
    Configuration,
}

impl FailureCategory {
    /// The name stored on a run (`retry_category`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::Cancelled => "cancelled",
            FailureCategory::Authentication => "authentication",
            FailureCategory::Permission => "permission",
            FailureCategory::Lock => "lock",
            FailureCategory::Throttling => "throttling",
            FailureCategory::Timeout => "timeout",
            FailureCategory::Network => "network",
            FailureCategory::MissingObject => "missing object",
            FailureCategory::SchemaMismatch => "schema mismatch",
            FailureCategory::DataError => "data error",
            FailureCategory::ResourceExhausted => "resource exhausted",
            FailureCategory::Configuration => "configuration",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is wrong; `field` names it as the user wrote it.
    #[error("{field}: {message}")]
    InvalidConfig { field: String, message: String },

    /// A connection option its connector does not take: a typo would otherwise be ignored.
    #[error("connection \"{connection}\": {db_type} has no option \"{key}\"{}", options_list(.valid))]
    UnknownOption {
        connection: String,
        db_type: String,
        key: String,
        /// The options the connector takes.
        valid: Vec<String>,
    },

    #[error("unknown connection \"{name}\"{}", known_list(.known))]
    UnknownConnection { name: String, known: Vec<String> },

    #[error("no table with destination {destination} in table_control")]
    UnknownTable { destination: String },

    #[error("connection \"{connection}\": cannot reach {db_type} at {address}: {message}")]
    Connect {
        connection: String,
        db_type: String,
        address: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },

    #[error("connection \"{connection}\": authentication failed: {message}")]
    Auth {
        connection: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },

    #[error("connection \"{connection}\": source table {table} not found")]
    SourceTableNotFound { connection: String, table: String },

    #[error("{role} column \"{column}\" not found in {table} (columns: {})", .columns.join(", "))]
    ColumnNotFound {
        table: String,
        column: String,
        role: &'static str,
        columns: Vec<String>,
    },

    #[error("{table}: column \"{column}\" has type {native_type}, which DataLoader cannot map to Delta; load it as text with column_types: {{{column}: string}} (see docs/configuration.md#column-types), or set source_query to a SELECT that casts it to a mapped type")]
    UnsupportedType {
        table: String,
        column: String,
        native_type: String,
    },

    /// A value the destination cannot hold exactly (NaN, infinity, out of range, too precise).
    #[error("{table}: column \"{column}\": {message} (to load every value exactly, load the column as text: column_types: {{{column}: string}})")]
    UnrepresentableValue {
        table: String,
        column: String,
        message: String,
    },

    #[error("connection \"{connection}\", {table}: {step} failed: {message}")]
    SourceQuery {
        connection: String,
        table: String,
        step: &'static str,
        message: String,
        #[source]
        source: Option<Cause>,
    },

    #[error("destination {table}: {step} failed: {message}")]
    Write {
        table: String,
        step: &'static str,
        message: String,
        #[source]
        source: Option<Cause>,
    },

    #[error("destination {table}: {message}")]
    Conflict { table: String, message: String },

    /// The source's columns changed in a way the table's schema policy does not allow.
    #[error("destination {table}: {message}")]
    SchemaChange { table: String, message: String },

    #[error("control store: {step} failed: {message}")]
    Store {
        step: &'static str,
        message: String,
        #[source]
        source: Option<Cause>,
    },

    /// A catalog request failed; the Delta table is as the load left it.
    #[error("catalog {catalog}, {table}: {step} failed: {message}")]
    Catalog {
        catalog: String,
        table: String,
        step: &'static str,
        message: String,
    },

    #[error("secret {reference}: {message}")]
    Secret {
        reference: String,
        /// Why; decides the kind (an unreachable vault is worth a retry, a missing secret not).
        failure: crate::secret::SecretFailure,
        message: String,
        #[source]
        source: Option<Cause>,
    },

    #[error("load of {table} was cancelled")]
    Cancelled { table: String },

    #[error("load of {table} stopped: run {run_id} {message}; nothing more was committed")]
    LeaseLost {
        table: String,
        run_id: i64,
        message: String,
    },

    #[error("internal error: {0}")]
    Internal(String),
}

fn options_list(valid: &[String]) -> String {
    if valid.is_empty() {
        " (it takes none)".into()
    } else {
        format!(" (its options: {})", valid.join(", "))
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (no connections are defined yet: add one with `dataloader connection add`)".into()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig { .. }
            | Error::UnknownOption { .. }
            | Error::UnknownConnection { .. }
            | Error::UnknownTable { .. }
            | Error::SourceTableNotFound { .. }
            | Error::ColumnNotFound { .. } => ErrorKind::Config,
            Error::Secret { failure, .. } => failure.kind(),
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::UnsupportedType { .. } | Error::UnrepresentableValue { .. } => {
                ErrorKind::TypeMapping
            }
            Error::SourceQuery { .. } => ErrorKind::SourceQuery,
            Error::Write { .. } => ErrorKind::Write,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::SchemaChange { .. } => ErrorKind::Schema,
            Error::Store { .. } => ErrorKind::Store,
            Error::Catalog { .. } => ErrorKind::Catalog,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::LeaseLost { .. } => ErrorKind::WorkerLost,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The control store failed at `step` because of `err`; the message is its text.
    pub fn store(step: &'static str, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Store {
            step,
            message: err.to_string(),
            source: Some(err.into()),
        }
    }

    /// The control store failed at `step` for a reason no foreign error carries.
    pub fn store_message(step: &'static str, message: impl Into<String>) -> Self {
        Error::Store {
            step,
            message: message.into(),
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, ErrorKind};

    /// `error_class` keeps the names history has always shown, and reads them back.
    #[test]
    fn every_kind_keeps_its_name_in_history() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind.as_str(), format!("{kind:?}"));
            assert_eq!(ErrorKind::from_class(kind.as_str()), Some(*kind));
        }
        assert_eq!(ErrorKind::from_class("ConnectionError"), None);
    }

    /// The message reads as before; the foreign error stays reachable under it.
    #[test]
    fn a_wrapped_error_is_kept_as_the_source() {
        use std::error::Error as _;
        let parse = "x1".parse::<i64>().unwrap_err();
        let err = Error::store("read a control row", parse.clone());
        assert_eq!(
            err.to_string(),
            format!("control store: read a control row failed: {parse}")
        );
        let kept = err
            .source()
            .and_then(|s| s.downcast_ref::<std::num::ParseIntError>());
        assert_eq!(kept, Some(&parse));
        assert!(Error::store_message("decode status", "unknown status")
            .source()
            .is_none());
    }
}
