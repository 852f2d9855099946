-- The help queue: a help request's session as a column, so a student's page reads its latest
-- request by its token without reading the room's other alerts; and the notices instructors
-- post to a room's pages (read by room while they have not expired).
ALTER TABLE alerts ADD COLUMN session_token TEXT;
UPDATE alerts SET session_token = json_extract(alert, '$.sessionTokens[0]')
    WHERE json_extract(alert, '$.rule') = 'help_request';
CREATE INDEX idx_alerts_session ON alerts(session_token, opened_at) WHERE session_token IS NOT NULL;
CREATE TABLE notices (
    notice_id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    message TEXT NOT NULL,
    posted_by TEXT NOT NULL,
    posted_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX idx_notices_room ON notices(room, expires_at);
