-- Sessions page most recently seen first with the token as tie-break (keyset paging).
DROP INDEX idx_sessions_last_seen;
CREATE INDEX idx_sessions_last_seen ON sessions(last_seen, session_token);
