//! Integration tests of the ingest limits and the operational endpoints: gzip, rate limits, CORS
//! origins, backpressure, /healthz and /metrics. Each checks the status, the JSON error and what
//! the database holds.

#[macro_use]
mod common;

use std::io::Write;

use common::{event, TestServer};
use serde_json::json;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Another connection's transaction that keeps the server's writer from committing: SQLite's
/// write lock, or PostgreSQL's exclusive lock on `events`.
enum WriteLock {
    Sqlite(rusqlite::Connection),
    Postgres(::postgres::Client),
}

impl WriteLock {
    fn take(db: &common::TestDb) -> WriteLock {
        match db.backend {
            common::Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&db.path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteLock::Sqlite(conn)
            }
            common::Backend::Postgres => {
                let mut client = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
                client.batch_execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE").unwrap();
                WriteLock::Postgres(client)
            }
        }
    }

    fn release(self) {
        match self {
            WriteLock::Sqlite(conn) => conn.execute_batch("COMMIT").unwrap(),
            WriteLock::Postgres(mut client) => client.batch_execute("COMMIT").unwrap(),
        }
    }
}
const GZIP: (&str, &str) = ("Content-Encoding", "gzip");

// /healthz says the database is writable, and answers 503 while it is not.
#[test]
fn healthz_reports_a_writable_database() {
    let server = TestServer::start();
    let answer = server.request("GET", "/healthz", &[], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"success": true, "status": "ok", "database": "writable"}));
    let blocker = rusqlite::Connection::open(&server.db.path).unwrap();
    blocker.busy_timeout(std::time::Duration::ZERO).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The writer waits up to its busy timeout (5 s) for the lock, then reports it.
    let answer = server.request("GET", "/healthz", &[], b"");
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.json()["error"].as_str().unwrap().contains("not writable"));
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
}

