-- Each `dataloader run` worker's master sensor ticks, kept so the console and /metrics can
-- say when each worker last looked for due tables, how long a tick took and how late it was.

CREATE TABLE scheduler_workers (
    worker                     TEXT PRIMARY KEY,
    started_at                 TEXT NOT NULL,
    last_tick_at               TEXT NOT NULL,
    last_tick_seconds          REAL NOT NULL,
    last_tick_lateness_seconds REAL NOT NULL,
    ticks                      INTEGER NOT NULL DEFAULT 0,
    running_loads              INTEGER NOT NULL DEFAULT 0
);
