-- `sessions` rows are rewritten by every commit that adds events to their session (the summary is
-- folded in the events' transaction), and a summary over 2 kB lives in TOAST, so each rewrite
-- leaves a dead row and dead TOAST chunks. Measured: 20,000 sessions took 12-13 GB after
-- 10,000,000 events with the default autovacuum settings (which wait for 20% of the table to be
-- dead). Vacuum them after a fixed number of dead rows instead, and leave room on each page for
-- HOT updates.
ALTER TABLE sessions SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    toast.autovacuum_vacuum_scale_factor = 0,
    toast.autovacuum_vacuum_threshold = 2000
);
