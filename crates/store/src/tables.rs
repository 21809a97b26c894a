//! `table_control`: a table's declared spec and the state its loads keep. A new table is due at
//! once; a spec change resets the state that belonged to the old one; a row that cannot be read
//! (edited with plain SQL) is reported, not loaded.

use chrono::{DateTime, Utc};
use dataloader_core::{
    Error, InvalidTable, Result, TableControl, TableSpec, TargetTable, Watermark,
};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, RowsAffected, Value};
use crate::rows::{json_list, json_map, unreadable, ControlRow, TABLE_COLUMNS};
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
    pub(crate) async fn insert_table(&self, spec: &TableSpec, now: DateTime<Utc>) -> Result<i64> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| Error::store("add the table", e))?;
        Self::insert_on(&mut conn, spec, now).await
    }

    /// Adds the table, naming `changed_by` in the audit row it writes, in one transaction.
    pub(crate) async fn insert_table_by(
        &self,
        spec: &TableSpec,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<i64> {
        let err = |e| Error::store("add the table", e);
        let mut tx = self.begin_write().await.map_err(err)?;
        let table_id = Self::insert_on(&mut tx, spec, now).await?;
        Self::name_changes(&mut tx, table_id, 0, changed_by).await?;
        tx.commit().await.map_err(err)?;
        Ok(table_id)
    }

    async fn insert_on(conn: &mut Conn<B>, spec: &TableSpec, now: DateTime<Utc>) -> Result<i64> {
        spec.validate()?;
        // A scheduled table is due at once; one without a schedule waits to be asked.
        let next = spec.schedule.as_ref().map(|_| now);
        sqlx::query_scalar(
            "INSERT INTO table_control (connection_name, source_schema, source_table, \
             destination_catalog, destination_schema, destination_table, load_strategy, \
             primary_keys, incremental_column, schedule, timezone, is_active, \
             timeout_minutes, max_retries, priority, column_naming, tags, \
             next_load_date_time, created_at, updated_at, lookback, rolling_column, \
             rolling_window, chunk_size, check_mode, check_query, inner_strategy, \
             null_watermark, schema_evolution, delete_detection, delete_detection_interval, \
             max_delete_ratio, parallelism, partition_by, target_file_size, compression, \
             row_group_rows, source_query, column_types) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, \
             $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38) \
             RETURNING table_id",
        )
        .bind(&spec.connection)
        .bind(&spec.source.schema)
        .bind(&spec.source.name)
        .bind(&spec.destination.catalog)
        .bind(&spec.destination.schema)
        .bind(&spec.destination.table)
        .bind(spec.strategy.as_str())
        .bind(json_list(&spec.primary_keys))
        .bind(&spec.incremental_column)
        .bind(&spec.schedule)
        .bind(&spec.timezone)
        .bind(spec.is_active)
        .bind(spec.timeout_minutes)
        .bind(spec.max_retries)
        .bind(spec.priority)
        .bind(spec.column_naming.as_str())
        .bind(json_list(&spec.tags))
        .bind(next)
        .bind(now)
        .bind(&spec.lookback)
        .bind(&spec.rolling_column)
        .bind(&spec.rolling_window)
        .bind(&spec.chunk_size)
        .bind(spec.check_mode.map(|m| m.as_str()))
        .bind(&spec.check_query)
        .bind(spec.inner_strategy.map(|m| m.as_str()))
        .bind(spec.null_watermark.map(|m| m.as_str()))
        .bind(spec.schema_evolution.as_str())
        .bind(spec.delete_detection.as_str())
        .bind(&spec.delete_detection_interval)
        .bind(spec.max_delete_ratio)
        .bind(&spec.parallelism)
        .bind(json_list(&spec.partition_by))
        .bind(&spec.target_file_size)
        .bind(&spec.compression)
        .bind(spec.row_group_rows)
        .bind(&spec.source_query)
        .bind(json_map(&spec.column_types))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::store("add the table", e))
    }

    pub(crate) async fn update_table_spec(
        &self,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| Error::store("update the table", e))?;
        Self::update_on(&mut conn, table_id, spec, now).await
    }

    /// Changes the table, naming `changed_by` in the audit rows it writes. The row is locked
    /// first (PostgreSQL; SQLite has one writer), so no other change's audit row is named.
    pub(crate) async fn update_table_spec_by(
        &self,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<()> {
        let err = |e| Error::store("update the table", e);
        let mut tx = self.begin_write().await.map_err(err)?;
        let mark = Self::lock_and_mark(&mut tx, table_id).await?;
        Self::update_on(&mut tx, table_id, spec, now).await?;
        Self::name_changes(&mut tx, table_id, mark, changed_by).await?;
        tx.commit().await.map_err(err)
    }

    /// Locks the table's row (PostgreSQL; SQLite's write transaction has the database) and
    /// gives its newest audit row's id: the rows after it are the caller's change's.
    async fn lock_and_mark(conn: &mut Conn<B>, table_id: i64) -> Result<i64> {
        let err = |e| Error::store("lock the table for a change", e);
        sqlx::query(B::TABLE_FOR_RUN)
            .bind(table_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(history_id), 0) AS BIGINT) FROM table_control_history \
             WHERE table_id = $1",
        )
        .bind(table_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(err)
    }

    /// Names `changed_by` in the table's audit rows after `mark` (the trigger wrote the
    /// database's user).
    async fn name_changes(
        conn: &mut Conn<B>,
        table_id: i64,
        mark: i64,
        changed_by: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE table_control_history SET changed_by = $1 WHERE table_id = $2 AND history_id > $3",
        )
        .bind(changed_by)
        .bind(table_id)
        .bind(mark)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::store("name who changed the table", e))?;
        Ok(())
    }

    async fn update_on(
        conn: &mut Conn<B>,
        table_id: i64,
        spec: &TableSpec,
        now: DateTime<Utc>,
    ) -> Result<()> {
        spec.validate()?;
        // A watermark of another column, strategy or source means nothing: it is reset
        // (a load then refuses to put another source's rows beside the old ones, see
        // `loaded_from`). A new schedule takes effect at once.
        sqlx::query(
            "UPDATE table_control SET connection_name = $2, source_schema = $3, source_table = $4, \
             destination_catalog = $5, destination_schema = $6, destination_table = $7, \
             incremental_value = CASE WHEN incremental_column IS DISTINCT FROM $9 \
                 OR load_strategy IS DISTINCT FROM $8 OR connection_name IS DISTINCT FROM $2 \
                 OR source_schema IS DISTINCT FROM $3 OR source_table IS DISTINCT FROM $4 \
                 THEN NULL ELSE incremental_value END, \
             incremental_value_type = CASE WHEN incremental_column IS DISTINCT FROM $9 \
                 OR load_strategy IS DISTINCT FROM $8 OR connection_name IS DISTINCT FROM $2 \
                 OR source_schema IS DISTINCT FROM $3 OR source_table IS DISTINCT FROM $4 \
                 THEN NULL ELSE incremental_value_type END, \
             backfill_cursor = CASE WHEN load_strategy IS DISTINCT FROM $8 \
                 OR incremental_column IS DISTINCT FROM $9 OR connection_name IS DISTINCT FROM $2 \
                 OR source_schema IS DISTINCT FROM $3 OR source_table IS DISTINCT FROM $4 \
                 THEN NULL ELSE backfill_cursor END, \
             last_check_value = CASE WHEN load_strategy IS DISTINCT FROM $8 \
                 OR check_mode IS DISTINCT FROM $25 OR check_query IS DISTINCT FROM $26 \
                 OR connection_name IS DISTINCT FROM $2 OR source_schema IS DISTINCT FROM $3 \
                 OR source_table IS DISTINCT FROM $4 THEN NULL ELSE last_check_value END, \
             next_load_date_time = CASE WHEN schedule IS DISTINCT FROM $10 THEN $18 ELSE next_load_date_time END, \
             load_strategy = $8, incremental_column = $9, schedule = $10, timezone = $11, \
             is_active = $12, timeout_minutes = $13, max_retries = $14, priority = $15, \
             column_naming = $16, tags = $17, primary_keys = $19, updated_at = $20, \
             lookback = $21, rolling_column = $22, rolling_window = $23, chunk_size = $24, \
             check_mode = $25, check_query = $26, inner_strategy = $27, null_watermark = $28, \
             schema_evolution = $29, delete_detection = $30, delete_detection_interval = $31, \
             max_delete_ratio = $32, parallelism = $33, partition_by = $34, \
             target_file_size = $35, compression = $36, row_group_rows = $37, \
             source_query = $38, column_types = $39 \
             WHERE table_id = $1",
        )
        .bind(table_id)
        .bind(&spec.connection)
        .bind(&spec.source.schema)
        .bind(&spec.source.name)
        .bind(&spec.destination.catalog)
        .bind(&spec.destination.schema)
        .bind(&spec.destination.table)
        .bind(spec.strategy.as_str())
        .bind(&spec.incremental_column)
        .bind(&spec.schedule)
        .bind(&spec.timezone)
        .bind(spec.is_active)
        .bind(spec.timeout_minutes)
        .bind(spec.max_retries)
        .bind(spec.priority)
        .bind(spec.column_naming.as_str())
        .bind(json_list(&spec.tags))
        .bind(spec.schedule.as_ref().map(|_| now))
        .bind(json_list(&spec.primary_keys))
        .bind(now)
        .bind(&spec.lookback)
        .bind(&spec.rolling_column)
        .bind(&spec.rolling_window)
        .bind(&spec.chunk_size)
        .bind(spec.check_mode.map(|m| m.as_str()))
        .bind(&spec.check_query)
        .bind(spec.inner_strategy.map(|m| m.as_str()))
        .bind(spec.null_watermark.map(|m| m.as_str()))
        .bind(spec.schema_evolution.as_str())
        .bind(spec.delete_detection.as_str())
        .bind(&spec.delete_detection_interval)
        .bind(spec.max_delete_ratio)
        .bind(&spec.parallelism)
        .bind(json_list(&spec.partition_by))
        .bind(&spec.target_file_size)
        .bind(&spec.compression)
        .bind(spec.row_group_rows)
        .bind(&spec.source_query)
        .bind(json_map(&spec.column_types))
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::store("update the table", e))?;
        Ok(())
    }

    pub(crate) async fn table(&self, table_id: i64) -> Result<Option<TableControl>> {
        let sql = format!("SELECT {TABLE_COLUMNS} FROM table_control WHERE table_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(table_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| Error::store("read the table", e))?
            .map(|r| r.read_table().map_err(unreadable))
            .transpose()
    }

    pub(crate) async fn table_by_destination(
        &self,
        d: &TargetTable,
    ) -> Result<Option<TableControl>> {
        let sql = format!(
            "SELECT {TABLE_COLUMNS} FROM table_control WHERE destination_catalog = $1 \
             AND destination_schema = $2 AND destination_table = $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&d.catalog)
            .bind(&d.schema)
            .bind(&d.table)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| Error::store("read the table", e))?
            .map(|r| r.read_table().map_err(unreadable))
            .transpose()
    }

    pub(crate) async fn tables(&self) -> Result<Vec<TableControl>> {
        Ok(self
            .all_tables()
            .await?
            .into_iter()
            .filter_map(|t| match t {
                Ok(table) => Some(table),
                Err(invalid) => {
                    tracing::warn!(
                        table_id = invalid.table_id,
                        destination = %invalid.destination,
                        problem = %invalid.problem,
                        "a table_control row cannot be read: skipped"
                    );
                    None
                }
            })
            .collect())
    }

    pub(crate) async fn invalid_tables(&self) -> Result<Vec<InvalidTable>> {
        Ok(self
            .all_tables()
            .await?
            .into_iter()
            .filter_map(|t| t.err())
            .collect())
    }

    async fn all_tables(&self) -> Result<Vec<std::result::Result<TableControl, InvalidTable>>> {
        let sql = format!(
            "SELECT {TABLE_COLUMNS} FROM table_control ORDER BY destination_catalog, \
             destination_schema, destination_table"
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("list the tables", e))?
            .iter()
            .map(ControlRow::read_table)
            .collect())
    }

    pub(crate) async fn set_watermark(
        &self,
        table_id: i64,
        watermark: Option<&Watermark>,
    ) -> Result<()> {
        sqlx::query("UPDATE table_control SET incremental_value = $2, incremental_value_type = $3 WHERE table_id = $1")
            .bind(table_id)
            .bind(watermark.map(|w| w.value.clone()))
            .bind(watermark.map(|w| w.kind.as_str()))
            .execute(&self.pool)
            .await
            .map_err(|e| Error::store("set the watermark", e))?;
        Ok(())
    }

    pub(crate) async fn set_next_load(
        &self,
        table_id: i64,
        at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        sqlx::query("UPDATE table_control SET next_load_date_time = $2 WHERE table_id = $1")
            .bind(table_id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::store("reschedule the table", e))?;
        Ok(())
    }

    /// Pauses or resumes a table for `changed_by`, who is named in the audit row the change
    /// writes; `false` when the table was so already (and nothing is written). The schedule's
    /// next time follows a resume through migration 0008's `schedule_changed`.
    pub(crate) async fn set_active(
        &self,
        table_id: i64,
        active: bool,
        now: DateTime<Utc>,
        changed_by: &str,
    ) -> Result<bool> {
        let err = |e| Error::store("pause or resume the table", e);
        let mut tx = self.begin_write().await.map_err(err)?;
        let mark = Self::lock_and_mark(&mut tx, table_id).await?;
        let changed = sqlx::query(
            "UPDATE table_control SET is_active = $2, updated_at = $3 \
             WHERE table_id = $1 AND is_active <> $2",
        )
        .bind(table_id)
        .bind(active)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected()
            > 0;
        if changed {
            Self::name_changes(&mut tx, table_id, mark, changed_by).await?;
        }
        tx.commit().await.map_err(err)?;
        Ok(changed)
    }
}
