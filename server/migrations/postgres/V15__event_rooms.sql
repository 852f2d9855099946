-- Each event carries its session's room (`session_rooms.room_id`, NULL for a lobby), written
-- with the event and rewritten when the session moves, so one room's page of events reads the
-- room's index entries (`room_id`, `event_id`) and not every session of the room. Adding a
-- nullable column rewrites nothing; lobby events are not indexed by room.
ALTER TABLE events ADD COLUMN room_id BIGINT;
UPDATE events e SET room_id = p.room_id FROM session_rooms p
WHERE p.session_token = e.session_token AND p.room_id IS NOT NULL;
CREATE INDEX idx_events_room ON events (room_id, event_id) WHERE room_id IS NOT NULL;
