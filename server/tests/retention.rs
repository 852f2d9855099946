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
