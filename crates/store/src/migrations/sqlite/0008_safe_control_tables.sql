-- Control tables safe to edit with plain SQL: defaults for what a person should not have to
-- type, named CHECK constraints that refuse what DataLoader cannot read (the error names the
-- rule), `updated_at` kept by a trigger, and `schedule_changed`, set when a plain-SQL UPDATE
-- changes when a table loads without saying when it next loads (the scheduler recomputes it).
-- Cron expressions and time zones stay checked in Rust only.
--
-- SQLite adds no constraint or default to a table: both tables are rebuilt. Timestamps default
-- to the text sqlx writes for a DateTime<Utc> (RFC 3339, 'T', +00:00, no fraction when it is
-- zero), so they compare with the ones it binds as the instants do:
--   replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')
--
-- Rows older than this script may break a rule. They are kept as they are (CHECKs ignored
-- while they are copied: failing here would stop every command, as this runs at each one's
-- start), and a table_control row that breaks one is set inactive, as on PostgreSQL, where
-- such a row can take no write at all; the audit trail records it, `table list` and `status`
-- name a row that cannot be read. Correct the value, then set is_active back.
--
-- Foreign keys cannot be turned off inside the migration's transaction: they are checked at
-- its commit instead. table_control_dbconfig keeps its name while it is rebuilt, so its rows,
-- copied back, resolve what dropping it left pending; table_control's rows are copied before
-- the old table is dropped, so that one of a connection that does not exist (the sqlite3
-- shell checks no foreign key by default) is kept too, as it was. The pragmas that ignore
-- CHECKs (and views, for the rename) hold on this connection only, and are turned back at once.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE table_control_dbconfig_0007 AS SELECT * FROM table_control_dbconfig;
DROP TABLE table_control_dbconfig;

