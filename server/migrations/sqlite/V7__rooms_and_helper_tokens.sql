-- Rooms: the runs of a workshop (a cohort, a class), each with a join code a person can type
-- and optional opening and closing times.
CREATE TABLE rooms (
    room_id INTEGER PRIMARY KEY,
    workshop_id INTEGER NOT NULL REFERENCES workshops(workshop_id),
    name TEXT NOT NULL,
    code TEXT NOT NULL UNIQUE,
    opens_at TEXT,
    closes_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX idx_rooms_workshop ON rooms(workshop_id);
-- Where each session belongs, written with its first events and never changed by ingest (the
-- first writer wins); `room_id` NULL is the workshop's lobby. Every session stored before
-- rooms belongs to the `default` workshop's lobby: those with a summary, and those whose
-- events are past the summary watermark.
CREATE TABLE session_rooms (
    session_token TEXT PRIMARY KEY,
    workshop_id INTEGER NOT NULL,
    room_id INTEGER,
    joined_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX idx_session_rooms_room ON session_rooms(room_id, session_token);
CREATE INDEX idx_session_rooms_workshop ON session_rooms(workshop_id, session_token);
INSERT INTO session_rooms (session_token, workshop_id, room_id, joined_at)
    SELECT session_token, 1, NULL, first_seen FROM sessions;
INSERT OR IGNORE INTO session_rooms (session_token, workshop_id, room_id, joined_at)
    SELECT session_token, 1, NULL, min(created_at) FROM events
    WHERE event_id > (SELECT event_id FROM summary_watermark) GROUP BY session_token;
-- Helper tokens: personal read tokens of a teaching team, stored only as a SHA-256 hash, with a
-- role (`instructor` or `assistant`) and the rooms they cover (a JSON array of room ids).
CREATE TABLE helper_tokens (
    token_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('instructor', 'assistant')),
    token_hash TEXT NOT NULL UNIQUE,
    rooms TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
