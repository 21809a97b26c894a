//! `table_control_dbconfig`: the source connections tables load from, their passwords only as
//! references (`env:…`, `file:…`) that the sources resolve.

use chrono::{DateTime, Utc};
use dataloader_core::connection::ConnectionChange;
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
    /// Adds or changes the connection and records who did, and which fields changed, in one
    /// write transaction.
    pub(crate) async fn upsert_connection(
        &self,
        c: &ConnectionConfig,
        changed_by: &str,
    ) -> Result<()> {
        c.validate()?;
        let options =
            serde_json::to_string(&c.options).map_err(|e| Error::Internal(e.to_string()))?;
        let err = |e| Error::store("save the connection", e);
        let mut tx = self.begin_write().await.map_err(err)?;
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM table_control_dbconfig WHERE connection_name = $1"
        );
        let old = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .map(|r| r.connection_config())
            .transpose()?;
        let (operation, fields) = match &old {
            None => ("INSERT", Vec::new()),
            Some(old) => ("UPDATE", c.changed_fields(old)),
        };
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
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if old.is_none() || !fields.is_empty() {
            Self::record_connection_change(&mut tx, &c.name, operation, changed_by, &fields)
                .await?;
        }
        tx.commit().await.map_err(err)
    }

    async fn record_connection_change(
        conn: &mut Conn<B>,
        name: &str,
        operation: &str,
        changed_by: &str,
        fields: &[String],
    ) -> Result<()> {
        let fields = serde_json::to_string(fields).map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO connection_history (connection_name, operation, changed_at, changed_by, \
             fields) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(operation)
        .bind(Utc::now())
        .bind(changed_by)
        .bind(fields)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::store("record the connection's change", e))?;
        Ok(())
    }

    pub(crate) async fn connection_history(&self, name: &str) -> Result<Vec<ConnectionChange>> {
        let rows: Vec<(String, String, DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT connection_name, operation, changed_at, changed_by, fields \
             FROM connection_history WHERE connection_name = $1 ORDER BY history_id DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::store("read the connection's changes", e))?;
        rows.into_iter()
            .map(|(connection, operation, changed_at, changed_by, fields)| {
                Ok(ConnectionChange {
                    connection,
                    operation,
                    changed_at,
                    changed_by,
                    fields: serde_json::from_str(&fields).map_err(|e| {
                        Error::store_message("read the connection's changes", e.to_string())
                    })?,
                })
            })
            .collect()
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

    pub(crate) async fn delete_connection(&self, name: &str, changed_by: &str) -> Result<bool> {
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
        let err = |e| Error::store("remove the connection", e);
        let mut tx = self.begin_write().await.map_err(err)?;
        let done = sqlx::query("DELETE FROM table_control_dbconfig WHERE connection_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let removed = done.rows_affected() > 0;
        if removed {
            Self::record_connection_change(&mut tx, name, "DELETE", changed_by, &[]).await?;
        }
        tx.commit().await.map_err(err)?;
        Ok(removed)
    }
}
