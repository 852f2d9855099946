-- A student's events are read through their session (`session_token = … AND student_id = …`).
-- The planner took the two conditions as independent and estimated one row of a session's
-- hundreds, so it read the whole session through a bitmap scan and sorted it (10 ms at p99 with
-- 10,000,000 events) instead of walking its index backwards to the first 100 (0.2 ms). A
-- session has one student, which these statistics tell it.
CREATE STATISTICS IF NOT EXISTS events_session_student (dependencies) ON session_token, student_id FROM events;
ANALYZE events;
