-- Tickets of the transactions that draw event ids, in draw order: each transaction holds an
-- advisory lock on its ticket until it ends, and waits for the previous ticket's before its
-- commit, so commits become visible in event_id order while their inserts run side by side.
CREATE SEQUENCE IF NOT EXISTS events_draw_tickets;
