//! Workshops and their write keys, against a real server on each backend: an admin creates a
//! workshop and gets its key; events with the key are stored; an unknown key, a revoked key, an
//! origin the workshop does not allow, and (under `--require-write-key`) no key at all get a
//! 401/403 naming the problem and store nothing; keyless events keep working by default.

#[macro_use]
mod common;

use common::{admin, event, TestServer, ADMIN, TOKEN};
use serde_json::{json, Value};

/// Posts `body` (with `origin` as its `Origin`, when given): the status and the JSON answer.
fn post_from(server: &TestServer, origin: Option<&str>, body: &Value) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(origin) = origin {
        headers.push(("Origin", origin));
    }
    let answer = server.request("POST", "/api/session-log", &headers, body.to_string().as_bytes());
    (answer.status, answer.json())
}

/// How many events of session `token` are stored.
fn stored(server: &TestServer, token: &str) -> usize {
    server.read(&format!("/api/session-log?sessionToken={token}"))["count"].as_u64().unwrap() as usize
}

on_both_backends! {
    // A workshop's key writes; a wrong key, a revoked key and a foreign origin are refused with
    // the reason and store nothing; keyless events still land in `default`.
    fn write_keys_gate_ingest(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec![ADMIN.into()]);
        let (status, created) = admin(
            &server,
            "POST",
            "/api/workshops",
            &json!({"slug": "voice-ai", "name": "Voice AI", "allowedOrigins": ["https://voice.example"]}),
        );
        assert_eq!(status, 201, "{created}");
        let key = created["writeKey"].as_str().unwrap().to_owned();
        assert!(key.starts_with("wk_") && key.len() == 35, "{key}");
        // An instructor token may not manage workshops once an admin token is configured.
        let answer = server.request("GET", "/api/workshops", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
        assert_eq!(answer.status, 403);
        let (status, again) = admin(&server, "POST", "/api/workshops", &json!({"slug": "voice-ai", "name": "x"}));
        assert_eq!((status, again["success"].clone()), (409, json!(false)), "{again}");
        let (status, bad) = admin(&server, "POST", "/api/workshops", &json!({"slug": "Voice AI", "name": "x"}));
        assert_eq!(status, 400, "{bad}");

        let batch = |token: &str, key: Option<&str>| {
            let mut body = json!({"events": [event(token, "action", json!({"actionName": "a"}))]});
            if let Some(key) = key {
                body["writeKey"] = json!(key);
            }
            body
        };
        let (status, answer) = post_from(&server, Some("https://voice.example"), &batch("ws_keyed", Some(&key)));
        assert_eq!(status, 200, "{answer}");
        let (status, answer) = post_from(&server, None, &batch("ws_curl", Some(&key)));
        assert_eq!(status, 200, "no Origin (curl, a server): {answer}");
        let (status, answer) = post_from(&server, Some("https://copy.example"), &batch("ws_copied", Some(&key)));
        assert_eq!(status, 403, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("https://copy.example"), "{answer}");
        let (status, answer) = post_from(&server, None, &batch("ws_wrong", Some("wk_nope")));
        assert_eq!(status, 401, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("unknown write key"), "{answer}");
        // The reference's single-event body takes the key too.
        let mut single = event("ws_single", "action", json!({"actionName": "a"}));
        single["writeKey"] = json!(key);
        assert_eq!(post_from(&server, None, &single).0, 200);
        let (status, _) = post_from(&server, None, &batch("ws_keyless", None));
        assert_eq!(status, 200, "keyless events go to the default workshop");

        let (status, revoked) = admin(&server, "POST", "/api/workshops/voice-ai/revoke", &json!({}));
        assert_eq!(status, 200, "{revoked}");
        assert!(revoked["revokedAt"].is_string(), "{revoked}");
        let (status, answer) = post_from(&server, Some("https://voice.example"), &batch("ws_late", Some(&key)));
        assert_eq!(status, 401, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("revoked"), "{answer}");
        assert_eq!(admin(&server, "POST", "/api/workshops/nope/revoke", &json!({})).0, 404);

        for (token, n) in [("ws_keyed", 1), ("ws_curl", 1), ("ws_single", 1), ("ws_keyless", 1),
                           ("ws_copied", 0), ("ws_wrong", 0), ("ws_late", 0)] {
            assert_eq!(stored(&server, token), n, "{token}");
        }
        let (status, list) = admin(&server, "GET", "/api/workshops", &Value::Null);
        assert_eq!(status, 200);
        let slugs: Vec<&str> = list["workshops"].as_array().unwrap().iter().map(|w| w["slug"].as_str().unwrap()).collect();
        assert_eq!(slugs, ["default", "voice-ai"]);
    }

    // Under --require-write-key an event without a key is refused with 401 and not stored.
    fn keyless_events_can_be_required_away(backend) {
        let server = TestServer::on_with(backend, |c| c.require_write_key = true);
        let (status, answer) = post_from(&server, None, &event("ws_nokey", "action", json!({"actionName": "a"})));
        assert_eq!(status, 401, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("write key is required"), "{answer}");
        assert_eq!(stored(&server, "ws_nokey"), 0);
    }
}
