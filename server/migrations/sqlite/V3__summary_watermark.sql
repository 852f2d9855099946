-- Summaries written behind the events (see `summaries`): the watermark says how far they
-- reach. Which students appear in which session moves from an index on every event
-- (`idx_events_student`, one more page per student per commit) to a table written once per
-- pair, which deletion and retention read.
CREATE TABLE summary_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    event_id INTEGER NOT NULL
);
INSERT INTO summary_watermark (id, event_id) VALUES (1, (SELECT coalesce(max(event_id), 0) FROM events));
CREATE TABLE session_students (
    session_token TEXT NOT NULL,
    student_id INTEGER NOT NULL REFERENCES students(student_id),
    PRIMARY KEY (session_token, student_id)
) WITHOUT ROWID;
CREATE INDEX idx_session_students_student ON session_students(student_id);
INSERT INTO session_students (session_token, student_id)
    SELECT DISTINCT session_token, student_id FROM events WHERE student_id IS NOT NULL;
DROP INDEX idx_events_student;
