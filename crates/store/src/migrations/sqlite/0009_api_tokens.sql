-- Bearer tokens of `dataloader serve` (`dataloader token create`). Only a SHA-256 of each
-- token is kept: the token itself is shown once, when it is made.

CREATE TABLE api_token (
    token_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CONSTRAINT api_token_role CHECK (role IN ('viewer', 'operator', 'admin')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
);
