-- Workshops: one deployed page each, with its public write key and the origins allowed to send
-- with it (a JSON array; empty allows any). `default` takes keyless events and holds everything
-- stored before workshops existed.
CREATE TABLE workshops (
    workshop_id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    write_key TEXT UNIQUE,
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
INSERT INTO workshops (workshop_id, slug, name, created_at)
VALUES (1, 'default', 'Default workshop', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
