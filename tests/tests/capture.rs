//! Auto-capture in headless Chromium against the real server: uncaught errors and rejections
//! (collapsed and capped), the page's fetch and XMLHttpRequest calls (unchanged for the page,
//! the client's own requests never captured), and route changes.

use serde_json::Value;
use session_log_e2e::{site, Browser, Server, RECORDER_JS};

fn page(body: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><script type="module">
{RECORDER_JS}
import * as sl from "/pkg/session_log.js";
await sl.init();
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
{body}
window.done = true;
</script>"#
    )
}

/// Opens the page, waits for it, and returns its result and its session's events, oldest first.
async fn run(body: &str, wait_for: u64) -> (Value, Vec<Value>) {
    let www = site(&[("index.html", &page(body))]);
    let server = Server::serving(www.path(), &[]);
    let browser = Browser::start().await;
    let result = browser.result_of(&format!("{}/index.html", server.url)).await;
    browser.close().await;
    let token = result["token"].as_str().expect("the page returns its token").to_owned();
    server.wait_for_events(&token, wait_for, 10).await;
    let events = server.events(&format!("sessionToken={token}&order=asc&limit=1000"));
    (result, events["events"].as_array().unwrap().clone())
}

fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == event_type).collect()
}

// An error thrown 30 times becomes one event with count 30, with its message, stack, source,
// line and column; an unhandled rejection is captured too; distinct errors are capped at 10
// at once; logError with an Error sends its stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncaught_errors_are_captured_collapsed_and_capped() {
    let body = r#"
sl.configure({ capture: { errors: true }, flushIntervalMs: 100 });
function loop() { throw new Error("timer handler failed"); }
for (let i = 0; i < 30; i++) setTimeout(loop, 0);
Promise.reject(new Error("deploy promise rejected"));
await pause(50);
for (let i = 0; i < 15; i++) setTimeout(() => { throw new Error("distinct " + i); }, 0);
await pause(50);
sl.logError("manual", new Error("with a stack"));
await pause(2500);
await sl.flush();
window.result = { token: sl.getSessionToken() };"#;
    let (_, events) = run(body, 12).await;
    let errors = of_type(&events, "error");
    let uncaught: Vec<&&Value> = errors.iter().filter(|e| e["event_data"]["errorType"] == "uncaught_error").collect();
    let looped = uncaught
        .iter()
        .find(|e| e["event_data"]["errorMessage"] == "Uncaught Error: timer handler failed")
        .expect("the loop's error");
    let data = &looped["event_data"];
    assert_eq!(data["count"], 30);
    assert!(data["stack"].as_str().unwrap().contains("loop"), "{data}");
    assert!(data["source"].as_str().unwrap().ends_with("/index.html"), "{data}");
    assert!(data["line"].as_u64().unwrap() > 0 && data["column"].as_u64().unwrap() > 0, "{data}");
    let distinct =
        uncaught.iter().filter(|e| e["event_data"]["errorMessage"].as_str().unwrap().contains("distinct")).count();
    assert_eq!(distinct, 9, "10 uncaught errors at once: the loop's and 9 distinct ones");
    let rejection =
        errors.iter().find(|e| e["event_data"]["errorType"] == "unhandled_rejection").expect("the rejection");
    assert_eq!(rejection["event_data"]["errorMessage"], "deploy promise rejected");
    let manual = errors.iter().find(|e| e["event_data"]["errorType"] == "manual").unwrap();
    assert!(manual["event_data"]["stack"].as_str().unwrap().contains("with a stack"));
}

// An error thrown just before flush() is delivered by the time the flush resolves, not at the
// end of its 2 s collapse window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_delivers_a_just_captured_error() {
    let body = r#"
sl.configure({ capture: { errors: true }, flushIntervalMs: 30000 });
setTimeout(() => { throw new Error("thrown right before flush"); }, 0);
await pause(20);
await sl.flush();
window.result = { token: sl.getSessionToken() };"#;
    let www = site(&[("index.html", &page(body))]);
    let server = Server::serving(www.path(), &[]);
    let browser = Browser::start().await;
    let result = browser.result_of(&format!("{}/index.html", server.url)).await;
    // Read at once: the flush resolved after the server acknowledged the error.
    let events = server.events(&format!("sessionToken={}&eventType=error", result["token"].as_str().unwrap()));
    browser.close().await;
    assert_eq!(events["count"], 1, "{events}");
    assert_eq!(events["events"][0]["event_data"]["errorMessage"], "Uncaught Error: thrown right before flush");
}

