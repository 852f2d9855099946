-- Alerts (one row per alert, its JSON as last written) and their change log, whose positions
-- are the alert stream's cursor (written under an advisory lock, so they become visible in order).
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    alert JSON NOT NULL
);
CREATE INDEX idx_alerts_opened ON alerts (opened_at DESC);
CREATE TABLE alert_changes (
    change_id BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL,
    change JSON NOT NULL
);
