//! DataLoader's destination: Delta Lake tables through `deltalake`, named by a [`Catalog`].
//!
//! [`DeltaDestination`] (`destination`) is the table handle. Each operation on it lives in
//! its own module under `ops/` (overwrite, append, merge, delete); reading without changing
//! is `inspect`. What several operations share sits in leaf modules they import, never the
//! other way round: commit tags (`tag`), staging input in a local file (`stage`), the
//! streamed delta-rs write (`write`), SQL text (`sql`) and the commit fence (`fence`).
//!
//! [`Catalog`]: dataloader_core::Catalog

pub mod catalog;
mod destination;
pub mod expr;
pub mod fence;
pub mod inspect;
mod ops;
pub mod registration;
mod sql;
mod stage;
mod tag;
#[cfg(test)]
mod test_support;
mod write;

pub use catalog::PathCatalog;
pub use deltalake::arrow;
pub use deltalake::datafusion::logical_expr::Expr;
pub use deltalake::parquet;
pub use destination::DeltaDestination;
pub use fence::CommitFence;
pub use inspect::KeyCounts;
pub use tag::{CommitTag, STATE_KEY};
pub use write::WriteSummary;

