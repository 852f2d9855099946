//! The `#[wasm_bindgen]` layer: converts JavaScript values for [`Machine`] and carries out its
//! [`Action`]s with the browser (fetch, its answer read through gloo-net, `setTimeout`,
//! `localStorage`, beacons, Web Locks, `console.warn`). It decides nothing: every rule lives in
//! `pipeline` and `machine`.
//!
//! These exports are the module's internal API; pages use the hand-written entry
//! (`session_log.js`), which keeps calls made before the module is ready and names the public
//! functions. Rules kept here:
//! - No export throws: every JavaScript call that can throw is a `catch` binding or returns a
//!   `Result` that is handled, and nothing panics (no `unwrap`, no indexing).
//! - Page code (getters run by `Object.assign`, `toJSON` run by `JSON.stringify`, the
//!   `onDeliveryError` callback) runs only while the machine is *not* borrowed, so a page that logs
//!   from inside a getter works.

use std::cell::RefCell;

use js_sys::{Date, Function, Object, Promise, Reflect, JSON};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::durable::{Store, StoreFull, KEY_PREFIX};
use crate::machine::{Action, DeliveryProblem, Machine, Reply, Timer};
use crate::pipeline::{self, cat, EventKind, EventPlan, OptionValue, Value, Warnings};

#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// A send that has not answered in this time is abandoned and retried (ms).
const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// `sessionStorage` key of this tab's id (a reload keeps it; another tab has its own).
pub const TAB_KEY: &str = "session-log:tab";

#[wasm_bindgen]
extern "C" {
    /// `Object.assign(target, source)`, which runs the source's getters: may throw.
    #[wasm_bindgen(js_namespace = Object, js_name = assign, catch)]
    fn object_assign(target: &Object, source: &JsValue) -> Result<Object, JsValue>;
    /// A number argument as JavaScript's `Number(value)` reads it.
    #[wasm_bindgen(js_name = Number)]
    fn number(value: &JsValue) -> f64;
    /// `String(value)`: JavaScript's own text of a value.
    #[wasm_bindgen(js_name = String)]
    fn js_string(value: &JsValue) -> String;
    /// `setTimeout(callback, ms, code)`.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: u32, code: u32);
}

// The JavaScript side of these functions, with what each does: js/web.js.
#[wasm_bindgen(module = "/js/web.js")]
extern "C" {
    #[wasm_bindgen(js_name = holdLock)]
    fn hold_lock(name: &str) -> bool;
    #[wasm_bindgen(js_name = whenLockFree)]
    fn when_lock_free(name: &str, tab: &str, callback: &Function);
    /// `fetch(url, init)` with the page's `fetch` of load time; a rejected promise for a network error.
    fn send(url: &str, init: &web_sys::RequestInit) -> Promise;
    fn post(url: &str, init: &web_sys::RequestInit, done: &Function);
    fn capture(errors: bool, requests: bool, routes: bool, callback: &Function);
    /// The page's `window` (`None` in a worker): in place of `web_sys::window()`, whose
    /// `js_sys::global()` probes four globals through a lazily made cell (about 0.3 KB gzipped).
    #[wasm_bindgen(js_name = page)]
    fn page_window() -> Option<web_sys::Window>;
}

/// `localStorage` as the durable queue's store. With no usable `localStorage` it keeps nothing
/// and refuses nothing (the queue then lives in memory only).
pub struct LocalStore(Option<web_sys::Storage>);

impl LocalStore {
    /// The page's `localStorage` (a store that keeps nothing when the browser refuses it, with
    /// a warning).
    pub fn open() -> LocalStore {
        match page_window().map(|w| w.local_storage()) {
            Some(Ok(Some(storage))) => LocalStore(Some(storage)),
            _ => {
                warn_once("localStorage is unavailable; the session lasts until the page closes");
                LocalStore(None)
            }
        }
    }
}

