//! `session-log-server backup DEST` on a live SQLite database: a copy taken while a load
//! generator posts batches holds every event acknowledged before it began, once each; a server
//! started on the copy answers them and its summaries count exactly its events; with
//! `--database-url` the command says to use pg_dump and fails.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use session_log_e2e::load::{Load, LoadConfig};
use session_log_e2e::{server_bin, Server, INSTRUCTOR_TOKEN, UNLIMITED};
use uuid::Uuid;

fn load(url: &str, seconds: u64, max_requests: usize) -> LoadConfig {
    LoadConfig {
        url: url.to_owned(),
        clients: 4,
        batch_size: 50,
        duration: Duration::from_secs(seconds),
        max_requests,
        envelope: String::new(),
    }
}

/// Every event id in a SQLite file, checking that none is stored twice.
fn ids_in(db: &Path) -> HashSet<Uuid> {
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

/// Events per session in a SQLite file.
fn counts_in(db: &Path) -> HashMap<String, i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn.prepare("SELECT session_token, count(*) FROM events GROUP BY session_token").unwrap();
    statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

// A backup under batched load holds every event acknowledged before it began; a server started on
// the copy answers them, and its session summaries equal the fold of its events.
#[test]
fn a_backup_under_load_restores_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let copy = dir.path().join("backups/copy.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let server = Server::start_with(&db, &UNLIMITED);
    let before = Load::run(load(&server.url, 2, 200));
    assert!(!before.acked.is_empty(), "the first load was acknowledged");
    let during = Load::start(load(&server.url, 20, 4000));
    let output =
        std::process::Command::new(server_bin()).arg("backup").arg(&copy).arg("--db").arg(&db).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "backup failed: {}", String::from_utf8_lossy(&output.stderr));
    let during = during.stop();
    assert!(stdout.starts_with("backed up ") && stdout.contains(" events (newest event_id "), "{stdout}");
    assert!(!during.acked.is_empty(), "the server kept ingesting during the backup");
    let leftovers: Vec<_> =
        std::fs::read_dir(copy.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["copy.db"], "one file, no temporary or journal beside it");
    drop(server);

    let in_copy = ids_in(&copy);
    let missing = before.acked.iter().filter(|id| !in_copy.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} events acknowledged before the backup are missing", before.acked.len());
    let live = ids_in(&db);
    assert!(in_copy.is_subset(&live), "the copy holds only stored events");
    assert!(live.len() > in_copy.len(), "the copy is a point in time: the load went on after it");

    // Restore: a server on the copy answers its events, and its summaries count them per session.
    let restored = Server::start_with(&copy, &UNLIMITED);
    let counts = counts_in(&copy);
    let session = counts.keys().next().unwrap().clone();
    let answer = restored.events(&format!("sessionToken={session}&limit=1000"));
    assert_eq!(answer["count"].as_i64(), Some(counts[&session].min(1000)), "the restored server answers the session");
    let mut summaries = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/sessions?limit=500&cursor={c}"),
            None => "/api/sessions?limit=500".to_owned(),
        };
        let page = restored.get_as(INSTRUCTOR_TOKEN, &path);
        for s in page["sessions"].as_array().unwrap() {
            summaries.insert(s["sessionToken"].as_str().unwrap().to_owned(), s["events"].as_i64().unwrap());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(summaries, counts, "each session's summary counts exactly its events in the copy");
}

// With --database-url the command names pg_dump and exits non-zero, writing nothing.
#[test]
fn backup_of_postgres_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy.db");
    let output = std::process::Command::new(server_bin())
        .arg("backup")
        .arg(&dest)
        .args(["--database-url", "postgres://postgres@127.0.0.1:5432/postgres"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!dest.exists());
}
