//! The operations on a Delta table, one module each, delta-rs style. Each adds its methods to
//! [`DeltaDestination`](crate::DeltaDestination) and builds on the shared pieces (the table
//! handle, commit tags, staging, the streamed write); none of them imports another.

mod append;
mod delete;
mod merge;
mod overwrite;