impl Store for LocalStore {
    fn get(&self, key: &str) -> Option<String> {
        self.0.as_ref()?.get_item(key).ok().flatten()
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StoreFull> {
        match &self.0 {
            Some(storage) => storage.set_item(key, value).map_err(|_| StoreFull),
            None => Ok(()),
        }
    }
    fn remove(&mut self, key: &str) {
        if let Some(storage) = &self.0 {
            let _ = storage.remove_item(key);
        }
    }
    fn keys(&self) -> Vec<String> {
        let Some(storage) = &self.0 else {
            return Vec::new();
        };
        let count = storage.length().unwrap_or(0);
        (0..count).filter_map(|i| storage.key(i).ok().flatten()).filter(|k| k.starts_with(KEY_PREFIX)).collect()
    }
}

/// Auto-capture's callback: `(kind, a, b, c, d, e)`.
type CaptureFn = dyn FnMut(String, JsValue, JsValue, JsValue, JsValue, JsValue);

/// What the layer keeps: the machine, and the JavaScript objects its actions refer to.
struct Page {
    machine: Machine<LocalStore>,
    /// `setTimeout`'s callback (one for every timer: the timer travels as its argument).
    on_timer: Closure<dyn FnMut(u32)>,
    /// Web Locks' callback when another tab is gone.
    on_tab_gone: Closure<dyn FnMut(String)>,
    /// `post`'s callback: `(response or null, body text or why it failed)`.
    on_reply: Closure<dyn FnMut(JsValue, String)>,
    /// Auto-capture's callback: `(kind, a, b, c, d, e)`, see `capture` in the inline JavaScript.
    on_capture: Closure<CaptureFn>,
    /// The page's `onDeliveryError` callback.
    on_delivery_error: Option<Function>,
    /// The page's `beforeSend` filter.
    before_send: Option<Function>,
    /// Pending `flush()` promises: (id, resolve, reject).
    flushes: Vec<(u32, Function, Function)>,
}

/// A global for the page's one thread. `thread_local!` would do the same at the price of its
/// lazy-initialisation code at every use (several KB of the module).
struct Global<T>(RefCell<T>);

// SAFETY: this module is built for wasm32 without the `atomics` target feature (checked below),
// where there is exactly one thread, so a `Global` is never reached from two threads.
unsafe impl<T> Sync for Global<T> {}
#[cfg(target_feature = "atomics")]
compile_error!("the client's globals assume a single-threaded wasm module");

static PAGE: Global<Option<Page>> = Global(RefCell::new(None));
/// Kept apart from `PAGE`, so that a warning raised while the page state is borrowed still shows.
static WARNED: Global<Warnings> = Global(RefCell::new(Warnings::new()));

/// `console.warn`s `message` (prefixed `session-log: `) the first time it is seen.
fn warn_once(message: &str) {
    let first = WARNED.0.try_borrow_mut().is_ok_and(|mut w| w.first(message));
    if first {
        let text =
            if message.starts_with("session-log:") { message.to_owned() } else { cat(&["session-log: ", message]) };
        web_sys::console::warn_1(&JsValue::from_str(&text));
    }
}

/// Runs `f` on the machine (made on first use), then carries out the actions it queued, outside
/// the borrow. `None` when the machine is already borrowed (a call re-entered from page code).
fn step<R>(f: impl FnOnce(&mut Machine<LocalStore>) -> R) -> Option<R> {
    let mut started = false;
    let result = PAGE.0.try_borrow_mut().ok().map(|mut slot| {
        let page = slot.get_or_insert_with(|| {
            started = true;
            new_page()
        });
        let result = f(&mut page.machine);
        let actions: Vec<Action> = std::iter::from_fn(|| page.machine.poll_action()).collect();
        (result, actions)
    });
    let Some((result, actions)) = result else {
        warn_once("a logging call re-entered the client and was skipped");
        return None;
    };
    if started {
        listen();
    }
    for action in actions {
        act(action);
    }
    Some(result)
}

fn new_page() -> Page {
    let tab = tab_id();
    if !hold_lock(&cat(&["session-log:tab:", &tab])) {
        warn_once("this browser has no Web Locks: events left by closed tabs are sent only when that tab reloads");
    }
    Page {
        machine: Machine::new(LocalStore::open(), &tab, user_agent(), random_bytes(), online()),
        on_timer: Closure::new(|code: u32| {
            step(|m| m.on_timer(Timer::from_code(code)));
        }),
        on_tab_gone: Closure::new(|tab: String| {
            step(|m| m.on_tab_gone(&tab));
        }),
        on_reply: Closure::new(|response: JsValue, body: String| {
            let reply = reply(response, &body);
            step(|m| m.on_reply(reply, online(), js_sys::Math::random()));
        }),
        on_capture: Closure::new(on_capture),
        on_delivery_error: None,
        before_send: None,
        flushes: Vec::new(),
    }
}

/// Once per page: page exit and connectivity, through one listener.
fn listen() {
    let Some(window) = page_window() else {
        return;
    };
    let listener = Closure::<dyn Fn(web_sys::Event)>::new(|event: web_sys::Event| {
        let kind = event.type_();
        match kind.as_str() {
            "online" | "offline" => {
                step(|m| m.on_online(kind == "online"));
            }
            _ => {
                let hidden = kind == "pagehide"
                    || page_window()
                        .and_then(|w| w.document())
                        .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden);
                if hidden {
                    step(|m| m.flush_captured());
                    step(|m| m.on_page_hidden());
                }
            }
        }
    });
    let f = listener.as_ref().unchecked_ref();
    for kind in ["pagehide", "online", "offline"] {
        let _ = window.add_event_listener_with_callback(kind, f);
    }
    if let Some(document) = window.document() {
        let _ = document.add_event_listener_with_callback("visibilitychange", f);
    }
    listener.forget();
}

