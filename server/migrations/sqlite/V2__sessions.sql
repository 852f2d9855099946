-- Per-session summaries (see `crate::domain::summary`), kept in the writer's transactions. A database
-- migrated from version 1 has its summaries rebuilt from its events on open.
CREATE TABLE sessions (
    session_token TEXT PRIMARY KEY,
    student_id INTEGER REFERENCES students(student_id),
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX idx_sessions_last_seen ON sessions(last_seen);
CREATE INDEX idx_sessions_student ON sessions(student_id);
