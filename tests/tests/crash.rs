//! Durability under load: the server binary killed with SIGKILL, or stopped with SIGTERM, while a
//! load generator posts batches, on SQLite and on PostgreSQL; and PostgreSQL itself stopped and
//! started again under load. Every event the server acknowledged must be stored exactly once.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use session_log_e2e::load::{Load, LoadConfig};
use session_log_e2e::pg::{Cluster, FreshDatabase};
use session_log_e2e::{Server, INSTRUCTOR_TOKEN, UNLIMITED};
use uuid::Uuid;

/// The database a server under test writes to.
enum Db<'a> {
    Sqlite(&'a Path),
    Postgres(&'a FreshDatabase),
}

impl Db<'_> {
    fn count(&self) -> i64 {
        match self {
            Db::Sqlite(db) => rusqlite::Connection::open(db)
                .unwrap()
                .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .unwrap(),
            Db::Postgres(db) => db.count("SELECT count(*) FROM events"),
        }
    }

    fn ids(&self) -> Vec<Uuid> {
        match self {
            Db::Sqlite(db) => {
                let conn = rusqlite::Connection::open(db).unwrap();
                let mut statement = conn.prepare("SELECT event_uuid FROM events").unwrap();
                statement
                    .query_map([], |row| row.get::<_, Vec<u8>>(0))
                    .unwrap()
                    .map(|bytes| Uuid::from_slice(&bytes.unwrap()).unwrap())
                    .collect()
            }
            Db::Postgres(db) => {
                db.client().query("SELECT event_uuid FROM events", &[]).unwrap().iter().map(|r| r.get(0)).collect()
            }
        }
    }
}

/// Every event id in the database, checking on the way that none is stored twice.
fn stored_ids(db: &Db<'_>) -> HashSet<Uuid> {
    let ids = db.ids();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event is stored more than once");
    unique
}

/// The session summaries (`/api/sessions`) count exactly the events stored: the summary work
/// lost with each SIGKILL was redone from the events when the server started again.
fn assert_summaries_match(server: &Server, db: &Db<'_>) {
    let stored = db.count();
    let sessions = server.get_as(INSTRUCTOR_TOKEN, "/api/sessions");
    let counted: i64 = sessions["sessions"].as_array().unwrap().iter().map(|s| s["events"].as_i64().unwrap()).sum();
    assert_eq!(counted, stored, "the session summaries count {counted} events, the events table holds {stored}");
}

fn assert_all_stored(acked: &[Uuid], db: &Db<'_>) {
    assert!(!acked.is_empty(), "the load generator got no acknowledgement at all");
    let stored = stored_ids(db);
    let missing = acked.iter().filter(|id| !stored.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged events are missing", acked.len());
}

/// Eight clients posting batches of 20 until stopped (at most 30 s or 200,000 requests).
fn steady_load(url: &str) -> Load {
    Load::start(LoadConfig {
        url: url.to_owned(),
        clients: 8,
        batch_size: 20,
        duration: Duration::from_secs(30),
        max_requests: 200_000,
        envelope: String::new(),
    })
}

// SIGKILL three times under load: every acknowledged event survives, none is stored twice, and
// the session summaries count every stored event.
#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let args = [&["--bind", bind.as_str()][..], &UNLIMITED].concat();
    kill_three_times_under_load(&db, &args, &Db::Sqlite(&db));
}

/// Starts the server with `args` (and `--db db`), kills it with SIGKILL three times under a
/// steady load, restarting it each time, then checks `stored`: every acknowledged event once,
/// and the session summaries counting every stored event.
fn kill_three_times_under_load(db: &Path, args: &[&str], stored: &Db<'_>) {
    let mut server = Server::start_with(db, args);
    let load = steady_load(&server.url);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        server.kill();
        server = Server::start_with(db, args);
    }
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_summaries_match(&server, stored);
    drop(server);
    assert!(report.failures > 0, "the kills were noticed by the clients");
    assert_all_stored(&report.acked, stored);
}

// SIGTERM under load: the server exits 0 and every event it acknowledged is stored.
#[test]
fn sigterm_under_load_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let server = Server::start_with(&db, &UNLIMITED);
    let load = steady_load(&server.url);
    std::thread::sleep(Duration::from_millis(800));
    let status = server.terminate();
    let report = load.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_all_stored(&report.acked, &Db::Sqlite(&db));
}

