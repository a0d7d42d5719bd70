-- The SQLite schema version 3 (the statements statusd ran on a new file), to test migrations.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    order_key TEXT NOT NULL,
    latest BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    report_count INTEGER NOT NULL,
    terminal_mask INTEGER NOT NULL,
    submit_time INTEGER,
    registered_at INTEGER,
    report_deadline INTEGER,
    country TEXT NOT NULL DEFAULT '',
    final_time INTEGER,
    error_code TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL DEFAULT '',
    client_ref TEXT NOT NULL DEFAULT '',
    parent_message_id TEXT NOT NULL DEFAULT '',
    UNIQUE (provider, account, message_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_updated ON messages (updated);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    report BLOB NOT NULL,
    UNIQUE (message, event_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    item BLOB NOT NULL,
    stored INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_report_deadline ON messages (report_deadline) WHERE report_deadline IS NOT NULL AND order_key < '1';
CREATE INDEX IF NOT EXISTS messages_stats_submit ON messages (submit_time, provider, account, country, status, error_code, final_time) WHERE submit_time IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_stats_first_seen ON messages (first_seen, provider, account, country, status, error_code, submit_time, final_time);
CREATE INDEX IF NOT EXISTS messages_awaiting ON messages (id) WHERE report_deadline IS NOT NULL AND order_key < '1';
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient, id) WHERE recipient != '';
CREATE INDEX IF NOT EXISTS messages_client_ref ON messages (client_ref, id) WHERE client_ref != '';
CREATE INDEX IF NOT EXISTS messages_parent ON messages (provider, account, parent_message_id, id) WHERE parent_message_id != '';
