//! Delivery end to end: the wasm client in headless Chromium against the real server (and a
//! fault-injecting proxy in front of it). No logged event may be lost or stored twice.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{json, Value};
use session_log_e2e::proxy::{Fault, FaultProxy};
use session_log_e2e::{site, test_site, Browser, Server, INSTRUCTOR_TOKEN};

/// Opens the delivery test page and returns its session token.
async fn open_page(browser: &Browser, url: &str) -> String {
    browser.client.goto(url).await.expect("open the test page");
    browser.wait_until("return window.ready === true").await;
    browser.run("return window.sessionLog.getSessionToken()", vec![]).await.as_str().expect("token").to_owned()
}

/// The events' seq values, in the order the server stored them.
fn seqs_in_storage_order(answer: &Value) -> Vec<u64> {
    let mut events = answer["events"].as_array().expect("events").clone();
    events.sort_by_key(|e| e["event_id"].as_i64());
    events.iter().map(|e| e["seq"].as_u64().expect("seq")).collect()
}

fn server_args<'a>(www: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--instructor-token", INSTRUCTOR_TOKEN, "--www", www];
    args.extend_from_slice(extra);
    args
}

// Server down: the page logs 200 events, reloads, logs 50 more; then the server starts, and all
// 250 arrive exactly once, in sequence order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_logged_while_the_server_is_down_survive_a_reload() {
    let site = test_site();
    let www = site.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page_server = Server::start_with(&dir.path().join("pages.db"), &server_args(www, &[]));
    let ingest_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{ingest_port}/api/session-log");
    let page = format!("{}/delivery.html?endpoint={endpoint}", page_server.url);

    let browser = Browser::start().await;
    let token = open_page(&browser, &page).await;
    browser.run("window.logMany(0, 200)", vec![]).await;
    browser.wait_until("return window.sessionLog.stats().retries >= 1").await;
    let again = open_page(&browser, &page).await;
    assert_eq!(again, token, "a reload continues the session");
    browser.run("window.logMany(200, 50)", vec![]).await;

    let bind = format!("127.0.0.1:{ingest_port}");
    let ingest = Server::start_with(&dir.path().join("events.db"), &server_args(www, &["--bind", &bind]));
    let answer = ingest.wait_for_events(&token, 250, 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // anything extra would show up now
    let answer =
        if answer["count"] == 250 { ingest.events(&format!("sessionToken={token}&limit=1000")) } else { answer };
    browser.close().await;
    assert_eq!(answer["count"], 250, "every event exactly once");
    assert_eq!(seqs_in_storage_order(&answer), (0..250).collect::<Vec<u64>>(), "in sequence order");
    assert_eq!(answer["missing_events"], 0);
}

// The server answers 503 with Retry-After: 2 for a while: every event arrives once it recovers,
// and no retry comes sooner than Retry-After asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_nothing_is_lost() {
    let site = test_site();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &server_args(site.path().to_str().unwrap(), &[]));
    let proxy =
        FaultProxy::start(&server.url, Fault::Unavailable { retry_after_secs: 2, for_: Duration::from_secs(5) }).await;
    let browser = Browser::start().await;
    let token = open_page(&browser, &format!("{}/delivery.html?interval=100", proxy.url)).await;
    browser.run("window.logMany(0, 30)", vec![]).await;
    let answer = server.wait_for_events(&token, 30, 30).await;
    browser.close().await;
    assert_eq!(answer["count"], 30);
    let seen = proxy.seen();
    let refusals: Vec<_> = seen.iter().filter(|p| p.status == 503).collect();
    assert!(!refusals.is_empty(), "the outage was seen: {seen:?}");
    for pair in seen.windows(2) {
        if pair[0].status == 503 {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= Duration::from_secs(2), "a retry came {gap:?} after a 503 with Retry-After: 2: {seen:?}");
        }
    }
}

// The page logs 20 events with a 30 s flush interval and navigates to about:blank at once, with
// the other core busy: page-exit beacons deliver all 20 before the next page opens, 20 runs over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_logged_just_before_leaving_the_page_arrive() {
    let site = test_site();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &server_args(site.path().to_str().unwrap(), &[]));
    let _busy = BusyCore::start();
    let browser = Browser::start().await;
    for run in 1..=20u64 {
        // Only the page-exit path can deliver these in time; the session goes on across runs, so
        // each run must bring its 20 before the page is opened again (no next page adopts them).
        let token = open_page(&browser, &format!("{}/delivery.html?interval=30000", server.url)).await;
        browser.run(&format!("window.logMany({}, 20)", (run - 1) * 20), vec![]).await;
        browser.client.goto("about:blank").await.expect("leave the page");
        let answer = server.wait_for_events(&token, run * 20, 10).await;
        assert_eq!(answer["count"], run * 20, "run {run}: the 20 events of the page left arrive within 10 s");
    }
    browser.close().await;
}

