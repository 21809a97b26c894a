//! DataLoader's domain types and the seams between its planes.
//!
//! Nothing here knows a database driver, Delta Lake or HTTP: the other crates implement
//! [`Source`], [`Store`] and [`Catalog`] and the engine composes them.

pub mod access;
pub mod alert;
pub mod catalog;
pub mod check_query;
pub mod clock;
pub mod column_types;
pub mod connection;
pub mod decimal;
pub mod error;
pub mod layout;
pub mod naming;
pub mod row_counts;
pub mod schedule;
pub mod secret;
pub mod settings;
pub mod source;
pub mod source_query;
pub mod span;
pub mod store;
pub mod strategy;
pub mod summary;
pub mod table;
pub mod tls;
pub mod watermark;

pub use catalog::{
    Catalog, CatalogColumn, Drift, Registration, StorageCredential, VendedCredentials,
};
pub use clock::{Clock, SystemClock};
pub use column_types::{ColumnType, ColumnTypes};
pub use connection::{ConnectionConfig, DbType};
pub use error::{Cause, Error, ErrorKind, FailureCategory, Result};
pub use layout::{Codec, Layout};
pub use naming::ColumnNaming;
pub use row_counts::RowCounts;
pub use settings::{StrategyConfig, TableSettings};
pub use source::{
    BatchStream, Predicate, Probe, ReadOutput, ReadRequest, Source, SourceColumn, SourceObject,
    SourceSchema, WatermarkRead,
};
pub use span::Span;
pub use store::{
    Claim, InvalidTable, LostRun, NewRun, RetryVerdict, RunId, RunOwner, RunRecord, RunStatus,
    RunUpdate, RunningRun, StateUpdate, Store, TableControl, Trigger,
};
pub use strategy::{CheckMode, DeleteDetection, LoadStrategy, NullWatermark, SchemaEvolution};
pub use summary::{RunTotals, TableStorage, WorkerTick};
pub use table::{Parallelism, SourceTable, TableSpec, TargetTable};
pub use watermark::{Watermark, WatermarkKind};
