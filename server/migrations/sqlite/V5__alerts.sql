-- Alerts (one row per alert) and their change log (the alert stream's positions).
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    alert TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX idx_alerts_opened ON alerts(opened_at);
CREATE TABLE alert_changes (
    change_id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    change TEXT NOT NULL
);
