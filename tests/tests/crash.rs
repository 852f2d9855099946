//! Durability under load: the server binary killed with SIGKILL, or stopped with SIGTERM, while a
//! load generator posts batches. Every event the server acknowledged must be stored exactly once.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use session_log_e2e::load::{Load, LoadConfig};
use session_log_e2e::{Server, INSTRUCTOR_TOKEN};
use uuid::Uuid;

/// Every event id in the database, checking on the way that none is stored twice.
fn stored_ids(db: &Path) -> HashSet<Uuid> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn.prepare("SELECT event_uuid FROM events").unwrap();
    let ids: Vec<Uuid> = statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|bytes| Uuid::from_slice(&bytes.unwrap()).unwrap())
        .collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event is stored more than once");
    unique
}

/// The session summaries (`/api/sessions`) count exactly the events stored: the summary work
/// lost with each SIGKILL was redone from the events when the server started again.
fn assert_summaries_match(server: &Server, db: &Path) {
    let stored: i64 =
        rusqlite::Connection::open(db).unwrap().query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    let sessions = server.get_as(INSTRUCTOR_TOKEN, "/api/sessions");
    let counted: i64 = sessions["sessions"].as_array().unwrap().iter().map(|s| s["events"].as_i64().unwrap()).sum();
    assert_eq!(counted, stored, "the session summaries count {counted} events, the events table holds {stored}");
}

fn assert_all_stored(acked: &[Uuid], db: &Path) {
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
    let args =
        ["--bind", &bind, "--instructor-token", INSTRUCTOR_TOKEN, "--rate-limit-ip", "0", "--rate-limit-session", "0"];
    let mut server = Server::start_with(&db, &args);
    let load = steady_load(&server.url);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        server.kill();
        server = Server::start_with(&db, &args);
    }
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_summaries_match(&server, &db);
    drop(server);
    assert!(report.failures > 0, "the kills were noticed by the clients");
    assert_all_stored(&report.acked, &db);
}

// SIGTERM under load: the server exits 0 and every event it acknowledged is stored.
#[test]
fn sigterm_under_load_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let args = ["--instructor-token", INSTRUCTOR_TOKEN, "--rate-limit-ip", "0", "--rate-limit-session", "0"];
    let server = Server::start_with(&db, &args);
    let load = steady_load(&server.url);
    std::thread::sleep(Duration::from_millis(800));
    let status = server.terminate();
    let report = load.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_all_stored(&report.acked, &db);
}
