-- Range-partitioned parallel reads: `parallelism` (NULL: one read). The audit trigger covers
-- every column already.

ALTER TABLE table_control ADD COLUMN parallelism TEXT;
