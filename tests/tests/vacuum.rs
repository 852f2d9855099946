//! PostgreSQL with autovacuum off (a setting some servers and CI images use): the server does
//! autovacuum's work for its own tables, so the sessions table, which every commit rewrites,
//! does not grow without bound.

use std::time::{Duration, Instant};

use serde_json::json;
use session_log_e2e::pg::{Cluster, FreshDatabase};
use session_log_e2e::{Server, UNLIMITED};

/// A server on a fresh database of a PostgreSQL cluster of its own, started with `settings`
/// (dropped in field order: the server first).
struct Setup {
    server: Server,
    database: FreshDatabase,
    _dir: tempfile::TempDir,
    _cluster: Cluster,
}

impl Setup {
    fn start(settings: &[&str]) -> Setup {
        let cluster = Cluster::start_with(settings);
        let database = FreshDatabase::on(&cluster.admin_url);
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_with(
            &dir.path().join("unused.db"),
            &[&["--database-url", database.url.as_str()][..], &UNLIMITED].concat(),
        );
        Setup { server, database, _dir: dir, _cluster: cluster }
    }
}

/// Posts `rounds` batches of `per_batch` action events, spread over `sessions` sessions named
/// `{prefix}_{n}`; each must answer 200.
fn post_actions(server: &Server, prefix: &str, rounds: usize, per_batch: usize, sessions: usize) {
    for round in 0..rounds {
        let batch: Vec<_> = (0..per_batch)
            .map(|n| {
                json!({"sessionToken": format!("{prefix}_{}", n % sessions), "eventType": "action",
                            "eventData": {"actionName": "step", "round": round, "n": n}})
            })
            .collect();
        let (status, body) = server.post(&json!({"events": batch}));
        assert_eq!(status, 200, "{body}");
    }
}

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
    let Setup { server, database, .. } = &Setup::start(&["autovacuum=off"]);
    post_actions(server, "ws_vacuum", 300, 10, 10);
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
        let (vacuums, dead) = sessions_vacuum(database);
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
}

// With autovacuum off, the server's own vacuum of `events` sleeps as autovacuum would (the
// cluster's `autovacuum_vacuum_cost_delay` and `_limit`), so it yields to ingest: here, with a
// limit of 1, PostgreSQL shows it waiting in `VacuumDelay`.
#[test]
fn the_servers_vacuum_of_events_sleeps_as_autovacuum_would() {
    let Setup { server, database, .. } =
        &Setup::start(&["autovacuum=off", "autovacuum_vacuum_cost_delay=100ms", "autovacuum_vacuum_cost_limit=1"]);
    // 3,000 events: past autovacuum's insert threshold for `events` (1,000 + 20% of the rows).
    post_actions(server, "ws_throttle", 30, 100, 4);
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
}