// As a user's navigation check runs it: a fresh browser (profile, connections, preflight cache)
// each time, the module loaded, the endpoint on another origin, a 30 s flush interval, 20 events
// and at once about:blank, with the other core busy: the page-exit beacons deliver all 20, 50
// runs over (the browser is closed once they are in, or after 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_exit_delivers_cross_origin_from_fresh_browsers() {
    let site = test_site();
    let www = site.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pages = Server::start_with(&dir.path().join("pages.db"), &server_args(www, &[]));
    let ingest = Server::start_with(&dir.path().join("ingest.db"), &server_args(www, &[]));
    let endpoint = format!("{}/api/session-log", ingest.url.replace("127.0.0.1", "localhost"));
    let _busy = BusyCore::start();
    let mut lost = Vec::new();
    for run in 1..=50u64 {
        let browser = Browser::start().await;
        let token =
            open_page(&browser, &format!("{}/delivery.html?interval=30000&endpoint={endpoint}", pages.url)).await;
        browser.run("window.logMany(0, 20)", vec![]).await;
        browser.client.goto("about:blank").await.expect("leave the page");
        let answer = ingest.wait_for_events(&token, 20, 10).await;
        browser.close().await;
        if answer["count"] != 20 {
            lost.push((run, answer["count"].clone()));
        }
    }
    assert!(lost.is_empty(), "runs that did not deliver all 20 (run, delivered): {lost:?}");
}

// A page whose module has not loaded (its .wasm never answers) logs 20 events and is left at
// once for another origin (about:blank), with the other core busy: the calls it kept leave as a
// beacon and arrive as the events the module would have made (step names included), 20 runs
// over in fresh browsers; the tab keeps no hand-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_a_page_left_for_another_origin_before_its_module_loaded_arrive() {
    // Accepts connections (the kernel's backlog) and never answers: the module stays loading.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wasm = format!("http://127.0.0.1:{}/never.wasm", hang.local_addr().unwrap().port());
    let page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>early</title><script type="module">
import * as sl from "/pkg/session_log.js";
sl.init("{wasm}");
sl.configure({{ flushIntervalMs: 30000, steps: ["Connect Accounts", "Choose Use Case"], studentEmail: "early@example.com" }});
window.token = sl.getSessionToken();
sl.logNavigation(0, 1);
for (let i = 0; i < 19; i++) sl.logAction("early_" + i, {{ i }});
window.ready = true;
</script>"#
    );
    let www = site(&[("early.html", &page)]);
    let server = Server::serving(www.path(), &[]);
    let _busy = BusyCore::start();
    let mut lost = Vec::new();
    for run in 1..=20u64 {
        let browser = Browser::start().await;
        browser.client.goto(&format!("{}/early.html", server.url)).await.expect("open the page");
        browser.wait_until("return window.ready === true").await;
        let token = browser.run("return window.token", vec![]).await.as_str().unwrap().to_owned();
        browser.client.goto("about:blank").await.expect("leave the page");
        let answer = server.wait_for_events(&token, 20, 10).await;
        browser.close().await;
        if answer["count"] != 20 {
            lost.push((run, answer["count"].clone()));
            continue;
        }
        let events = answer["events"].as_array().unwrap();
        let navigation = events.iter().find(|e| e["event_type"] == "navigation").unwrap();
        assert_eq!(navigation["event_data"]["toStepName"], "Choose Use Case", "{navigation}");
        assert_eq!(navigation["student_email"], "early@example.com", "{navigation}");
        let action = events.iter().find(|e| e["event_data"]["actionName"] == "early_7").unwrap();
        assert_eq!(action["event_data"]["i"], 7, "the details travel: {action}");
        assert_eq!(action["event_data"]["currentStep"], 1, "{action}");
    }
    drop(hang);
    assert!(lost.is_empty(), "runs that did not deliver all 20 (run, delivered): {lost:?}");
}

