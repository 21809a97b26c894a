-- Changes to connections made through DataLoader (the CLI, apply, the console and its API):
-- who changed which fields, never a value (an old row may still hold a password in clear).

CREATE TABLE connection_history (
    history_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_name TEXT NOT NULL,
    operation       TEXT NOT NULL CONSTRAINT connection_history_operation CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    changed_at      TEXT NOT NULL,
    changed_by      TEXT NOT NULL,
    fields          TEXT NOT NULL DEFAULT '[]'   -- JSON list of the fields that changed
);

CREATE INDEX connection_history_by_name ON connection_history (connection_name, history_id);