/// Carries out one action of the machine.
fn act(action: Action) {
    match action {
        Action::Send { endpoint, body } => {
            if let Some(done) = with_page(|page| page.on_reply.as_ref().clone()) {
                post(&endpoint, &batch_request(body), done.unchecked_ref());
            }
        }
        Action::Beacons { endpoint, bodies } => send_beacons(&endpoint, bodies),
        Action::SetTimer(timer, ms) => {
            with_page(|page| set_timeout(page.on_timer.as_ref().unchecked_ref(), ms, timer.code()));
        }
        Action::ResolveFlush(id) => {
            if let Some((resolve, _)) = take_flush(id) {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
        Action::RejectFlush(id, message) => {
            if let Some((_, reject)) = take_flush(id) {
                let _ = reject.call1(&JsValue::UNDEFINED, &js_sys::Error::new(&message));
            }
        }
        Action::Warn(message) => warn_once(&message),
        Action::DeliveryError(problem) => report_delivery_error(&problem),
        Action::Capture { errors, fetch, history } => {
            // Installing history capture reports the current path at once: call outside the borrow.
            if let Some(callback) = with_page(|page| page.on_capture.as_ref().clone()) {
                capture(errors, fetch, history, callback.unchecked_ref());
            }
        }
        Action::Log(kind, at) => {
            log_kind(kind, at, [JsValue::UNDEFINED, JsValue::UNDEFINED, JsValue::UNDEFINED, JsValue::UNDEFINED])
        }
        Action::WatchTab(tab) => {
            let lock = cat(&["session-log:tab:", &tab]);
            with_page(|page| when_lock_free(&lock, &tab, page.on_tab_gone.as_ref().unchecked_ref()));
        }
    }
}

/// Runs `f` on the page state when it exists and is not borrowed (no machine is made).
fn with_page<R>(f: impl FnOnce(&mut Page) -> R) -> Option<R> {
    PAGE.0.try_borrow_mut().ok()?.as_mut().map(f)
}

fn take_flush(id: u32) -> Option<(Function, Function)> {
    with_page(|page| {
        let index = page.flushes.iter().position(|(i, _, _)| *i == id)?;
        let (_, resolve, reject) = page.flushes.remove(index);
        Some((resolve, reject))
    })
    .flatten()
}

/// Page exit: each body with `navigator.sendBeacon` as `text/plain` (a CORS-safelisted type: a
/// JSON beacon would need a preflight that cannot finish while the page is torn down);
/// `fetch(…, {keepalive: true})` where a beacon is refused.
fn send_beacons(endpoint: &str, bodies: Vec<String>) {
    let Some(window) = page_window() else {
        return;
    };
    let navigator = window.navigator();
    for body in bodies {
        if navigator.send_beacon_with_opt_str(endpoint, Some(&body)).unwrap_or(false) {
            continue;
        }
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
        init.set_body(&JsValue::from_str(&body));
        if let Ok(headers) = web_sys::Headers::new() {
            let _ = headers.set("Content-Type", "text/plain;charset=UTF-8");
            init.set_headers(&headers);
        }
        let _ = send(endpoint, &init);
    }
}

/// The request of one batch: a JSON POST abandoned after [`REQUEST_TIMEOUT_MS`].
fn batch_request(body: String) -> web_sys::RequestInit {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body));
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(REQUEST_TIMEOUT_MS)));
    if let Ok(headers) = web_sys::Headers::new() {
        let _ = headers.set("Content-Type", "application/json");
        init.set_headers(&headers);
    }
    init
}

