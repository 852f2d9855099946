//! PostgreSQL with autovacuum off (a setting some servers and CI images use): the server does
//! autovacuum's work for its own tables, so the sessions table, which every commit rewrites,
//! does not grow without bound.

use std::time::{Duration, Instant};

use serde_json::json;
use session_log_e2e::pg::{Cluster, FreshDatabase};
use session_log_e2e::{Server, UNLIMITED};

/// `(vacuum_count, n_dead_tup)` of `sessions`.
fn sessions_vacuum(database: &FreshDatabase) -> (i64, i64) {
    let row = database
        .client()
        .query_one("SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'sessions'", &[])
        .unwrap();
    (row.get(0), row.get(1))
}

// 3,000 summary rewrites leave 3,000 dead session rows; with autovacuum off the server vacuums
// them within its check interval (10 s), and the planner gets statistics for the events table.
#[test]
fn the_server_vacuums_when_autovacuum_is_off() {
    let cluster = Cluster::start_with(&["autovacuum=off"]);
    let database = FreshDatabase::on(&cluster.admin_url);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("unused.db"),
        &[&["--database-url", database.url.as_str()][..], &UNLIMITED].concat(),
    );
    for round in 0..300 {
        let batch: Vec<_> = (0..10)
            .map(|s| {
                json!({"sessionToken": format!("ws_vacuum_{s}"), "eventType": "action",
                            "eventData": {"actionName": "step", "round": round}})
            })
            .collect();
        let (status, body) = server.post(&json!({"events": batch}));
        assert_eq!(status, 200, "{body}");
    }
    // Both within the same bounded wait: the leader's pass vacuums `sessions` and analyzes
    // `events` one after the other, and PostgreSQL publishes each count when it is done.
    let analyzed = || -> i64 {
        database
            .client()
            .query_one("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'events'", &[])
            .unwrap()
            .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (vacuums, dead) = sessions_vacuum(&database);
        let analyses = analyzed();
        if vacuums > 0 && dead < 2000 && analyses > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not within 40 s: sessions {vacuums} vacuums, {dead} dead rows; events analyzed {analyses} times"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
}

// With autovacuum off, the server's own vacuum of `events` sleeps as autovacuum would (the
// cluster's `autovacuum_vacuum_cost_delay` and `_limit`), so it yields to ingest: here, with a
// limit of 1, PostgreSQL shows it waiting in `VacuumDelay`.
#[test]
fn the_servers_vacuum_of_events_sleeps_as_autovacuum_would() {
    let cluster = Cluster::start_with(&[
        "autovacuum=off",
        "autovacuum_vacuum_cost_delay=100ms",
        "autovacuum_vacuum_cost_limit=1",
    ]);
    let database = FreshDatabase::on(&cluster.admin_url);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("unused.db"),
        &[&["--database-url", database.url.as_str()][..], &UNLIMITED].concat(),
    );
    // 3,000 events: past autovacuum's insert threshold for `events` (1,000 + 20% of the rows).
    for round in 0..30 {
        let batch: Vec<_> = (0..100)
            .map(|n| {
                json!({"sessionToken": format!("ws_throttle_{}", n % 4), "eventType": "action",
                            "eventData": {"actionName": "step", "round": round, "n": n}})
            })
            .collect();
        let (status, body) = server.post(&json!({"events": batch}));
        assert_eq!(status, 200, "{body}");
    }
    let sleeping = || -> i64 {
        database
            .client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE query LIKE 'VACUUM%events' AND wait_event = 'VacuumDelay'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    // The leader checks every 10 s.
    let deadline = Instant::now() + Duration::from_secs(40);
    while sleeping() == 0 {
        assert!(Instant::now() < deadline, "no throttled vacuum of events within 40 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
}