// A page that filters its events (a beforeSend, which only its module can run) logs 20 events
// from its first line and is left at once, before its WebAssembly module has loaded: the calls
// it kept are handed over in the tab's sessionStorage, and the next page of the origin delivers
// them all once its module is ready (five times over, fresh tabs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_a_page_left_before_its_module_loaded_arrive() {
    let first = r#"<!doctype html><meta charset="utf-8"><script type="module">
import * as sl from "/pkg/session_log.js";
sl.configure({ flushIntervalMs: 30000, steps: ["Connect Accounts", "Choose Use Case"], beforeSend: (e) => e });
localStorage.setItem("left-token", sl.getSessionToken());
sl.logNavigation(0, 1);
for (let i = 0; i < 19; i++) sl.logAction("early_" + i);
setTimeout(() => { location.href = "/next.html"; }, 0);
</script>"#;
    let next = r#"<!doctype html><meta charset="utf-8"><title>next</title><script type="module">
window.warnings = [];
const warn = console.warn;
console.warn = (...args) => { window.warnings.push(args.join(" ")); warn.apply(console, args); };
import * as sl from "/pkg/session_log.js";
await sl.init();
await sl.flush();
window.result = { handoff: sessionStorage.getItem("session-log:handoff"), warnings: window.warnings };
window.done = true;
</script>"#;
    let www = site(&[("first.html", first), ("next.html", next)]);
    let server = Server::serving(www.path(), &[]);
    for _ in 0..5 {
        let browser = Browser::start().await;
        browser.client.goto(&format!("{}/first.html", server.url)).await.expect("open the first page");
        browser.wait_until("return document.title === 'next' && window.done === true").await;
        let token = browser.run("return localStorage.getItem('left-token')", vec![]).await.as_str().unwrap().to_owned();
        let result = browser.run("return window.result", vec![]).await;
        browser.close().await;
        assert_eq!(result["handoff"], Value::Null, "the hand-over is removed once replayed");
        assert_eq!(result["warnings"], serde_json::json!([]), "no warning");
        let answer = server.wait_for_events(&token, 20, 15).await;
        assert_eq!(answer["count"], 20, "every call of the page that was left: {answer}");
        let navigation = answer["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "navigation").cloned();
        assert_eq!(navigation.unwrap()["event_data"]["toStepName"], "Choose Use Case", "with the first page's context");
    }
}

/// Spins one thread until dropped (at most 6 minutes): the other core busy, as on a shared machine.
struct BusyCore(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl BusyCore {
    fn start() -> BusyCore {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut x: u64 = 1;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < Duration::from_secs(360) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
        });
        BusyCore(stop)
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

// With the default options and the other core busy: the server is down for 10 s (long enough
// for the backoff to reach its 8 s cap) while a page logs 100 events, reloads and logs 50 more;
// once the server is back, all 150 arrive within 10 s, in each of 10 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_drains_promptly_after_an_outage() {
    let page = r#"<!doctype html><meta charset="utf-8"><script type="module">
import * as sl from "/pkg/session_log.js";
sl.configure({ endpoint: new URLSearchParams(location.search).get("endpoint") });
window.sl = sl;
window.logMany = (from, n) => { for (let i = from; i < from + n; i++) sl.logAction("outage_" + i, { i }); };
window.ready = true;
</script>"#;
    let www = site(&[("outage.html", page)]);
    let dir = tempfile::tempdir().unwrap();
    let pages = Server::start_with(&dir.path().join("pages.db"), &server_args(www.path().to_str().unwrap(), &[]));
    let _busy = BusyCore::start();
    for run in 0..10 {
        let ingest_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("{}/outage.html?endpoint=http://127.0.0.1:{ingest_port}/api/session-log", pages.url);
        let browser = Browser::start().await;
        browser.client.goto(&url).await.expect("open the page");
        browser.wait_until("return window.ready === true").await;
        let token = browser.run("return window.sl.getSessionToken()", vec![]).await.as_str().unwrap().to_owned();
        browser.run("window.logMany(0, 100)", vec![]).await;
        browser.wait_until("return window.sl.stats().retries >= 1").await;
        tokio::time::sleep(Duration::from_secs(6)).await; // the outage goes on: backoff grows
        browser.client.goto(&url).await.expect("reload");
        browser.wait_until("return window.ready === true").await;
        browser.run("window.logMany(100, 50)", vec![]).await;
        tokio::time::sleep(Duration::from_secs(4)).await; // and on, after the reload
        let bind = format!("127.0.0.1:{ingest_port}");
        let ingest =
            Server::start_with(&dir.path().join(format!("events-{run}.db")), &server_args("none", &["--bind", &bind]));
        let answer = ingest.wait_for_events(&token, 150, 10).await;
        browser.close().await;
        assert_eq!(answer["count"], 150, "run {run}: every event within 10 s of the server's return");
    }
}

