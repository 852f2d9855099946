//! Session summaries written behind the events: after a crash, and after another connection
//! deletes data under the running writer, every stored summary is still the fold of its
//! session's stored events (a real SQLite file and a real PostgreSQL database, the real writers).

#[macro_use]
mod common;

use common::{assert_summaries_are_folds, temp_storage, valid_events};
use serde_json::json;
use session_log_server::domain::validate::ValidEvent;
use session_log_server::storage::delete_student_offline;
use session_log_server::storage::now_iso;
use session_log_server::storage::sqlite::{open_writer_connection, EventWriter, WriterCache};
use session_log_server::Config;

fn events(token: &str, from: u64, n: u64, email: Option<&str>) -> Vec<ValidEvent> {
    valid_events(token, from..from + n, email, |i| {
        let event_type = if i % 4 == 0 { "api_call" } else { "navigation" };
        (event_type, json!({"to": i, "endpoint": "/deploy", "status": 500, "duration": i}))
    })
}

// Events committed without their summaries (a crash before the writer's flush) get their
// summaries when the database is opened again.
#[test]
fn summaries_catch_up_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let types = Config::default().completion_event_types;
    {
        let mut conn = open_writer_connection(&db, &types).unwrap();
        let mut cache = WriterCache::new(&types);
        for (token, email) in [("ws_a", Some("a@example.com")), ("ws_b", None)] {
            let tx = conn.transaction().unwrap();
            let created_at = now_iso();
            EventWriter::new(&tx, &created_at, &mut cache).unwrap().write(&events(token, 0, 30, email)).unwrap();
            tx.commit().unwrap();
        }
        // Dropped unflushed, as by SIGKILL.
    }
    let stored: i64 =
        rusqlite::Connection::open(&db).unwrap().query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, 0, "no summary was written before the crash");

    drop(open_writer_connection(&db, &types).unwrap());
    let config = Config { db_path: db, ..Config::default() };
    let storage = session_log_server::storage::Storage::open(&config, Default::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(assert_summaries_are_folds(&storage, &runtime), ["ws_a", "ws_b"]);
}

on_both_backends! {
    // The delete-student command, run beside the server, deletes a session whose summary the
    // server's writer holds in memory: the writer notices, and neither resurrects the deleted
    // summary nor carries the deleted events into the session's new ones.
    fn writer_sees_another_connections_deletion(backend) {
        let (db, config, storage, runtime) = temp_storage(backend);
        runtime.block_on(async {
            storage.insert(events("ws_gone", 0, 10, Some("gone@example.com"))).await.unwrap();
            storage.insert(events("ws_kept", 0, 10, None)).await.unwrap();
        });
        let removed = delete_student_offline(&config, "gone@example.com").unwrap();
        assert_eq!(removed.events, 10);
        runtime.block_on(async {
            // The same session token again, anonymous this time, and more for the other session.
            storage.insert(events("ws_gone", 100, 3, None)).await.unwrap();
            storage.insert(events("ws_kept", 10, 5, None)).await.unwrap();
            storage.flush_summaries().await.unwrap();
        });
        assert_eq!(assert_summaries_are_folds(&storage, &runtime), ["ws_gone", "ws_kept"]);
        let gone = db.texts("SELECT CAST(summary AS TEXT) FROM sessions WHERE session_token = 'ws_gone'");
        let gone: serde_json::Value = serde_json::from_str(&gone[0]).unwrap();
        assert_eq!(gone["events"], 3, "only the events stored after the deletion");
        storage.close();
    }

    // A report over more sessions than one page of summaries counts every session and every
    // event once, whatever the order in which the sessions were last seen.
    fn report_pages_count_each_session_once(backend) {
        let (_db, _config, storage, runtime) = temp_storage(backend);
        let page = session_log_server::storage::REPORT_PAGE as u64;
        let sessions = 2 * page + 3;
        runtime.block_on(async {
            let all: Vec<ValidEvent> =
                (0..sessions).flat_map(|i| events(&format!("ws_{i:05}"), 0, 2, None)).collect();
            for chunk in all.chunks(400) {
                storage.insert(chunk.to_vec()).await.unwrap();
            }
            // The first session is seen again: most recently seen first, it is now on page one.
            storage.insert(events("ws_00000", 2, 1, None)).await.unwrap();
            let report =
                storage.report(Default::default(), std::time::Duration::from_secs(300), None).await.unwrap();
            assert_eq!(report.sessions, sessions);
            assert_eq!(report.events, 2 * sessions + 1);
            assert_eq!(report.api_calls[0].calls, sessions, "each session's seq 0 is an API call");
        });
        storage.close();
    }
}
