-- The control tables, laid out as the loader DataLoader replaces kept them. Timestamps are UTC,
-- stored as text that sorts in time order.

CREATE TABLE table_control_dbconfig (
    connection_name TEXT PRIMARY KEY,
    db_type         TEXT NOT NULL,
    host            TEXT,
    port            INTEGER,
    database_name   TEXT,
    username        TEXT,
    password_ref    TEXT,   -- env:NAME or file:/path, never a secret
    options         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE table_control (
    table_id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_name        TEXT NOT NULL REFERENCES table_control_dbconfig (connection_name),
    source_schema          TEXT,
    source_table           TEXT,
    source_query           TEXT,
    destination_catalog    TEXT NOT NULL,
    destination_schema     TEXT NOT NULL,
    destination_table      TEXT NOT NULL,
    load_strategy          TEXT NOT NULL,
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
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    UNIQUE (destination_catalog, destination_schema, destination_table)
);

CREATE INDEX table_control_due ON table_control (is_active, next_load_date_time);

CREATE TABLE historical_metadata (
    run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id          INTEGER NOT NULL,
    destination       TEXT NOT NULL,
    trigger_type      TEXT NOT NULL,
    status            TEXT NOT NULL,
    queued_at         TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    rows_read         INTEGER,
    rows_written      INTEGER,
    rows_deleted      INTEGER,
    bytes_written     INTEGER,
    watermark_before  TEXT,
    watermark_after   TEXT,
    delta_version     INTEGER,
    worker            TEXT,
    error_class       TEXT,
    error_text        TEXT,
    retry_recommended BOOLEAN
);

CREATE INDEX historical_metadata_table ON historical_metadata (table_id, run_id);

CREATE TABLE table_control_history (
    history_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id    INTEGER NOT NULL,
    operation   TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    changed_by  TEXT,
    old_values  TEXT,
    new_values  TEXT
);

CREATE INDEX table_control_history_table ON table_control_history (table_id, history_id);

-- Audit triggers: any change to what a table declares (or to its watermark) is recorded,
-- whoever makes it, the CLI or plain SQL. Run bookkeeping (status, next load, last run) is not.
CREATE TRIGGER table_control_audit_insert AFTER INSERT ON table_control
BEGIN
    INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
    VALUES (NEW.table_id, 'INSERT', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), 'sqlite', NULL,
        json_object('connection_name', NEW.connection_name, 'source_schema', NEW.source_schema,
            'source_table', NEW.source_table, 'source_query', NEW.source_query,
            'destination_catalog', NEW.destination_catalog, 'destination_schema', NEW.destination_schema,
            'destination_table', NEW.destination_table, 'load_strategy', NEW.load_strategy,
            'primary_keys', NEW.primary_keys, 'incremental_column', NEW.incremental_column,
            'incremental_value', NEW.incremental_value, 'lookback', NEW.lookback,
            'rolling_column', NEW.rolling_column, 'rolling_window', NEW.rolling_window,
            'chunk_size', NEW.chunk_size, 'check_mode', NEW.check_mode, 'check_query', NEW.check_query,
            'schedule', NEW.schedule, 'timezone', NEW.timezone, 'is_active', NEW.is_active,
            'timeout_minutes', NEW.timeout_minutes, 'max_retries', NEW.max_retries,
            'priority', NEW.priority, 'column_naming', NEW.column_naming, 'tags', NEW.tags));
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
  OR OLD.schedule IS NOT NEW.schedule
  OR OLD.timezone IS NOT NEW.timezone
  OR OLD.is_active IS NOT NEW.is_active
  OR OLD.timeout_minutes IS NOT NEW.timeout_minutes
  OR OLD.max_retries IS NOT NEW.max_retries
  OR OLD.priority IS NOT NEW.priority
  OR OLD.column_naming IS NOT NEW.column_naming
  OR OLD.tags IS NOT NEW.tags
BEGIN
    INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
    VALUES (NEW.table_id, 'UPDATE', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), 'sqlite',
        json_object('connection_name', OLD.connection_name, 'source_schema', OLD.source_schema,
            'source_table', OLD.source_table, 'source_query', OLD.source_query,
            'destination_catalog', OLD.destination_catalog, 'destination_schema', OLD.destination_schema,
            'destination_table', OLD.destination_table, 'load_strategy', OLD.load_strategy,
            'primary_keys', OLD.primary_keys, 'incremental_column', OLD.incremental_column,
            'incremental_value', OLD.incremental_value, 'lookback', OLD.lookback,
            'rolling_column', OLD.rolling_column, 'rolling_window', OLD.rolling_window,
            'chunk_size', OLD.chunk_size, 'check_mode', OLD.check_mode, 'check_query', OLD.check_query,
            'schedule', OLD.schedule, 'timezone', OLD.timezone, 'is_active', OLD.is_active,
            'timeout_minutes', OLD.timeout_minutes, 'max_retries', OLD.max_retries,
            'priority', OLD.priority, 'column_naming', OLD.column_naming, 'tags', OLD.tags),
        json_object('connection_name', NEW.connection_name, 'source_schema', NEW.source_schema,
            'source_table', NEW.source_table, 'source_query', NEW.source_query,
            'destination_catalog', NEW.destination_catalog, 'destination_schema', NEW.destination_schema,
            'destination_table', NEW.destination_table, 'load_strategy', NEW.load_strategy,
            'primary_keys', NEW.primary_keys, 'incremental_column', NEW.incremental_column,
            'incremental_value', NEW.incremental_value, 'lookback', NEW.lookback,
            'rolling_column', NEW.rolling_column, 'rolling_window', NEW.rolling_window,
            'chunk_size', NEW.chunk_size, 'check_mode', NEW.check_mode, 'check_query', NEW.check_query,
            'schedule', NEW.schedule, 'timezone', NEW.timezone, 'is_active', NEW.is_active,
            'timeout_minutes', NEW.timeout_minutes, 'max_retries', NEW.max_retries,
            'priority', NEW.priority, 'column_naming', NEW.column_naming, 'tags', NEW.tags));
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
