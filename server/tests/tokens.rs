//! Helper tokens, against a real server on each backend: an admin makes a personal token for a
//! room; it reads that room only (403 for another room named, lists filtered), an assistant's
//! may not export, neither may delete or manage, and a revoked token is refused at once.

#[macro_use]
mod common;

use common::{event, TestServer, ADMIN};
use serde_json::{json, Value};

/// `method path` with `token` and a JSON body: the status and the answer's text.
fn call(server: &TestServer, token: &str, method: &str, path: &str, body: &Value) -> (u16, String) {
    let answer = server.request(
        method,
        path,
        &[("Authorization", &format!("Bearer {token}")), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    (answer.status, answer.text)
}

/// `GET path` with `token`, which must answer 200: the JSON answer.
fn read(server: &TestServer, token: &str, path: &str) -> Value {
    let (status, text) = call(server, token, "GET", path, &Value::Null);
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Makes a workshop with two rooms and a session (with a student and an error) in each:
/// returns the two join codes.
fn two_rooms(server: &TestServer) -> (String, String) {
    let (status, text) =
        call(server, ADMIN, "POST", "/api/workshops", &json!({"slug": "voice-ai", "name": "Voice AI"}));
    assert_eq!(status, 201, "{text}");
    let key = serde_json::from_str::<Value>(&text).unwrap()["writeKey"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    for (name, token, email) in [("Room A", "ws_a", "ana@example.com"), ("Room B", "ws_b", "ben@example.com")] {
        let (status, text) = call(server, ADMIN, "POST", "/api/workshops/voice-ai/rooms", &json!({"name": name}));
        assert_eq!(status, 201, "{text}");
        let code = serde_json::from_str::<Value>(&text).unwrap()["code"].as_str().unwrap().to_owned();
        let mut events = vec![
            event(token, "action", json!({"actionName": "start"})),
            event(token, "error", json!({"errorType": "deploy_failed", "message": "m"})),
        ];
        for e in &mut events {
            e["studentEmail"] = json!(email);
        }
        let (status, answer) = server.post(&json!({"writeKey": key, "room": code, "events": events}));
        assert_eq!(status, 200, "{answer}");
        codes.push(code);
    }
    (codes.remove(0), codes.remove(0))
}

/// The session tokens of a list of sessions or events (`field` names the token), sorted.
fn tokens_of(list: &Value, field: &str) -> Vec<String> {
    let mut tokens: Vec<String> =
        list.as_array().unwrap().iter().map(|s| s[field].as_str().unwrap().to_owned()).collect();
    tokens.sort();
    tokens.dedup();
    tokens
}

on_both_backends! {
    // An assistant's token of room A reads room A only, everywhere it reads, and may not export,
    // delete or manage; revoked, it is refused on its next request.
    fn an_assistant_sees_only_their_room(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec![ADMIN.into()]);
        let (room_a, room_b) = two_rooms(&server);
        let (status, text) = call(&server, ADMIN, "POST", "/api/tokens",
            &json!({"name": "Alex", "role": "assistant", "rooms": [room_a.to_lowercase()]}));
        assert_eq!(status, 201, "{text}");
        let created: Value = serde_json::from_str(&text).unwrap();
        let alex = created["token"].as_str().unwrap().to_owned();
        assert!(alex.starts_with("ht_"), "{created}");
        assert_eq!(created["rooms"], json!([room_a]));
        let listed = read(&server, ADMIN, "/api/tokens");
        assert_eq!(listed["tokens"][0]["name"], "Alex");
        assert!(listed["tokens"][0].get("token").is_none(), "shown once: {listed}");
        assert!(listed["tokens"][0].get("lastUsedAt").is_none(), "not used yet: {listed}");

        assert_eq!(tokens_of(&read(&server, &alex, "/api/sessions")["sessions"], "sessionToken"), ["ws_a"]);
        assert_eq!(tokens_of(&read(&server, &alex, &format!("/api/sessions?room={room_a}"))["sessions"], "sessionToken"), ["ws_a"]);
        assert_eq!(tokens_of(&read(&server, &alex, "/api/session-log")["events"], "session_token"), ["ws_a"]);
        assert_eq!(read(&server, &alex, "/api/session-log?sessionToken=ws_b")["count"], 0, "another room's session");
        assert_eq!(read(&server, &alex, "/api/report")["sessions"], 1);
        let rooms = read(&server, &alex, "/api/rooms");
        assert_eq!(tokens_of(&rooms["rooms"], "code"), [room_a.as_str()]);
        assert_eq!(rooms["role"], "assistant");
        assert!(read(&server, ADMIN, "/api/rooms").get("role").is_none(), "a server-wide token has no helper role");
        assert_eq!(read(&server, &alex, "/api/students/ana@example.com")["sessions"].as_array().unwrap().len(), 1);
        for path in [
            format!("/api/sessions?room={room_b}"),
            format!("/api/session-log?room={room_b}"),
            format!("/api/report?room={room_b}"),
            format!("/api/session-log/stream?room={room_b}"),
            "/api/session-log/export?format=ndjson".to_owned(),
            format!("/api/alerts?room={room_b}"),
            format!("/api/alerts/stream?room={room_b}"),
        ] {
            let (status, text) = call(&server, &alex, "GET", &path, &Value::Null);
            assert_eq!(status, 403, "{path}: {text}");
            assert!(text.contains("does not cover"), "{path}: {text}");
        }
        assert_eq!(call(&server, &alex, "GET", "/api/students/ben@example.com", &Value::Null).0, 404);
        assert_eq!(call(&server, &alex, "DELETE", "/api/students/ana@example.com", &Value::Null).0, 403);
        assert_eq!(call(&server, &alex, "POST", "/api/workshops", &json!({"slug": "x", "name": "x"})).0, 403);
        assert_eq!(call(&server, &alex, "GET", "/api/tokens", &Value::Null).0, 403);
        // Its use is recorded (written off the request's path, at most once a minute).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while read(&server, ADMIN, "/api/tokens")["tokens"][0].get("lastUsedAt").is_none() {
            assert!(std::time::Instant::now() < deadline, "no lastUsedAt within 5 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }

        let id = created["id"].as_i64().unwrap();
        let (status, text) = call(&server, ADMIN, "DELETE", &format!("/api/tokens/{id}"), &Value::Null);
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("revokedAt"), "{text}");
        assert_eq!(call(&server, &alex, "GET", "/api/sessions", &Value::Null).0, 401, "revoked: refused at once");
        assert_eq!(call(&server, ADMIN, "DELETE", "/api/tokens/999999", &Value::Null).0, 404);
    }

    // Alerts are raised per room and name it: an assistant of room A lists and acknowledges room
    // A's alerts, gets 403 for room B's and for muting; a server-wide token sees both rooms.
    fn a_helper_handles_their_rooms_alerts(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.admin_tokens = vec![ADMIN.into()];
            c.alert_tick = std::time::Duration::from_millis(50);
            c.rate_limit_session_per_sec = 0;
        });
        let (room_a, room_b) = two_rooms(&server);
        let (status, text) = call(&server, ADMIN, "POST", "/api/tokens",
            &json!({"name": "Alex", "role": "assistant", "rooms": [room_a]}));
        assert_eq!(status, 201, "{text}");
        let alex = serde_json::from_str::<Value>(&text).unwrap()["token"].as_str().unwrap().to_owned();
        // A help request in each room (each session is already in its room).
        for token in ["ws_a", "ws_b"] {
            server.post_all(vec![event(token, "help_request", json!({"message": format!("help {token}")}))]);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let all = loop {
            let all = read(&server, ADMIN, "/api/alerts")["alerts"].as_array().unwrap().clone();
            if all.iter().filter(|a| a["rule"] == "help_request").count() == 2 {
                break all;
            }
            assert!(std::time::Instant::now() < deadline, "two help requests within 10 s: {all:#?}");
            std::thread::sleep(std::time::Duration::from_millis(25));
        };
        let help = |room: &str| all.iter().find(|a| a["rule"] == "help_request" && a["room"] == room).cloned();
        let (in_a, in_b) = (help(&room_a).expect("room A's request"), help(&room_b).expect("room B's request"));
        assert_eq!((in_a["workshop"].as_str(), in_a["sessionTokens"][0].as_str()), (Some("voice-ai"), Some("ws_a")));

        let seen = read(&server, &alex, "/api/alerts")["alerts"].clone();
        assert!(seen.as_array().unwrap().iter().all(|a| a["room"] == room_a.as_str()), "{seen:#}");
        assert!(seen.as_array().unwrap().iter().any(|a| a["id"] == in_a["id"]), "{seen:#}");
        let only_b = read(&server, ADMIN, &format!("/api/alerts?room={room_b}"))["alerts"].clone();
        assert!(only_b.as_array().unwrap().iter().all(|a| a["room"] == room_b.as_str()), "{only_b:#}");
        let ack = |token: &str, alert: &Value, action: &str| {
            call(&server, token, "POST", &format!("/api/alerts/{}/{action}", alert["id"].as_str().unwrap()), &Value::Null)
        };
        let (status, text) = ack(&alex, &in_b, "ack");
        assert_eq!(status, 403, "{text}");
        assert_eq!(ack(&alex, &in_a, "mute").0, 403, "an assistant does not mute");
        let (status, text) = ack(&alex, &in_a, "ack");
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("acknowledgedAt"), "{text}");
    }

    // An instructor's helper token exports its room's events only; a token for a room that does
    // not exist is not made.
    fn a_helper_instructor_exports_their_room(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec![ADMIN.into()]);
        let (room_a, _) = two_rooms(&server);
        let (status, text) = call(&server, ADMIN, "POST", "/api/tokens",
            &json!({"name": "Sam", "role": "instructor", "rooms": [room_a]}));
        assert_eq!(status, 201, "{text}");
        let sam = serde_json::from_str::<Value>(&text).unwrap()["token"].as_str().unwrap().to_owned();
        let (status, export) = call(&server, &sam, "GET", "/api/session-log/export?format=ndjson", &Value::Null);
        assert_eq!(status, 200, "{export}");
        let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{export}");
        assert!(lines.iter().all(|e| e["session_token"] == "ws_a"), "{export}");
        let (status, text) = call(&server, ADMIN, "POST", "/api/tokens",
            &json!({"name": "Sam", "role": "instructor", "rooms": ["ZZZZZZ"]}));
        assert_eq!(status, 404, "{text}");
        let (status, text) = call(&server, ADMIN, "POST", "/api/tokens",
            &json!({"name": "Sam", "role": "admin", "rooms": [room_a]}));
        assert_eq!(status, 400, "{text}");
    }
}
