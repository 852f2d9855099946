//! `cargo xtask soak`: the server's memory under load, against the release server on loopback.
//!
//! Two measurements, each printed as it goes:
//! - `--mode keys`: hostile input that varies every key. After a warm-up of ordinary events and
//!   a control of 100 MB (`--megabytes`) of the same bytes with a few keys (so the caches that
//!   grow with the data, SQLite's page cache first, are full), 100 MB of events in 1 MiB POSTs,
//!   each with a distinct error type (2 KB), endpoint (2 KB), event type, session token and help
//!   request; the server's RSS before and after each (and 5 s later) against the target: less
//!   than 20 MB of growth from the distinct keys.
//! - `--mode steady` (default): `--rate` events/s (default 2,000) over `--sessions` sessions
//!   (default 3,000): actions, navigation, errors, API calls and 0.1% help requests, in batches
//!   of 10 from 4 clients, for `--minutes` (default 30). Every minute: RSS, the minute's p50/p99
//!   latency and events sent. The target: after a 2-minute warm-up RSS grows by less than 15 MB
//!   and p99 stays where it started.
//!
//! `--database-url postgres://…/db` (a maintenance database) runs it on a fresh PostgreSQL
//! database instead of a SQLite file. Bounded by time and by its request budget; loopback only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_log_e2e::{Server, UNLIMITED};

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

/// The resident set size of process `pid` (MB), from `/proc/<pid>/status`.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// POSTs a batch; the status (0 when no answer).
fn post(agent: &ureq::Agent, url: &str, events: &[Value]) -> u16 {
    agent
        .post(&format!("{url}/api/session-log"))
        .header("Content-Type", "application/json")
        .send(json!({ "events": events }).to_string().as_bytes())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

const STEPS: [&str; 5] = ["Connect Accounts", "Choose Use Case", "Provision Services", "Deploy", "Test"];

/// An ordinary event of `session`: navigation, action, error, API call, or (1 in 1,000) a help
/// request.
fn ordinary(rng: &mut fastrand::Rng, session: &str) -> Value {
    let step = rng.usize(..STEPS.len());
    let (event_type, data) = match rng.u32(..1000) {
        0 => ("help_request", json!({"message": "my phone number purchase fails"})),
        1..=250 => ("navigation", json!({"from": step, "to": (step + 1) % 5, "toStepName": STEPS[(step + 1) % 5]})),
        251..=600 => ("action", json!({"actionName": "phone_number_selected", "provider": "twilio"})),
        601..=750 => ("error", json!({"errorType": "twilio_function_deploy_failed", "errorMessage": "Not authorized"})),
        _ => (
            "api_call",
            json!({"endpoint": "/api/deploy-function", "method": "POST", "status": 200, "duration": rng.u32(50..900)}),
        ),
    };
    let mut data = data;
    data["currentStep"] = json!(step);
    data["stepName"] = json!(STEPS[step]);
    data["userAgent"] = json!("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0.0.0 Safari/537.36");
    json!({"sessionToken": session, "studentEmail": format!("{session}@example.com"), "eventType": event_type, "eventData": data})
}

fn start_server(dir: &std::path::Path) -> (Server, Option<session_log_e2e::pg::FreshDatabase>) {
    match arg::<String>("--database-url") {
        Some(admin) => {
            let database = session_log_e2e::pg::FreshDatabase::on(&admin);
            let args = [&UNLIMITED[..], &["--database-url", database.url.as_str()]].concat();
            (Server::start_with(&dir.join("unused.db"), &args), Some(database))
        }
        None => (Server::start_with(&dir.join("soak.db"), &UNLIMITED), None),
    }
}

fn main() -> anyhow::Result<()> {
    let mode: String = arg("--mode").unwrap_or_else(|| "steady".to_owned());
    let dir = tempfile::tempdir()?;
    let (server, _database) = start_server(dir.path());
    let backend = if arg::<String>("--database-url").is_some() { "PostgreSQL" } else { "SQLite" };
    println!("session-log soak ({mode}) on {backend}, server pid {}", server.pid());
    match mode.as_str() {
        "keys" => distinct_keys(&server),
        _ => steady(&server),
    }
    Ok(())
}

/// `--mode keys` (see the module docs).
fn distinct_keys(server: &Server) {
    let megabytes: usize = arg("--megabytes").unwrap_or(100);
    let agent = agent();
    let mut rng = fastrand::Rng::with_seed(7);
    // Warm-up: 20,000 ordinary events over 1,000 sessions, so caches and pools are in use.
    for batch in 0..100 {
        let events: Vec<Value> =
            (0..200).map(|i| ordinary(&mut rng, &format!("ws_warm{:04}", (batch * 200 + i) % 1000))).collect();
        assert_eq!(post(&agent, &server.url, &events), 200);
    }
    std::thread::sleep(Duration::from_secs(3));
    let warm = rss_mb(server.pid());
    println!("RSS after the warm-up: {warm:.1} MB");
    let long = "k".repeat(2_000);
    send(server, megabytes, |n| {
        // The control: as many bytes, over 1,000 sessions and a handful of keys.
        let session = format!("ws_control{:04}", n % 1000);
        let padding = &long[..1_800];
        [
            json!({"sessionToken": session, "eventType": "error", "eventData": {"errorType": "deploy_failed", "detail": padding}}),
            json!({"sessionToken": session, "eventType": "api_call", "eventData": {"endpoint": "/api/deploy", "status": 500, "detail": padding}}),
            json!({"sessionToken": session, "eventType": "action", "eventData": {"actionName": "clicked"}}),
            json!({"sessionToken": session, "eventType": "navigation", "eventData": {"from": 1, "to": 2}}),
        ]
    });
    std::thread::sleep(Duration::from_secs(5));
    let before = rss_mb(server.pid());
    println!("RSS after {megabytes} MB of ordinary events (the control): {before:.1} MB ({:+.1} MB)", before - warm);
    let n = send(server, megabytes, |n| {
        let session = format!("ws_hostile{n:08}");
        [
            json!({"sessionToken": session, "eventType": "error", "eventData": {"errorType": format!("{n}{long}")}}),
            json!({"sessionToken": session, "eventType": "api_call", "eventData": {"endpoint": format!("/{n}/{long}"), "status": 500}}),
            json!({"sessionToken": session, "eventType": format!("custom_{n}"), "eventData": {}}),
            json!({"sessionToken": session, "eventType": "help_request", "eventData": {"message": format!("{n} help")}}),
        ]
    });
    let after = rss_mb(server.pid());
    std::thread::sleep(Duration::from_secs(5));
    let settled = rss_mb(server.pid());
    println!("sent {megabytes} MB of distinct keys ({n} sessions, error types, endpoints and event types each)");
    println!(
        "RSS {before:.1} MB -> {after:.1} MB (5 s later {settled:.1} MB): growth {:.1} MB from the distinct keys (target: less than 20 MB)",
        settled - before
    );
}

/// Sends `megabytes` MB in 1 MiB-ish POSTs of 100 × `four(n)` events (n counting up); returns
/// the last n.
fn send(server: &Server, megabytes: usize, mut four: impl FnMut(usize) -> [Value; 4]) -> usize {
    let agent = agent();
    let (mut sent, mut n) = (0usize, 0usize);
    while sent < megabytes * 1024 * 1024 {
        let events: Vec<Value> = (0..100)
            .flat_map(|_| {
                n += 1;
                four(n)
            })
            .collect();
        let body = json!({ "events": events }).to_string();
        sent += body.len();
        let status = agent
            .post(&format!("{}/api/session-log", server.url))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 200, "a batch was refused");
    }
    n
}

