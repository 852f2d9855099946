-- Ingest levers, each measured with perf on this schema under batched load (docs/benchmarks.md):
--
-- The foreign key from events to students ran one RI check per inserted row (an SPI query with
-- its own executor start and index scan): 11-13% of PostgreSQL's CPU per event. Every event that
-- names a student also writes its (session, student) pair to session_students in the same
-- transaction, and that table keeps its foreign key: a student deleted under a commit still fails
-- that commit, which the client then retries.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_student_id_fkey;
-- A student's events are found through their sessions (session_students, then
-- idx_events_session), as on SQLite: this index was written for every event and read by one query.
DROP INDEX IF EXISTS idx_events_student;
-- created_at grows with event_id (each commit stamps its rows with the time of the commit), so a
-- BRIN index answers the time ranges of queries and retention from a few pages, and costs almost
-- nothing per insert where the B-tree cost 4-5% of the CPU per event.
DROP INDEX IF EXISTS idx_events_created;
CREATE INDEX idx_events_created ON events USING brin (created_at);
