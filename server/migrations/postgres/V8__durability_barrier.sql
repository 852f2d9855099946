-- The durability barrier's sequence: each group of events commits without waiting for its WAL
-- flush, then runs `SELECT setval('session_log_durability', 1)` as a transaction of its own.
-- setval writes a WAL record and takes a transaction id, so that transaction's commit waits for
-- the WAL to be flushed through it (and so through the group's commit before it). A transaction
-- that writes no WAL (`SELECT pg_current_xact_id()` alone) commits without any flush.
CREATE SEQUENCE IF NOT EXISTS session_log_durability;
