//! `table_control_history`: every change to a table's row, written by database triggers (so
//! changes made with plain SQL are kept too), read back newest first.

use chrono::{DateTime, Utc};
use dataloader_core::{store::HistoryRecord, Error, Result};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, Value};
use crate::rows::ControlRow;
use crate::store::SqlStore;

impl<B: Backend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    for<'a> &'a str: Param<B::Db> + ColumnIndex<DbRow<B>>,
    for<'a> Option<&'a str>: Type<B::Db> + Encode<'a, B::Db>,
    usize: ColumnIndex<DbRow<B>>,
    bool: Value<B::Db>,
    i64: Value<B::Db>,
    Option<i64>: Param<B::Db>,
    f64: Value<B::Db>,
    String: Value<B::Db>,
    Option<String>: Param<B::Db>,
    DateTime<Utc>: Value<B::Db>,
    Option<DateTime<Utc>>: Param<B::Db>,
{
    pub(crate) async fn table_history(&self, table_id: i64) -> Result<Vec<HistoryRecord>> {
        let rows = sqlx::query(B::HISTORY)
            .bind(table_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("read the table's history", e))?;
        rows.iter().map(ControlRow::history_record).collect()
    }
}