on_both_backends! {
    // When the writer cannot keep up (here: another connection holds the write lock, or a lock on
    // the events table), requests beyond
    // the write queue get 503 with Retry-After instead of waiting without bound; the queued ones
    // are stored once the lock is released.
    fn full_write_queue_answers_503(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.write_queue_requests = 1;
            c.retention = None; // no purge job may take the one queue slot
        });
        let blocker = WriteLock::take(&server.db);
        let post = |n: u32| {
            let url = format!("{}/api/session-log", server.url);
            std::thread::spawn(move || {
                let body = json!({"sessionToken": "ws_q", "eventType": "a", "eventData": {"n": n}}).to_string();
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                agent.post(&url).header("Content-Type", "application/json").send(body.as_bytes()).unwrap().status().as_u16()
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let within_10s = |what: &str| assert!(std::time::Instant::now() < deadline, "not within 10 s: {what}");
        // The writer takes the first requests, each in a group of its own, and they wait for the
        // lock: one on SQLite, four on PostgreSQL (whose writer has four groups in flight, the
        // second to fourth waiting for the first's session lock)...
        let mut taken = Vec::new();
        match backend {
            common::Backend::Sqlite => {
                taken.push(post(1));
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            common::Backend::Postgres => {
                let mut watcher = ::postgres::Client::connect(&server.db.url, ::postgres::NoTls).unwrap();
                for n in 1..=4 {
                    taken.push(post(n));
                    let mut waiting = || -> i64 {
                        watcher
                            .query_one(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                                &[],
                            )
                            .unwrap()
                            .get(0)
                    };
                    while waiting() < n as i64 {
                        within_10s("the writer's groups waiting for the lock");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        }
        // ...the next fills the queue...
        taken.push(post(10));
        while server.metric("session_log_write_queue_depth") < 1.0 {
            within_10s("a request in the write queue");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // ...and the one after is refused at once.
        let refused =
            server.request("POST", "/api/session-log", &[JSON], event("ws_q", "a", json!({"n": 11})).to_string().as_bytes());
        assert_eq!(refused.status, 503, "{}", refused.text);
        assert_eq!(refused.retry_after.as_deref(), Some("1"));
        assert!(refused.json()["error"].as_str().unwrap().contains("overloaded"));
        blocker.release();
        let stored = taken.len();
        for request in taken {
            assert_eq!(request.join().unwrap(), 200);
        }
        assert_eq!(server.stored_rows(), stored as i64, "every accepted request stored");
    }

    // A gzip body is decompressed and stored.
    fn gzip_body_is_accepted(backend) {
        let server = TestServer::on(backend);
        let events: Vec<_> = (0..50).map(|n| event("ws_gz", "action", json!({"n": n}))).collect();
        let body = gzip(json!({"events": events}).to_string().as_bytes());
        let answer = server.request("POST", "/api/session-log", &[JSON, GZIP], &body);
        assert_eq!((answer.status, answer.json()["accepted"].as_u64()), (200, Some(50)));
        assert_eq!(server.stored_rows(), 50);
    }

    // A small gzip bomb (4 KiB that inflates past the limit) gets 413, not the server's memory.
    fn gzip_bomb_is_refused_by_decompressed_size(backend) {
        let server = TestServer::on_with(backend, |c| c.max_body_bytes = 64 * 1024);
        let mut inflated = br#"{"sessionToken":"ws_bomb","eventType":"a","eventData":{"pad":""#.to_vec();
        inflated.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        inflated.extend_from_slice(br#""}}"#);
        let bomb = gzip(&inflated);
        assert!(bomb.len() < 64 * 1024, "the compressed body is under the limit: {}", bomb.len());
        let answer = server.request("POST", "/api/session-log", &[JSON, GZIP], &bomb);
        assert_eq!(answer.status, 413);
        assert!(answer.json()["error"].as_str().unwrap().contains("65536"), "{}", answer.text);
        assert_eq!(server.stored_rows(), 0);
    }

    // A body that claims gzip but is not, and encodings other than gzip, get clear errors.
    fn bad_or_unsupported_encodings_are_refused(backend) {
        let server = TestServer::on(backend);
        let body = event("ws_1", "action", json!({})).to_string();
        let answer = server.request("POST", "/api/session-log", &[JSON, GZIP], body.as_bytes());
        assert_eq!(answer.status, 400);
        assert!(answer.json()["error"].as_str().unwrap().contains("gzip"));
        let answer = server.request("POST", "/api/session-log", &[JSON, ("Content-Encoding", "br")], body.as_bytes());
        assert_eq!(answer.status, 415);
        assert!(answer.json()["error"].as_str().unwrap().contains("\"br\""));
        assert_eq!(server.stored_rows(), 0);
    }

    // A session token over its rate gets 429 with Retry-After; other sessions are unaffected.
    fn session_rate_limit_answers_429_with_retry_after(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.rate_limit_session_per_sec = 1;
            c.rate_limit_session_burst = 3;
        });
        let body = event("ws_busy", "action", json!({})).to_string();
        let statuses: Vec<u16> =
            (0..5).map(|_| server.request("POST", "/api/session-log", &[JSON], body.as_bytes()).status).collect();
        assert_eq!(&statuses[..3], [200, 200, 200], "the burst is allowed");
        let limited = server.request("POST", "/api/session-log", &[JSON], body.as_bytes());
        assert_eq!(limited.status, 429);
        let retry_after: u64 = limited.retry_after.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        assert!(limited.json()["error"].as_str().unwrap().contains("session token"));
        let other = event("ws_calm", "action", json!({})).to_string();
        assert_eq!(server.request("POST", "/api/session-log", &[JSON], other.as_bytes()).status, 200);
        let stored = server.stored_rows();
        assert_eq!(stored, 3 + i64::from(statuses[3] == 200) + i64::from(statuses[4] == 200) + 1);
        assert!(server.metric("session_log_rate_limited_total{key=\"session token\"}") >= 1.0);
    }

    // A write key over its rate (counted in events) gets 429 naming the key, and stores nothing
    // of that batch; another workshop's key and keyless events are unaffected.
    fn write_key_rate_limit_counts_events(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.admin_tokens = vec![common::ADMIN.into()];
            c.rate_limit_session_per_sec = 0;
            c.rate_limit_key_per_sec = 1;
            c.rate_limit_key_burst = 30;
        });
        let key = |slug: &str| {
            let (status, made) = common::admin(&server, "POST", "/api/workshops", &json!({"slug": slug, "name": slug}));
            assert_eq!(status, 201, "{made}");
            made["writeKey"].as_str().unwrap().to_owned()
        };
        let (busy, calm) = (key("busy"), key("calm"));
        let batch = |key: Option<&str>, n: usize, token: &str| {
            let events: Vec<_> = (0..n).map(|i| event(token, "action", json!({"n": i}))).collect();
            let mut body = json!({"events": events});
            if let Some(key) = key {
                body["writeKey"] = json!(key);
            }
            server.request("POST", "/api/session-log", &[JSON], body.to_string().as_bytes())
        };
        assert_eq!(batch(Some(&busy), 25, "ws_b1").status, 200, "within the burst");
        let limited = batch(Some(&busy), 10, "ws_b2");
        assert_eq!(limited.status, 429, "25 + 10 events > 30");
        assert!(limited.json()["error"].as_str().unwrap().contains("write key"), "{}", limited.text);
        assert!(limited.retry_after.is_some());
        assert_eq!(batch(Some(&calm), 25, "ws_c1").status, 200, "another key has its own bucket");
        assert_eq!(batch(None, 25, "ws_k1").status, 200, "keyless events are not counted");
        assert_eq!(server.stored_rows(), 75, "nothing of the refused batch");
        assert!(server.metric("session_log_rate_limited_total{key=\"write key\"}") >= 1.0);
    }

    // A client address over its rate gets 429 before its body is even read.
    fn address_rate_limit_answers_429(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.rate_limit_ip_per_sec = 1;
            c.rate_limit_ip_burst = 2;
        });
        let statuses: Vec<u16> = (0..4)
            .map(|n| {
                let body = event(&format!("ws_{n}"), "action", json!({})).to_string();
                server.request("POST", "/api/session-log", &[JSON], body.as_bytes()).status
            })
            .collect();
        assert_eq!(&statuses[..2], [200, 200]);
        assert!(statuses[2..].contains(&429), "{statuses:?}");
        assert_eq!(server.stored_rows() as usize, statuses.iter().filter(|s| **s == 200).count());
    }

    // Behind a trusted proxy the address limit applies per forwarded client; without one a forged
    // X-Forwarded-For changes nothing (every request counts against the real peer).
    fn address_rate_limit_reads_x_forwarded_for_only_from_trusted_proxies(backend) {
        let db = std::sync::Arc::new(common::TestDb::new(backend));
        let limited = |c: &mut session_log_server::Config| {
            c.rate_limit_ip_per_sec = 1;
            c.rate_limit_ip_burst = 1;
        };
        let post = |server: &TestServer, n: usize, forwarded_for: &str| {
            let body = event(&format!("ws_xff_{n}"), "action", json!({})).to_string();
            server.request("POST", "/api/session-log", &[JSON, ("X-Forwarded-For", forwarded_for)], body.as_bytes()).status
        };
        let behind = TestServer::on_db(db.clone(), |c| {
            limited(c);
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        });
        assert_eq!(post(&behind, 0, "203.0.113.7"), 200);
        assert_eq!(post(&behind, 1, "203.0.113.7"), 429, "the same student, over the limit");
        assert_eq!(post(&behind, 2, "203.0.113.8"), 200, "another student behind the same proxy");
        assert_eq!(post(&behind, 3, "198.51.100.1, 203.0.113.9"), 200, "the right-most hop is the client");
        assert_eq!(post(&behind, 4, "203.0.113.7, 203.0.113.9"), 429, "a forged left hop does not help");
        drop(behind);
        let direct = TestServer::on_db(db, limited);
        assert_eq!(post(&direct, 5, "203.0.113.10"), 200);
        assert_eq!(post(&direct, 6, "203.0.113.11"), 429, "an untrusted peer's header is ignored");
    }

    // With --allowed-origin, only those origins get CORS headers; by default every origin does.
    fn allowed_origins_restrict_cors(backend) {
        let preflight = |server: &TestServer, origin: &str| {
            server.request(
                "OPTIONS",
                "/api/session-log",
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", "content-type"),
                ],
                b"",
            )
        };
        let open = TestServer::on(backend);
        assert_eq!(preflight(&open, "https://any.example").allow_origin.as_deref(), Some("https://any.example"));
        let closed = TestServer::on_with(backend, |c| c.allowed_origins = vec!["https://workshop.example".into()]);
        assert_eq!(
            preflight(&closed, "https://workshop.example").allow_origin.as_deref(),
            Some("https://workshop.example")
        );
        assert_eq!(preflight(&closed, "https://evil.example").allow_origin, None);
    }

    // /metrics counts accepted, duplicate and rejected events, commits, and refusals by reason.
    fn metrics_count_what_happened(backend) {
        let server = TestServer::on(backend);
        let mut batch = vec![event("ws_m", "a", json!({})), event("ws_m", "a", json!(1)), event("ws_m", "a", json!({}))];
        batch[0]["eventId"] = json!("01890a5d-ac96-774b-bcce-b302099a8057");
        server.post(&json!({"events": batch}));
        server.post(&json!({"events": [batch[0].clone()]}));
        server.post_raw(Some("application/json"), "{not json");
        assert_eq!(server.metric("session_log_events_accepted_total"), 3.0);
        assert_eq!(server.metric("session_log_events_duplicate_total"), 1.0);
        assert_eq!(server.metric("session_log_events_rejected_total{reason=\"invalid_event\"}"), 1.0);
        assert_eq!(server.metric("session_log_requests_refused_total{reason=\"malformed\"}"), 1.0);
        assert_eq!(server.metric("session_log_batches_total"), 2.0);
        assert!(server.metric("session_log_commit_seconds_count") >= 2.0);
        assert_eq!(server.metric("session_log_write_queue_depth"), 0.0);
    }
}
