-- What a table's Delta rows and stored watermark came from (`connection:source` of its last
-- load that committed), so a load after its source or connection changed can tell, instead of
-- applying an old watermark to another table. Bookkeeping: the audit trigger leaves it out.
-- Tables already loaded take their current source.

ALTER TABLE table_control ADD COLUMN loaded_from TEXT;

CREATE OR REPLACE FUNCTION table_control_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bookkeeping TEXT[] := ARRAY['status', 'next_load_date_time', 'last_run_id', 'retry_count',
        'updated_at', 'backfill_cursor', 'last_check_value', 'incremental_value_type',
        'last_delete_scan_at', 'loaded_from'];
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

UPDATE table_control
SET loaded_from = connection_name || ':' || COALESCE(source_schema || '.', '') || source_table
WHERE last_run_id IS NOT NULL;
