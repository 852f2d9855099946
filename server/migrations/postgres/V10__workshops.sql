-- Workshops: one deployed page each, with its public write key and the origins allowed to send
-- with it (a JSON array; empty allows any). `default` takes keyless events and holds everything
-- stored before workshops existed.
CREATE TABLE workshops (
    workshop_id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    write_key TEXT UNIQUE,
    allowed_origins JSON NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
INSERT INTO workshops (slug, name) VALUES ('default', 'Default workshop');
