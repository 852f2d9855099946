//! The server binary as an operator runs it: signals, generated tokens, restarts.

use serde_json::json;
use session_log_e2e::{Server, INSTRUCTOR_TOKEN};

// SIGTERM stops the server cleanly (exit 0), and what it acknowledged is there after a restart.
#[test]
fn sigterm_exits_cleanly_and_keeps_acknowledged_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/events.db");
    let args = ["--instructor-token", INSTRUCTOR_TOKEN];
    let server = Server::start_with(&db, &args);
    let events: Vec<_> =
        (0..20).map(|n| json!({"sessionToken": "ws_term", "eventType": "action", "eventData": {"n": n}})).collect();
    let (status, answer) = server.post(&json!({"events": events}));
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(20)));
    let exit = server.terminate();
    assert!(exit.success(), "exit status after SIGTERM: {exit}");

    let server = Server::start_with(&db, &args);
    assert_eq!(server.events("sessionToken=ws_term&limit=1000")["count"], 20);
}

// Without --instructor-token the server prints a generated token once, and that token reads events.
#[test]
fn generated_instructor_token_is_printed_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &[]);
    let token = server.generated_token.clone().expect("a generated token on stdout");
    assert_eq!(token.len(), 64, "256 bits in hex: {token}");
    assert_eq!(server.events_as(&token, "")["success"], true);
}