// On PostgreSQL, SIGKILL of the server three times under load: every acknowledged event is
// stored exactly once, and the session summaries (folded in the events' transactions) count
// every stored event.
#[test]
fn postgres_sigkill_under_load_loses_no_acknowledged_event() {
    let database = FreshDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let args = [&["--bind", bind.as_str(), "--database-url", database.url.as_str()][..], &UNLIMITED].concat();
    let db = dir.path().join("unused.db");
    kill_three_times_under_load(&db, &args, &Db::Postgres(&database));
    assert!(!dir.path().join("unused.db").exists(), "no SQLite file was made");
}

/// Waits (at most 30 s) until `done` holds; panics naming `what` otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL cluster of the test's own, a fresh database on it, a server writing there (its
/// folder kept alive with it) and the steady load on that server.
fn own_cluster_under_load() -> (Cluster, FreshDatabase, tempfile::TempDir, Server, Load) {
    let cluster = Cluster::start();
    let database = FreshDatabase::on(&cluster.admin_url);
    let dir = tempfile::tempdir().unwrap();
    let args = [&["--database-url", database.url.as_str()][..], &UNLIMITED].concat();
    let server = Server::start_with(&dir.path().join("unused.db"), &args);
    let load = steady_load(&server.url);
    (cluster, database, dir, server, load)
}

// PostgreSQL stopped under load and started again: while it is down, POSTs and /healthz answer
// 503 (not 500, not a hang); once it is back, ingest resumes without restarting
// the server, and every event acknowledged before, during and after is stored exactly once.
#[test]
fn postgres_stopped_under_load_answers_503_and_recovers() {
    let (cluster, database, _dir, server, load) = own_cluster_under_load();
    let probe = |n: u32| {
        server.post(&serde_json::json!({"sessionToken": "ws_probe", "eventType": "probe", "eventData": {"n": n}}))
    };
    wait_until("the load is stored", || server.metric("session_log_events_accepted_total") > 1000.0);
    cluster.stop();
    let mut n = 0;
    wait_until("a POST answers 503 while PostgreSQL is down", || {
        n += 1;
        probe(n).0 == 503
    });
    let (status, answer) = probe(0);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("unavailable"), "{answer}");
    let health =
        ureq::get(&format!("{}/healthz", server.url)).config().http_status_as_error(false).build().call().unwrap();
    assert_eq!(health.status().as_u16(), 503, "/healthz while PostgreSQL is down");
    cluster.start_again();
    wait_until("a POST is stored again without a server restart", || {
        n += 1;
        probe(n).0 == 200
    });
    let accepted = server.metric("session_log_events_accepted_total");
    wait_until("the load is stored again", || server.metric("session_log_events_accepted_total") > accepted + 500.0);
    let report = load.stop();
    assert!(report.failures > 0, "the clients saw the outage");
    assert_summaries_match(&server, &Db::Postgres(&database));
    drop(server);
    assert_all_stored(&report.acked, &Db::Postgres(&database));
}

// PostgreSQL crashed three times under load (an immediate shutdown: the WAL still in its
// memory is lost, the next start replays what reached the disk): every event acknowledged
// before a crash survives it, none is stored twice, and the summaries count every stored event.
#[test]
fn postgres_crash_under_load_loses_no_acknowledged_event() {
    let (cluster, database, _dir, server, load) = own_cluster_under_load();
    for round in 1..=3 {
        let accepted = server.metric("session_log_events_accepted_total");
        wait_until("the load is stored", || server.metric("session_log_events_accepted_total") > accepted + 2000.0);
        cluster.crash();
        cluster.start_again();
        let accepted = server.metric("session_log_events_accepted_total");
        wait_until(&format!("ingest resumes after crash {round}"), || {
            server.metric("session_log_events_accepted_total") > accepted + 500.0
        });
    }
    let report = load.stop();
    assert!(report.failures > 0, "the clients saw the crashes");
    assert_summaries_match(&server, &Db::Postgres(&database));
    drop(server);
    assert_all_stored(&report.acked, &Db::Postgres(&database));
}
