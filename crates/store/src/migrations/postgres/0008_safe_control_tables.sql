-- Control tables safe to edit with plain SQL: defaults for what a person should not have to
-- type, named CHECK constraints that refuse what DataLoader cannot read (the error names the
-- rule), `updated_at` kept by a trigger, and `schedule_changed`, set when a plain-SQL UPDATE
-- changes when a table loads without saying when it next loads (the scheduler recomputes it).
-- Cron expressions and time zones stay checked in Rust only.

ALTER TABLE table_control ADD COLUMN schedule_changed BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE table_control
    ALTER COLUMN load_strategy SET DEFAULT 'full',
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE table_control_dbconfig
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();

-- The JSON type of `doc`, or 'not JSON': a cast in a CHECK would fail with a parse error that
-- names no rule (PostgreSQL 15 has no `IS JSON`).
CREATE FUNCTION table_control_json_type(doc TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN json_typeof(doc::json);
EXCEPTION WHEN data_exception THEN
    RETURN 'not JSON';
END
$$;

-- The rules, each written once: table, constraint name, condition. The value lists are the
-- Rust enums' (a test holds them to each other). Spans ("7 days", "1000") are checked only
-- for what is certain: not blank, not negative.
--
-- Rows older than this script may break a rule. A CHECK holds for every UPDATE of a row, so
-- such a row could take no bookkeeping write, and the scheduler's claim, which writes every
-- table it takes in one statement, would fail for all tables. So: each constraint is added
-- NOT VALID (this script never fails on old rows, and it runs at every command's start), a
-- row that breaks a rule is set inactive (the audit trail records it; `table list` and
-- `status` name a row that cannot be read; correct the value, then set is_active back), and
-- each constraint no row breaks is validated: one left NOT VALID marks a rule old rows break.
DO $$
DECLARE
    rules TEXT[] := ARRAY[
        ['table_control', 'table_control_load_strategy_check', $r$load_strategy IN ('full', 'incremental', 'append_only', 'rolling', 'check_and_load', 'chunked_backfill')$r$],
        ['table_control', 'table_control_inner_strategy_check', $r$inner_strategy IN ('full', 'incremental', 'append_only', 'rolling', 'check_and_load', 'chunked_backfill')$r$],
        ['table_control', 'table_control_check_mode_check', $r$check_mode IN ('max', 'row_count', 'query')$r$],
        ['table_control', 'table_control_null_watermark_check', $r$null_watermark IN ('include', 'skip')$r$],
        ['table_control', 'table_control_schema_evolution_check', $r$schema_evolution IN ('add_columns', 'strict')$r$],
        ['table_control', 'table_control_delete_detection_check', $r$delete_detection IN ('none', 'pk_scan')$r$],
        ['table_control', 'table_control_column_naming_check', $r$column_naming IN ('snake_case', 'lowercase', 'source')$r$],
        ['table_control', 'table_control_status_check', $r$status IN ('Queued', 'In Progress', 'Succeeded', 'Failed', 'Cancelled', 'Skipped')$r$],
        ['table_control', 'table_control_incremental_value_type_check', $r$incremental_value_type IN ('integer', 'decimal', 'date', 'timestamp', 'timestamptz', 'text')$r$],
        ['table_control', 'table_control_max_retries_check', $r$max_retries >= 0$r$],
        ['table_control', 'table_control_retry_count_check', $r$retry_count >= 0$r$],
        ['table_control', 'table_control_timeout_minutes_check', $r$timeout_minutes > 0$r$],
        ['table_control', 'table_control_row_group_rows_check', $r$row_group_rows > 0$r$],
        ['table_control', 'table_control_max_delete_ratio_check', $r$max_delete_ratio > 0 AND max_delete_ratio <= 1$r$],
        ['table_control', 'table_control_destination_check', $r$destination_catalog <> '' AND destination_schema <> '' AND destination_table <> ''$r$],
        ['table_control', 'table_control_primary_keys_check', $r$table_control_json_type(primary_keys) = 'array'$r$],
        ['table_control', 'table_control_tags_check', $r$table_control_json_type(tags) = 'array'$r$],
        ['table_control', 'table_control_partition_by_check', $r$table_control_json_type(partition_by) = 'array'$r$],
        ['table_control', 'table_control_column_types_check', $r$table_control_json_type(column_types) = 'object'$r$],
        ['table_control', 'table_control_lookback_check', $r$trim(lookback) <> '' AND ltrim(lookback) NOT LIKE '-%'$r$],
        ['table_control', 'table_control_rolling_window_check', $r$trim(rolling_window) <> '' AND ltrim(rolling_window) NOT LIKE '-%'$r$],
        ['table_control', 'table_control_chunk_size_check', $r$trim(chunk_size) <> '' AND ltrim(chunk_size) NOT LIKE '-%'$r$],
        ['table_control', 'table_control_delete_detection_interval_check', $r$trim(delete_detection_interval) <> '' AND ltrim(delete_detection_interval) NOT LIKE '-%'$r$],
        ['table_control_dbconfig', 'table_control_dbconfig_options_check', $r$table_control_json_type(options) = 'object'$r$],
        ['table_control_dbconfig', 'table_control_dbconfig_port_check', $r$port BETWEEN 0 AND 65535$r$],
        ['table_control_dbconfig', 'table_control_dbconfig_max_connections_check', $r$max_connections >= 0$r$]
    ];
    rule TEXT[];
    -- A CHECK passes on NULL: a row breaks a rule only where its condition is false.
    breaks TEXT := 'FALSE';
BEGIN
    FOREACH rule SLICE 1 IN ARRAY rules LOOP
        IF rule[1] = 'table_control' THEN
            breaks := breaks || format(' OR NOT COALESCE((%s), TRUE)', rule[3]);
        END IF;
    END LOOP;
    EXECUTE format('UPDATE table_control SET is_active = FALSE WHERE is_active AND (%s)', breaks);
    FOREACH rule SLICE 1 IN ARRAY rules LOOP
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%s) NOT VALID', rule[1], rule[2], rule[3]);
        BEGIN
            EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', rule[1], rule[2]);
        EXCEPTION WHEN check_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- The audit trigger leaves the new bookkeeping column out.
CREATE OR REPLACE FUNCTION table_control_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bookkeeping TEXT[] := ARRAY['status', 'next_load_date_time', 'last_run_id', 'retry_count',
        'updated_at', 'backfill_cursor', 'last_check_value', 'incremental_value_type',
        'last_delete_scan_at', 'loaded_from', 'schedule_changed'];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
        VALUES (NEW.table_id, 'INSERT', now(), current_user, NULL, to_jsonb(NEW) - bookkeeping);
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        IF (to_jsonb(OLD) - bookkeeping) IS DISTINCT FROM (to_jsonb(NEW) - bookkeeping) THEN
            INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
            VALUES (NEW.table_id, 'UPDATE', now(), current_user, to_jsonb(OLD) - bookkeeping, to_jsonb(NEW) - bookkeeping);
        END IF;
        RETURN NEW;
    ELSE
        INSERT INTO table_control_history (table_id, operation, changed_at, changed_by, old_values, new_values)
        VALUES (OLD.table_id, 'DELETE', now(), current_user, to_jsonb(OLD) - bookkeeping, NULL);
        RETURN OLD;
    END IF;
END
$$;

-- An UPDATE that leaves updated_at as it was gets now() when it changes what the table
-- declares (not its watermark, not run bookkeeping: as DataLoader sets it). One that changes
-- schedule, timezone or is_active but not next_load_date_time raises schedule_changed.
CREATE FUNCTION table_control_plain_sql() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    not_declared TEXT[] := ARRAY['status', 'next_load_date_time', 'last_run_id', 'retry_count',
        'updated_at', 'backfill_cursor', 'last_check_value', 'incremental_value_type',
        'last_delete_scan_at', 'loaded_from', 'schedule_changed', 'incremental_value'];
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
        AND (to_jsonb(OLD) - not_declared) IS DISTINCT FROM (to_jsonb(NEW) - not_declared) THEN
        NEW.updated_at := now();
    END IF;
    IF (NEW.schedule IS DISTINCT FROM OLD.schedule OR NEW.timezone IS DISTINCT FROM OLD.timezone
            OR NEW.is_active IS DISTINCT FROM OLD.is_active)
        AND NEW.next_load_date_time IS NOT DISTINCT FROM OLD.next_load_date_time THEN
        NEW.schedule_changed := TRUE;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER table_control_plain_sql
BEFORE UPDATE ON table_control
FOR EACH ROW EXECUTE FUNCTION table_control_plain_sql();

CREATE FUNCTION table_control_dbconfig_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at AND NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER table_control_dbconfig_updated_at
BEFORE UPDATE ON table_control_dbconfig
FOR EACH ROW EXECUTE FUNCTION table_control_dbconfig_updated_at();