// The server commits batches whose responses are lost: the client retries, and nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_do_not_duplicate_events() {
    let site = test_site();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &server_args(site.path().to_str().unwrap(), &[]));
    let proxy = FaultProxy::start(&server.url, Fault::LoseResponses { count: 3 }).await;
    let browser = Browser::start().await;
    let token = open_page(&browser, &format!("{}/delivery.html?interval=100&batch=10", proxy.url)).await;
    browser.run("window.logMany(0, 40)", vec![]).await;
    browser.run("return window.sessionLog.flush()", vec![]).await;
    let answer = server.events(&format!("sessionToken={token}&limit=1000"));
    browser.close().await;
    assert!(proxy.seen().iter().filter(|p| p.status == 0).count() == 3, "{:?}", proxy.seen());
    assert!(server.metric("session_log_events_duplicate_total") >= 1.0, "the retried batches reached the server again");
    assert_eq!(answer["count"], 40, "each event once");
    let mut seqs = seqs_in_storage_order(&answer);
    seqs.sort_unstable();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());
}

// A batch with one invalid event: the valid ones are stored, and the invalid one is reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_is_refused_alone_and_reported_once() {
    let site = test_site();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &server_args(site.path().to_str().unwrap(), &[]));
    let browser = Browser::start().await;
    let token = open_page(&browser, &format!("{}/delivery.html?interval=60000", server.url)).await;
    let script = r#"
        const log = window.sessionLog;
        log.logAction("before", {});
        log.logAction("too_big", { pad: "x".repeat(40000) });
        log.logAction("after", {});
        return log.flush();"#;
    browser.run(script, vec![]).await;
    let warnings = browser.run("return window.warnings", vec![]).await;
    let stats = browser.run("return window.sessionLog.stats()", vec![]).await;
    browser.close().await;
    let answer = server.events(&format!("sessionToken={token}"));
    let names: Vec<&str> =
        answer["events"].as_array().unwrap().iter().map(|e| e["event_data"]["actionName"].as_str().unwrap()).collect();
    assert_eq!(names, ["after", "before"]);
    let reports: Vec<&Value> =
        warnings.as_array().unwrap().iter().filter(|w| w.as_str().unwrap().contains("refused")).collect();
    assert_eq!(reports.len(), 1, "{warnings}");
    assert!(reports[0].as_str().unwrap().contains("eventData"), "{}", reports[0]);
    assert_eq!(stats["dropped"], json!(1));
    assert_eq!(stats["queued"], json!(0));
}

// A tab that closed with undelivered events: the next page of the same origin (another tab)
// adopts and sends them, exactly once, while open tabs never send each other's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_tabs_events_are_sent_by_the_next_page() {
    let site = test_site();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &server_args(site.path().to_str().unwrap(), &[]));
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let browser = Browser::start().await;
    // Tab A cannot reach its endpoint, logs, and goes away.
    let token = open_page(
        &browser,
        &format!("{}/delivery.html?endpoint=http://127.0.0.1:{closed_port}/api/session-log", server.url),
    )
    .await;
    browser.run("window.logMany(0, 30)", vec![]).await;
    browser.wait_until("return window.sessionLog.stats().retries >= 1").await;
    browser.client.goto("about:blank").await.unwrap();
    // Tab B: a new tab (its own sessionStorage, so its own queue) of the same origin.
    let tab_b = browser.client.new_window(true).await.unwrap();
    browser.client.switch_to_window(tab_b.handle).await.unwrap();
    let token_b = open_page(&browser, &format!("{}/delivery.html?interval=100", server.url)).await;
    assert_eq!(token_b, token, "same origin, same session");
    browser.run("window.logMany(30, 5)", vec![]).await;
    let answer = server.wait_for_events(&token, 35, 20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    browser.close().await;
    assert_eq!(answer["count"], 35, "{answer}");
    assert_eq!(server.metric("session_log_events_duplicate_total"), 0.0, "no event was sent by two tabs");
    let mut seqs = seqs_in_storage_order(&answer);
    seqs.sort_unstable();
    assert_eq!(seqs, (0..35).collect::<Vec<u64>>());
}
