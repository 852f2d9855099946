//! Retention: the purge deletes old events in small transactions and keeps every session summary
//! equal to the fold of the events that remain (a real SQLite file, the real writer thread).

mod common;

use std::time::Duration;

use common::{assert_summaries_are_folds, temp_storage, valid_events};
use serde_json::json;
use session_log_server::ingest::ValidEvent;
use session_log_server::storage::{query_sessions, SessionQuery};
use session_log_server::Config;

fn events(token: &str, from: u64, n: u64, email: Option<&str>) -> Vec<ValidEvent> {
    valid_events(token, from..from + n, email, |i| {
        let event_type = if i % 3 == 0 { "error" } else { "navigation" };
        (event_type, json!({"to": i, "errorType": "boom", "currentStep": i}))
    })
}

// Purging everything stored before a cutoff, in batches of 7, deletes exactly the old events,
// recomputes the summaries of sessions that keep events, drops the summaries (and students) of
// sessions that keep none, and never touches newer events.
#[test]
fn purge_keeps_summaries_right() {
    let (_dir, _config, storage, runtime) = temp_storage();
    runtime.block_on(async {
        storage.insert(events("ws_old", 0, 20, Some("old@example.com"))).await.unwrap();
        storage.insert(events("ws_both", 0, 10, None)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        storage.insert(events("ws_both", 10, 5, None)).await.unwrap();
        storage.insert(events("ws_new", 0, 5, Some("new@example.com"))).await.unwrap();
    });
    let conn = storage.reader().unwrap();
    let cutoff: String = conn
        .query_row("SELECT created_at FROM events WHERE session_token = 'ws_both' AND seq = 10", [], |r| r.get(0))
        .unwrap();
    let mut removed = Vec::new();
    runtime.block_on(async {
        loop {
            let batch = storage.purge(cutoff.clone(), 7).await.unwrap();
            removed.push(batch);
            if batch.events < 7 {
                break;
            }
        }
    });
    let events: u64 = removed.iter().map(|r| r.events).sum();
    let sessions: u64 = removed.iter().map(|r| r.sessions).sum();
    let students: u64 = removed.iter().map(|r| r.students).sum();
    assert_eq!((events, sessions, students), (30, 1, 1), "ws_old and its student go; ws_both keeps 5 events");
    assert!(removed.iter().all(|r| r.events <= 7), "small transactions");

    assert_eq!(assert_summaries_are_folds(&conn), ["ws_both", "ws_new"]);
    let rows = query_sessions(&conn, &SessionQuery { limit: 100, ..SessionQuery::default() }).unwrap();
    let both = rows.iter().find(|r| r.session_token == "ws_both").unwrap();
    assert_eq!((both.summary.events, both.summary.max_seq, both.summary.current_step), (5, Some(14), Some(14)));
    assert_eq!(both.summary.missing_events(), 10, "seq 0–9 are gone");
    let students: i64 = conn.query_row("SELECT count(*) FROM students", [], |r| r.get(0)).unwrap();
    assert_eq!(students, 1);
    storage.close();
}

// The server's retention task purges events older than the configured retention on its own.
#[test]
fn retention_task_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let config = Config {
        db_path: db.clone(),
        instructor_tokens: vec!["t".into()],
        www_dir: None,
        pkg_dir: None,
        retention: Some(Duration::from_millis(300)),
        retention_every: Duration::from_millis(100),
        ..Config::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/session-log", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new()
            .block_on(session_log_server::run(listener, config, async move {
                let _ = stopped.await;
            }))
            .unwrap();
    });
    let body = json!({"sessionToken": "ws_r", "eventType": "action", "eventData": {}}).to_string();
    let mut posted = false;
    for _ in 0..100 {
        if ureq::post(&url).content_type("application/json").send(&body).is_ok() {
            posted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(posted, "the server did not start");
    let count = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM sessions)", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    let events =
        rusqlite::Connection::open(&db).unwrap().query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0));
    assert_eq!(events.unwrap(), 1, "the event is stored");
    let mut left = count();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        left = count();
        if left == 0 {
            break;
        }
    }
    let _ = stop.send(());
    server.join().unwrap();
    assert_eq!(left, 0, "the retention task deleted the event and its summary within 5 s");
}

/// Every line of every archive file in `dir`, parsed.
fn archived(dir: &std::path::Path) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("events-") && name.ends_with(".ndjson.gz"), "{name}");
        let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()));
        lines.extend(reader.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()));
    }
    lines
}

/// Waits (up to 20 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// With --archive-dir, retention writes what it purges as gzipped NDJSON per UTC day (the export's
// format) before deleting it: every purged event is in the archive, once.
#[test]
fn retention_archives_before_it_purges() {
    let archive = tempfile::tempdir().unwrap();
    let dir = archive.path().join("archive");
    let server = common::TestServer::start_with(|c| {
        c.retention = Some(Duration::from_millis(300));
        c.retention_every = Duration::from_millis(200);
        c.archive_dir = Some(dir.clone());
    });
    let batch: Vec<_> =
        (0..1500).map(|i| common::event("ws_archive", "action", json!({"actionName": "a", "i": i}))).collect();
    for chunk in batch.chunks(500) {
        let (status, answer) = server.post(&json!({"events": chunk}));
        assert_eq!(status, 200, "{answer}");
    }
    wait_until("every event purged", || server.stored_rows() == 0);
    let lines = archived(&dir);
    assert_eq!(lines.len(), 1500, "every purged event was archived");
    let mut uuids: Vec<&str> = lines.iter().map(|l| l["event_uuid"].as_str().unwrap()).collect();
    uuids.sort_unstable();
    uuids.dedup();
    assert_eq!(uuids.len(), 1500, "once each");
    assert_eq!(lines[0]["session_token"], "ws_archive");
    assert!(lines[0]["event_data"]["i"].is_u64());
    assert_eq!(server.metric("session_log_events_archived_total"), 1500.0);
}

// When the archive cannot be written, nothing is purged (and the failure is counted).
#[test]
fn an_unwritable_archive_purges_nothing() {
    let archive = tempfile::tempdir().unwrap();
    let not_a_dir = archive.path().join("a-file");
    std::fs::write(&not_a_dir, "in the way").unwrap();
    let server = common::TestServer::start_with(|c| {
        c.retention = Some(Duration::from_millis(100));
        c.retention_every = Duration::from_millis(100);
        c.archive_dir = Some(not_a_dir.clone());
    });
    server.post(&common::event("ws_kept", "action", json!({"actionName": "a"})));
    wait_until("two failed runs", || server.metric("session_log_archive_failures_total") >= 2.0);
    assert_eq!(server.stored_rows(), 1, "the event stays");
}