/// What the machine needs of a batch's answer: `response` is the `Response` (read through
/// gloo-net) and `body` its text, or `response` is `null` and `body` says why the request failed.
fn reply(response: JsValue, body: &str) -> Reply {
    let Ok(response) = response.dyn_into::<web_sys::Response>() else {
        return network_error(body.to_owned());
    };
    let response = gloo_net::http::Response::from(response);
    let retry_after_ms = response
        .headers()
        .get("retry-after")
        .and_then(|h| pipeline::retry_after_ms(&h, Date::now(), |date| Some(Date::parse(date))));
    // The server's `BatchResponse.rejected` or `ErrorResponse.error`, read without serde.
    let parsed = JSON::parse(body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|p| Reflect::get(p, &name.into()).ok());
    let rejected = field("rejected").and_then(|r| r.dyn_into::<js_sys::Array>().ok());
    let reason = match &rejected {
        Some(rejected) => Reflect::get(&rejected.get(0), &"error".into()).ok().map(|e| text(&e)),
        None => field("error").map(|e| text(&e)),
    };
    Reply {
        status: response.status(),
        retry_after_ms,
        rejected: rejected.map_or(0, |r| r.length() as usize),
        reason: reason.filter(|r| !r.is_empty()),
    }
}

fn network_error(message: String) -> Reply {
    Reply { status: 0, reason: Some(message), ..Reply::default() }
}

/// What `onDeliveryError` callbacks receive: `{message, willRetry, queued}`.
struct DeliveryErrorJs<'a> {
    message: &'a str,
    will_retry: bool,
    queued: usize,
}

impl Serialize for DeliveryErrorJs<'_> {
    // A map, as `StatsJs`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("message", self.message)?;
        map.serialize_entry("willRetry", &self.will_retry)?;
        map.serialize_entry("queued", &(self.queued as f64))?;
        map.end()
    }
}

fn report_delivery_error(problem: &DeliveryProblem) {
    let callback = with_page(|page| page.on_delivery_error.clone()).flatten();
    let Some(callback) = callback else { return };
    let value = DeliveryErrorJs { message: &problem.message, will_retry: problem.will_retry, queued: problem.queued };
    if let Ok(value) = to_js(&value) {
        if let Err(error) = callback.call1(&JsValue::UNDEFINED, &value) {
            warn_once(&cat(&["onDeliveryError callback threw: ", &describe(&error)]));
        }
    }
}

fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, serde_wasm_bindgen::Error> {
    value.serialize(
        &serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true).serialize_maps_as_objects(true),
    )
}

fn describe(value: &JsValue) -> String {
    match value.dyn_ref::<js_sys::Error>() {
        Some(error) => String::from(error.message()),
        None => text(value),
    }
}

fn online() -> bool {
    page_window().is_none_or(|w| w.navigator().on_line())
}

