//! Integration tests of the HTTP API: a real server on 127.0.0.1 port 0, a real SQLite file.

use std::net::TcpListener;
use std::path::PathBuf;
use std::thread::JoinHandle;

use serde_json::{json, Value};
use session_log_server::{run, Config};

const TOKEN: &str = "test-instructor-token";

/// A server running in its own thread with its own database, stopped (gracefully) on drop.
struct TestServer {
    url: String,
    db: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
}

impl TestServer {
    fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nested/dir/events.db");
        let mut config = Config {
            db_path: db.clone(),
            instructor_tokens: vec!["old-token".into(), TOKEN.into()],
            www_dir: None,
            pkg_dir: None,
            ..Config::default()
        };
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new()
                .block_on(run(listener, config, async move {
                    let _ = stopped.await;
                }))
                .unwrap();
        });
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let server = TestServer { url, db, _dir: dir, stop: Some(stop), thread: Some(thread), agent };
        // Wait until it answers.
        for _ in 0..200 {
            if server.agent.get(&format!("{}/healthz", server.url)).call().is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the server did not start");
    }

    fn post_raw(&self, content_type: Option<&str>, body: impl AsRef<[u8]>) -> (u16, Value) {
        let mut request = self.agent.post(&format!("{}/api/session-log", self.url));
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        let mut response = request.send(body.as_ref()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")))
    }

    fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(Some("application/json"), body.to_string())
    }

    fn get_with(&self, query: &str, authorization: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.get(&format!("{}/api/session-log?{query}", self.url));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.call().unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    fn get(&self, query: &str) -> Value {
        let (status, body) = self.get_with(query, Some(&format!("Bearer {TOKEN}")));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Rows in the events table, read straight from the SQLite file.
    fn stored_rows(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap()
    }

    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn event(token: &str, event_type: &str, data: Value) -> Value {
    json!({"sessionToken": token, "eventType": event_type, "eventData": data})
}

// The reference's single-event POST is answered exactly as the reference says and stored.
#[test]
fn single_event_answers_reference_message() {
    let server = TestServer::start();
    let body: Value = serde_json::from_str(include_str!("../../protocol/fixtures/reference-post.json")).unwrap();
    let (status, answer) = server.post(&body);
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"success": true, "message": "Event logged successfully"}));
    let found = server.get("sessionToken=ws_1234567890");
    assert_eq!(found["success"], true);
    assert_eq!(found["count"], 1);
    let stored = &found["events"][0];
    assert_eq!(stored["session_token"], "ws_1234567890");
    assert_eq!(stored["event_type"], "navigation");
    assert_eq!(stored["event_data"], json!({"from": 1, "to": 2}));
    assert_eq!(stored["student_email"], "student@example.com");
    assert!(stored["event_id"].is_i64());
    let created = stored["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == "2025-10-27T15:30:45.123Z".len(), "{created}");
}

// A batch is stored whole and answered with the count of accepted events.
#[test]
fn batch_is_stored_and_counted() {
    let server = TestServer::start();
    let events: Vec<Value> = (0..30).map(|n| event("ws_batch", "action", json!({"n": n}))).collect();
    let (status, answer) = server.post(&json!({"events": events}));
    assert_eq!((status, answer), (200, json!({"success": true, "accepted": 30})));
    assert_eq!(server.stored_rows(), 30);
    assert_eq!(server.get("sessionToken=ws_batch&limit=1000")["count"], 30);
}

// Each filter of the reference's GET narrows the result, newest first, and `limit` caps it.
#[test]
fn get_filters_and_limit() {
    let server = TestServer::start();
    let mut events = Vec::new();
    for n in 0..5 {
        let mut e = event("ws_a", if n % 2 == 0 { "error" } else { "action" }, json!({"n": n}));
        e["studentEmail"] = json!("ada@example.com");
        e["studentName"] = json!("Ada Lovelace");
        events.push(e);
    }
    events.push(event("ws_b", "error", json!({"n": 5})));
    assert_eq!(server.post(&json!({"events": events})).0, 200);

    let by_session = server.get("sessionToken=ws_a");
    assert_eq!(by_session["count"], 5);
    let ns: Vec<i64> = by_session["events"].as_array().unwrap().iter().map(|e| e["event_data"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, vec![4, 3, 2, 1, 0], "newest first");
    assert_eq!(by_session["events"][0]["student_name"], "Ada Lovelace");

    let by_email = server.get("studentEmail=ADA@example.com");
    assert_eq!(by_email["count"], 5, "emails match case-insensitively");
    assert_eq!(server.get("eventType=error")["count"], 4);
    assert_eq!(server.get("sessionToken=ws_a&eventType=error")["count"], 3);
    assert_eq!(server.get("limit=2")["count"], 2);
    assert_eq!(server.get("")["count"], 6);
    assert_eq!(server.get("sessionToken=ws_none")["count"], 0);
    let anonymous = &server.get("sessionToken=ws_b")["events"][0];
    assert_eq!(anonymous["student_email"], Value::Null);
}

// Reading events needs a configured instructor token; any of several works.
#[test]
fn get_requires_instructor_token() {
    let server = TestServer::start();
    for auth in [None, Some("Bearer wrong"), Some(TOKEN), Some("Basic dGVzdA==")] {
        let (status, body) = server.get_with("", auth);
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body["success"], false);
        assert!(body["error"].as_str().unwrap().contains("Bearer"));
    }
    assert_eq!(server.get_with("", Some("Bearer old-token")).0, 200);
}

