-- Rooms: the runs of a workshop (a cohort, a class), each with a join code a person can type
-- and optional opening and closing times.
CREATE TABLE rooms (
    room_id BIGSERIAL PRIMARY KEY,
    workshop_id BIGINT NOT NULL REFERENCES workshops(workshop_id),
    name TEXT NOT NULL,
    code TEXT NOT NULL UNIQUE,
    opens_at TIMESTAMPTZ,
    closes_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_rooms_workshop ON rooms (workshop_id);
-- Where each session belongs, written with its first events and never changed by ingest (the
-- first writer wins); `room_id` NULL is the workshop's lobby. Every session stored before
-- rooms (summaries are written in the events' transaction here) belongs to the `default`
-- workshop's lobby.
CREATE TABLE session_rooms (
    session_token TEXT PRIMARY KEY,
    workshop_id BIGINT NOT NULL,
    room_id BIGINT,
    joined_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_session_rooms_room ON session_rooms (room_id, session_token);
CREATE INDEX idx_session_rooms_workshop ON session_rooms (workshop_id, session_token);
INSERT INTO session_rooms (session_token, workshop_id, room_id, joined_at)
    SELECT session_token, (SELECT workshop_id FROM workshops WHERE slug = 'default'), NULL, first_seen FROM sessions;
-- Helper tokens: personal read tokens of a teaching team, stored only as a SHA-256 hash, with a
-- role (`instructor` or `assistant`) and the rooms they cover (a JSON array of room ids).
CREATE TABLE helper_tokens (
    token_id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('instructor', 'assistant')),
    token_hash TEXT NOT NULL UNIQUE,
    rooms JSON NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
