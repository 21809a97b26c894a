//! `table_control_dbconfig`: the source connections tables load from, their passwords only as
//! references (`env:…`, `file:…`) that the sources resolve.

use chrono::{DateTime, Utc};
use dataloader_core::{ConnectionConfig, Error, Result};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, RowsAffected, Value};
use crate::rows::{ControlRow, CONNECTION_COLUMNS};
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
    pub(crate) async fn upsert_connection(&self, c: &ConnectionConfig) -> Result<()> {
        c.validate()?;
        let options =
            serde_json::to_string(&c.options).map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO table_control_dbconfig (connection_name, db_type, host, port, \
             database_name, username, password_ref, options, created_at, updated_at, max_connections) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
             ON CONFLICT (connection_name) DO UPDATE SET db_type = excluded.db_type, \
             host = excluded.host, port = excluded.port, database_name = excluded.database_name, \
             username = excluded.username, password_ref = excluded.password_ref, \
             options = excluded.options, updated_at = excluded.updated_at, \
             max_connections = excluded.max_connections",
        )
        .bind(&c.name)
        .bind(c.db_type.as_str())
        .bind(&c.host)
        .bind(c.port.map(i64::from))
        .bind(&c.database)
        .bind(&c.user)
        .bind(&c.password)
        .bind(options)
        .bind(Utc::now())
        .bind(c.max_connections.map(i64::from))
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("save the connection", e))?;
        Ok(())
    }

    pub(crate) async fn connection(&self, name: &str) -> Result<Option<ConnectionConfig>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM table_control_dbconfig WHERE connection_name = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| Error::store("read the connection", e))?
            .map(|r| r.connection_config())
            .transpose()
    }

    pub(crate) async fn connections(&self) -> Result<Vec<ConnectionConfig>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM table_control_dbconfig ORDER BY connection_name"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("list the connections", e))?
            .iter()
            .map(ControlRow::connection_config)
            .collect()
    }

    pub(crate) async fn delete_connection(&self, name: &str) -> Result<bool> {
        let users: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM table_control WHERE connection_name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| Error::store("check the connection's tables", e))?;
        if users > 0 {
            return Err(Error::config(
                "connection",
                format!("\"{name}\" is used by {users} table(s); move or remove them first"),
            ));
        }
        let done = sqlx::query("DELETE FROM table_control_dbconfig WHERE connection_name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::store("remove the connection", e))?;
        Ok(done.rows_affected() > 0)
    }
}