// The page's fetch and XHR calls are logged with the path only (plus the host for another
// origin), status 0 for a failure; the page sees the same results and errors; the client's own
// requests are never logged, and a page wrapper installed later never sees them; turning
// capture off restores fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_and_xhr_are_captured_without_changing_them() {
    let body = r#"
const plain = await (await fetch("/healthz?probe=1")).json();
sl.configure({ capture: { fetch: true }, flushIntervalMs: 100 });
const wrapped = await (await fetch("/healthz?probe=1#top")).json();
const missing = (await fetch("/missing?secret=sk-x")).status;
let failure = null;
try { await fetch("http://127.0.0.1:9/down"); } catch (e) { failure = e.constructor.name + ": " + e.message; }
const xhrStatus = await new Promise((resolve) => {
  const xhr = new XMLHttpRequest();
  xhr.open("GET", "/healthz?via=xhr");
  xhr.onload = () => resolve(xhr.status);
  xhr.send();
});
// A page wrapper installed after the client: it must never see the client's own requests.
const seenByPage = [];
const pageFetch = window.fetch;
window.fetch = function (input, init) { seenByPage.push(String(input && input.url || input)); return pageFetch.apply(this, arguments); };
sl.logAction("after_wrappers");
await sl.flush();
window.fetch = pageFetch;
sl.configure({ capture: { fetch: false } });
const restored = window.fetch.toString().includes("[native code]");
await fetch("/healthz?after=off");
await sl.flush();
window.result = { plain, wrapped, missing, failure, xhrStatus, seenByPage, restored, token: sl.getSessionToken() };"#;
    let (result, events) = run(body, 5).await;
    assert_eq!(result["plain"], result["wrapped"], "same result with capture on: {result}");
    assert_eq!(result["missing"], 404);
    assert!(result["failure"].as_str().unwrap().starts_with("TypeError: "), "the same error: {result}");
    assert_eq!(result["xhrStatus"], 200);
    assert_eq!(result["seenByPage"], serde_json::json!([]), "the client's requests bypass page wrappers");
    assert_eq!(result["restored"], true);
    let calls = of_type(&events, "api_call");
    let summary: Vec<(String, String, i64)> = calls
        .iter()
        .map(|e| {
            let d = &e["event_data"];
            let place = format!("{}{}", d["host"].as_str().unwrap_or(""), d["endpoint"].as_str().unwrap());
            (place, d["method"].as_str().unwrap().to_owned(), d["status"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("/healthz".to_owned(), "GET".to_owned(), 200),
            ("/missing".to_owned(), "GET".to_owned(), 404),
            ("127.0.0.1:9/down".to_owned(), "GET".to_owned(), 0),
            ("/healthz".to_owned(), "GET".to_owned(), 200),
        ],
        "no query string, no own requests, nothing after capture was turned off"
    );
    assert!(calls.iter().all(|e| e["event_data"]["durationMs"].as_f64().unwrap() >= 0.0));
    assert_eq!(calls[1]["event_data"]["success"], false);
}

// pushState, replaceState, hashchange and popstate log page_view events with the path (no query)
// and the previous path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_are_page_views() {
    let body = r##"
sl.configure({ capture: { history: true }, flushIntervalMs: 100 });
history.pushState({}, "", "/workshop/step/2?student=ada");
history.replaceState({}, "", "/workshop/step/3");
location.hash = "#/deploy";
await pause(50);
history.back();
await pause(200);
await sl.flush();
window.result = { token: sl.getSessionToken() };"##;
    let (_, events) = run(body, 4).await;
    let views: Vec<(String, String)> = of_type(&events, "page_view")
        .iter()
        .map(|e| {
            let d = &e["event_data"];
            (d["path"].as_str().unwrap().to_owned(), d["previousPath"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    assert_eq!(
        views,
        [
            ("/workshop/step/2".to_owned(), "/index.html".to_owned()),
            ("/workshop/step/3".to_owned(), "/workshop/step/2".to_owned()),
            ("/workshop/step/3#/deploy".to_owned(), "/workshop/step/3".to_owned()),
            ("/workshop/step/3".to_owned(), "/workshop/step/3#/deploy".to_owned()),
        ]
    );
}
