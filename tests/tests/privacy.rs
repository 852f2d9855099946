//! Privacy in the page, in headless Chromium against the real server: redaction before an event
//! is queued, `beforeSend`, sampling, and opt-out across a reload.

use serde_json::{json, Value};
use session_log_client::pipeline::{sampled, session_token};
use session_log_e2e::{site, Browser, Server, RECORDER_JS};

/// A page that imports the client as `window.sl` and records warnings; `body` runs after.
fn page(body: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><script type="module">
{RECORDER_JS}
import * as sl from "/pkg/session_log.js";
window.sl = sl;
await sl.init();
{body}
</script>"#
    )
}

/// Every `localStorage` value, joined: what a page's storage holds.
const STORAGE_JS: &str = "Object.keys(localStorage).map((k) => localStorage.getItem(k)).join('\\n')";

// Secrets are redacted in the page, before the event is queued: they never reach localStorage,
// and arrive redacted at a server that redacts nothing itself; redact: false and redactKeys
// change what the client does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_before_they_are_queued() {
    let body = format!(
        r#"
sl.configure({{ endpoint: "http://127.0.0.1:9/api/session-log", flushIntervalMs: 600000 }});
sl.logAction("openai_connected", {{ apiKey: "sk-proj-abcdefghijklmnopqrstuvwx", nested: {{ password: "hunter2" }},
                                    note: "header Bearer abcdefgh12345678", provider: "openai" }});
await new Promise((r) => setTimeout(r, 50));
const stored = {STORAGE_JS};
sl.configure({{ endpoint: location.origin + "/api/session-log", flushIntervalMs: 100 }});
await sl.flush();
sl.configure({{ redact: false, redactKeys: ["phoneNumber"] }});
sl.logAction("unredacted", {{ apiKey: "sk-proj-abcdefghijklmnopqrstuvwx", phoneNumber: "+15555551234" }});
await sl.flush();
window.result = {{ stored, token: sl.getSessionToken() }};
window.done = true;"#
    );
    let www = site(&[("index.html", &page(&body))]);
    let server = Server::serving(www.path(), &["--no-redact"]);
    let browser = Browser::start().await;
    let result = browser.result_of(&format!("{}/index.html", server.url)).await;
    browser.close().await;
    let stored = result["stored"].as_str().unwrap();
    assert!(stored.contains("openai_connected"), "the event was stored: {stored}");
    for secret in ["sk-proj-abcdefghijklmnopqrstuvwx", "hunter2", "abcdefgh12345678"] {
        assert!(!stored.contains(secret), "{secret} reached localStorage: {stored}");
    }
    let token = result["token"].as_str().unwrap();
    let events = server.events(&format!("sessionToken={token}&order=asc"));
    let data = &events["events"][0]["event_data"];
    assert_eq!(data["apiKey"], "[redacted]");
    assert_eq!(data["nested"]["password"], "[redacted]");
    assert_eq!(data["note"], "header [redacted]");
    assert_eq!(data["provider"], "openai");
    let data = &events["events"][1]["event_data"];
    assert_eq!(data["apiKey"], "sk-proj-abcdefghijklmnopqrstuvwx", "redact: false turns the defaults off");
    assert_eq!(data["phoneNumber"], "[redacted]", "redactKeys still applies");
}

// beforeSend sees the redacted event and may edit it or drop it; a throwing filter drops the
// event, counts it and warns once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_send_edits_drops_and_fails_closed() {
    let body = r#"
const seen = [];
sl.configure({ flushIntervalMs: 100, beforeSend: (event) => {
  seen.push(event.eventData.secret);
  const name = event.eventData.actionName;
  if (name === "drop_me") return null;
  if (name === "boom") throw new Error("filter bug");
  if (name === "in_place") { event.eventData.inPlace = true; return; }
  return { eventType: event.eventType, eventData: { ...event.eventData, edited: true } };
} });
for (const name of ["keep", "drop_me", "boom", "boom", "in_place"]) sl.logAction(name, { secret: "sk-abcdefghijklmnopqrstuvwxyz" });
await sl.flush();
window.result = { seen, token: sl.getSessionToken(), stats: sl.stats(), warnings: window.warnings };
window.done = true;"#;
    let www = site(&[("index.html", &page(body))]);
    let server = Server::serving(www.path(), &[]);
    let browser = Browser::start().await;
    let result = browser.result_of(&format!("{}/index.html", server.url)).await;
    browser.close().await;
    assert!(result["seen"].as_array().unwrap().iter().all(|s| s == "[redacted]"), "after redaction: {result}");
    assert_eq!(result["stats"]["dropped"], 2, "the two throws");
    let warnings: Vec<&str> = result["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(warnings.iter().filter(|w| w.contains("beforeSend threw")).count(), 1, "{warnings:?}");
    let token = result["token"].as_str().unwrap();
    let events = server.events(&format!("sessionToken={token}&order=asc"));
    let names: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["event_data"]["actionName"].as_str().unwrap()).collect();
    assert_eq!(names, ["keep", "in_place"]);
    assert_eq!(events["events"][0]["event_data"]["edited"], true);
    assert_eq!(events["events"][1]["event_data"]["inPlace"], true);
}

