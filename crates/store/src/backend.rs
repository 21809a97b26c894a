//! What differs between SQLite and PostgreSQL, in one trait, so the rest of the crate is one
//! generic store ([`crate::SqlStore`]). Both databases take the same SQL otherwise: `$N`
//! placeholders, `RETURNING`, `ON CONFLICT`, `IS DISTINCT FROM`. What differs: how to connect,
//! how a transaction that must write begins, row locks (`FOR UPDATE`, and the claim's
//! `SKIP LOCKED`), the history query (JSON columns) and the migration scripts.
//!
//! Also the names for the sqlx bounds generic code states ([`Value`], [`Param`], [`Conn`],
//! [`DbRow`]). Bounds on the driver's own types are on [`Backend::Db`]; those on other types
//! (`i64: Value<B::Db>`) cannot be: Rust does not carry a trait's `where` clauses to its users
//! (rust-lang/rust#20671), so each generic `impl` block repeats them, the same list everywhere
//! (see `crate::store`).

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::future::Future;

use dataloader_core::secret::SecretSetting;
use dataloader_core::Result;
use sqlx::migrate::Migrate;
use sqlx::{Database, Decode, Encode, IntoArguments, Pool, Type};

/// A control database: the sqlx driver, and the few statements and steps that are not the
/// same on both.
pub trait Backend: Send + Sync + 'static {
    /// The sqlx driver.
    type Db: Database<
        Connection: Migrate,
        Arguments: IntoArguments<Self::Db>,
        QueryResult: RowsAffected,
    >;

    /// The migration scripts, in order: file name (under `src/migrations/`) and SQL.
    const MIGRATIONS: &'static [(&'static str, &'static str)];

    /// How `create_run`'s transaction begins, when not as any other: SQLite takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so that a second load waits for the first and then
    /// sees its run, instead of failing to upgrade a read lock.
    const BEGIN_WRITE: Option<&'static str>;

    /// `create_run`'s read of the table (`$1`: its id): the destination. PostgreSQL locks the
    /// row, so two loads starting at once take turns.
    const TABLE_FOR_RUN: &'static str;

    /// Due tables' ids, most urgent first (`$1`: now, `$2`: how many). PostgreSQL skips rows
    /// another claimer holds (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time.
    const CLAIM_DUE: &'static str;

    /// Rows whose schedule, time zone or activation plain SQL changed (migration 0008's
    /// `schedule_changed`), with their schedule and time zone, locked for the claim.
    const RESCHEDULE: &'static str;

    /// A table's `table_control_history` rows, newest first (`$1`: its id), with the JSON
    /// columns as text.
    const HISTORY: &'static str;

    /// A run's duration in seconds, as SQL over `historical_metadata` (NULL while unfinished).
    const RUN_SECONDS: &'static str;

    /// Opens a pool on the database `url` names (`sqlite:…` or `postgres://…`), with
    /// `password` when the URL holds none, and says where it is for messages (credentials
    /// removed); with the task that follows a rotating password, if any, to stop with the
    /// store.
    fn connect(
        url: &str,
        password: Option<SecretSetting>,
    ) -> impl Future<Output = Result<Connected<Self::Db>>> + Send;
}

/// An opened pool, where it is (for messages), and the task that follows a rotating password.
pub type Connected<DB> = (Pool<DB>, String, Option<tokio::task::AbortHandle>);

/// A connection of `B`'s driver (an executor as `&mut`).
pub type Conn<B> = <<B as Backend>::Db as Database>::Connection;

/// A row of `B`'s driver.
pub type DbRow<B> = <<B as Backend>::Db as Database>::Row;

/// A Rust type both bound and read as a column of `DB`.
pub trait Value<DB: Database>: Param<DB> + for<'r> Decode<'r, DB> {}
impl<DB: Database, T: Param<DB> + for<'r> Decode<'r, DB>> Value<DB> for T {}

/// A Rust type bound as a parameter of `DB`.
pub trait Param<DB: Database>: Type<DB> + for<'q> Encode<'q, DB> + Send {}
impl<DB: Database, T: Type<DB> + for<'q> Encode<'q, DB> + Send> Param<DB> for T {}

/// How many rows a statement changed: each sqlx driver has it on its own result type.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}
