-- The reference's PostgreSQL schema translated to SQLite: SERIAL -> INTEGER PRIMARY KEY
-- AUTOINCREMENT (ids never reused, so they can serve as cursors), JSONB -> JSON text, TIMESTAMP ->
-- ISO 8601 text with ms (sorts as time). Added: event_uuid (dedup) and seq (the client's
-- per-session number).
CREATE TABLE students (
    student_id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT
);
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_uuid BLOB NOT NULL,
    seq INTEGER,
    student_id INTEGER REFERENCES students(student_id),
    session_token TEXT NOT NULL,
    event_type TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 50),
    event_data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX idx_events_uuid ON events(event_uuid);
CREATE INDEX idx_events_session ON events(session_token);
CREATE INDEX idx_events_type ON events(event_type);
CREATE INDEX idx_events_created ON events(created_at DESC);
CREATE INDEX idx_events_student ON events(student_id);
