-- The rules run per room: each alert names the workshop (slug) and the room (join code; NULL
-- for the workshop's lobby) whose sessions raised it, as columns so that a helper's or a
-- room's alerts are read without the others'. Alerts from before rooms are `default`'s.
ALTER TABLE alerts ADD COLUMN workshop TEXT NOT NULL DEFAULT 'default';
ALTER TABLE alerts ADD COLUMN room TEXT;
CREATE INDEX idx_alerts_room ON alerts(room, opened_at);
