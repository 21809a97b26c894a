//! One module per load strategy; each states its semantics in its header.

pub mod full;
pub mod incremental;
