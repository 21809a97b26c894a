-- Per-column type overrides: a JSON object from source column name to the type it loads as
-- (`{"free_num": "string"}`), for a column whose values no mapped type holds exactly; and
-- audit triggers that cover it.

ALTER TABLE table_control ADD COLUMN column_types TEXT NOT NULL DEFAULT '{}';

DROP TRIGGER table_control_audit_insert;
DROP TRIGGER table_control_audit_update;

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
