//! The exported functions in headless Chromium (`cargo xtask test` runs these with
//! wasm-bindgen-test-runner and ChromeDriver). The tests share one page and one client, as a page
//! would: each measures what changed rather than assuming a fresh state.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Reflect};
use session_log_client::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function recordWarnings() {
  if (window.__warnings) return;
  window.__warnings = [];
  const original = console.warn;
  console.warn = (...args) => { window.__warnings.push(args.join(" ")); original.apply(console, args); };
}
export function warnings() { return window.__warnings || []; }
export function cyclic() { const o = { a: 1 }; o.self = o; return o; }
export function throwingGetter() { return { fine: 1, get boom() { throw new Error("getter exploded"); } }; }
export function callingGetter(f) { return { get x() { f(); return 1; } }; }
export function bigint() { return { big: 10n }; }
"#)]
extern "C" {
    fn recordWarnings();
    fn warnings() -> Array;
    fn cyclic() -> JsValue;
    #[wasm_bindgen(js_name = throwingGetter)]
    fn throwing_getter() -> JsValue;
    #[wasm_bindgen(js_name = callingGetter)]
    fn calling_getter(f: &Function) -> JsValue;
    fn bigint() -> JsValue;
}

const U: JsValue = JsValue::UNDEFINED;

fn log_session_event(a: JsValue, b: JsValue) {
    log(5, a, b, U, U, None);
}
fn log_navigation(from: f64, to: f64) {
    log(0, from.into(), to.into(), U, U, None);
}
fn log_error(a: JsValue, b: JsValue, c: JsValue) {
    log(1, a, b, c, U, None);
}
fn log_action(a: JsValue, b: JsValue) {
    log(2, a, b, U, U, None);
}
fn log_api_call(a: JsValue, b: JsValue, status: f64, d: JsValue) {
    log(3, a, b, status.into(), d, None);
}
fn log_state_change(a: JsValue, b: JsValue, c: JsValue) {
    log(4, a, b, c, U, None);
}

fn stat(name: &str) -> JsValue {
    Reflect::get(&stats(), &name.into()).unwrap()
}

fn queued() -> f64 {
    stat("queued").as_f64().unwrap()
}

fn warnings_containing(text: &str) -> usize {
    warnings().iter().filter(|w| w.as_string().unwrap_or_default().contains(text)).count()
}

/// Options as a JS object, from JSON text.
fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

/// Points the client at a closed loopback port and keeps the flush timer out of the way, so
/// events stay queued while a test counts them.
fn offline() {
    configure(options(
        r#"{"endpoint": "http://127.0.0.1:9/api/session-log", "flushIntervalMs": 600000,
            "maxBatchEvents": 500, "flushTimeoutMs": 800, "retryBaseMs": 100, "retryMaxMs": 200}"#,
    ));
}

