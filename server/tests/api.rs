//! Integration tests of the HTTP API: a real server on 127.0.0.1 port 0, on a real SQLite file
//! and on a fresh PostgreSQL database.

#[macro_use]
mod common;

use common::{event, TestServer, TOKEN};
use serde_json::{json, Value};

on_both_backends! {
    // A NUL character in eventData is accepted and stored: as sent on SQLite, as U+FFFD in
    // PostgreSQL's JSONB (which cannot hold one), and the rest of the batch with it.
    fn nul_characters_in_event_data_are_stored(backend) {
        let server = TestServer::on(backend);
        let raw = r#"{"events":[{"sessionToken":"ws_nul","eventType":"action","eventData":{"text":"a\u0000b"}},
            {"sessionToken":"ws_nul","eventType":"action","eventData":{"text":"plain"}}]}"#;
        let (status, answer) = server.post_raw(Some("application/json"), raw);
        assert_eq!((status, &answer["accepted"]), (200, &json!(2)), "{answer}");
        let events = server.get("sessionToken=ws_nul&order=asc");
        let text = events["events"][0]["event_data"]["text"].as_str().unwrap().to_owned();
        match backend {
            common::Backend::Sqlite => assert_eq!(text, "a\0b"),
            common::Backend::Postgres => assert_eq!(text, "a\u{FFFD}b"),
        }
        assert_eq!(events["events"][1]["event_data"]["text"], "plain");
    }

    // Acknowledged events are still there after a graceful shutdown and a restart on the same database.
    fn events_survive_restart(backend) {
        let db = std::sync::Arc::new(common::TestDb::new(backend));
        let server = TestServer::on_db(db.clone(), |_| {});
        assert_eq!(server.post(&event("ws_persist", "action", json!({"n": 1}))).0, 200);
        server.stop();
        let server = TestServer::on_db(db, |_| {});
        assert_eq!(server.get("sessionToken=ws_persist")["count"], 1);
    }

    // The reference's single-event POST is answered exactly as the reference says and stored.
    fn single_event_answers_reference_message(backend) {
        let server = TestServer::on(backend);
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
    fn batch_is_stored_and_counted(backend) {
        let server = TestServer::on(backend);
        let events: Vec<Value> = (0..30).map(|n| event("ws_batch", "action", json!({"n": n}))).collect();
        let (status, answer) = server.post(&json!({"events": events}));
        assert_eq!((status, answer), (200, json!({"success": true, "accepted": 30})));
        assert_eq!(server.stored_rows(), 30);
        assert_eq!(server.get("sessionToken=ws_batch&limit=1000")["count"], 30);
    }

    // Each filter of the reference's GET narrows the result, newest first, and `limit` caps it.
    fn get_filters_and_limit(backend) {
        let server = TestServer::on(backend);
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
        let ns: Vec<i64> =
            by_session["events"].as_array().unwrap().iter().map(|e| e["event_data"]["n"].as_i64().unwrap()).collect();
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

    // A student is one row whatever the case of their email, and their latest given name wins over
    // separate POSTs; a POST without a name keeps it.
    fn student_name_follows_the_latest_post(backend) {
        let server = TestServer::on(backend);
        let post = |email: &str, name: Option<&str>, n: i64| {
            let mut e = event("ws_named", "action", json!({"n": n}));
            e["studentEmail"] = json!(email);
            if let Some(name) = name {
                e["studentName"] = json!(name);
            }
            assert_eq!(server.post(&e).0, 200);
        };
        post("ann@example.com", Some("Ann"), 0);
        post("ANN@example.com", Some("Anne"), 1);
        post("ann@example.com", None, 2);
        post("ann@example.com", Some("Ann"), 3);
        post("Ann@Example.com", None, 4);
        let events = server.get("sessionToken=ws_named&order=asc");
        let names: Vec<&str> =
            events["events"].as_array().unwrap().iter().map(|e| e["student_name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Ann"; 5], "one student row, named by the latest POST that gave a name");
        assert_eq!(server.db.count("SELECT count(*) FROM students"), 1);
    }

    // Reading events needs a configured instructor token; any of several works.
    fn get_requires_instructor_token(backend) {
        let server = TestServer::on(backend);
        for auth in [None, Some("Bearer wrong"), Some(TOKEN), Some("Basic dGVzdA==")] {
            let (status, body) = server.get_with("", auth);
            assert_eq!(status, 401, "{auth:?}");
            assert_eq!(body["success"], false);
            assert!(body["error"].as_str().unwrap().contains("Bearer"));
        }
        assert_eq!(server.get_with("", Some("Bearer old-token")).0, 200);
    }

    // Malformed bodies get a 400 JSON error naming the problem, and nothing is stored.
    fn invalid_bodies_get_json_errors_and_store_nothing(backend) {
        let server = TestServer::on(backend);
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
    fn batch_keeps_valid_events(backend) {
        let server = TestServer::on(backend);
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
    fn retried_batch_is_not_duplicated(backend) {
        let server = TestServer::on(backend);
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
    fn content_types(backend) {
        let server = TestServer::on(backend);
        let body = event("ws_1", "action", json!({})).to_string();
        assert_eq!(server.post_raw(Some("text/plain;charset=UTF-8"), &body).0, 200);
        assert_eq!(server.post_raw(None, &body).0, 200);
        let (status, answer) = server.post_raw(Some("application/x-www-form-urlencoded"), &body);
        assert_eq!(status, 415);
        assert!(answer["error"].as_str().unwrap().contains("application/json"));
        assert_eq!(server.stored_rows(), 2);
    }

    // A body over the configured limit gets 413 with the limit named, and nothing is stored.
    fn oversized_body_is_refused(backend) {
        let server = TestServer::on_with(backend, |c| c.max_body_bytes = 4096);
        let big = event("ws_1", "action", json!({"pad": "x".repeat(5000)}));
        let (status, answer) = server.post(&big);
        assert_eq!(status, 413);
        assert!(answer["error"].as_str().unwrap().contains("4096"));
        assert_eq!(server.stored_rows(), 0);
    }

    // An invalid query parameter gets a 400 naming it; unknown API paths get a JSON 404.
    fn bad_parameters_and_unknown_paths(backend) {
        let server = TestServer::on(backend);
        let (status, answer) = server.get_with("limit=5000", Some(&format!("Bearer {TOKEN}")));
        assert_eq!(status, 400);
        assert!(answer["error"].as_str().unwrap().starts_with("limit:"));
        let mut response = server.agent.get(&format!("{}/api/nothing-here", server.url)).call().unwrap();
        assert_eq!(response.status().as_u16(), 404);
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["success"], false);
    }

    // A session query says how many of its events never arrived (gaps in seq) and how many its
    // client reported dropping; a retried drop report is counted once.
    fn session_query_reports_missing_and_dropped_events(backend) {
        let server = TestServer::on(backend);
        let events: Vec<Value> = [0u64, 1, 3, 6]
            .iter()
            .map(|seq| {
                let mut e = event("ws_gaps", "action", json!({"seq": seq}));
                e["seq"] = json!(seq);
                e["eventId"] = json!(format!("01890a5d-ac96-774b-bcce-b302099a80{seq:02}"));
                e
            })
            .collect();
        let batch = json!({"events": events, "dropped": 2});
        assert_eq!(server.post(&batch).0, 200);
        assert_eq!(server.post(&batch).0, 200, "the retry");
        let answer = server.get("sessionToken=ws_gaps");
        assert_eq!(answer["missing_events"], 3, "seq 2, 4 and 5 are missing");
        assert_eq!(answer["dropped_events"], 2);
        let types: Vec<&str> =
            answer["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
        assert_eq!(types.iter().filter(|t| **t == "events_dropped").count(), 1);
        assert!(server.get("eventType=action").get("missing_events").is_none(), "only for a session query");
    }
}