CREATE TABLE table_control_dbconfig (
    connection_name TEXT PRIMARY KEY,
    db_type         TEXT NOT NULL,
    host            TEXT,
    port            INTEGER,
    database_name   TEXT,
    username        TEXT,
    password_ref    TEXT,   -- env:NAME or file:/path, never a secret
    options         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL DEFAULT (replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')),
    updated_at      TEXT NOT NULL DEFAULT (replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')),
    max_connections INTEGER,
    CONSTRAINT table_control_dbconfig_options_check
        CHECK (CASE WHEN json_valid(options) THEN json_type(options) = 'object' ELSE 0 END),
    CONSTRAINT table_control_dbconfig_port_check CHECK (port BETWEEN 0 AND 65535),
    CONSTRAINT table_control_dbconfig_max_connections_check CHECK (max_connections >= 0)
);

PRAGMA ignore_check_constraints = ON;
INSERT INTO table_control_dbconfig (connection_name, db_type, host, port, database_name, username,
    password_ref, options, created_at, updated_at, max_connections)
SELECT connection_name, db_type, host, port, database_name, username,
    password_ref, options, created_at, updated_at, max_connections
FROM table_control_dbconfig_0007;
PRAGMA ignore_check_constraints = OFF;
DROP TABLE table_control_dbconfig_0007;

-- The value lists are the Rust enums' (a test holds them to each other). Spans ("7 days",
-- "1000") are checked only for what is certain: not blank, not negative.
CREATE TABLE table_control_0008 (
    table_id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_name        TEXT NOT NULL REFERENCES table_control_dbconfig (connection_name),
    source_schema          TEXT,
    source_table           TEXT,
    source_query           TEXT,
    destination_catalog    TEXT NOT NULL,
    destination_schema     TEXT NOT NULL,
    destination_table      TEXT NOT NULL,
    load_strategy          TEXT NOT NULL DEFAULT 'full',
    primary_keys           TEXT NOT NULL DEFAULT '[]',
    incremental_column     TEXT,
    incremental_value      TEXT,
    incremental_value_type TEXT,
    lookback               TEXT,
    rolling_column         TEXT,
    rolling_window         TEXT,
    chunk_size             TEXT,
    backfill_cursor        TEXT,
    check_mode             TEXT,
    check_query            TEXT,
    last_check_value       TEXT,
    schedule               TEXT,
    timezone               TEXT NOT NULL DEFAULT 'UTC',
    next_load_date_time    TEXT,
    is_active              BOOLEAN NOT NULL DEFAULT 1,
    status                 TEXT,
    last_run_id            INTEGER,
    timeout_minutes        INTEGER,
    max_retries            INTEGER NOT NULL DEFAULT 3,
    retry_count            INTEGER NOT NULL DEFAULT 0,
    priority               INTEGER NOT NULL DEFAULT 100,
    column_naming          TEXT NOT NULL DEFAULT 'snake_case',
    tags                   TEXT NOT NULL DEFAULT '[]',
    created_at             TEXT NOT NULL DEFAULT (replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')),
    updated_at             TEXT NOT NULL DEFAULT (replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')),
    inner_strategy         TEXT,
    null_watermark         TEXT,
    schema_evolution       TEXT NOT NULL DEFAULT 'add_columns',
    delete_detection       TEXT NOT NULL DEFAULT 'none',
    delete_detection_interval TEXT,
    max_delete_ratio       REAL NOT NULL DEFAULT 0.2,
    last_delete_scan_at    TEXT,
    parallelism            TEXT,
    partition_by           TEXT NOT NULL DEFAULT '[]',
    target_file_size       TEXT,
    compression            TEXT,
    row_group_rows         INTEGER,
    loaded_from            TEXT,
    column_types           TEXT NOT NULL DEFAULT '{}',
    schedule_changed       BOOLEAN NOT NULL DEFAULT 0,
    UNIQUE (destination_catalog, destination_schema, destination_table),
    CONSTRAINT table_control_load_strategy_check CHECK (load_strategy IN
        ('full', 'incremental', 'append_only', 'rolling', 'check_and_load', 'chunked_backfill')),
    CONSTRAINT table_control_inner_strategy_check CHECK (inner_strategy IN
        ('full', 'incremental', 'append_only', 'rolling', 'check_and_load', 'chunked_backfill')),
    CONSTRAINT table_control_check_mode_check CHECK (check_mode IN ('max', 'row_count', 'query')),
    CONSTRAINT table_control_null_watermark_check CHECK (null_watermark IN ('include', 'skip')),
    CONSTRAINT table_control_schema_evolution_check CHECK (schema_evolution IN ('add_columns', 'strict')),
    CONSTRAINT table_control_delete_detection_check CHECK (delete_detection IN ('none', 'pk_scan')),
    CONSTRAINT table_control_column_naming_check CHECK (column_naming IN ('snake_case', 'lowercase', 'source')),
    CONSTRAINT table_control_status_check CHECK (status IN
        ('Queued', 'In Progress', 'Succeeded', 'Failed', 'Cancelled', 'Skipped')),
    CONSTRAINT table_control_incremental_value_type_check CHECK (incremental_value_type IN
        ('integer', 'decimal', 'date', 'timestamp', 'timestamptz', 'text')),
    CONSTRAINT table_control_max_retries_check CHECK (max_retries >= 0),
    CONSTRAINT table_control_retry_count_check CHECK (retry_count >= 0),
    CONSTRAINT table_control_timeout_minutes_check CHECK (timeout_minutes > 0),
    CONSTRAINT table_control_row_group_rows_check CHECK (row_group_rows > 0),
    CONSTRAINT table_control_max_delete_ratio_check CHECK (max_delete_ratio > 0 AND max_delete_ratio <= 1),
    CONSTRAINT table_control_destination_check CHECK
        (destination_catalog <> '' AND destination_schema <> '' AND destination_table <> ''),
    -- json_type fails on text that is not JSON: json_valid first.
    CONSTRAINT table_control_primary_keys_check
        CHECK (CASE WHEN json_valid(primary_keys) THEN json_type(primary_keys) = 'array' ELSE 0 END),
    CONSTRAINT table_control_tags_check
        CHECK (CASE WHEN json_valid(tags) THEN json_type(tags) = 'array' ELSE 0 END),
    CONSTRAINT table_control_partition_by_check
        CHECK (CASE WHEN json_valid(partition_by) THEN json_type(partition_by) = 'array' ELSE 0 END),
    CONSTRAINT table_control_column_types_check
        CHECK (CASE WHEN json_valid(column_types) THEN json_type(column_types) = 'object' ELSE 0 END),
    CONSTRAINT table_control_lookback_check CHECK (trim(lookback) <> '' AND ltrim(lookback) NOT LIKE '-%'),
    CONSTRAINT table_control_rolling_window_check
        CHECK (trim(rolling_window) <> '' AND ltrim(rolling_window) NOT LIKE '-%'),
    CONSTRAINT table_control_chunk_size_check CHECK (trim(chunk_size) <> '' AND ltrim(chunk_size) NOT LIKE '-%'),
    CONSTRAINT table_control_delete_detection_interval_check
        CHECK (trim(delete_detection_interval) <> '' AND ltrim(delete_detection_interval) NOT LIKE '-%')
);

-- The columns as 0007 left them, in the new table's order (the new one last); rows that keep
-- every rule first, then the ones left over, which break one: kept as they are.
CREATE VIEW table_control_0007 AS
SELECT table_id, connection_name, source_schema, source_table, source_query, destination_catalog,
    destination_schema, destination_table, load_strategy, primary_keys, incremental_column,
    incremental_value, incremental_value_type, lookback, rolling_column, rolling_window,
    chunk_size, backfill_cursor, check_mode, check_query, last_check_value, schedule, timezone,
    next_load_date_time, is_active, status, last_run_id, timeout_minutes, max_retries,
    retry_count, priority, column_naming, tags, created_at, updated_at, inner_strategy,
    null_watermark, schema_evolution, delete_detection, delete_detection_interval,
    max_delete_ratio, last_delete_scan_at, parallelism, partition_by, target_file_size,
    compression, row_group_rows, loaded_from, column_types
FROM table_control;
INSERT OR IGNORE INTO table_control_0008 SELECT *, 0 FROM table_control_0007;
CREATE TABLE table_control_0008_breaks AS
SELECT table_id FROM table_control_0007 WHERE table_id NOT IN (SELECT table_id FROM table_control_0008);
PRAGMA ignore_check_constraints = ON;
INSERT INTO table_control_0008 SELECT *, 0 FROM table_control_0007
WHERE table_id IN (SELECT table_id FROM table_control_0008_breaks);
PRAGMA ignore_check_constraints = OFF;
DROP VIEW table_control_0007;

-- Ids are never reused (history and runs name them): the counter carries over, past the
-- highest id even when that row was deleted.
DELETE FROM sqlite_sequence WHERE name = 'table_control_0008';
INSERT INTO sqlite_sequence (name, seq) SELECT 'table_control_0008', seq FROM sqlite_sequence WHERE name = 'table_control';

-- Dropping the table drops its index and triggers. The rename goes on despite a view a user
-- made on table_control, which would not resolve between the two (it does again after).
DROP TABLE table_control;
PRAGMA legacy_alter_table = ON;
ALTER TABLE table_control_0008 RENAME TO table_control;
PRAGMA legacy_alter_table = OFF;

CREATE INDEX table_control_due ON table_control (is_active, next_load_date_time);

-- The audit triggers, as 0007 (insert, update) and 0001 (delete) define them.
CREATE TRIGGER table_control_audit_insert AFTER INSERT ON table_control
BEGIN
    INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
    VALUES (NEW.table_id, 'INSERT', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), 'sqlite', NULL,
        json_object(
            'connection_name', NEW.connection_name, 'source_schema', NEW.source_schema, 'source_table', NEW.source_table,
            'source_query', NEW.source_query, 'destination_catalog', NEW.destination_catalog, 'destination_schema', NEW.destination_schema,
            'destination_table', NEW.destination_table, 'load_strategy', NEW.load_strategy, 'primary_keys', NEW.primary_keys,
            'incremental_column', NEW.incremental_column, 'incremental_value', NEW.incremental_value, 'lookback', NEW.lookback,
            'rolling_column', NEW.rolling_column, 'rolling_window', NEW.rolling_window, 'chunk_size', NEW.chunk_size,
            'check_mode', NEW.check_mode, 'check_query', NEW.check_query, 'inner_strategy', NEW.inner_strategy,
            'schedule', NEW.schedule, 'timezone', NEW.timezone, 'is_active', NEW.is_active,
            'timeout_minutes', NEW.timeout_minutes, 'max_retries', NEW.max_retries, 'priority', NEW.priority,
            'column_naming', NEW.column_naming, 'tags', NEW.tags, 'null_watermark', NEW.null_watermark,
            'schema_evolution', NEW.schema_evolution, 'delete_detection', NEW.delete_detection, 'delete_detection_interval', NEW.delete_detection_interval,
            'max_delete_ratio', NEW.max_delete_ratio, 'parallelism', NEW.parallelism,
            'partition_by', NEW.partition_by, 'target_file_size', NEW.target_file_size, 'compression', NEW.compression,
            'row_group_rows', NEW.row_group_rows, 'column_types', NEW.column_types));
END;

CREATE TRIGGER table_control_audit_update AFTER UPDATE ON table_control
WHEN OLD.connection_name IS NOT NEW.connection_name
  OR OLD.source_schema IS NOT NEW.source_schema
  OR OLD.source_table IS NOT NEW.source_table
  OR OLD.source_query IS NOT NEW.source_query
  OR OLD.destination_catalog IS NOT NEW.destination_catalog
  OR OLD.destination_schema IS NOT NEW.destination_schema
  OR OLD.destination_table IS NOT NEW.destination_table
  OR OLD.load_strategy IS NOT NEW.load_strategy
  OR OLD.primary_keys IS NOT NEW.primary_keys
  OR OLD.incremental_column IS NOT NEW.incremental_column
  OR OLD.incremental_value IS NOT NEW.incremental_value
  OR OLD.lookback IS NOT NEW.lookback
  OR OLD.rolling_column IS NOT NEW.rolling_column
  OR OLD.rolling_window IS NOT NEW.rolling_window
  OR OLD.chunk_size IS NOT NEW.chunk_size
  OR OLD.check_mode IS NOT NEW.check_mode
  OR OLD.check_query IS NOT NEW.check_query
  OR OLD.inner_strategy IS NOT NEW.inner_strategy
  OR OLD.schedule IS NOT NEW.schedule
  OR OLD.timezone IS NOT NEW.timezone
  OR OLD.is_active IS NOT NEW.is_active
  OR OLD.timeout_minutes IS NOT NEW.timeout_minutes
  OR OLD.max_retries IS NOT NEW.max_retries
  OR OLD.priority IS NOT NEW.priority
  OR OLD.column_naming IS NOT NEW.column_naming
  OR OLD.tags IS NOT NEW.tags
  OR OLD.null_watermark IS NOT NEW.null_watermark
  OR OLD.schema_evolution IS NOT NEW.schema_evolution
  OR OLD.delete_detection IS NOT NEW.delete_detection
  OR OLD.delete_detection_interval IS NOT NEW.delete_detection_interval
  OR OLD.max_delete_ratio IS NOT NEW.max_delete_ratio
  OR OLD.parallelism IS NOT NEW.parallelism
  OR OLD.partition_by IS NOT NEW.partition_by
  OR OLD.target_file_size IS NOT NEW.target_file_size
  OR OLD.compression IS NOT NEW.compression
  OR OLD.row_group_rows IS NOT NEW.row_group_rows
  OR OLD.column_types IS NOT NEW.column_types
BEGIN
    INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
    VALUES (NEW.table_id, 'UPDATE', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), 'sqlite',
        json_object(
            'connection_name', OLD.connection_name, 'source_schema', OLD.source_schema, 'source_table', OLD.source_table,
            'source_query', OLD.source_query, 'destination_catalog', OLD.destination_catalog, 'destination_schema', OLD.destination_schema,
            'destination_table', OLD.destination_table, 'load_strategy', OLD.load_strategy, 'primary_keys', OLD.primary_keys,
            'incremental_column', OLD.incremental_column, 'incremental_value', OLD.incremental_value, 'lookback', OLD.lookback,
            'rolling_column', OLD.rolling_column, 'rolling_window', OLD.rolling_window, 'chunk_size', OLD.chunk_size,
            'check_mode', OLD.check_mode, 'check_query', OLD.check_query, 'inner_strategy', OLD.inner_strategy,
            'schedule', OLD.schedule, 'timezone', OLD.timezone, 'is_active', OLD.is_active,
            'timeout_minutes', OLD.timeout_minutes, 'max_retries', OLD.max_retries, 'priority', OLD.priority,
            'column_naming', OLD.column_naming, 'tags', OLD.tags, 'null_watermark', OLD.null_watermark,
            'schema_evolution', OLD.schema_evolution, 'delete_detection', OLD.delete_detection, 'delete_detection_interval', OLD.delete_detection_interval,
            'max_delete_ratio', OLD.max_delete_ratio, 'parallelism', OLD.parallelism,
            'partition_by', OLD.partition_by, 'target_file_size', OLD.target_file_size, 'compression', OLD.compression,
            'row_group_rows', OLD.row_group_rows, 'column_types', OLD.column_types),
        json_object(
            'connection_name', NEW.connection_name, 'source_schema', NEW.source_schema, 'source_table', NEW.source_table,
            'source_query', NEW.source_query, 'destination_catalog', NEW.destination_catalog, 'destination_schema', NEW.destination_schema,
            'destination_table', NEW.destination_table, 'load_strategy', NEW.load_strategy, 'primary_keys', NEW.primary_keys,
            'incremental_column', NEW.incremental_column, 'incremental_value', NEW.incremental_value, 'lookback', NEW.lookback,
            'rolling_column', NEW.rolling_column, 'rolling_window', NEW.rolling_window, 'chunk_size', NEW.chunk_size,
            'check_mode', NEW.check_mode, 'check_query', NEW.check_query, 'inner_strategy', NEW.inner_strategy,
            'schedule', NEW.schedule, 'timezone', NEW.timezone, 'is_active', NEW.is_active,
            'timeout_minutes', NEW.timeout_minutes, 'max_retries', NEW.max_retries, 'priority', NEW.priority,
            'column_naming', NEW.column_naming, 'tags', NEW.tags, 'null_watermark', NEW.null_watermark,
            'schema_evolution', NEW.schema_evolution, 'delete_detection', NEW.delete_detection, 'delete_detection_interval', NEW.delete_detection_interval,
            'max_delete_ratio', NEW.max_delete_ratio, 'parallelism', NEW.parallelism,
            'partition_by', NEW.partition_by, 'target_file_size', NEW.target_file_size, 'compression', NEW.compression,
            'row_group_rows', NEW.row_group_rows, 'column_types', NEW.column_types));
END;

CREATE TRIGGER table_control_audit_delete AFTER DELETE ON table_control
BEGIN
    INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
    VALUES (OLD.table_id, 'DELETE', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), 'sqlite',
        json_object('connection_name', OLD.connection_name, 'source_schema', OLD.source_schema,
            'source_table', OLD.source_table, 'destination_catalog', OLD.destination_catalog,
            'destination_schema', OLD.destination_schema, 'destination_table', OLD.destination_table,
            'load_strategy', OLD.load_strategy, 'incremental_value', OLD.incremental_value), NULL);
