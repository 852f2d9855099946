-- session-log's PostgreSQL schema, version 1: the reference's DDL (events with SERIAL ids, JSONB
-- data, a creation time and its three indexes) with 64-bit ids and time zones, plus what
-- session-log adds: the students table the reference's foreign key names, event UUIDs (dedup),
-- the client's per-session seq, per-session summaries and which students appear in which session.
CREATE TABLE students (
    student_id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT
);
-- Emails compare case-insensitively, as on SQLite (COLLATE NOCASE).
CREATE UNIQUE INDEX idx_students_email ON students (lower(email));

CREATE TABLE events (
    event_id BIGSERIAL PRIMARY KEY,
    event_uuid UUID NOT NULL,
    seq BIGINT,
    student_id BIGINT REFERENCES students (student_id),
    session_token TEXT NOT NULL,
    event_type VARCHAR(50) NOT NULL CHECK (length(event_type) >= 1),
    event_data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE UNIQUE INDEX idx_events_uuid ON events (event_uuid);
-- The reference's three indexes; the first two carry event_id, the order every query pages in.
CREATE INDEX idx_events_session ON events (session_token, event_id);
CREATE INDEX idx_events_type ON events (event_type, event_id);
CREATE INDEX idx_events_created ON events (created_at DESC);
CREATE INDEX idx_events_student ON events (student_id, event_id) WHERE student_id IS NOT NULL;

-- One row per session: the fold of its events (see the server's `summary` module), written in
-- the transaction that stores them. JSON, not JSONB: it is written whole and read whole
-- (/api/sessions, the report), and JSONB's conversion both ways made reading 2,000 summaries
-- take 120-160 ms.
CREATE TABLE sessions (
    session_token TEXT PRIMARY KEY,
    student_id BIGINT REFERENCES students (student_id),
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    summary JSON NOT NULL
);
CREATE INDEX idx_sessions_last_seen ON sessions (last_seen DESC);
CREATE INDEX idx_sessions_student ON sessions (student_id);

-- Which students appear in which session (deletion and retention read it).
CREATE TABLE session_students (
    session_token TEXT NOT NULL,
    student_id BIGINT NOT NULL REFERENCES students (student_id),
    PRIMARY KEY (session_token, student_id)
);
CREATE INDEX idx_session_students_student ON session_students (student_id);
