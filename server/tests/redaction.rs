//! Redaction at ingest: secrets in eventData never reach the database, whatever client sent them.

#[macro_use]
mod common;

use common::{event, TestServer};
use serde_json::{json, Value};
use session_log_protocol::redact::Rules;

/// The stored eventData of the session's only event, read straight from the database.
fn stored_data(server: &TestServer, token: &str) -> Value {
    let texts =
        server.db.texts(&format!("SELECT CAST(event_data AS TEXT) FROM events WHERE session_token = '{token}'"));
    assert_eq!(texts.len(), 1, "one event of {token}");
    serde_json::from_str(&texts[0]).unwrap()
}

on_both_backends! {
    // A reference-shaped POST with secrets in keys, nested objects and free text is stored redacted,
    // counted in /metrics, and answered as usual.
    fn secrets_are_redacted_before_they_are_stored(backend) {
        let server = TestServer::on(backend);
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
    fn redaction_is_configurable(backend) {
        let server = TestServer::on_with(backend, |c| c.redaction = Rules::new(false, &["phoneNumber".to_owned()]));
        let data = json!({"phoneNumber": "+15555551234", "password": "kept as sent", "m": "sk-abcdefghijklmnopqrstuvwxyz"});
        server.post(&event("ws_redact2", "action", data));
        let stored = stored_data(&server, "ws_redact2");
        assert_eq!(
            stored,
            json!({"phoneNumber": "[redacted]", "password": "kept as sent", "m": "sk-abcdefghijklmnopqrstuvwxyz"})
        );
    }

    // Events without secrets are stored as sent, byte for byte (key order, spacing, digits), on
    // both backends (PostgreSQL's event_data is json since V6).
    fn clean_events_are_stored_as_sent(backend) {
        let server = TestServer::on(backend);
        let raw =
            r#"{"sessionToken":"ws_redact3","eventType":"action","eventData":{"actionName":"x", "n": 1.50, "é":"✓"}}"#;
        let (status, _) = server.post_raw(Some("application/json"), raw);
        assert_eq!(status, 200);
        let text = server.db.texts("SELECT CAST(event_data AS TEXT) FROM events").remove(0);
        assert_eq!(text, r#"{"actionName":"x", "n": 1.50, "é":"✓"}"#);
    }

    // Every secret of the protocol's fixture, posted in free text, in a context field and under
    // a header list, is gone from the database; the look-alikes are stored as sent.
    fn the_fixtures_secrets_never_reach_the_database(backend) {
        let server = TestServer::on(backend);
        let fixture: Value =
            serde_json::from_str(include_str!("../../protocol/fixtures/redaction.json")).expect("the fixture is JSON");
        let secrets = fixture["secrets"].as_array().unwrap();
        let events: Vec<Value> = secrets
            .iter()
            .enumerate()
            .map(|(i, sample)| {
                let text = sample["text"].clone();
                event(
                    &format!("ws_fixture{i:02}"),
                    "error",
                    json!({"errorType": "x", "errorMessage": text, "stepName": text, "headers": [["X-Api-Key", text]]}),
                )
            })
            .collect();
        server.post_all(events);
        let stored = server.db.texts("SELECT CAST(event_data AS TEXT) FROM events").join("\n");
        for sample in secrets {
            for secret in sample["secret"].as_array().unwrap() {
                let secret = secret.as_str().unwrap();
                assert!(!stored.contains(secret), "{}: {secret} was stored", sample["name"]);
            }
        }
        let kept: Vec<Value> = fixture["kept"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, text)| event(&format!("ws_kept{i:02}"), "action", json!({"note": text})))
            .collect();
        server.post_all(kept);
        for (i, text) in fixture["kept"].as_array().unwrap().iter().enumerate() {
            assert_eq!(stored_data(&server, &format!("ws_kept{i:02}"))["note"], *text);
        }
    }
}