END;

UPDATE table_control SET is_active = 0
WHERE is_active AND table_id IN (SELECT table_id FROM table_control_0008_breaks);
DROP TABLE table_control_0008_breaks;

-- An UPDATE that leaves updated_at as it was gets the time when it changes what the table
-- declares (not its watermark, not run bookkeeping: as DataLoader sets it). The triggers'
-- own UPDATEs touch columns the audit and each other leave alone.
CREATE TRIGGER table_control_updated_at AFTER UPDATE ON table_control
WHEN NEW.updated_at IS OLD.updated_at
  AND (OLD.connection_name, OLD.source_schema, OLD.source_table, OLD.source_query,
      OLD.destination_catalog, OLD.destination_schema, OLD.destination_table, OLD.load_strategy,
      OLD.primary_keys, OLD.incremental_column, OLD.lookback, OLD.rolling_column,
      OLD.rolling_window, OLD.chunk_size, OLD.check_mode, OLD.check_query, OLD.inner_strategy,
      OLD.schedule, OLD.timezone, OLD.is_active, OLD.timeout_minutes, OLD.max_retries,
      OLD.priority, OLD.column_naming, OLD.tags, OLD.null_watermark, OLD.schema_evolution,
      OLD.delete_detection, OLD.delete_detection_interval, OLD.max_delete_ratio, OLD.parallelism,
      OLD.partition_by, OLD.target_file_size, OLD.compression, OLD.row_group_rows,
      OLD.column_types)
  IS NOT (NEW.connection_name, NEW.source_schema, NEW.source_table, NEW.source_query,
      NEW.destination_catalog, NEW.destination_schema, NEW.destination_table, NEW.load_strategy,
      NEW.primary_keys, NEW.incremental_column, NEW.lookback, NEW.rolling_column,
      NEW.rolling_window, NEW.chunk_size, NEW.check_mode, NEW.check_query, NEW.inner_strategy,
      NEW.schedule, NEW.timezone, NEW.is_active, NEW.timeout_minutes, NEW.max_retries,
      NEW.priority, NEW.column_naming, NEW.tags, NEW.null_watermark, NEW.schema_evolution,
      NEW.delete_detection, NEW.delete_detection_interval, NEW.max_delete_ratio, NEW.parallelism,
      NEW.partition_by, NEW.target_file_size, NEW.compression, NEW.row_group_rows,
      NEW.column_types)
