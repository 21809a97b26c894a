-- Leases and cancellation for the scheduler; retry analysis on each failed run; connection limits.

ALTER TABLE historical_metadata ADD COLUMN lease_owner TEXT;
ALTER TABLE historical_metadata ADD COLUMN lease_expires_at TEXT;
ALTER TABLE historical_metadata ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE historical_metadata ADD COLUMN retry_category TEXT;
ALTER TABLE historical_metadata ADD COLUMN retry_recommendation TEXT;
ALTER TABLE historical_metadata ADD COLUMN retry_explanation TEXT;
ALTER TABLE historical_metadata ADD COLUMN retry_analyzed BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE table_control_dbconfig ADD COLUMN max_connections INTEGER;

CREATE INDEX historical_metadata_status ON historical_metadata (status, run_id);