/// Two session tokens: one sampled in at `rate`, one out.
fn tokens_around(rate: f64) -> (String, String) {
    let token = |n: u8| session_token([n; 16]);
    let inside = (0..=255).map(token).find(|t| sampled(t, rate)).unwrap();
    let outside = (0..=255).map(token).find(|t| !sampled(t, rate)).unwrap();
    (inside, outside)
}

// sampleRate keeps or drops whole sessions, and the same ones after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_keeps_or_drops_whole_sessions() {
    let (inside, outside) = tokens_around(0.5);
    let body = r#"
const token = new URLSearchParams(location.search).get("token");
sl.configure({ sessionToken: token, sampleRate: 0.5, flushIntervalMs: 100 });
for (let i = 0; i < 5; i++) sl.logAction("sampled_" + i);
await sl.flush();
window.result = { stats: sl.stats() };
window.done = true;"#;
    let www = site(&[("index.html", &page(body))]);
    let server = Server::serving(www.path(), &[]);
    let browser = Browser::start().await;
    for _reload in 0..2 {
        for token in [&inside, &outside] {
            browser.result_of(&format!("{}/index.html?token={token}", server.url)).await;
        }
    }
    browser.close().await;
    assert_eq!(server.events(&format!("sessionToken={inside}"))["count"], 10, "both page loads, every event");
    assert_eq!(server.events(&format!("sessionToken={outside}"))["count"], 0, "never");
}

// optOut forgets what waits and stops logging, also after a reload (before and after the module
// is ready); optIn resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_holds_across_a_reload() {
    let first = format!(
        r#"
sl.configure({{ endpoint: "http://127.0.0.1:9/api/session-log", flushIntervalMs: 600000 }});
sl.logAction("before_opt_out");
await new Promise((r) => setTimeout(r, 50));
const storedBefore = {STORAGE_JS};
sl.optOut();
sl.logAction("while_opted_out");
await new Promise((r) => setTimeout(r, 50));
window.result = {{ storedBefore, storedAfter: {STORAGE_JS}, stats: sl.stats(), optedOut: sl.hasOptedOut() }};
window.done = true;"#
    );
    let second = r#"<!doctype html><meta charset="utf-8"><script type="module">
import * as sl from "/pkg/session_log.js";
const early = sl.hasOptedOut();
sl.configure({ flushIntervalMs: 100 });
sl.logAction("after_reload");
await sl.init();
const late = sl.hasOptedOut();
const statsOut = sl.stats();
sl.optIn();
sl.logAction("after_opt_in");
await sl.flush();
window.result = { early, late, statsOut, token: sl.getSessionToken() };
window.done = true;
</script>"#;
    let www = site(&[("first.html", &page(&first)), ("second.html", second)]);
    let server = Server::serving(www.path(), &[]);
    let browser = Browser::start().await;
    let result = browser.result_of(&format!("{}/first.html", server.url)).await;
    let again = browser.result_of(&format!("{}/second.html", server.url)).await;
    browser.close().await;
    assert!(result["storedBefore"].as_str().unwrap().contains("before_opt_out"), "{result}");
    assert!(!result["storedAfter"].as_str().unwrap().contains("before_opt_out"), "forgotten: {result}");
    assert!(!result["storedAfter"].as_str().unwrap().contains("while_opted_out"), "{result}");
    assert_eq!(result["stats"]["queued"], 0);
    assert_eq!(result["optedOut"], true);
    assert_eq!(again["early"], true, "known before the module is ready");
    assert_eq!(again["late"], true);
    assert_eq!(again["statsOut"]["queued"], 0, "the call after the reload was not kept");
    let token = again["token"].as_str().unwrap();
    let events = server.events(&format!("sessionToken={token}"));
    let names: Vec<&Value> =
        events["events"].as_array().unwrap().iter().map(|e| &e["event_data"]["actionName"]).collect();
    assert_eq!(names, [&json!("after_opt_in")]);
}