/// Random bytes drawn from `crypto.getRandomValues` 1 KiB at a time (one call per ~100 events
/// instead of one per event).
static RANDOM: Global<(usize, [u8; 1024])> = Global(RefCell::new((1024, [0; 1024])));

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let Ok(mut pool) = RANDOM.0.try_borrow_mut() else { return bytes };
    let (used, buffer) = &mut *pool;
    if *used + N > buffer.len() {
        let filled = page_window()
            .and_then(|w| w.crypto().ok())
            .is_some_and(|crypto| crypto.get_random_values_with_u8_array(buffer).is_ok());
        if !filled {
            warn_once("crypto.getRandomValues is unavailable; ids use Math.random");
            for byte in buffer.iter_mut() {
                *byte = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        *used = 0;
    }
    if let Some(drawn) = buffer.get(*used..*used + N) {
        bytes.copy_from_slice(drawn);
    }
    *used += N;
    bytes
}

/// This tab's id: kept in `sessionStorage`, made (64 random bits) when absent.
fn tab_id() -> String {
    let storage = page_window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(tab) = storage.as_ref().and_then(|s| s.get_item(TAB_KEY).ok().flatten()) {
        return tab;
    }
    let random: [u8; 16] = random_bytes();
    // `ws_` + 32 hex digits (ASCII): keep 16 of them.
    let tab = pipeline::session_token(random).get(3..19).unwrap_or_default().to_owned();
    if let Some(storage) = storage {
        let _ = storage.set_item(TAB_KEY, &tab);
    }
    tab
}

fn user_agent() -> String {
    page_window().and_then(|w| w.navigator().user_agent().ok()).unwrap_or_default()
}

/// A text argument: a string as is, an `Error` by its message, a number or boolean as JavaScript
/// writes it, `null`/`undefined` as empty, anything else as its JSON.
fn text(value: &JsValue) -> String {
    if let Some(s) = value.as_string() {
        return s;
    }
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    if value.is_null() || value.is_undefined() {
        return String::new();
    }
    if value.as_f64().is_some() || value.as_bool().is_some() {
        // JavaScript's own formatting (Rust's float formatting would add ~15 KB to the wasm).
        return js_string(value);
    }
    JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_default()
}

/// Copies the page's details into `data`: an object's own fields; an `Error`'s name, message and
/// stack; any other value under `details`.
fn merge_details(data: &Object, details: &JsValue) -> Result<(), JsValue> {
    if details.is_undefined() || details.is_null() {
        return Ok(());
    }
    if let Some(error) = details.dyn_ref::<js_sys::Error>() {
        Reflect::set(data, &"errorName".into(), &error.name())?;
        Reflect::set(data, &"detailMessage".into(), &error.message())?;
        Reflect::set(data, &"stack".into(), &Reflect::get(error, &"stack".into())?)?;
        return Ok(());
    }
    if details.is_object() && !js_sys::Array::is_array(details) {
        object_assign(data, details)?;
    } else {
        Reflect::set(data, &"details".into(), details)?;
    }
    Ok(())
}

/// The last long text sent to JavaScript and its JavaScript string: the user agent (about 120
/// bytes) repeats in every event, and sending a Rust string re-encodes it each time.
static LAST_TEXT: Global<Option<(String, JsValue)>> = Global(RefCell::new(None));

fn text_value(text: &str) -> JsValue {
    if text.len() < 32 {
        return JsValue::from_str(text);
    }
    let Ok(mut last) = LAST_TEXT.0.try_borrow_mut() else { return JsValue::from_str(text) };
    match last.as_ref() {
        Some((cached, value)) if cached == text => value.clone(),
        _ => {
            let value = JsValue::from_str(text);
            *last = Some((text.to_owned(), value.clone()));
            value
        }
    }
}

fn field_value(value: &Value, args: &[JsValue; 4]) -> JsValue {
    match value {
        Value::Text(s) => text_value(s),
        Value::Number(n) => JsValue::from_f64(*n),
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Null => JsValue::NULL,
        Value::Time(ms) => Date::new(&JsValue::from_f64(*ms)).to_iso_string().into(),
        Value::Arg(i) => args.get(*i).cloned().unwrap_or(JsValue::UNDEFINED),
    }
}

/// JavaScript strings of the field names, made once per page (sending a Rust string to
/// JavaScript copies and re-encodes it; a field name is sent with every event).
static KEYS: Global<Vec<(&'static str, JsValue)>> = Global(RefCell::new(Vec::new()));

/// Sets `data[key] = value`. `data` is a plain object made here, so no page code runs.
fn set_field(data: &Object, key: &'static str, value: &JsValue) {
    let Ok(mut keys) = KEYS.0.try_borrow_mut() else { return };
    let index = match keys.iter().position(|(k, _)| std::ptr::eq(*k, key)) {
        Some(index) => index,
        None => {
            keys.push((key, JsValue::from_str(key)));
            keys.len() - 1
        }
    };
    if let Some((_, js_key)) = keys.get(index) {
        let _ = Reflect::set(data, js_key, value);
    }
}

/// The event's `eventData` as JSON text, built from its plan (see `EventPlan`) and serialised by
/// `JSON.stringify`. Page code may run here (getters, `toJSON`). Data that is not JSON (cyclic,
/// a BigInt, a throwing `toJSON`) keeps the event without the page's details, with
/// `serializationError` instead, and warns.
fn event_data(plan: &EventPlan, args: &[JsValue; 4]) -> Option<String> {
    let build = |with_details: bool| -> Object {
        let data = Object::new();
        if let Some(details) = plan.details.filter(|_| with_details).and_then(|i| args.get(i)) {
            if let Err(error) = merge_details(&data, details) {
                warn_once(&cat(&["could not read the details of a ", &plan.event_type, " event: ", &describe(&error)]));
            }
        }
        for (key, value) in &plan.fields {
            set_field(&data, key, &field_value(value, args));
        }
        data
    };
    let data = match JSON::stringify(&build(true)) {
        Ok(json) => json,
        Err(error) => {
            let reason = describe(&error);
            warn_once(&cat(&["a ", &plan.event_type, " event's data is not JSON (", &reason, "); sent without it"]));
            let data = build(false);
            set_field(&data, "serializationError", &reason.into());
            JSON::stringify(&data).ok()?
        }
    };
    data.as_string()
}

/// Runs the page's `beforeSend` on `{eventType, eventData}` (after redaction). `Some` with the
/// event's type and data to queue: what it returned, or the object it was given (edited in
/// place) when it returned `undefined`. `None` when it returned `null` (dropped, as asked) or
/// threw (dropped and counted: a broken privacy filter must not leak).
fn before_send(filter: &Function, event_type: &str, data: &str) -> Option<(String, String)> {
    let event = Object::new();
    set_field(&event, "eventType", &event_type.into());
    set_field(&event, "eventData", &JSON::parse(data).ok()?);
    let kept = match filter.call1(&JsValue::UNDEFINED, &event) {
        Ok(result) if result.is_null() => return None,
        Ok(result) if result.is_undefined() => event.into(),
        Ok(result) => result,
        Err(error) => {
            let reason = describe(&error);
            step(|m| m.filter_failed(&reason));
            return None;
        }
    };
    let kept_type = Reflect::get(&kept, &"eventType".into()).ok().and_then(|t| t.as_string());
    let kept_data = Reflect::get(&kept, &"eventData".into()).ok().filter(|d| d.is_object());
    let data = kept_data.and_then(|d| JSON::stringify(&d).ok()).and_then(|d| d.as_string());
    let Some(data) = data else {
        step(|m| m.filter_failed("it did not return {eventType, eventData}"));
        return None;
    };
    let event_type = kept_type
        .filter(|t| session_log_protocol::check_event_type(t).is_ok())
        .unwrap_or_else(|| event_type.to_owned());
    Some((event_type, data))
}

/// Converts one option's JavaScript value; a plain object's fields one level deep (`depth` 0).
fn option_value(value: &JsValue, depth: u8) -> OptionValue {
    if value.is_undefined() {
        OptionValue::Absent
    } else if value.is_null() {
        OptionValue::Null
    } else if let Some(s) = value.as_string() {
        OptionValue::Text(s)
    } else if let Some(b) = value.as_bool() {
        OptionValue::Flag(b)
    } else if let Some(n) = value.as_f64() {
        OptionValue::Number(n)
    } else if value.is_function() {
        OptionValue::Function
    } else if let Some(array) = value.dyn_ref::<js_sys::Array>() {
        let items: Option<Vec<String>> = array.iter().map(|item| item.as_string()).collect();
        items.map_or(OptionValue::Other("an array of non-strings"), OptionValue::List)
    } else if depth == 0 && value.is_object() {
        let fields = Object::keys(value.unchecked_ref::<Object>())
            .iter()
            .filter_map(|key| {
                let field = Reflect::get(value, &key).ok()?;
                Some((key.as_string()?, option_value(&field, 1)))
            })
            .collect();
        OptionValue::Map(fields)
    } else {
        OptionValue::Other("an object")
    }
}

/// `configure(options)`: merges the options object into the options in force (the option names
/// and rules are `pipeline::Config`'s). A bad option or a non-object warns and changes nothing.
#[wasm_bindgen]
pub fn configure(options: JsValue) {
    if !options.is_object() {
        return warn_once("configure expects an options object");
    }
    // Read option by option, outside the borrow (a getter may run); no serde deserialiser (its
    // error messages would pull Rust's float formatting into the wasm).
    let mut filter = None;
    let pairs: Vec<(String, OptionValue)> = Object::keys(options.unchecked_ref::<Object>())
        .iter()
        .filter_map(|key| {
            let value = Reflect::get(&options, &key).ok()?;
            let key = key.as_string()?;
            // undefined keeps the filter in force, null removes it.
            if key == "beforeSend" && !value.is_undefined() {
                filter = Some(value.dyn_ref::<Function>().cloned());
            }
            Some((key, option_value(&value, 0)))
        })
        .collect();
    let fresh = random_bytes();
    if step(|m| m.configure(pairs, fresh)) == Some(true) {
        if let Some(filter) = filter {
            with_page(|page| page.before_send = filter);
        }
    }
}

/// `setStep(step)`: the current step of the following events (a whole number ≥ 0).
#[wasm_bindgen(js_name = setStep)]
pub fn set_step(step_number: JsValue) {
    let n = number(&step_number);
    step(|m| m.set_step(n));
}

/// One logging call: `kind` 0 `logNavigation(from, to)`, 1 `logError(type, message, details)`,
/// 2 `logAction(name, details)`, 3 `logApiCall(endpoint, method, status, details)`,
/// 4 `logStateChange(name, old, new)`, 5 `logSessionEvent(type, data)`; `a`–`d` are the call's
/// arguments; `at` the time of the call (ms since the epoch; absent: now), so calls kept before
/// the module was ready keep their own time.
#[wasm_bindgen]
pub fn log(kind: u32, a: JsValue, b: JsValue, c: JsValue, d: JsValue, at: Option<f64>) {
    let at = at.unwrap_or_else(Date::now);
    let kind = match kind {
        0 => EventKind::Navigation { from: number(&a), to: number(&b) },
        1 => EventKind::Error {
            error_type: text(&a),
            error_message: text(&b),
            stack: b
                .dyn_ref::<js_sys::Error>()
                .and_then(|e| Reflect::get(e, &"stack".into()).ok())
                .and_then(|s| s.as_string()),
        },
        2 => EventKind::Action { action_name: text(&a) },
        3 => EventKind::ApiCall { endpoint: text(&a), method: text(&b), status: number(&c) },
        4 => EventKind::StateChange { state_name: text(&a) },
        _ => EventKind::Custom { event_type: text(&a) },
    };
    log_kind(kind, at, [a, b, c, d]);
}

/// Plans, builds, redacts, filters (`beforeSend`) and queues one event; `args` are the page's
/// arguments the plan refers to.
fn log_kind(kind: EventKind, at: f64, args: [JsValue; 4]) {
    let random = random_bytes();
    let Some(Some(plan)) = step(|m| m.plan(kind, at, random)) else { return };
    // Page code may run from here on (getters, toJSON, beforeSend): the machine is not borrowed.
    let Some(data) = event_data(&plan, &args) else { return };
    let Some(filter) = with_page(|page| page.before_send.clone()).flatten() else {
        // No filter: redact and queue in one step.
        step(|m| {
            let data = m.redact(data);
            m.push_event(&plan, &data);
        });
        return;
    };
    let Some(data) = step(|m| m.redact(data)) else { return };
    let Some((event_type, data)) = before_send(&filter, &plan.event_type, &data) else { return };
    step(|m| m.push_event(&EventPlan { event_type, ..plan }, &data));
}

/// What the auto-capture hooks report (see `capture` in the inline JavaScript).
fn on_capture(kind: String, a: JsValue, b: JsValue, c: JsValue, d: JsValue, e: JsValue) {
    let now = Date::now();
    match kind.as_str() {
        "error" | "rejection" => {
            let source = c.as_string().filter(|s| !s.is_empty()).map(|url| (url, number(&d) as u32, number(&e) as u32));
            let (message, stack) = (text(&a), b.as_string());
            step(|m| m.captured_error(kind == "rejection", message, stack, source, now));
        }
        "request" => {
            let (method, url, origin) = (text(&a), text(&b), text(&e));
            step(|m| m.captured_request(&method, &url, number(&c), number(&d), &origin, now));
        }
        "route" => {
            let url = text(&a);
            step(|m| m.captured_navigation(&url, now));
        }
        _ => {
            let url = text(&a);
            step(|m| m.set_current_path(&url));
        }
    }
}

/// `flush()`: sends now; resolves once every event logged before the call is delivered (or
/// refused for good), captured errors still in their collapse window included; rejects with an
/// `Error` after `flushTimeoutMs`.
#[wasm_bindgen]
pub fn flush() -> Promise {
    // The held captured errors are logged first (each `Action::Log` queues its event before
    // this returns), so the flush below waits for them too.
    step(Machine::flush_captured);
    Promise::new(&mut |resolve, reject| match step(Machine::flush).flatten() {
        Some(id) => {
            with_page(|page| page.flushes.push((id, resolve, reject)));
        }
        None => {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    })
}

/// `optOut()`: stops logging in this browser (kept across reloads) and forgets what waits.
#[wasm_bindgen(js_name = optOut)]
pub fn opt_out() {
    step(|m| m.opt_out());
}

/// `optIn()`: resumes logging after `optOut()`.
#[wasm_bindgen(js_name = optIn)]
pub fn opt_in() {
    step(|m| m.opt_in());
}

/// `hasOptedOut()`.
#[wasm_bindgen(js_name = hasOptedOut)]
pub fn has_opted_out() -> bool {
    step(|m| m.has_opted_out()).unwrap_or(false)
}

/// `getSessionToken()`: the token events are sent with.
#[wasm_bindgen(js_name = getSessionToken)]
pub fn get_session_token() -> String {
    step(|m| m.token().to_owned()).unwrap_or_default()
}

/// What `stats()` answers: `{queued, sent, dropped, retries, lastError, endpoint}`.
struct StatsJs {
    queued: usize,
    sent: u64,
    dropped: u64,
    retries: u64,
    last_error: Option<String>,
    endpoint: String,
}

impl Serialize for StatsJs {
    // Written as a map (an object, see `to_js`): serde-wasm-bindgen interns a struct's field
    // names in a `HashMap`, which linked hashbrown into the module. Counts go as `f64` (exact
    // below 2^53): its `u64` path formats an error message, which linked `format!`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("queued", &(self.queued as f64))?;
        map.serialize_entry("sent", &(self.sent as f64))?;
        map.serialize_entry("dropped", &(self.dropped as f64))?;
        map.serialize_entry("retries", &(self.retries as f64))?;
        map.serialize_entry("lastError", &self.last_error)?;
        map.serialize_entry("endpoint", &self.endpoint)?;
        map.end()
    }
}

/// `stats()`: `{queued, sent, dropped, retries, lastError, endpoint}`.
#[wasm_bindgen]
pub fn stats() -> JsValue {
    step(|m| m.stats())
        .and_then(|s| {
            let s = StatsJs {
                queued: s.queued,
                sent: s.sent,
                dropped: s.dropped,
                retries: s.retries,
                last_error: s.last_error,
                endpoint: s.endpoint,
            };
            to_js(&s).ok()
        })
        .unwrap_or(JsValue::NULL)
}

/// `onDeliveryError(callback)`: `callback({message, willRetry, queued})` after each failed
/// delivery; `null` removes it.
#[wasm_bindgen(js_name = onDeliveryError)]
pub fn on_delivery_error(callback: JsValue) {
    let callback = callback.dyn_into::<Function>().ok();
    step(|_| ());
    with_page(|page| page.on_delivery_error = callback);
}