// A generated session token is ws_ plus 32 hex digits, stable, and kept in localStorage.
#[wasm_bindgen_test]
fn session_token_is_generated_and_kept() {
    let token = get_session_token();
    assert!(token.starts_with("ws_") && token.len() == 35, "{token}");
    assert!(token[3..].chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert_eq!(get_session_token(), token);
    let stored =
        web_sys::window().unwrap().local_storage().unwrap().unwrap().get_item("session-log:sessionToken").unwrap();
    assert_eq!(stored.as_deref(), Some(token.as_str()));
}

// A configured session token is used; null returns to the kept token.
#[wasm_bindgen_test]
fn configured_session_token_wins() {
    let kept = get_session_token();
    configure(options(r#"{"sessionToken": "ws_given_by_page"}"#));
    assert_eq!(get_session_token(), "ws_given_by_page");
    configure(options("{}"));
    assert_eq!(get_session_token(), "ws_given_by_page", "a configure that does not name it keeps it");
    configure(options(r#"{"sessionToken": null}"#));
    assert_eq!(get_session_token(), kept);
}

// Each logging function queues exactly one event and returns normally, whatever the arguments.
#[wasm_bindgen_test]
fn every_logging_function_queues_one_event_even_with_odd_arguments() {
    offline();
    let before = queued();
    let undefined = JsValue::UNDEFINED;
    log_session_event("custom_event".into(), options(r#"{"customField": "value"}"#));
    log_navigation(1.0, 2.0);
    log_navigation(f64::NAN, -3.0);
    log_error("deployment_failed".into(), "timeout".into(), options(r#"{"timeout": 30000}"#));
    log_error(undefined.clone(), js_sys::Error::new("from an Error").into(), js_sys::Error::new("details").into());
    log_action("phone_number_selected".into(), undefined.clone());
    log_action(42.into(), "not an object".into());
    log_api_call("/api/deploy".into(), "post".into(), 200.0, options("[1, 2]"));
    log_state_change("servicesReady".into(), false.into(), true.into());
    log_state_change(undefined.clone(), undefined.clone(), options(r#"{"nested": {"value": [1]}}"#));
    assert_eq!(queued() - before, 10.0);
}

// Data that is not JSON (cycles, BigInt, throwing getters) still logs the event, and is reported once.
#[wasm_bindgen_test]
fn unserialisable_details_keep_the_event_and_warn_once() {
    recordWarnings();
    offline();
    let before = queued();
    log_action("cyclic".into(), cyclic());
    log_action("cyclic".into(), cyclic());
    log_action("big".into(), bigint());
    log_action("getter".into(), throwing_getter());
    assert_eq!(queued() - before, 4.0, "every event is kept");
    assert_eq!(
        warnings_containing("action event's data is not JSON"),
        2,
        "cycle and BigInt, each once: {:?}",
        warnings()
    );
    assert_eq!(warnings_containing("getter exploded"), 1, "{:?}", warnings());
}

// An invalid event type is refused with a warning instead of being sent to a server that would refuse it.
#[wasm_bindgen_test]
fn invalid_event_type_is_refused_with_a_warning() {
    recordWarnings();
    offline();
    let before = queued();
    log_session_event("has spaces".into(), options("{}"));
    assert_eq!(queued(), before);
    assert_eq!(warnings_containing("logSessionEvent: eventType may hold only letters"), 1, "{:?}", warnings());
}

// Page code that logs from inside a getter the client is reading does not break the client.
#[wasm_bindgen_test]
fn logging_from_inside_a_getter_works() {
    offline();
    let before = queued();
    let inner = Closure::<dyn Fn()>::new(|| log_action("inner".into(), JsValue::UNDEFINED));
    log_action("outer".into(), calling_getter(inner.as_ref().unchecked_ref()));
    assert_eq!(queued() - before, 2.0);
}

// Bad options are reported by name and leave the previous options in force.
#[wasm_bindgen_test]
fn bad_options_are_reported_and_ignored() {
    recordWarnings();
    offline();
    configure(options(r#"{"maxBatchEvents": 0}"#));
    assert_eq!(warnings_containing("maxBatchEvents must be 1–500"), 1, "{:?}", warnings());
    configure(options(r#"{"endpont": "/x"}"#));
    assert_eq!(warnings_containing("unknown option(s) endpont"), 1, "{:?}", warnings());
    configure(options(r#"{"studentEmail": "not an email"}"#));
    assert_eq!(warnings_containing("studentEmail is not an email address"), 1);
    configure("not an object".into());
    assert_eq!(warnings_containing("configure expects an options object"), 1);
    set_step((-1.0).into());
    assert_eq!(warnings_containing("setStep expects a whole number"), 1);
}

// flush() against an unreachable server rejects after flushTimeoutMs and keeps every event queued.
#[wasm_bindgen_test]
async fn flush_times_out_without_losing_events() {
    offline();
    log_action("waiting".into(), JsValue::UNDEFINED);
    let before = queued();
    let error = JsFuture::from(flush()).await.expect_err("flush must reject while the server is unreachable");
    let message = error.dyn_into::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
    assert!(message.contains("timed out after 800 ms"), "{message}");
    assert!(queued() >= before, "events stay queued");
    assert!(stat("retries").as_f64().unwrap() >= 1.0);
    let last_error = stat("lastError").as_string().unwrap_or_default();
    assert!(last_error.contains("could not reach http://127.0.0.1:9/api/session-log"), "{last_error}");
}

/// Lets the page run its pending tasks (the client stores queued events in the next task).
async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 10).unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

fn local_storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

// Queued events are written to localStorage right after the logging task, and a queue re-opened
// from it (what the next page load does) holds them in order.
#[wasm_bindgen_test]
async fn queued_events_survive_reinitialisation() {
    offline();
    log_action("persisted_first".into(), JsValue::UNDEFINED);
    log_action("persisted_second".into(), JsValue::UNDEFINED);
    next_task().await;
    let tab =
        web_sys::window().unwrap().session_storage().unwrap().unwrap().get_item(TAB_KEY).unwrap().expect("a tab id");
    let reopened = session_log_client::durable::DurableQueue::open(
        LocalStore::open(),
        &tab,
        session_log_client::durable::Limits::default(),
    );
    let stored = reopened.chunks(500, usize::MAX).concat();
    let first = stored.find("persisted_first").expect("the first event is stored");
    let second = stored.find("persisted_second").expect("the second event is stored");
    assert!(first < second, "in logged order");
}

// When localStorage is full (QuotaExceededError), logging still works: the oldest events make
// room, are counted as dropped, and the page gets a warning, not an exception.
#[wasm_bindgen_test]
async fn full_storage_drops_oldest_instead_of_throwing() {
    recordWarnings();
    offline();
    log_action("old_a".into(), JsValue::UNDEFINED);
    log_action("old_b".into(), JsValue::UNDEFINED);
    next_task().await;
    let storage = local_storage();
    // Fill the origin's quota with junk, coarse then fine.
    let mut junk = 0;
    for size in [1 << 20, 1 << 16, 1 << 12, 1 << 8] {
        let filler = "j".repeat(size);
        while storage.set_item(&format!("junk:{junk}"), &filler).is_ok() {
            junk += 1;
        }
    }
    let dropped_before = stat("dropped").as_f64().unwrap();
    let queued_before = queued();
    log_action("new_when_full".into(), options(r#"{"pad": "enough to need room"}"#));
    next_task().await;
    let dropped = stat("dropped").as_f64().unwrap() - dropped_before;
    for n in 0..junk {
        storage.remove_item(&format!("junk:{n}")).unwrap();
    }
    assert!(dropped >= 1.0, "the oldest events made room");
    assert_eq!(queued(), queued_before + 1.0 - dropped, "the new event is queued");
    assert_eq!(warnings_containing("the event queue is full"), 1, "{:?}", warnings());
}

// stats() has the documented fields.
#[wasm_bindgen_test]
fn stats_has_every_field() {
    let s = stats();
    for key in ["queued", "sent", "dropped", "retries", "lastError"] {
        assert!(Reflect::has(&s, &key.into()).unwrap(), "stats() has {key}");
    }
}
