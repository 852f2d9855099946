//! Alerts end to end on a real server (SQLite file and a fresh PostgreSQL database): each rule
//! opens once per episode, updates and resolves; acknowledgement; the alert stream; and signed
//! webhooks to a local receiver that fails once.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{event, TestServer, TOKEN};
use serde_json::{json, Value};
use session_log_server::domain::alerts::AlertRules;
use session_log_server::Config;

/// Rules with short windows, evaluated every 50 ms.
fn quick(config: &mut Config) {
    config.alert_tick = Duration::from_millis(50);
    config.rate_limit_session_per_sec = 0;
    config.alert_rules = AlertRules {
        error_burst_window: Duration::from_millis(1500),
        error_pattern_window: Duration::from_millis(1500),
        api_failure_window: Duration::from_millis(1500),
        stuck_after: Duration::from_millis(600),
        count_update_every: Duration::from_millis(100),
        ..AlertRules::default()
    };
}

/// Waits (at most 10 s) until `GET /api/alerts?status=all` satisfies `done`; returns the alerts.
fn wait_for(server: &TestServer, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = server.read("/api/alerts?status=all")["alerts"].as_array().unwrap().clone();
        if done(&alerts) {
            return alerts;
        }
        assert!(Instant::now() < deadline, "not within 10 s: {what}; alerts: {alerts:#?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits (at most `within`) until `done` holds.
fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn of_rule<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

fn error(token: &str, error_type: &str) -> Value {
    json!({"sessionToken": token, "studentEmail": format!("{token}@example.com"), "eventType": "error",
           "eventData": {"errorType": error_type, "errorMessage": "boom"}})
}

on_both_backends! {
    // The rules take the server's own events from its writer as they commit (counted in
    // /metrics as `feed`) and read none of them back, and alert from them: a help request's
    // message, read from its data, reaches the alert.
    fn the_rules_take_their_own_events_from_the_writer(backend) {
        let server = TestServer::on_with(backend, quick);
        let taken = |source: &str| server.metric(&format!("session_log_alert_events_total{{source=\"{source}\"}}"));
        // The first event may land before the rules lead (it is then read back at the start).
        server.post_all(vec![event("ws_warm", "action", json!({"n": 0}))]);
        wait_until("the first event taken", Duration::from_secs(10), || taken("feed") + taken("read_back") >= 1.0);
        let read_before = taken("read_back");
        let feed_before = taken("feed");
        let mut events: Vec<Value> = (1..=40).map(|n| event("ws_feed", "action", json!({"n": n}))).collect();
        events.push(json!({"sessionToken": "ws_feed", "eventType": "help_request", "eventData": {"message": "my deploy hangs"}}));
        server.post_all(events);
        let alerts = wait_for(&server, "the help request", |a| !of_rule(a, "help_request").is_empty());
        let message = of_rule(&alerts, "help_request")[0]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("my deploy hangs"), "the student's message reaches the alert: {message}");
        wait_until("41 events taken from the feed", Duration::from_secs(10), || taken("feed") - feed_before >= 41.0);
        assert_eq!(taken("feed") - feed_before, 41.0, "each event taken once");
        assert_eq!(taken("read_back"), read_before, "none of the server's own events read back");
    }

    // error_burst and error_pattern open once per episode, update while they hold, and resolve
    // when their errors age out of the window.
    fn error_rules_open_update_and_resolve(backend) {
        let server = TestServer::on_with(backend, quick);
        server.post_all(vec![error("ws_a", "twilio_timeout"), error("ws_a", "twilio_timeout"), error("ws_a", "twilio_timeout")]);
        let alerts = wait_for(&server, "an error_burst alert", |a| !of_rule(a, "error_burst").is_empty());
        let burst = of_rule(&alerts, "error_burst")[0].clone();
        assert_eq!(burst["status"], "open");
        assert_eq!(burst["sessionTokens"], json!(["ws_a"]));
        assert_eq!(burst["studentEmails"], json!(["ws_a@example.com"]));
        server.post_all(vec![error("ws_b", "twilio_timeout"), error("ws_c", "twilio_timeout")]);
        let alerts = wait_for(&server, "an error_pattern alert", |a| !of_rule(a, "error_pattern").is_empty());
        let pattern = of_rule(&alerts, "error_pattern")[0].clone();
        assert_eq!(pattern["errorType"], "twilio_timeout");
        assert_eq!(pattern["sessionTokens"], json!(["ws_a", "ws_b", "ws_c"]));
        assert_eq!(pattern["severity"], "critical");
        server.post_all(vec![error("ws_a", "twilio_timeout")]);
        wait_for(&server, "the burst updated", |a| of_rule(a, "error_burst").iter().any(|b| b["count"].as_u64() >= Some(2)));
        let alerts = wait_for(&server, "both resolved", |a| {
            a.iter().filter(|x| x["rule"] == "error_burst" || x["rule"] == "error_pattern").all(|x| x["status"] == "resolved")
        });
        assert_eq!(of_rule(&alerts, "error_burst").len(), 1, "one episode, one alert");
        assert_eq!(of_rule(&alerts, "error_pattern").len(), 1);
        assert!(of_rule(&alerts, "error_burst")[0]["resolvedAt"].is_string());
        assert!(server.read("/api/alerts")["alerts"].as_array().unwrap().is_empty(), "none open");
    }

    // stuck opens for an active session that stays on one step, and resolves when it moves on;
    // api_failures opens for an endpoint failing half its calls and resolves as they age out.
    fn stuck_and_api_failures(backend) {
        let server = TestServer::on_with(backend, quick);
        server.post_all(vec![json!({"sessionToken": "ws_s", "eventType": "navigation", "eventData": {"from": 0, "to": 2}})]);
        let alerts = wait_for(&server, "a stuck alert", |a| !of_rule(a, "stuck").is_empty());
        assert_eq!(of_rule(&alerts, "stuck")[0]["sessionTokens"], json!(["ws_s"]));
        server.post_all(vec![json!({"sessionToken": "ws_s", "eventType": "navigation", "eventData": {"from": 2, "to": 3}})]);
        wait_for(&server, "stuck resolved", |a| of_rule(a, "stuck").first().is_some_and(|s| s["status"] == "resolved"));
        let call = |status: u16| {
            event("ws_calls", "api_call", json!({"endpoint": "/api/deploy", "method": "POST", "status": status}))
        };
        server.post_all(vec![call(500), call(200), call(500), call(503), call(200)]);
        let alerts = wait_for(&server, "an api_failures alert", |a| !of_rule(a, "api_failures").is_empty());
        assert_eq!(of_rule(&alerts, "api_failures")[0]["endpoint"], "/api/deploy");
        wait_for(&server, "api_failures resolved", |a| of_rule(a, "api_failures")[0]["status"] == "resolved");
    }

    // Stuck sessions make one alert per step, listing them, and a session that moves on
    // leaves it; GET /api/alerts answers a help request first, whatever opened after it.
    fn stuck_groups_by_step_and_help_ranks_first(backend) {
        let server = TestServer::on_with(backend, quick);
        let nav = |token: &str, to: u32| {
            json!({"sessionToken": token, "studentEmail": format!("{token}@example.com"), "eventType": "navigation",
                   "eventData": {"from": to - 1, "to": to, "toStepName": "Provision Services"}})
        };
        server.post_all(vec![json!({"sessionToken": "ws_help", "eventType": "help_request", "eventData": {"message": "step 2 fails"}})]);
        wait_for(&server, "the help request", |a| !of_rule(a, "help_request").is_empty());
        server.post_all(vec![nav("ws_1", 2), nav("ws_2", 2)]);
        let alerts = wait_for(&server, "one stuck alert for both", |a| {
            of_rule(a, "stuck").iter().any(|s| s["sessionTokens"] == json!(["ws_1", "ws_2"]))
        });
        let stuck = of_rule(&alerts, "stuck");
        assert_eq!(stuck.len(), 1, "one alert for the step: {alerts:#?}");
        assert_eq!((stuck[0]["step"].as_i64(), stuck[0]["count"].as_u64(), stuck[0]["sessions"].as_u64()), (Some(2), Some(2), Some(2)));
        assert_eq!(stuck[0]["studentEmails"], json!(["ws_1@example.com", "ws_2@example.com"]));
        assert!(stuck[0]["message"].as_str().unwrap().starts_with("2 students stuck on step 2 · Provision Services"), "{}", stuck[0]["message"]);
        server.post_all(vec![error("ws_3", "x"), error("ws_3", "x"), error("ws_3", "x")]);
        wait_for(&server, "the burst", |a| !of_rule(a, "error_burst").is_empty());
        let open = server.read("/api/alerts")["alerts"].as_array().unwrap().clone();
        let rules: Vec<&str> = open.iter().map(|a| a["rule"].as_str().unwrap()).collect();
        assert_eq!(rules[0], "help_request", "the help request first, though it is the oldest: {rules:?}");
        assert_eq!(rules.len(), 3, "{rules:?}");
        let limited = server.read("/api/alerts?limit=1")["alerts"].as_array().unwrap().clone();
        assert_eq!(limited[0]["rule"], "help_request", "the limit cuts the ranked list");
        server.post_all(vec![nav("ws_1", 3)]);
        let alerts = wait_for(&server, "ws_1 left the group", |a| {
            of_rule(a, "stuck").iter().any(|s| s["sessionTokens"] == json!(["ws_2"]) && s["status"] == "open")
        });
        assert_eq!(of_rule(&alerts, "stuck").iter().filter(|s| s["status"] == "open").count(), 1);
    }

    // When half the active room stops moving at once, no stuck alert opens: one room_paused
    // notice (severity info) does instead.
    fn a_room_wide_pause_opens_a_notice_not_stuck_alerts(backend) {
        let server = TestServer::on_with(backend, quick);
        let events: Vec<Value> = (1..=3)
            .map(|n| json!({"sessionToken": format!("ws_p{n}"), "eventType": "navigation", "eventData": {"from": 0, "to": 1}}))
            .collect();
        server.post_all(events);
        let alerts = wait_for(&server, "a room_paused notice", |a| !of_rule(a, "room_paused").is_empty());
        let notice = of_rule(&alerts, "room_paused")[0];
        assert_eq!((notice["severity"].as_str(), notice["count"].as_u64()), (Some("info"), Some(3)));
        assert!(of_rule(&alerts, "stuck").is_empty(), "no stuck alert: {alerts:#?}");
    }

    // A help request opens an alert with the student's message; acknowledging resolves it, an
    // unknown id is 404, and both need the token.
    fn help_requests_resolve_when_acknowledged(backend) {
        let server = TestServer::on_with(backend, quick);
        server.post_all(vec![json!({"sessionToken": "ws_h", "studentEmail": "ada@example.com", "eventType": "help_request",
                                    "eventData": {"message": "Stuck on the Twilio step"}})]);
        let alerts = wait_for(&server, "a help_request alert", |a| !of_rule(a, "help_request").is_empty());
        let help = of_rule(&alerts, "help_request")[0].clone();
        assert_eq!((help["message"].as_str(), help["status"].as_str()), (Some("Stuck on the Twilio step"), Some("open")));
        let id = help["id"].as_str().unwrap();
        assert_eq!(server.request("POST", &format!("/api/alerts/{id}/ack"), &[], b"").status, 401);
        let acked = server.as_instructor("POST", &format!("/api/alerts/{id}/ack"));
        assert_eq!(acked.status, 200, "{}", acked.text);
        let alert = &acked.json()["alert"];
        assert_eq!(alert["status"], "resolved");
        assert!(alert["acknowledgedAt"].is_string());
        assert_eq!(server.read("/api/alerts?status=resolved")["alerts"][0]["id"], id);
        assert_eq!(server.as_instructor("POST", "/api/alerts/nope/ack").status, 404);
        assert_eq!(server.as_instructor("GET", "/api/alerts?status=maybe").status, 400);
    }

    // A help request's lifecycle reaches every helper and the webhooks: the claim is an
    // `alert.updated` naming the helper and the note, the resolve an `alert.resolved` with its
    // note; the student asking again afterwards opens a new request, waiting first in line.
    fn help_claims_and_resolves_reach_the_stream_and_webhooks(backend) {
        let (server, receiver) = with_webhooks(backend);
        let stream = alert_stream(&server, None);
        let asked = json!({"sessionToken": "ws_q", "eventType": "help_request", "eventData": {"message": "stuck"}});
        server.post_all(vec![asked.clone()]);
        let (_, opened) = stream.recv_timeout(Duration::from_secs(10)).expect("the request on the stream");
        assert_eq!((opened["change"].as_str(), opened["help"]["status"].as_str()), (Some("alert.opened"), Some("waiting")));
        let id = opened["id"].as_str().unwrap().to_owned();
        let post = |action: &str, body: Value| {
            server.request(
                "POST",
                &format!("/api/alerts/{id}/{action}"),
                &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            )
        };
        assert_eq!(post("claim", json!({"name": "Alex", "note": "on my way"})).status, 200);
        let (_, claimed) = stream.recv_timeout(Duration::from_secs(10)).expect("the claim on the stream");
        assert_eq!(claimed["change"], "alert.updated");
        assert_eq!((claimed["help"]["claimedBy"].as_str(), claimed["help"]["note"].as_str()), (Some("Alex"), Some("on my way")));
        assert_eq!(post("resolve", json!({"note": "fixed"})).status, 200);
        let (_, resolved) = stream.recv_timeout(Duration::from_secs(10)).expect("the resolve on the stream");
        assert_eq!((resolved["change"].as_str(), resolved["help"]["status"].as_str()), (Some("alert.resolved"), Some("resolved")));
        assert_eq!(post("claim", json!({})).status, 409, "a resolved request is not claimed");
        // The webhooks: the opening (the receiver refuses its first delivery), the claim and the resolve.
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            let delivery = receiver.next();
            assert!(delivery.verified);
            if delivery.status_sent == 200 {
                kinds.push((delivery.body["type"].as_str().unwrap().to_owned(), delivery.body["alert"]["help"]["status"].as_str().unwrap().to_owned()));
            }
        }
        // A refused delivery is retried on its own, so the opening may come after the others.
        kinds.sort();
        let expected = [("alert.opened", "waiting"), ("alert.resolved", "resolved"), ("alert.updated", "claimed")];
        assert_eq!(kinds, expected.map(|(k, s)| (k.to_owned(), s.to_owned())));
        // Asking again is a new request (the resolved one stays resolved).
        server.post_all(vec![asked]);
        let (_, again) = stream.recv_timeout(Duration::from_secs(10)).expect("the new request");
        assert_ne!(again["id"], json!(id));
        assert_eq!((again["change"].as_str(), again["help"]["status"].as_str()), (Some("alert.opened"), Some("waiting")));
        let open = server.read("/api/alerts");
        assert_eq!(open["alerts"][0]["help"]["position"], 1, "{open}");
    }

    // A student who asks again the moment their request is resolved (before the rules have
    // seen the resolve) gets a new waiting request, and asking a third time adds no other.
    fn asking_again_at_once_after_a_resolve_is_a_new_request(backend) {
        let server = TestServer::on_with(backend, quick);
        let asked = |message: &str| json!({"sessionToken": "ws_r", "eventType": "help_request", "eventData": {"message": message}});
        server.post_all(vec![asked("first")]);
        let alerts = wait_for(&server, "the first request", |a| !of_rule(a, "help_request").is_empty());
        let id = of_rule(&alerts, "help_request")[0]["id"].as_str().unwrap().to_owned();
        let resolved = server.request("POST", &format!("/api/alerts/{id}/resolve"),
            &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", "application/json")], b"{}");
        assert_eq!(resolved.status, 200, "{}", resolved.text);
        server.post_all(vec![asked("second")]);
        let alerts = wait_for(&server, "a new open request", |a| {
            of_rule(a, "help_request").iter().any(|r| r["status"] == "open" && r["id"] != json!(id))
        });
        let open: Vec<&Value> = of_rule(&alerts, "help_request").into_iter().filter(|r| r["status"] == "open").collect();
        assert_eq!(open.len(), 1, "{alerts:#?}");
        assert_eq!((open[0]["message"].as_str(), open[0]["help"]["status"].as_str()), (Some("second"), Some("waiting")));
        let second = open[0]["id"].clone();
        server.post_all(vec![asked("third")]);
        let alerts = wait_for(&server, "the third ask folded into the second request", |a| {
            of_rule(a, "help_request").iter().any(|r| r["id"] == second && r["message"] == "third")
        });
        let open = of_rule(&alerts, "help_request").into_iter().filter(|r| r["status"] == "open").count();
        assert_eq!(open, 1, "{alerts:#?}");
        let first = of_rule(&alerts, "help_request").into_iter().find(|r| r["id"] == json!(id)).unwrap().clone();
        assert_eq!((first["status"].as_str(), first["message"].as_str()), (Some("resolved"), Some("first")));
    }

    // The alert stream sends each change as `event: alert` and resumes after Last-Event-ID with
    // no gap and no repeat.
    fn alert_stream_resumes(backend) {
        let server = TestServer::on_with(backend, quick);
        let stream = alert_stream(&server, None);
        let help = |n: u32| json!({"sessionToken": format!("ws_{n}"), "eventType": "help_request", "eventData": {"message": format!("help {n}")}});
        server.post_all(vec![help(1)]);
        let (first_id, first) = stream.recv_timeout(Duration::from_secs(10)).expect("an alert on the stream");
        assert_eq!((first["message"].as_str(), first["change"].as_str()), (Some("help 1"), Some("alert.opened")));
        drop(stream);
        server.post_all(vec![help(2)]);
        wait_for(&server, "the second help request", |a| a.len() == 2);
        let resumed = alert_stream(&server, Some(&first_id));
        let (_, second) = resumed.recv_timeout(Duration::from_secs(10)).expect("the missed alert");
        assert_eq!(second["message"], "help 2");
        assert!(resumed.recv_timeout(Duration::from_millis(300)).is_err(), "nothing twice");
    }

    // A stream opened without Last-Event-ID starts after the newest stored change: it sends the
    // next alert, not the ones before it.
    fn alert_stream_starts_at_the_newest_change(backend) {
        let server = TestServer::on_with(backend, quick);
        let help = |n: u32| json!({"sessionToken": format!("ws_{n}"), "eventType": "help_request", "eventData": {"message": format!("help {n}")}});
        server.post_all(vec![help(1), help(2)]);
        wait_for(&server, "two help requests", |a| a.len() == 2);
        let stream = alert_stream(&server, None);
        server.post_all(vec![help(3)]);
        let (_, first) = stream.recv_timeout(Duration::from_secs(10)).expect("an alert on the stream");
        assert_eq!((first["message"].as_str(), first["change"].as_str()), (Some("help 3"), Some("alert.opened")));
    }

    // Webhooks: each change is POSTed with a verifiable signature; a 500 is retried within a few
    // seconds, and the resolution arrives too.
    fn webhooks_are_signed_retried_and_resolved(backend) {
        let (server, receiver) = with_webhooks(backend);
        server.post_all(vec![error("ws_w", "x"), error("ws_w", "x"), error("ws_w", "x")]);
        let first = receiver.next();
        assert_eq!(first.status_sent, 500, "the first delivery is refused");
        let again = receiver.next();
        assert!(again.verified, "the signature verifies");
        assert_eq!(again.body, first.body, "the same change, retried");
        assert!(again.at.duration_since(first.at) < Duration::from_secs(5), "the first retry within a few seconds");
        assert_eq!(again.body["type"], "alert.opened");
        assert_eq!(again.body["alert"]["rule"], "error_burst");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let next = receiver.next();
            assert!(next.verified);
            if next.body["type"] == "alert.resolved" {
                assert_eq!(next.body["alert"]["id"], again.body["alert"]["id"]);
                break;
            }
            assert!(Instant::now() < deadline, "no alert.resolved");
        }
        // The receiver saw the last POST before the server read its answer: wait for the count.
        wait_until("the retried delivery counted", Duration::from_secs(5), || {
            server.metric("session_log_webhook_deliveries_total{outcome=\"retried\"}") >= 1.0
        });
        wait_until("two delivered deliveries counted", Duration::from_secs(5), || {
            server.metric("session_log_webhook_deliveries_total{outcome=\"delivered\"}") >= 2.0
        });
    }
}