BEGIN
    UPDATE table_control SET updated_at = replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')
    WHERE table_id = NEW.table_id;
END;

-- A change of schedule, timezone or is_active that leaves next_load_date_time as it was.
CREATE TRIGGER table_control_schedule_changed AFTER UPDATE OF schedule, timezone, is_active ON table_control
WHEN (OLD.schedule, OLD.timezone, OLD.is_active) IS NOT (NEW.schedule, NEW.timezone, NEW.is_active)
  AND NEW.next_load_date_time IS OLD.next_load_date_time
BEGIN
    UPDATE table_control SET schedule_changed = 1 WHERE table_id = NEW.table_id;
END;

CREATE TRIGGER table_control_dbconfig_updated_at AFTER UPDATE ON table_control_dbconfig
WHEN NEW.updated_at IS OLD.updated_at
  AND (OLD.connection_name, OLD.db_type, OLD.host, OLD.port, OLD.database_name, OLD.username,
      OLD.password_ref, OLD.options, OLD.max_connections)
  IS NOT (NEW.connection_name, NEW.db_type, NEW.host, NEW.port, NEW.database_name, NEW.username,
      NEW.password_ref, NEW.options, NEW.max_connections)
BEGIN
    UPDATE table_control_dbconfig SET updated_at = replace(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), '.000+', '+')
    WHERE connection_name = NEW.connection_name;
END;
