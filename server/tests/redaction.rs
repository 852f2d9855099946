//! Redaction at ingest: secrets in eventData never reach the database, whatever client sent them.

mod common;

use common::{event, TestServer};
use serde_json::{json, Value};
use session_log_protocol::redact::Rules;

/// The stored eventData of the session's only event, read straight from the SQLite file.
fn stored_data(server: &TestServer, token: &str) -> Value {
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let text: String =
        conn.query_row("SELECT event_data FROM events WHERE session_token = ?1", [token], |r| r.get(0)).unwrap();
    serde_json::from_str(&text).unwrap()
}

// A reference-shaped POST with secrets in keys, nested objects and free text is stored redacted,
// counted in /metrics, and answered as usual.
#[test]
fn secrets_are_redacted_before_they_are_stored() {
    let server = TestServer::start();
    let data = json!({
        "actionName": "openai_connected",
        "apiKey": "sk-proj-abcdefghijklmnopqrstuvwx",
        "request": {"headers": {"Authorization": "Bearer abcdefgh12345678"}, "body": {"password": "hunter2"}},
        "errorMessage": "Incorrect API key provided: sk-abcdefghijklmnopqrstuvwxyz0123",
        "note": "paid with 4111 1111 1111 1111",
        "provider": "openai"
    });
    let (status, answer) = server.post(&event("ws_redact1", "action", data));
    assert_eq!((status, &answer["success"]), (200, &json!(true)), "{answer}");
    let stored = stored_data(&server, "ws_redact1");
    assert_eq!(stored["apiKey"], "[redacted]");
    assert_eq!(stored["request"]["headers"]["Authorization"], "[redacted]");
    assert_eq!(stored["request"]["body"]["password"], "[redacted]");
    assert_eq!(stored["errorMessage"], "Incorrect API key provided: [redacted]");
    assert_eq!(stored["note"], "paid with [redacted]");
    assert_eq!(stored["provider"], "openai");
    assert_eq!(stored["actionName"], "openai_connected");
    assert_eq!(server.metric("session_log_redacted_values_total"), 5.0);
    // The instructor's query returns what was stored.
    let read = server.get("sessionToken=ws_redact1");
    assert_eq!(read["events"][0]["event_data"]["apiKey"], "[redacted]");
}

// --redact-key adds names; --no-redact turns the defaults off (the added names still apply).
#[test]
fn redaction_is_configurable() {
    let server = TestServer::start_with(|c| c.redaction = Rules::new(false, &["phoneNumber".to_owned()]));
    let data = json!({"phoneNumber": "+15555551234", "password": "kept as sent", "m": "sk-abcdefghijklmnopqrstuvwxyz"});
    server.post(&event("ws_redact2", "action", data));
    let stored = stored_data(&server, "ws_redact2");
    assert_eq!(
        stored,
        json!({"phoneNumber": "[redacted]", "password": "kept as sent", "m": "sk-abcdefghijklmnopqrstuvwxyz"})
    );
}

// Events without secrets are stored byte for byte as sent.
#[test]
fn clean_events_are_stored_as_sent() {
    let server = TestServer::start();
    let raw =
        r#"{"sessionToken":"ws_redact3","eventType":"action","eventData":{"actionName":"x", "n": 1.50, "é":"✓"}}"#;
    let (status, _) = server.post_raw(Some("application/json"), raw);
    assert_eq!(status, 200);
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let text: String = conn.query_row("SELECT event_data FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(text, r#"{"actionName":"x", "n": 1.50, "é":"✓"}"#);
}
