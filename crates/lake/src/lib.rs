//! DataLoader's destination: Delta Lake tables through `deltalake`, named by a [`Catalog`].

pub mod catalog;
pub mod delta;
pub mod fence;

pub use catalog::PathCatalog;
pub use delta::{CommitTag, DeltaDestination, KeyCounts, WriteSummary, STATE_KEY};
pub use deltalake::arrow;
pub use deltalake::datafusion::logical_expr::Expr;
pub use deltalake::parquet;
pub use fence::CommitFence;
pub mod expr;
mod merge;
