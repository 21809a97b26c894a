//! DataLoader's destination: Delta Lake tables through `deltalake`, named by a [`Catalog`].

pub mod catalog;
pub mod delete;
pub mod delta;
pub mod fence;
mod first_load;

pub use catalog::PathCatalog;
pub use delta::{CommitTag, DeltaDestination, WriteSummary, STATE_KEY};
pub use deltalake::arrow;
pub use deltalake::datafusion::logical_expr::Expr;
pub use deltalake::parquet;
pub use fence::CommitFence;
pub use inspect::KeyCounts;
pub mod expr;
pub mod inspect;
mod merge;
