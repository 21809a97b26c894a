-- Each `dataloader run` worker's master sensor ticks, kept so the console and /metrics can
-- say when each worker last looked for due tables, how long a tick took and how late it was.

CREATE TABLE scheduler_workers (
    worker                     TEXT PRIMARY KEY,
    started_at                 TIMESTAMPTZ NOT NULL,
    last_tick_at               TIMESTAMPTZ NOT NULL,
    last_tick_seconds          DOUBLE PRECISION NOT NULL,
    last_tick_lateness_seconds DOUBLE PRECISION NOT NULL,
    ticks                      BIGINT NOT NULL DEFAULT 0,
    running_loads              BIGINT NOT NULL DEFAULT 0
);
