//! Hostile input against a real server with default limits (SQLite file and a fresh PostgreSQL
//! database): a help-request flood under made-up sessions, a summary fed thousands of distinct
//! long keys, and one student spread over 50,000 sessions. Each asserts the bound or the
//! refusal, and that the valid events of the same batches are stored.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{event, TestServer};
use serde_json::{json, Value};

/// Waits (at most 15 s) until `GET /api/alerts?status=all` satisfies `done`; returns the alerts.
fn wait_for(server: &TestServer, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let alerts = server.read("/api/alerts?status=all&limit=1000")["alerts"].as_array().unwrap().clone();
        if done(&alerts) {
            return alerts;
        }
        assert!(Instant::now() < deadline, "not within 15 s: {what}; alerts: {alerts:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rule_status(alert: &Value) -> (&str, &str) {
    (alert["rule"].as_str().unwrap(), alert["status"].as_str().unwrap())
}

on_both_backends! {
    // One POST of 300 help requests under made-up session tokens (each phishing the instructor)
    // pins no request: they become one flagged help_flood alert counting 300, every event is
    // stored, and muting the flood silences its address.
    fn a_help_request_flood_becomes_one_flagged_alert(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.alert_tick = Duration::from_millis(50);
            c.alert_rules.count_update_every = Duration::from_millis(200);
        });
        let phishing = "Instructor: your token expired, re-enter it at https://evil.example/login";
        let mut events: Vec<Value> = (0..300)
            .map(|i| event(&format!("ws_flood{i:04}"), "help_request", json!({"message": phishing})))
            .collect();
        events.push(event("ws_flood_valid", "action", json!({"actionName": "clicked"})));
        server.post_all(events);
        let alerts = wait_for(&server, "one help_flood counting 300", |alerts| {
            alerts.iter().any(|a| rule_status(a) == ("help_flood", "open") && a["count"] == 300)
        });
        let pinned = alerts.iter().filter(|a| rule_status(a) == ("help_request", "open")).count();
        assert_eq!(pinned, 0, "no request stays pinned: {alerts:#?}");
        let flood = alerts.iter().find(|a| a["rule"] == "help_flood").unwrap();
        assert_eq!(flood["severity"], "warning");
        assert_eq!(flood["address"], "127.0.0.1");
        assert!(flood["message"].as_str().unwrap().starts_with("300 help requests from one address"), "{flood}");
        assert!(flood["sessionTokens"].as_array().unwrap().len() <= 20);
        assert_eq!(server.stored_rows(), 301, "every event is stored");
        // Muting the flood silences its address: 20 more requests raise nothing.
        let id = flood["id"].as_str().unwrap();
        let muted = server.as_instructor("POST", &format!("/api/alerts/{id}/mute"));
        assert_eq!((muted.status, &muted.json()["alert"]["status"]), (200, &json!("resolved")));
        let marker = wait_for(&server, "the mute settled", |alerts| {
            alerts.iter().any(|a| a["id"] == id && a["mutedAt"].is_string())
        });
        assert!(!marker.is_empty());
        // The rules take the mute at their next tick; then the address's requests raise nothing.
        std::thread::sleep(Duration::from_millis(300));
        let more: Vec<Value> =
            (0..20).map(|i| event(&format!("ws_more{i}"), "help_request", json!({"message": "x"}))).collect();
        server.post_all(more);
        let taken = Instant::now();
        while server.metric("session_log_alert_events_total{source=\"feed\"}")
            + server.metric("session_log_alert_events_total{source=\"read_back\"}") < 321.0
        {
            assert!(taken.elapsed() < Duration::from_secs(15), "the rules did not take the 20 requests");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        let alerts = server.read("/api/alerts?status=open&limit=1000")["alerts"].as_array().unwrap().clone();
        assert!(
            alerts.iter().all(|a| a["rule"] != "help_request" && a["rule"] != "help_flood"),
            "a muted address raises nothing: {alerts:#?}"
        );
    }

    // A session asking three times has one open help request, updated to its latest message.
    fn a_session_has_one_open_help_request(backend) {
        let server = TestServer::on_with(backend, |c| c.alert_tick = Duration::from_millis(50));
        for message in ["step 3 fails", "still failing", "now the deploy times out"] {
            server.post_all(vec![event("ws_asker", "help_request", json!({"message": message}))]);
        }
        let alerts = wait_for(&server, "the latest message", |alerts| {
            alerts.iter().any(|a| a["message"] == "now the deploy times out")
        });
        let help: Vec<&Value> = alerts.iter().filter(|a| a["rule"] == "help_request").collect();
        assert_eq!(help.len(), 1, "{help:#?}");
        assert_eq!((help[0]["status"].as_str(), help[0]["count"].as_u64()), (Some("open"), Some(3)));
    }

    // Ten POSTs of errors with 500 distinct 2 KB error types and endpoints keep the session's
    // summary small: GET /api/sessions answers a few KB, with every error counted.
    fn summaries_stay_small_under_distinct_keys(backend) {
        let server = TestServer::on_with(backend, |c| c.rate_limit_session_per_sec = 0);
        let long = "t".repeat(2_000);
        for post in 0..10 {
            let events: Vec<Value> = (0..250)
                .flat_map(|i| {
                    let n = post * 250 + i;
                    [
                        event("ws_keys", "error", json!({"errorType": format!("{n}{long}")})),
                        event("ws_keys", "api_call", json!({"endpoint": format!("/{n}/{long}"), "status": 500})),
                    ]
                })
                .collect();
            server.post_all(events);
        }
        let answer = server.as_instructor("GET", "/api/sessions?limit=10");
        assert_eq!(answer.status, 200);
        assert!(answer.text.len() < 64 * 1024, "GET /api/sessions answered {} bytes", answer.text.len());
        let session = &answer.json()["sessions"][0];
        assert_eq!(session["errors"], 2_500, "{session}");
    }

    // 1,500 distinct 1 KB endpoints failing and 1,500 distinct error types: the alert rules keep
    // at most 1,000 of each, forgetting the least recent (counted in /metrics), and the server
    // keeps ingesting.
    fn the_alert_rules_forget_keys_past_their_bound(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.alert_tick = Duration::from_millis(50);
            c.rate_limit_session_per_sec = 0;
        });
        let long = "e".repeat(1_000);
        for post in 0..6 {
            let events: Vec<Value> = (0..250)
                .flat_map(|i| {
                    let n = post * 250 + i;
                    let token = format!("ws_keys{n:04}");
                    [
                        event(&token, "api_call", json!({"endpoint": format!("/{n}/{long}"), "status": 500})),
                        event(&token, "error", json!({"errorType": format!("{n}{long}")})),
                    ]
                })
                .collect();
            server.post_all(events);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.metric("session_log_alert_keys_evicted_total") < 1_000.0 {
            assert!(
                Instant::now() < deadline,
                "evicted {} keys within 15 s",
                server.metric("session_log_alert_keys_evicted_total")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(server.stored_rows(), 3_000);
    }

    // One email on 50,000 sessions: the student's events and export still answer (no SQL
    // variable per session), newest first.
    fn a_student_on_50000_sessions_stays_readable(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.rate_limit_session_per_sec = 0;
            c.rate_limit_ip_per_sec = 0;
        });
        for post in 0..100 {
            let events: Vec<Value> = (0..500)
                .map(|i| {
                    let mut e = event(&format!("ws_many{:05}", post * 500 + i), "action", json!({"actionName": "a"}));
                    e["studentEmail"] = json!("everywhere@example.com");
                    e
                })
                .collect();
            server.post_all(events);
        }
        let (status, answer) = server.get_with(
            "studentEmail=everywhere@example.com&limit=50",
            Some(&format!("Bearer {}", common::TOKEN)),
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["count"], 50);
        assert_eq!(answer["events"][0]["session_token"], "ws_many49999");
        let export = server.as_instructor("GET", "/api/session-log/export?format=ndjson&studentEmail=everywhere@example.com");
        assert_eq!(export.status, 200);
        let lines = export.text.lines().count();
        assert_eq!(lines, 50_000, "the export holds every event");
    }
}
