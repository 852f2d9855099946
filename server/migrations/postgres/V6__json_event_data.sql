-- event_data as json (the text as sent, validated) instead of jsonb. Nothing of session-log
-- queries inside it (the rules read each event's facts at ingest, in Rust), and measured under
-- batched load (docs/benchmarks.md) jsonb's conversion and larger rows made PostgreSQL's CPU per
-- event 22-27 us where json's validation makes it 15-16 us. The reference's queries
-- (event_data->>'errorType') work on json as they did; containment (@>) needs event_data::jsonb.
-- Rewrites the table once: 500,000 events took 1.8 s on the benchmark's machine, before indexes.
-- Servers of an older release keep inserting during a rolling upgrade (jsonb is assigned to json).
ALTER TABLE events ALTER COLUMN event_data TYPE json USING event_data::json;
