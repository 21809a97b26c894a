-- What a table's Delta rows and stored watermark came from (`connection:source` of its last
-- load that committed), so a load after its source or connection changed can tell, instead of
-- applying an old watermark to another table. Bookkeeping, not audited. Tables already loaded
-- take their current source.

ALTER TABLE table_control ADD COLUMN loaded_from TEXT;

UPDATE table_control
SET loaded_from = connection_name || ':' || COALESCE(source_schema || '.', '') || source_table
WHERE last_run_id IS NOT NULL;
