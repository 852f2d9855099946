//! Integration tests of the instructors' API: paging, filters, sessions, report, live tail,
//! export, deletion and authentication, against a real server on 127.0.0.1 port 0 and a real
//! SQLite file.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{event, TestServer, TOKEN};
use serde_json::{json, Value};
use session_log_server::domain::cursor::EventCursor;

fn no_session_limit(backend: common::Backend) -> TestServer {
    TestServer::on_with(backend, |c| {
        c.rate_limit_session_per_sec = 0;
        c.rate_limit_ip_per_sec = 0;
    })
}

fn numbered(token: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n).map(|i| event(token, "action", json!({"n": i}))).collect()
}

fn ns(page: &Value) -> Vec<u64> {
    page["events"].as_array().unwrap().iter().map(|e| e["event_data"]["n"].as_u64().unwrap()).collect()
}

fn workshop_events() -> Vec<Value> {
    let ada = |mut e: Value, seq: u64| {
        e["studentEmail"] = json!("ada@example.com");
        e["studentName"] = json!("Ada");
        e["seq"] = json!(seq);
        e
    };
    vec![
        ada(
            event(
                "ws_ada",
                "action",
                json!({"actionName": "start", "currentStep": 0, "stepName": "Connect Accounts", "timestamp": "2026-11-21T09:00:00.000Z"}),
            ),
            0,
        ),
        ada(
            event(
                "ws_ada",
                "api_call",
                json!({"endpoint": "/v1/models", "status": 401, "success": false, "duration": 100, "currentStep": 0}),
            ),
            1,
        ),
        ada(event("ws_ada", "error", json!({"errorType": "openai_validation_failed", "currentStep": 0})), 2),
        ada(
            event(
                "ws_ada",
                "navigation",
                json!({"from": 0, "to": 1, "toStepName": "Choose Use Case", "timestamp": "2026-11-21T09:02:00.000Z"}),
            ),
            3,
        ),
        // seq 4 never arrives.
        ada(
            event(
                "ws_ada",
                "api_call",
                json!({"endpoint": "/v1/models", "status": 200, "success": true, "duration": 300, "currentStep": 1}),
            ),
            5,
        ),
        event(
            "ws_bob",
            "action",
            json!({"currentStep": 0, "stepName": "Connect Accounts", "timestamp": "2026-11-21T09:00:00.000Z"}),
        ),
        event("ws_bob", "error", json!({"errorType": "openai_validation_failed", "currentStep": 0})),
        event("ws_bob", "error", json!({"errorType": "twilio_timeout", "currentStep": 0})),
        event(
            "ws_bob",
            "navigation",
            json!({"from": 0, "to": 1, "toStepName": "Choose Use Case", "timestamp": "2026-11-21T09:05:00.000Z"}),
        ),
        event("ws_bob", "workshop_completed", json!({"currentStep": 1})),
    ]
}