// Malformed bodies get a 400 JSON error naming the problem, and nothing is stored.
#[test]
fn invalid_bodies_get_json_errors_and_store_nothing() {
    let server = TestServer::start();
    let cases: Vec<(String, &str)> = vec![
        ("{\"sessionToken\": ".into(), "malformed JSON"),
        (json!({"sessionToken": "ws_1", "eventData": {}}).to_string(), "eventType"),
        (event("ws_1", "action", json!("text")).to_string(), "eventData: must be a JSON object"),
        (event("ws_1", "action", json!(null)).to_string(), "eventData"),
        (event("", "action", json!({})).to_string(), "sessionToken"),
        ("".into(), "empty"),
        ("[]".into(), "JSON object"),
    ];
    for (body, expected) in cases {
        let (status, answer) = server.post_raw(Some("application/json"), &body);
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["success"], false);
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expected), "{body} → {error}");
    }
    assert_eq!(server.stored_rows(), 0);
    // And the server is still up.
    assert_eq!(server.post(&event("ws_1", "action", json!({}))).0, 200);
}

// A batch with one invalid event stores the valid ones and reports the invalid one by index.
#[test]
fn batch_keeps_valid_events() {
    let server = TestServer::start();
    let batch = json!({"events": [
        event("ws_1", "action", json!({"n": 0})),
        event("ws_1", "action", json!(42)),
        event("ws_1", "action", json!({"n": 2})),
    ]});
    let (status, answer) = server.post(&batch);
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"], json!([{"index": 1, "error": "eventData: must be a JSON object, got a number"}]));
    assert_eq!(server.stored_rows(), 2);

    let (status, answer) = server.post(&json!({"events": [event("", "a", json!({}))]}));
    assert_eq!(status, 400);
    assert_eq!(answer["rejected"][0]["index"], 0);
    assert_eq!(server.stored_rows(), 2);
}

// A retried batch (same eventIds) is acknowledged again but stored once.
#[test]
fn retried_batch_is_not_duplicated() {
    let server = TestServer::start();
    let events: Vec<Value> = (0..3u64)
        .map(|n| {
            let mut e = event("ws_retry", "action", json!({"n": n}));
            e["eventId"] = json!(format!("01890a5d-ac96-774b-bcce-b302099a805{n}"));
            e["seq"] = json!(n);
            e
        })
        .collect();
    let batch = json!({"events": events});
    assert_eq!(server.post(&batch).1, json!({"success": true, "accepted": 3}));
    assert_eq!(server.post(&batch).1, json!({"success": true, "accepted": 3, "duplicates": 3}));
    assert_eq!(server.stored_rows(), 3);
    let stored = server.get("sessionToken=ws_retry");
    assert_eq!(stored["events"][0]["seq"], 2);
    assert_eq!(stored["events"][0]["event_uuid"], "01890a5d-ac96-774b-bcce-b302099a8052");
}

// Beacons send text/plain and are accepted; other content types get 415.
#[test]
fn content_types() {
    let server = TestServer::start();
    let body = event("ws_1", "action", json!({})).to_string();
    assert_eq!(server.post_raw(Some("text/plain;charset=UTF-8"), &body).0, 200);
    assert_eq!(server.post_raw(None, &body).0, 200);
    let (status, answer) = server.post_raw(Some("application/x-www-form-urlencoded"), &body);
    assert_eq!(status, 415);
    assert!(answer["error"].as_str().unwrap().contains("application/json"));
    assert_eq!(server.stored_rows(), 2);
}

// A body over the configured limit gets 413 with the limit named, and nothing is stored.
#[test]
fn oversized_body_is_refused() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 4096);
    let big = event("ws_1", "action", json!({"pad": "x".repeat(5000)}));
    let (status, answer) = server.post(&big);
    assert_eq!(status, 413);
    assert!(answer["error"].as_str().unwrap().contains("4096"));
    assert_eq!(server.stored_rows(), 0);
}

// An invalid query parameter gets a 400 naming it; unknown API paths get a JSON 404.
#[test]
fn bad_parameters_and_unknown_paths() {
    let server = TestServer::start();
    let (status, answer) = server.get_with("limit=5000", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().starts_with("limit:"));
    let mut response = server.agent.get(&format!("{}/api/nothing-here", server.url)).call().unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["success"], false);
}

// Acknowledged events are still there after a graceful shutdown and a restart on the same file.
#[test]
fn events_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let server = TestServer::start_with(|c| c.db_path = db.clone());
    assert_eq!(server.post(&event("ws_persist", "action", json!({"n": 1}))).0, 200);
    server.stop();
    let server = TestServer::start_with(|c| c.db_path = db.clone());
    assert_eq!(server.get("sessionToken=ws_persist")["count"], 1);
}
