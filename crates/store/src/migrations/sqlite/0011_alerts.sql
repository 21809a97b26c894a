-- Alert rules (`dataloader alert`, `alerts:` in apply files) and every delivery they made.
-- One delivery per rule and event (UNIQUE): a second scheduler finding the same event adds
-- nothing, so nothing is sent twice.

CREATE TABLE alert_rules (
    name              TEXT PRIMARY KEY,
    event             TEXT NOT NULL CONSTRAINT alert_rules_event CHECK (event IN ('failure', 'recovery', 'long_run', 'freshness')),
    threshold_minutes INTEGER CONSTRAINT alert_rules_threshold CHECK (threshold_minutes IS NULL OR threshold_minutes > 0),
    tables            TEXT,
    url               TEXT NOT NULL,   -- the webhook's URL or a reference to it
    format            TEXT NOT NULL DEFAULT 'json' CONSTRAINT alert_rules_format CHECK (format IN ('json', 'slack')),
    is_active         INTEGER NOT NULL DEFAULT 1,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE alert_deliveries (
    delivery_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    rule            TEXT NOT NULL,
    event_key       TEXT NOT NULL,
    table_id        INTEGER,
    run_id          INTEGER,
    status          TEXT NOT NULL DEFAULT 'pending' CONSTRAINT alert_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    next_attempt_at TEXT,
    UNIQUE (rule, event_key)
);

CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