/// `--mode steady` (see the module docs).
fn steady(server: &Server) {
    let minutes: u64 = arg("--minutes").unwrap_or(30);
    let rate: u64 = arg("--rate").unwrap_or(2000);
    let sessions: usize = arg("--sessions").unwrap_or(3000);
    const CLIENTS: u64 = 4;
    const BATCH: u64 = 10;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let period = Duration::from_secs_f64((CLIENTS * BATCH) as f64 / rate as f64);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (url, stop, sent, failures, latencies) =
                (server.url.clone(), stop.clone(), sent.clone(), failures.clone(), latencies.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut rng = fastrand::Rng::with_seed(client);
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let events: Vec<Value> = (0..BATCH)
                        .map(|_| {
                            let session = format!("ws_soak{:05}", rng.usize(..sessions));
                            ordinary(&mut rng, &session)
                        })
                        .collect();
                    let t = Instant::now();
                    if post(&agent, &url, &events) == 200 {
                        latencies.lock().unwrap().push(t.elapsed().as_micros() as u64);
                        sent.fetch_add(BATCH, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    next += period;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    } else {
                        next = Instant::now();
                    }
                }
            })
        })
        .collect();
    println!("minute | RSS MB | p50 ms | p99 ms | events/s | failed requests");
    let started = Instant::now();
    let mut rows = Vec::new();
    for minute in 1..=minutes {
        let due = started + Duration::from_secs(60 * minute);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut minute_latencies = std::mem::take(&mut *latencies.lock().unwrap());
        minute_latencies.sort_unstable();
        let pct = |p: f64| {
            minute_latencies.get(((minute_latencies.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0) as f64
                / 1000.0
        };
        let rss = rss_mb(server.pid());
        let rate_now = sent.swap(0, Ordering::Relaxed) as f64 / 60.0;
        println!(
            "{minute:>6} | {rss:>6.1} | {:>6.1} | {:>6.1} | {rate_now:>8.0} | {}",
            pct(0.5),
            pct(0.99),
            failures.swap(0, Ordering::Relaxed)
        );
        rows.push((rss, pct(0.99)));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    if rows.len() > 2 {
        let (warm_rss, warm_p99) = rows[1];
        let (last_rss, last_p99) = rows[rows.len() - 1];
        println!(
            "after the 2-minute warm-up: RSS {warm_rss:.1} -> {last_rss:.1} MB (growth {:.1} MB, target less than 15 MB); p99 {warm_p99:.1} -> {last_p99:.1} ms",
            last_rss - warm_rss
        );
    }
}
