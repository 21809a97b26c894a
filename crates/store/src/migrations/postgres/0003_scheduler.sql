-- Leases and cancellation for the scheduler; retry analysis on each failed run; connection limits.

ALTER TABLE historical_metadata
    ADD COLUMN lease_owner TEXT,
    ADD COLUMN lease_expires_at TIMESTAMPTZ,
    ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN retry_category TEXT,
    ADD COLUMN retry_recommendation TEXT,
    ADD COLUMN retry_explanation TEXT,
    ADD COLUMN retry_analyzed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE table_control_dbconfig ADD COLUMN max_connections BIGINT;

CREATE INDEX historical_metadata_status ON historical_metadata (status, run_id);
