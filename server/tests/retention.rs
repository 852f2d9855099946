//! Retention: the purge deletes old events in small transactions and keeps every session summary
//! equal to the fold of the events that remain (a real SQLite file and a real PostgreSQL database,
//! the real writers).

#[macro_use]
mod common;

use std::time::Duration;

use common::{assert_summaries_are_folds, temp_storage, valid_events};
use serde_json::json;
use session_log_server::domain::validate::ValidEvent;
use session_log_server::storage::SessionQuery;

fn events(token: &str, from: u64, n: u64, email: Option<&str>) -> Vec<ValidEvent> {
    valid_events(token, from..from + n, email, |i| {
        let event_type = if i % 3 == 0 { "error" } else { "navigation" };
        (event_type, json!({"to": i, "errorType": "boom", "currentStep": i}))
    })
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

on_both_backends! {
    // Purging everything stored before a cutoff, in batches of 7, deletes exactly the old events,
    // recomputes the summaries of sessions that keep events, drops the summaries (and students) of
    // sessions that keep none, and never touches newer events.
    fn purge_keeps_summaries_right(backend) {
        let (db, _config, storage, runtime) = temp_storage(backend);
        runtime.block_on(async {
            storage.insert(events("ws_old", 0, 20, Some("old@example.com"))).await.unwrap();
            storage.insert(events("ws_both", 0, 10, None)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            storage.insert(events("ws_both", 10, 5, None)).await.unwrap();
            storage.insert(events("ws_new", 0, 5, Some("new@example.com"))).await.unwrap();
        });
        let cutoff = db.texts("SELECT CAST(created_at AS TEXT) FROM events WHERE session_token = 'ws_both' AND seq = 10");
        let cutoff = cutoff[0].clone();
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

        assert_eq!(assert_summaries_are_folds(&storage, &runtime), ["ws_both", "ws_new"]);
        let rows = runtime.block_on(storage.sessions(SessionQuery { limit: 100, ..SessionQuery::default() })).unwrap();
        let both = rows.iter().find(|r| r.session_token == "ws_both").unwrap();
        assert_eq!((both.summary.events, both.summary.max_seq, both.summary.current_step), (5, Some(14), Some(14)));
        assert_eq!(both.summary.missing_events(), 10, "seq 0–9 are gone");
        assert_eq!(db.count("SELECT count(*) FROM students"), 1);
        storage.close();
    }

    // The server's retention task purges events older than the configured retention on its own.
    fn retention_task_runs(backend) {
        let server = common::TestServer::on_with(backend, |c| {
            c.retention = Some(Duration::from_millis(300));
            c.retention_every = Duration::from_millis(100);
        });
        server.post_all(vec![common::event("ws_r", "action", json!({}))]);
        assert_eq!(server.stored_rows(), 1, "the event is stored");
        let count = || server.db.count("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM sessions)");
        wait_until("the retention task deleted the event and its summary", || count() == 0);
    }

    // With --archive-dir, retention writes what it purges as gzipped NDJSON per UTC day (the export's
    // format) before deleting it: every purged event is in the archive, once.
    fn retention_archives_before_it_purges(backend) {
        let archive = tempfile::tempdir().unwrap();
        let dir = archive.path().join("archive");
        let server = common::TestServer::on_with(backend, |c| {
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
    fn an_unwritable_archive_purges_nothing(backend) {
        let archive = tempfile::tempdir().unwrap();
        let not_a_dir = archive.path().join("a-file");
        std::fs::write(&not_a_dir, "in the way").unwrap();
        let server = common::TestServer::on_with(backend, |c| {
            c.retention = Some(Duration::from_millis(100));
            c.retention_every = Duration::from_millis(100);
            c.archive_dir = Some(not_a_dir.clone());
        });
        server.post(&common::event("ws_kept", "action", json!({"actionName": "a"})));
        wait_until("two failed runs", || server.metric("session_log_archive_failures_total") >= 2.0);
        assert_eq!(server.stored_rows(), 1, "the event stays");
    }
}
