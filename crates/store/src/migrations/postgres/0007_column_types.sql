-- Per-column type overrides: a JSON object from source column name to the type it loads as
-- (`{"free_num": "string"}`), for a column whose values no mapped type holds exactly. The
-- audit trigger covers every column already.

ALTER TABLE table_control ADD COLUMN column_types TEXT NOT NULL DEFAULT '{}';
