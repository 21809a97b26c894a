-- Strategy options of the six strategies, run notes; the audit trigger learns the new
-- bookkeeping column.

ALTER TABLE table_control
    ADD COLUMN inner_strategy TEXT,
    ADD COLUMN null_watermark TEXT,
    ADD COLUMN schema_evolution TEXT NOT NULL DEFAULT 'add_columns',
    ADD COLUMN delete_detection TEXT NOT NULL DEFAULT 'none',
    ADD COLUMN delete_detection_interval TEXT,
    ADD COLUMN max_delete_ratio DOUBLE PRECISION NOT NULL DEFAULT 0.2,
    ADD COLUMN last_delete_scan_at TIMESTAMPTZ;

ALTER TABLE historical_metadata
    ADD COLUMN schema_changes TEXT,
    ADD COLUMN notes TEXT;

CREATE OR REPLACE FUNCTION table_control_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bookkeeping TEXT[] := ARRAY['status', 'next_load_date_time', 'last_run_id', 'retry_count',
        'updated_at', 'backfill_cursor', 'last_check_value', 'incremental_value_type',
        'last_delete_scan_at'];
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