/// Reads SSE messages from `path` on a thread: each event's `(id, n)` is sent over the channel.
fn tail(server: &TestServer, path: &str, last_event_id: Option<&str>) -> mpsc::Receiver<(String, u64)> {
    let url = format!("{}{path}", server.url);
    let mut request = ureq::get(&url).header("Authorization", &format!("Bearer {TOKEN}"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.call().unwrap();
    assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(response.into_body().into_reader());
        let mut id = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("id: ") {
                id = value.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let event: Value = serde_json::from_str(data).unwrap();
                let position = EventCursor::decode(&id).expect("an SSE id is a cursor").position();
                assert_eq!(event["event_id"], position, "the id is the event's position");
                if send.send((id.clone(), event["event_data"]["n"].as_u64().unwrap())).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

fn next(events: &mpsc::Receiver<(String, u64)>) -> (String, u64) {
    events.recv_timeout(Duration::from_secs(10)).expect("no event arrived on the live tail within 10 s")
}

on_both_backends! {
    // Paging 2,500 events by cursor, newest first and oldest first, returns each exactly once while
    // new events arrive between pages; oldest-first paging runs on into the new ones.
    fn cursor_paging_survives_concurrent_inserts(backend) {
        let server = no_session_limit(backend);
        for chunk in 0..5 {
            server.post_all(numbered("ws_page", chunk * 500, 500));
        }
        for order in ["desc", "asc"] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut added = 0;
            loop {
                let mut path = format!("/api/session-log?sessionToken=ws_page&limit=100&order={order}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = server.read(&path);
                seen.extend(ns(&page));
                // New events arrive between every two pages.
                let base = 10_000 + seen.len() * 10 + if order == "asc" { 100_000 } else { 0 };
                if added < 20 {
                    server.post_all(numbered("ws_page", base, 3));
                    added += 1;
                }
                match page.get("nextCursor").and_then(Value::as_str) {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let unique: HashSet<u64> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "{order}: an event came twice");
            let originals: HashSet<u64> = (0..2500).collect();
            assert!(originals.is_subset(&unique), "{order}: an event is missing");
            match order {
                "desc" => {
                    assert!(seen.windows(2).all(|w| w[0] > w[1] || w[0] >= 10_000), "desc: newest first");
                    assert_eq!(seen.iter().filter(|n| **n < 10_000).count(), 2500);
                }
                _ => {
                    assert_eq!(&seen[..2500], &(0..2500).collect::<Vec<_>>()[..], "asc: oldest first");
                    // Everything posted while paging was reached too.
                    let total = server.read("/api/session-log?sessionToken=ws_page&limit=1")["events"][0]["event_data"]
                        ["n"]
                        .as_u64()
                        .unwrap();
                    assert!(unique.contains(&total), "asc paging reached the newest event");
                }
            }
        }
    }

    // `since` (inclusive) and `until` (exclusive) select events by the time they were stored.
    fn since_and_until_select_by_time(backend) {
        let server = no_session_limit(backend);
        server.post_all(numbered("ws_time", 0, 3));
        std::thread::sleep(Duration::from_millis(20));
        server.post_all(numbered("ws_time", 3, 2));
        let all = server.read("/api/session-log?sessionToken=ws_time&order=asc");
        let second = all["events"][3]["created_at"].as_str().unwrap().to_owned();
        assert_ne!(all["events"][2]["created_at"], second);
        assert_eq!(ns(&server.read(&format!("/api/session-log?sessionToken=ws_time&order=asc&since={second}"))), [3, 4]);
        assert_eq!(ns(&server.read(&format!("/api/session-log?sessionToken=ws_time&order=asc&until={second}"))), [0, 1, 2]);
        assert_eq!(server.read("/api/session-log?since=2999-01-01")["count"], 0);
    }

    // Every invalid parameter gets a 400 whose error names it, on every read endpoint.
    fn invalid_parameters_are_named(backend) {
        let server = TestServer::on(backend);
        for (path, name) in [
            ("/api/session-log?cursor=x", "cursor"),
            ("/api/session-log?order=sideways", "order"),
            ("/api/session-log?since=noon", "since"),
            ("/api/sessions?status=asleep", "status"),
            ("/api/sessions?limit=0", "limit"),
            ("/api/sessions?cursor=e1.7", "cursor"),
            ("/api/session-log?cursor=7", "cursor"),
            ("/api/session-log/stream?lastEventId=7", "lastEventId"),
            ("/api/report?until=later", "until"),
            ("/api/session-log/export?format=xml", "format"),
            ("/api/session-log/export", "format"),
            ("/api/session-log/stream?since=x", "since"),
        ] {
            let answer = server.as_instructor("GET", path);
            assert_eq!(answer.status, 400, "{path}: {}", answer.text);
            let error = answer.json()["error"].as_str().unwrap().to_owned();
            assert!(error.starts_with(&format!("{name}:")), "{path}: {error}");
        }
    }

    // The session overview has one row per session with its student, step, counts, losses and
    // status, and filters by status, student and time.
    fn sessions_overview(backend) {
        let server = TestServer::on(backend);
        server.post_all(workshop_events());
        let all = server.read("/api/sessions");
        assert_eq!(all["count"], 2);
        let sessions = all["sessions"].as_array().unwrap();
        let ada = sessions.iter().find(|s| s["sessionToken"] == "ws_ada").unwrap();
        assert_eq!(ada["studentEmail"], "ada@example.com");
        assert_eq!(ada["studentName"], "Ada");
        assert_eq!((ada["currentStep"].as_i64(), ada["stepName"].as_str()), (Some(1), Some("Choose Use Case")));
        assert_eq!(ada["events"], 5);
        assert_eq!(ada["eventsByType"], json!({"action": 1, "api_call": 2, "error": 1, "navigation": 1}));
        assert_eq!((ada["errors"].as_u64(), ada["failedApiCalls"].as_u64()), (Some(1), Some(1)));
        assert_eq!(ada["missingEvents"], 1, "seq 4 never arrived");
        assert_eq!(ada["status"], "active");
        let bob = sessions.iter().find(|s| s["sessionToken"] == "ws_bob").unwrap();
        assert_eq!(bob["status"], "completed");
        assert_eq!(bob["studentEmail"], Value::Null);
        assert_eq!(bob["errorsByType"], json!({"openai_validation_failed": 1, "twilio_timeout": 1}));

        let only = |query: &str| -> Vec<String> {
            server.read(&format!("/api/sessions?{query}"))["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["sessionToken"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(only("status=completed"), ["ws_bob"]);
        assert_eq!(only("status=active"), ["ws_ada"]);
        assert!(only("status=idle").is_empty());
        assert_eq!(only("studentEmail=ADA@example.com"), ["ws_ada"]);
        assert!(only("since=2999-01-01").is_empty());
        assert_eq!(only("limit=1").len(), 1);
    }

    // A session is idle once its last event is older than the active window.
    fn idle_after_the_active_window(backend) {
        let server = TestServer::on_with(backend, |c| c.active_window = Duration::from_millis(200));
        server.post_all(numbered("ws_idle", 0, 1));
        assert_eq!(server.read("/api/sessions")["sessions"][0]["status"], "active");
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.read("/api/sessions")["sessions"][0]["status"] != "idle" {
            assert!(Instant::now() < deadline, "still not idle 5 s after a 200 ms active window");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Sessions page by cursor, most recently seen first: every session exactly once, a status
    // filter pages over the matching ones only, and a cursor the server did not make is refused.
    fn sessions_page_by_cursor(backend) {
        let server = TestServer::on(backend);
        for n in 0..7 {
            server.post_all(numbered(&format!("ws_page_{n}"), 0, 1));
        }
        server.post_all(vec![event("ws_page_done", "workshop_completed", json!({"currentStep": 1}))]);
        let pages = |filter: &str| -> Vec<Vec<String>> {
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/api/sessions?limit=3{filter}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = server.read(&path);
                let tokens: Vec<String> = page["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["sessionToken"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(page["count"], tokens.len());
                pages.push(tokens);
                match page.get("nextCursor").and_then(Value::as_str) {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return pages,
                }
                assert!(pages.len() < 10, "paging does not end");
            }
        };
        let all = pages("");
        assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
        let flat: Vec<String> = all.concat();
        let newest_first: Vec<String> = server.read("/api/sessions")["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sessionToken"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(flat, newest_first, "pages are the one list, in order, each session once");
        assert_eq!(flat.len(), 8);
        assert_eq!(pages("&status=active").concat().len(), 7, "the completed session is not listed");
        assert_eq!(pages("&status=completed"), [["ws_page_done"]]);
    }

    // The report gives the room at a glance: counts, error patterns, funnel, API stats, completion.
    fn report_of_the_room(backend) {
        let server = TestServer::on(backend);
        server.post_all(workshop_events());
        let report = server.read("/api/report");
        assert_eq!((report["sessions"].as_u64(), report["completedSessions"].as_u64()), (Some(2), Some(1)));
        assert_eq!(report["completionRate"], 0.5);
        assert_eq!(report["activeSessions"], 1, "bob completed; ada is active");
        assert_eq!(report["events"], 10);
        assert_eq!(report["eventsByType"]["error"], 3);
        assert_eq!(report["topErrors"][0], json!({"errorType": "openai_validation_failed", "count": 2, "sessions": 2}));
        assert_eq!(report["topErrors"][1], json!({"errorType": "twilio_timeout", "count": 1, "sessions": 1}));
        let funnel = report["funnel"].as_array().unwrap();
        assert_eq!(funnel[0]["sessions"], 2);
        assert_eq!(funnel[1], json!({"step": 1, "stepName": "Choose Use Case", "sessions": 2, "medianTimeMs": null}));
        // Ada spent 2 minutes on step 0 and Bob 5: the median of two is the lower (nearest rank).
        assert_eq!(funnel[0]["medianTimeMs"], 120_000);
        assert_eq!(funnel[0]["stepName"], "Connect Accounts");
        let api = &report["apiCalls"][0];
        assert_eq!(
            (api["endpoint"].as_str(), api["calls"].as_u64(), api["failed"].as_u64()),
            (Some("/v1/models"), Some(2), Some(1))
        );
        assert_eq!(
            (api["failureRate"].as_f64(), api["p50Ms"].as_f64(), api["p95Ms"].as_f64()),
            (Some(0.5), Some(100.0), Some(300.0))
        );
        assert_eq!(server.read("/api/report?since=2999-01-01")["sessions"], 0);
    }

    // The live tail sends new matching events as they are stored, and a reconnection with
    // Last-Event-ID resumes with no gap and no repeat.
    fn live_tail_resumes_without_gaps(backend) {
        let server = no_session_limit(backend);
        // The tail's start is fixed before its headers are sent, so nothing posted after is missed.
        let live = tail(&server, "/api/session-log/stream?sessionToken=ws_live", None);
        server.post_all(numbered("ws_other", 900, 2));
        server.post_all(numbered("ws_live", 0, 3));
        let first: Vec<(String, u64)> = (0..3).map(|_| next(&live)).collect();
        assert_eq!(first.iter().map(|e| e.1).collect::<Vec<_>>(), [0, 1, 2], "only ws_live, in order");
        drop(live);
        // Events stored while nobody listens are sent on resumption, once, after the last one seen.
        let seen = first[1].0.clone();
        server.post_all(numbered("ws_live", 3, 2));
        let resumed = tail(&server, "/api/session-log/stream?sessionToken=ws_live", Some(&seen));
        let again: Vec<u64> = (0..3).map(|_| next(&resumed).1).collect();
        assert_eq!(again, [2, 3, 4]);
        server.post_all(numbered("ws_live", 5, 1));
        assert_eq!(next(&resumed).1, 5);
        assert!(resumed.recv_timeout(Duration::from_millis(300)).is_err(), "nothing is sent twice");
    }

    // A live tail that has nothing to send still sends heartbeat comments.
    fn live_tail_heartbeat(backend) {
        let server = TestServer::on_with(backend, |c| c.sse_heartbeat = Duration::from_millis(100));
        let response = ureq::get(&format!("{}/api/session-log/stream", server.url))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let mut lines = BufReader::new(response.into_body().into_reader()).lines();
        let heartbeats = (0..10).filter_map(|_| lines.next()).filter(|l| l.as_deref().ok() == Some(": heartbeat")).count();
        assert!(heartbeats >= 2, "{heartbeats} heartbeats");
    }

    // Export streams every matching event as CSV (formula cells escaped) or NDJSON.
    fn export_csv_and_ndjson(backend) {
        let server = no_session_limit(backend);
        server.post_all(numbered("ws_export", 0, 500));
        server.post_all(numbered("ws_export", 500, 500));
        server.post_all(numbered("ws_export", 1000, 500));
        let mut hostile = event("=cmd|'/C_calc'!A0", "action", json!({"n": 1500}));
        hostile["studentEmail"] = json!("+evil@example.com");
        server.post_all(vec![hostile, event("ws_elsewhere", "error", json!({"n": 9999}))]);

        let ndjson = server.as_instructor("GET", "/api/session-log/export?format=ndjson&eventType=action");
        assert_eq!(ndjson.status, 200);
        let lines: Vec<Value> = ndjson.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1501, "every action, across pages of 1000");
        let order: Vec<u64> = lines.iter().map(|e| e["event_data"]["n"].as_u64().unwrap()).collect();
        assert_eq!(order, (0..=1500).collect::<Vec<_>>(), "oldest first, each once");

        let csv = server.as_instructor("GET", "/api/session-log/export?format=csv");
        assert_eq!(csv.status, 200);
        let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header[..3], ["event_id", "created_at", "session_token"]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1502);
        let hostile_row = rows.iter().find(|r| r[2].contains("calc")).unwrap();
        assert_eq!(&hostile_row[2], "'=cmd|'/C_calc'!A0", "formula escaped");
        assert_eq!(&hostile_row[3], "'+evil@example.com");
        let data: Value = serde_json::from_str(&rows[0][8]).unwrap();
        assert_eq!(data, json!({"n": 0}));
    }

    // Deleting a student removes them, every event of their sessions (anonymous ones too) and the
    // summaries, answers with the counts, and leaves other students alone; a second delete is 404.
    fn delete_student_removes_every_trace(backend) {
        let server = TestServer::on(backend);
        let ada = |token: &str, n: u64| {
            let mut e = event(token, "action", json!({"n": n}));
            e["studentEmail"] = json!("ada@example.com");
            e
        };
        server.post_all(vec![
            event("ws_ada_1", "action", json!({"n": 0})), // before she gave her email
            ada("ws_ada_1", 1),
            ada("ws_ada_2", 2),
            {
                let mut e = event("ws_bob", "action", json!({"n": 3}));
                e["studentEmail"] = json!("bob@example.com");
                e
            },
        ]);
        let answer = server.as_instructor("DELETE", "/api/students/ADA@example.com");
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json()["deleted"], json!({"events": 3, "sessions": 2, "students": 1}));
        assert_eq!(server.read("/api/session-log?studentEmail=ada@example.com")["count"], 0);
        let count = |sql: &str| server.db.count(sql);
        assert_eq!(count("SELECT count(*) FROM events WHERE session_token LIKE 'ws_ada%'"), 0);
        assert_eq!(count("SELECT count(*) FROM sessions WHERE session_token LIKE 'ws_ada%'"), 0);
        assert_eq!(count("SELECT count(*) FROM students WHERE email LIKE 'ada%'"), 0);
        assert_eq!(count("SELECT count(*) FROM events"), 1, "bob's event stays");
        assert_eq!(server.read("/api/sessions")["sessions"][0]["studentEmail"], "bob@example.com");
        assert_eq!(server.as_instructor("DELETE", "/api/students/ada@example.com").status, 404);
    }

    // Every read and delete endpoint answers 401 with a JSON error without a valid token.
    fn every_instructor_endpoint_needs_the_token(backend) {
        let server = TestServer::on(backend);
        for (method, path) in [
            ("GET", "/api/session-log"),
            ("GET", "/api/session-log/stream"),
            ("GET", "/api/session-log/export?format=csv"),
            ("GET", "/api/sessions"),
            ("GET", "/api/report"),
            ("DELETE", "/api/students/ada@example.com"),
            ("GET", "/api/students/ada@example.com"),
        ] {
            for auth in [None, Some("Bearer wrong")] {
                let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
                let answer = server.request(method, path, &headers, b"");
                assert_eq!(answer.status, 401, "{method} {path} {auth:?}");
                assert_eq!(answer.json()["success"], false);
            }
        }
    }

    // A student's page lists every session they appear in, oldest first, with status, steps,
    // errors and failed calls, and the totals; an unknown student is 404.
    fn one_student_across_sessions(backend) {
        let server = TestServer::on(backend);
        let ada = |token: &str, event_type: &str, data: serde_json::Value| {
            json!({"sessionToken": token, "studentEmail": "ada@example.com", "studentName": "Ada", "eventType": event_type, "eventData": data})
        };
        server.post_all(vec![
            ada("ws_monday", "navigation", json!({"from": 0, "to": 2, "toStepName": "Test"})),
            ada("ws_monday", "error", json!({"errorType": "twilio_timeout"})),
            ada("ws_monday", "api_call", json!({"endpoint": "/x", "method": "GET", "status": 500, "success": false})),
        ]);
        server.post_all(vec![
            ada("ws_tuesday", "navigation", json!({"from": 2, "to": 4})),
            ada("ws_tuesday", "workshop_completed", json!({"currentStep": 4})),
            event("ws_someone_else", "action", json!({})),
        ]);
        let page = server.read("/api/students/ADA@example.com");
        assert_eq!(page["studentEmail"], "ada@example.com");
        assert_eq!(page["studentName"], "Ada");
        let sessions = page["sessions"].as_array().unwrap();
        let tokens: Vec<&str> = sessions.iter().map(|s| s["sessionToken"].as_str().unwrap()).collect();
        assert_eq!(tokens, ["ws_monday", "ws_tuesday"], "oldest first, only hers");
        assert_eq!((sessions[0]["status"].as_str(), sessions[1]["status"].as_str()), (Some("active"), Some("completed")));
        assert_eq!((sessions[0]["errors"].as_u64(), sessions[0]["failedApiCalls"].as_u64()), (Some(1), Some(1)));
        assert_eq!(sessions[0]["maxStep"], 2);
        assert!(sessions[0]["durationMs"].as_i64().unwrap() >= 0);
        let totals = &page["totals"];
        assert_eq!((totals["sessions"].as_u64(), totals["completedSessions"].as_u64()), (Some(2), Some(1)));
        assert_eq!((totals["events"].as_u64(), totals["errors"].as_u64()), (Some(5), Some(1)));
        assert_eq!(totals["maxStep"], 4);
        assert_eq!(server.as_instructor("GET", "/api/students/nobody@example.com").status, 404);
        assert_eq!(server.request("GET", "/api/students/ada@example.com", &[], b"").status, 401);
    }

    // A known path answers other methods with 405 and an Allow header naming its methods.
    fn other_methods_get_405_with_allow(backend) {
        let server = TestServer::on(backend);
        for (method, path, allow) in [
            ("PUT", "/api/sessions", "GET"),
            ("DELETE", "/api/session-log", "GET, POST"),
            ("TRACE", "/healthz", "GET"),
            ("POST", "/api/students/ada@example.com", "GET, DELETE"),
            ("GET", "/api/alerts/x/ack", "POST"),
        ] {
            let uri = format!("{}{path}", server.url);
            let request = ureq::http::Request::builder().method(method).uri(&uri).body(Vec::new()).unwrap();
            let response = server.agent.run(request).unwrap();
            assert_eq!(response.status(), 405, "{method} {path}");
            assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
        }
        assert_eq!(server.as_instructor("GET", "/api/nothing-here").status, 404);
    }

    // With --admin-token, an instructor token reads but cannot delete (403) and an admin token
    // deletes and reads; without one, instructor tokens keep deletion.
    fn admin_tokens_alone_delete_when_configured(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec!["admin-secret".into()]);
        server.post_all(vec![json!({"sessionToken": "ws_ada", "studentEmail": "ada@example.com", "eventType": "action", "eventData": {}})]);
        let as_admin = [("Authorization", "Bearer admin-secret")];
        let refused = server.as_instructor("DELETE", "/api/students/ada@example.com");
        assert_eq!(refused.status, 403, "{}", refused.text);
        assert!(refused.json()["error"].as_str().unwrap().contains("admin token"));
        assert_eq!(server.read("/api/sessions")["count"], 1, "nothing was deleted");
        assert_eq!(server.request("GET", "/api/sessions", &as_admin, b"").status, 200, "admins read too");
        let deleted = server.request("DELETE", "/api/students/ada@example.com", &as_admin, b"");
        assert_eq!(deleted.status, 200, "{}", deleted.text);
        assert_eq!(deleted.json()["deleted"]["students"], 1);
        let wrong = server.request("DELETE", "/api/students/ada@example.com", &[("Authorization", "Bearer nope")], b"");
        assert_eq!(wrong.status, 401);

        let open = TestServer::on(backend);
        open.post_all(vec![json!({"sessionToken": "ws_bo", "studentEmail": "bo@example.com", "eventType": "action", "eventData": {}})]);
        assert_eq!(open.as_instructor("DELETE", "/api/students/bo@example.com").status, 200, "no admin token: instructors delete");
    }

    // The OpenAPI document describes every route of the API, its schemas (map keys as the strings
    // JSON has) and the bearer scheme.
    fn openapi_document_covers_the_api(backend) {
        let server = TestServer::on(backend);
        let answer = server.request("GET", "/api/openapi.json", &[], b"");
        assert_eq!(answer.status, 200);
        let doc = answer.json();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
        let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for path in [
            "/api/session-log",
            "/api/session-log/stream",
            "/api/session-log/export",
            "/api/sessions",
            "/api/report",
            "/api/students/{email}",
            "/api/alerts",
            "/api/alerts/{id}/ack",
            "/api/alerts/stream",
            "/api/openapi.json",
            "/healthz",
            "/metrics",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        assert!(doc["paths"]["/api/session-log"]["post"].is_object());
        let params: Vec<&str> = doc["paths"]["/api/session-log"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["sessionToken", "studentEmail", "eventType", "since", "until", "order", "limit", "cursor"] {
            assert!(params.contains(&name), "{name} missing from {params:?}");
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        // The POST body is one event or a batch, not the Rust enum's tags; cursors have their shape.
        let body = &doc["components"]["schemas"]["PostBody"]["oneOf"];
        assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
        assert!(!body.to_string().contains("\"Batch\":"), "no external enum tag: {body}");
        let cursor = doc["paths"]["/api/session-log"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "cursor")
            .unwrap();
        assert_eq!(cursor["schema"]["pattern"], session_log_server::domain::cursor::EVENT_CURSOR_PATTERN);
        for schema in ["SessionView", "Report", "ErrorResponse", "Alert"] {
            assert!(schemas.contains_key(schema), "{schema} missing from {:?}", schemas.keys().collect::<Vec<_>>());
        }
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        // JSON keys are strings: the steps map's keys are declared as strings of digits.
        let steps = &doc["components"]["schemas"]["SessionView"]["properties"]["steps"];
        assert_eq!(steps["propertyNames"], json!({"type": "string", "pattern": "^-?[0-9]+$"}), "{steps}");
        assert!(!doc.to_string().contains(r#""propertyNames":{"type":"integer""#), "no integer keys anywhere");
    }
}
