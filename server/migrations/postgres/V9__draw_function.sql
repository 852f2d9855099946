-- A group's draw in one statement: takes the id lock (a session-level advisory lock, the
-- server's ID_ORDER_LOCK), draws a ticket from V7's sequence and takes its transaction-level
-- lock in `ticket_class`, draws `wanted` event ids at once, keeps the ticket in the
-- transaction-local setting `session_log.ticket` (the group's wait for the previous ticket reads
-- it, in the same round trip), and lets the id lock go. Sent as three statements before, each its
-- own turn of the protocol (a Sync, a flush and a wake-up on both sides). An error inside leaves
-- the id lock held: the server then closes the connection.
CREATE OR REPLACE FUNCTION session_log_draw(id_lock int8, ticket_class int4, wanted int8,
                                            OUT ticket int8, OUT last_id int8)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock(id_lock);
    ticket := nextval('events_draw_tickets');
    PERFORM pg_advisory_xact_lock(ticket_class, (ticket % 2147483647)::int4);
    last_id := setval('events_event_id_seq', nextval('events_event_id_seq') + wanted - 1);
    PERFORM set_config('session_log.ticket', ticket::text, true);
    PERFORM pg_advisory_unlock(id_lock);
END
$$;
