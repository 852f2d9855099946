//! Several servers on one PostgreSQL database (a fresh one per test), as behind a load balancer:
//! each answers as if it were the only one — reads, summaries, the report, the live tail, dedup,
//! cursors while both ingest, and background work run by one of them at a time.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{assert_summaries_are_folds, event, Backend, TestDb, TestServer, TOKEN};
use serde_json::{json, Value};
use session_log_server::metrics::Metrics;
use session_log_server::storage::Storage;

/// Two servers on one fresh PostgreSQL database, `adjust`ed alike.
fn two_servers(adjust: impl Fn(&mut session_log_server::Config)) -> (TestServer, TestServer) {
    let db = Arc::new(TestDb::new(Backend::Postgres));
    let a = TestServer::on_db(db.clone(), &adjust);
    let b = TestServer::on_db(db, &adjust);
    (a, b)
}

/// Waits (at most `within`) until `done` holds.
fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `event_data` of each event of `server`'s live tail on `path`, sent over the channel.
fn tail(server: &TestServer, path: &str) -> mpsc::Receiver<Value> {
    let response =
        ureq::get(&format!("{}{path}", server.url)).header("Authorization", &format!("Bearer {TOKEN}")).call().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data: ") {
                let event: Value = serde_json::from_str(data).unwrap();
                if send.send(event["event_data"].clone()).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

// An event posted to A is read from B, counted in B's sessions and report, and arrives on B's
// live tail within seconds (woken by PostgreSQL's NOTIFY, not by B's own writer).
#[test]
fn an_event_posted_to_one_server_is_seen_by_the_other() {
    let (a, b) = two_servers(|_| {});
    let live = tail(&b, "/api/session-log/stream?sessionToken=ws_shared");
    a.post_all(vec![
        json!({"sessionToken": "ws_shared", "studentEmail": "ada@example.com", "eventType": "navigation",
               "eventData": {"from": 0, "to": 1, "toStepName": "Intro", "n": 1}}),
        event("ws_shared", "error", json!({"errorType": "twilio_timeout", "n": 2})),
    ]);
    let page = b.read("/api/session-log?sessionToken=ws_shared&order=asc");
    assert_eq!(page["count"], 2);
    assert_eq!(page["events"][0]["student_email"], "ada@example.com");
    let sessions = b.read("/api/sessions");
    assert_eq!(sessions["sessions"][0]["sessionToken"], "ws_shared");
    assert_eq!(sessions["sessions"][0]["events"], 2);
    let report = b.read("/api/report");
    assert_eq!((report["sessions"].as_u64(), report["events"].as_u64()), (Some(1), Some(2)));
    assert_eq!(report["topErrors"][0]["errorType"], "twilio_timeout");
    for n in [1, 2] {
        let data = live.recv_timeout(Duration::from_secs(5)).expect("B's live tail got A's event within 5 s");
        assert_eq!(data["n"], n);
    }
}

// The same eventId posted to A and to B at once is stored once; both answer 200.
#[test]
fn the_same_event_posted_to_both_is_stored_once() {
    let (a, b) = two_servers(|_| {});
    for round in 0..20 {
        let id = uuid::Uuid::now_v7().to_string();
        let body = json!({"sessionToken": "ws_dup", "eventType": "action", "eventId": id, "eventData": {"n": round}});
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let sent: Vec<_> = [&a, &b].map(|server| s.spawn(|| server.post(&body).0)).into_iter().collect();
            sent.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(statuses, [200, 200]);
    }
    assert_eq!(a.stored_rows(), 20);
    assert_eq!(b.read("/api/sessions")["sessions"][0]["events"], 20, "the summary counts each once");
}

// The same eventId posted to A and to B at once under two different sessions (no session lock
// orders them: the second insert meets the first on the unique index while holding the id lock)
// is stored once, both answer 200, each summary is the fold of its session's events, and both
// servers go on storing (a failed insert's id lock is not left held).
#[test]
fn the_same_event_under_two_sessions_at_once_is_stored_once() {
    let (a, b) = two_servers(|c| c.rate_limit_session_per_sec = 0);
    for round in 0..20 {
        let id = uuid::Uuid::now_v7().to_string();
        let bodies = ["ws_one", "ws_two"].map(
            |token| json!({"sessionToken": token, "eventType": "action", "eventId": id, "eventData": {"n": round}}),
        );
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let sent: Vec<_> = [(&a, &bodies[0]), (&b, &bodies[1])]
                .map(|(server, body)| s.spawn(|| server.post(body).0))
                .into_iter()
                .collect();
            sent.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(statuses, [200, 200], "round {round}");
    }
    assert_eq!(a.stored_rows(), 20, "each eventId once");
    let after = [&a, &b]
        .map(|server| server.post(&json!({"sessionToken": "ws_after", "eventType": "action", "eventData": {}})).0);
    assert_eq!(after, [200, 200], "both servers still store");
    let storage = Storage::open(&a.db.config(), Arc::new(Metrics::new())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sessions = assert_summaries_are_folds(&storage, &runtime);
    storage.close();
    assert!(sessions.contains(&"ws_after".to_owned()), "{sessions:?}");
}

// While loaders post to both servers at once, a reader paging B oldest first with cursors sees
// every stored event exactly once: ids drawn by two writers never become visible out of order.
#[test]
fn cursor_paging_sees_every_event_once_while_both_servers_ingest() {
    let (a, b) = two_servers(|c| c.rate_limit_session_per_sec = 0);
    let loading = std::sync::atomic::AtomicBool::new(true);
    let seen = std::thread::scope(|s| {
        let loaders: Vec<_> = (0..4)
            .map(|k| {
                let server = if k % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    for round in 0..40 {
                        let events = (0..10)
                            .map(|i| event(&format!("ws_load_{k}_{}", round % 5), "action", json!({"k": k, "i": i})))
                            .collect();
                        server.post_all(events);
                    }
                })
            })
            .collect();
        let reader = s.spawn(|| {
            let mut seen: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let done = !loading.load(std::sync::atomic::Ordering::SeqCst);
                let mut path = "/api/session-log?order=asc&limit=37".to_owned();
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = b.read(&path);
                let events = page["events"].as_array().unwrap();
                seen.extend(events.iter().map(|e| e["event_uuid"].as_str().unwrap().to_owned()));
                if let Some(last) = events.last() {
                    // The cursor of the last event read (what a client resumes from).
                    let position = last["event_id"].as_i64().unwrap();
                    cursor = Some(session_log_server::domain::cursor::EventCursor::at(position).encode());
                }
                if events.is_empty() {
                    // Every POST was answered (so committed) before `done` was read: all is read.
                    if done {
                        return seen;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        for loader in loaders {
            loader.join().unwrap();
        }
        loading.store(false, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap()
    });
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was read twice");
    let stored: HashSet<String> = a.db.texts("SELECT CAST(event_uuid AS TEXT) FROM events").into_iter().collect();
    assert_eq!(stored.len(), 4 * 40 * 10);
    let read: HashSet<String> = seen.into_iter().collect();
    assert_eq!(read.len(), stored.len(), "the reader missed {} stored events", stored.difference(&read).count());
}

// Two servers ingesting one session at once keep its summary equal to the fold of its events.
#[test]
fn two_servers_ingesting_one_session_keep_its_summary_the_fold() {
    let (a, b) = two_servers(|c| c.rate_limit_session_per_sec = 0);
    std::thread::scope(|s| {
        for (k, server) in [&a, &b, &a, &b].into_iter().enumerate() {
            s.spawn(move || {
                for round in 0..25 {
                    let events = (0..4)
                        .map(|i| {
                            let n = (k * 100 + round * 4 + i) as u64;
                            json!({"sessionToken": "ws_one", "eventType": if n % 7 == 0 { "error" } else { "navigation" },
                                   "seq": n, "eventData": {"from": n, "to": n + 1, "errorType": "boom"}})
                        })
                        .collect();
                    server.post_all(events);
                }
            });
        }
    });
    let storage = Storage::open(&a.db.config(), Arc::new(Metrics::new())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(assert_summaries_are_folds(&storage, &runtime), ["ws_one"]);
    storage.close();
    assert_eq!(b.read("/api/sessions")["sessions"][0]["events"], 400);
}

// Only one server runs the retention passes; when it stops, the other takes over within seconds.
#[test]
fn one_server_runs_background_work_and_another_takes_over() {
    let (a, b) = two_servers(|c| {
        c.retention = Some(Duration::from_secs(86_400));
        c.retention_every = Duration::from_millis(50);
    });
    let runs = |server: &TestServer| server.metric("session_log_background_runs_total{task=\"retention\"}");
    let leading = |server: &TestServer| server.metric("session_log_background_leader") == 1.0;
    wait_until("one server ran 10 retention passes", Duration::from_secs(10), || runs(&a) + runs(&b) >= 10.0);
    let (leader, other) = if leading(&a) { (a, b) } else { (b, a) };
    assert!(leading(&leader) && !leading(&other), "exactly one server leads");
    assert_eq!(runs(&other), 0.0, "the other ran no pass");
    leader.stop();
    wait_until("the other server took over", Duration::from_secs(10), || leading(&other) && runs(&other) >= 3.0);
}

// With two servers, the alert rules run on one: an error burst spread over both servers opens
// one alert, read the same from either.
#[test]
fn an_alert_opens_once_across_servers() {
    let (a, b) = two_servers(|c| {
        c.alert_tick = Duration::from_millis(50);
        c.rate_limit_session_per_sec = 0;
        c.alert_rules.count_update_every = Duration::ZERO;
    });
    let error = || event("ws_err", "error", json!({"errorType": "boom"}));
    a.post_all(vec![error()]);
    b.post_all(vec![error()]);
    a.post_all(vec![error()]);
    b.post_all(vec![error(), error()]);
    let bursts = |server: &TestServer| -> Vec<Value> {
        let alerts = server.read("/api/alerts?status=all")["alerts"].as_array().unwrap().clone();
        alerts.into_iter().filter(|a| a["rule"] == "error_burst").collect()
    };
    // Five errors in the episode, whichever server stored them.
    wait_until("an error_burst alert counting 5 errors", Duration::from_secs(10), || {
        bursts(&a).iter().any(|x| x["count"] == 5)
    });
    assert_eq!(bursts(&a).len(), 1, "one alert, not one per server");
    assert_eq!(bursts(&a), bursts(&b), "both servers answer the same alert");
    // The leader took its own events from its writer and read the other server's back.
    let taken = |source: &str| {
        let sample = format!("session_log_alert_events_total{{source=\"{source}\"}}");
        a.metric(&sample) + b.metric(&sample)
    };
    assert!(taken("read_back") >= 1.0, "the other server's events are read back");
    assert!(taken("feed") + taken("read_back") >= 5.0, "every error taken");
}

// Rooms across two servers: a room made on one server takes sessions posted to the other; the
// rules, run by the leader, judge each room apart (a burst in room A stays room A's) and the
// alert names its room, read the same from either server.
#[test]
fn room_alerts_run_on_the_leader_across_servers() {
    let (a, b) = two_servers(|c| {
        c.alert_tick = Duration::from_millis(50);
        c.rate_limit_session_per_sec = 0;
        c.alert_rules.count_update_every = Duration::ZERO;
        c.admin_tokens = vec![common::ADMIN.into()];
    });
    let (status, made) = common::admin(&a, "POST", "/api/workshops", &json!({"slug": "voice-ai", "name": "Voice AI"}));
    assert_eq!(status, 201, "{made}");
    let key = made["writeKey"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    for name in ["A", "B"] {
        let (status, room) = common::admin(&a, "POST", "/api/workshops/voice-ai/rooms", &json!({"name": name}));
        assert_eq!(status, 201, "{room}");
        codes.push(room["code"].as_str().unwrap().to_owned());
    }
    // Server b learns of the rooms within its directory's refresh (5 s); until then a code it
    // does not know would land in the lobby: wait for it.
    wait_until("server b knows room A", Duration::from_secs(10), || {
        b.request(
            "GET",
            &format!("/api/sessions?room={}", codes[0]),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            b"",
        )
        .status
            == 200
    });
    let errors = |token: &str| -> Vec<Value> {
        (0..3).map(|n| event(token, "error", json!({"errorType": "boom", "n": n}))).collect()
    };
    for (server, token, room) in [(&b, "ws_a", &codes[0]), (&a, "ws_b", &codes[1])] {
        let (status, answer) = server.post(&json!({"writeKey": key, "room": room, "events": errors(token)}));
        assert_eq!(status, 200, "{answer}");
    }
    let bursts = |server: &TestServer| -> Vec<(String, String)> {
        let alerts = server.read("/api/alerts?status=all")["alerts"].as_array().unwrap().clone();
        let mut found: Vec<(String, String)> = alerts
            .iter()
            .filter(|x| x["rule"] == "error_burst")
            .map(|x| (x["sessionTokens"][0].as_str().unwrap().to_owned(), x["room"].as_str().unwrap_or("").to_owned()))
            .collect();
        found.sort();
        found
    };
    wait_until("one error_burst per room", Duration::from_secs(10), || bursts(&a).len() == 2);
    let expected = vec![("ws_a".to_owned(), codes[0].clone()), ("ws_b".to_owned(), codes[1].clone())];
    assert_eq!(bursts(&a), expected, "each burst in its own room");
    assert_eq!(bursts(&b), expected, "read the same from the other server");
}

// A schema change under a live server (another server's migration during a rolling upgrade)
// changes what its prepared statements return; PostgreSQL then refuses them ("cached plan must
// not change result type"), and the server prepares them again: reads, writes and the report
// go on without a failed request.
#[test]
fn a_schema_change_under_a_live_server_is_survived() {
    let db = Arc::new(TestDb::new(Backend::Postgres));
    let server = TestServer::on_db(db.clone(), |c| c.rate_limit_session_per_sec = 0);
    server.post_all(vec![event("ws_migrated", "action", json!({"n": 1}))]);
    // Every statement of a read, a write and the summaries is now in the connections' caches.
    assert_eq!(server.read("/api/session-log?sessionToken=ws_migrated")["count"], 1);
    assert_eq!(server.read("/api/sessions")["sessions"].as_array().unwrap().len(), 1);
    let mut migration = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    migration.batch_execute("ALTER TABLE events ALTER COLUMN event_type TYPE text").unwrap();
    for round in 0..3 {
        let events = server.read("/api/session-log?sessionToken=ws_migrated");
        assert_eq!(events["count"], 1 + round, "reads go on after the migration");
        server.post_all(vec![event("ws_migrated", "action", json!({"n": 2 + round}))]);
    }
    assert_eq!(server.read("/api/session-log?sessionToken=ws_migrated")["count"], 4);
    assert_eq!(server.read("/api/sessions")["sessions"][0]["events"], 4);
}
