//! One file per group of subcommands; `main.rs` says which function runs each. `apply` and
//! `export` live in `crate::apply`, `bench` and `quickstart` in their own files beside `main.rs`.

pub(crate) mod alerts;
pub(crate) mod catalog;
pub(crate) mod connections;
pub(crate) mod history;
pub(crate) mod init;
pub(crate) mod load;
pub(crate) mod scheduler;
pub(crate) mod serve;
pub(crate) mod tables;
pub(crate) mod validate;