/// A server with [`quick`] rules whose changes are POSTed, signed with `whsec_test`, to a new
/// [`Receiver`] (which refuses its first delivery).
fn with_webhooks(backend: common::Backend) -> (TestServer, Receiver) {
    let receiver = Receiver::start("whsec_test");
    let url = receiver.url.clone();
    let server = TestServer::on_with(backend, |c| {
        quick(c);
        c.alert_webhooks = vec![url];
        c.alert_webhook_allow_private = true;
        c.alert_webhook_secret = Some("whsec_test".into());
    });
    (server, receiver)
}

/// Reads `event: alert` messages from the alert stream on a thread: `(id, data)`.
fn alert_stream(server: &TestServer, last_event_id: Option<&str>) -> mpsc::Receiver<(String, Value)> {
    let mut request =
        ureq::get(&format!("{}/api/alerts/stream", server.url)).header("Authorization", &format!("Bearer {TOKEN}"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.call().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut id = String::new();
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("id: ") {
                id = value.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if send.send((id.clone(), serde_json::from_str(data).unwrap())).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

/// One POST the receiver got.
struct Delivery {
    body: Value,
    verified: bool,
    status_sent: u16,
    at: Instant,
}

/// A webhook receiver on 127.0.0.1: verifies each POST's signature as a Stripe-style receiver
/// does, answers the first one 500 and the others 200.
struct Receiver {
    url: String,
    deliveries: mpsc::Receiver<Delivery>,
}

impl Receiver {
    fn start(secret: &'static str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (send, deliveries) = mpsc::channel();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    headers.push(line.trim_end().to_owned());
                }
                let header = |name: &str| {
                    headers.iter().find_map(|h| {
                        let (k, v) = h.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                };
                let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let timestamp: u64 = header("x-session-log-timestamp").and_then(|v| v.parse().ok()).unwrap_or(0);
                let expected =
                    hmac_sha256_hex(secret.as_bytes(), &[timestamp.to_string().as_bytes(), b".", &body].concat());
                let verified = header("x-session-log-signature") == Some(format!("sha256={expected}"));
                let status_sent = if n == 0 { 500 } else { 200 };
                let _ = write!(stream, "HTTP/1.1 {status_sent} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let delivery = Delivery {
                    body: serde_json::from_slice(&body).unwrap(),
                    verified,
                    status_sent,
                    at: Instant::now(),
                };
                if send.send(delivery).is_err() {
                    return;
                }
            }
        });
        Receiver { url, deliveries }
    }

    fn next(&self) -> Delivery {
        self.deliveries.recv_timeout(Duration::from_secs(15)).expect("a webhook delivery within 15 s")
    }
}

/// HMAC-SHA256 (RFC 2104) over SHA-256, written out here so the test does not trust the
/// server's own signing code.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), message.to_vec()].concat());
    let outer = Sha256::digest([pad(0x5c), inner.to_vec()].concat());
    outer.iter().map(|b| format!("{b:02x}")).collect()
}
