-- Per-table data-file layout: Delta partition columns (a JSON list, like `tags`), the target
-- data-file size, the Parquet codec and rows per row group (NULL: the defaults in
-- dataloader_core::layout). The audit trigger covers every column already.

ALTER TABLE table_control
    ADD COLUMN partition_by TEXT NOT NULL DEFAULT '[]',
    ADD COLUMN target_file_size TEXT,
    ADD COLUMN compression TEXT,
    ADD COLUMN row_group_rows BIGINT;
