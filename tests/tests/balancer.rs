//! Two servers on one PostgreSQL database behind Debian's nginx (round robin, on loopback): the
//! demo workshop keeps logging when one server is killed, and the per-address rate limit sees
//! each client's address through the trusted nginx, never through a forged header.

use std::process::Command;

use serde_json::Value;
use session_log_e2e::nginx::Nginx;
use session_log_e2e::pg::FreshDatabase;
use session_log_e2e::{demo_first_steps, demo_last_steps, Browser, Server, DEMO_EVENT_TYPES, INSTRUCTOR_TOKEN};

/// nginx connects to the servers from this loopback address, the only one they trust.
const NGINX_SOURCE: &str = "127.0.0.2";

/// Two servers on `db`, trusting only nginx's address, with `extra` arguments.
fn two_servers(db: &FreshDatabase, dir: &std::path::Path, extra: &[&str]) -> (Server, Server) {
    let trusted = format!("{NGINX_SOURCE}/32");
    let mut args = vec!["--instructor-token", INSTRUCTOR_TOKEN, "--database-url", &db.url, "--trusted-proxy", &trusted];
    args.extend_from_slice(extra);
    (Server::start_with(&dir.join("a.db"), &args), Server::start_with(&dir.join("b.db"), &args))
}

// The demo workshop in headless Chromium logs through nginx; one server is killed with SIGKILL
// half-way; the page goes on, its requests land on the other server, and every event it logged
// is stored exactly once, in order.
#[test]
fn the_demo_through_nginx_survives_losing_a_server() {
    // The database is made and dropped outside the async part (its client blocks).
    let db = FreshDatabase::new();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(demo_through_nginx(&db));
}

async fn demo_through_nginx(db: &FreshDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_servers(db, dir.path(), &[]);
    let nginx = Nginx::start(&[&a.url, &b.url], NGINX_SOURCE);
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/?email=ada@example.com&name=Ada", nginx.url)).await.expect("open the demo");
    let token = browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    demo_first_steps(&browser).await;
    let early = b.wait_for_events(&token, 1, 20).await;
    assert!(early["count"].as_u64() >= Some(1), "the first events arrived before the kill");
    a.kill();
    demo_last_steps(&browser).await;
    browser.close().await;

    let answer = b.events(&format!("sessionToken={token}&limit=1000"));
    let mut events: Vec<Value> = answer["events"].as_array().expect("events").clone();
    events.reverse();
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, DEMO_EVENT_TYPES, "every event once, in order ({})", nginx.error_log());
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..13).collect::<Vec<u64>>());
    assert_eq!(answer["missing_events"], 0);
}

/// POSTs one event with curl from the loopback address `from` to `url`, with an
/// `X-Forwarded-For` header when given; returns the status.
fn post_from(from: &str, url: &str, n: u32, forwarded_for: Option<&str>) -> u16 {
    let body = format!(r#"{{"sessionToken": "ws_rate_{n}", "eventType": "action", "eventData": {{}}}}"#);
    let mut curl = Command::new("curl");
    curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", from]).args([
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
    ]);
    if let Some(header) = forwarded_for {
        curl.args(["-H", &format!("X-Forwarded-For: {header}")]);
    }
    let output = curl.arg(format!("{url}/api/session-log")).output().expect("run curl");
    String::from_utf8_lossy(&output.stdout).parse().unwrap_or_else(|_| panic!("curl: {output:?}"))
}

// With a limit of one POST per address per second on each server: behind nginx each client
// address gets its own budget on each server (read from X-Forwarded-For, which only nginx's
// address is trusted to send), a forged hop left of nginx's changes nothing, and a forged header
// sent straight to a server by an untrusted peer is ignored.
#[test]
fn the_rate_limit_sees_client_addresses_through_the_trusted_nginx() {
    let db = FreshDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_servers(&db, dir.path(), &["--rate-limit-ip", "1", "--rate-limit-ip-burst", "1"]);
    let nginx = Nginx::start(&[&a.url, &b.url], NGINX_SOURCE);
    let lb = nginx.url.as_str();
    // Round robin: requests alternate between the servers, one budget per address on each.
    let first: Vec<u16> = (0..4).map(|n| post_from("127.0.0.1", lb, n, None)).collect();
    let other: Vec<u16> = (4..6).map(|n| post_from("127.0.0.3", lb, n, None)).collect();
    let forged = [post_from("127.0.0.3", lb, 6, Some("127.0.0.9")), post_from("127.0.0.3", lb, 7, Some("127.0.0.8"))];
    let direct = post_from("127.0.0.1", &a.url, 8, Some("127.0.0.10"));
    assert_eq!(first, [200, 200, 429, 429], "one address: one POST per server, then limited");
    assert_eq!(other, [200, 200], "another address behind the same nginx has its own budget");
    assert_eq!(forged, [429, 429], "a forged hop before nginx's does not buy a new budget");
    assert_eq!(direct, 429, "an untrusted peer's X-Forwarded-For is ignored: 127.0.0.1 is limited at A");
    assert_eq!(db.count("SELECT count(*) FROM events"), 4);
}
