//! The `#[wasm_bindgen]` layer: the JavaScript API, and the only code that touches the browser.
//!
//! Rules kept here:
//! - Every export returns at once and never throws: a problem becomes one `console.warn` (once per
//!   distinct message, at most 64 per page).
//! - Page code (getters run by `Object.assign`, `toJSON` run by `JSON.stringify`) only runs while
//!   the client state is *not* borrowed, and every import that can run page code is `catch`, so a
//!   page that logs from inside a getter, or throws from one, cannot break the client.
//! - Nothing here panics (a panic aborts the wasm instance): no `unwrap`, no indexing.

use std::cell::RefCell;

use js_sys::{Function, Object, Promise, Reflect, JSON};
use serde::Serialize;
use session_log_protocol::Event;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::core::{self, ActionFields, ApiCallFields, Backoff, Config, ErrorFields, Outcome, Session};
use crate::durable::{DurableQueue, Limits, Store, StoreFull, KEY_PREFIX};

/// `localStorage` key of the generated session token.
const TOKEN_KEY: &str = "session-log:sessionToken";
/// `localStorage` key prefix of the next sequence number of a session (`…:<token>`).
const SEQ_KEY_PREFIX: &str = "session-log:seq:";
/// A send that has not answered in this time is abandoned and retried (ms).
const REQUEST_TIMEOUT_MS: u32 = 30_000;

#[wasm_bindgen]
extern "C" {
    /// `Object.assign(target, source)`, which runs the source's getters: may throw.
    #[wasm_bindgen(js_namespace = Object, js_name = assign, catch)]
    fn object_assign(target: &Object, source: &JsValue) -> Result<Object, JsValue>;
}

// Web Locks (https://w3c.github.io/web-locks/) through a few lines of JavaScript: promise-shaped
// APIs are clearer there. Each page holds the lock `session-log:tab:<tab>` while it lives. To adopt
// another tab's stored queue, a page requests that tab's lock: the browser grants it once the tab
// is gone (a closing page can hold it a moment longer), and to one waiter at a time, so exactly
// one page adopts each orphaned queue.
#[wasm_bindgen(inline_js = r#"
export function holdLock(name) {
  if (!globalThis.navigator || !navigator.locks) return false;
  navigator.locks.request(name, () => new Promise(() => {})).catch(() => {});
  return true;
}
export function whenLockFree(name, callback) {
  navigator.locks.request(name, () => { callback(); }).catch(() => {});
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = holdLock)]
    fn hold_lock(name: &str) -> bool;
    #[wasm_bindgen(js_name = whenLockFree)]
    fn when_lock_free(name: &str, callback: &Function);
}

/// How often a page looks for queues of other tabs to wait on (ms).
const ADOPTION_SCAN_MS: u32 = 30_000;

/// Waits on the lock of every other tab that has a stored queue (once per tab); when a lock is
/// granted, that tab is gone and its queue is adopted. Repeats every `ADOPTION_SCAN_MS`.
fn watch_other_tabs() {
    let others = with_client(|c| {
        let mut new = Vec::new();
        for tab in c.queue.other_tabs() {
            if !c.watched_tabs.contains(&tab) {
                c.watched_tabs.push(tab.clone());
                new.push(tab);
            }
        }
        new
    })
    .unwrap_or_default();
    for other in others {
        let lock = tab_lock_name(&other);
        let adopt = Closure::once_into_js(move || {
            let next = with_client(|c| {
                c.watched_tabs.retain(|t| *t != other);
                let adopted = c.queue.adopt(&other);
                c.enqueued += adopted as u64;
                c.schedule()
            });
            if let Some(next) = next {
                run(next);
            }
        });
        when_lock_free(&lock, adopt.unchecked_ref());
    }
    set_timeout(ADOPTION_SCAN_MS, watch_other_tabs);
}

/// `localStorage` as the durable queue's store. With no usable `localStorage` it keeps nothing
/// and refuses nothing (the queue then lives in memory only, and nothing is dropped for it).
pub struct LocalStore(Option<web_sys::Storage>);

impl LocalStore {
    /// The page's `localStorage` (a no-op store when the browser refuses it).
    pub fn open() -> LocalStore {
        LocalStore(local_storage())
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
        let Some(storage) = &self.0 else { return Vec::new() };
        let count = storage.length().unwrap_or(0);
        (0..count).filter_map(|i| storage.key(i).ok().flatten()).filter(|k| k.starts_with(KEY_PREFIX)).collect()
    }
}

/// `sessionStorage` key of this tab's id (a reload keeps it; another tab has its own).
pub const TAB_KEY: &str = "session-log:tab";

fn tab_lock_name(tab: &str) -> String {
    format!("session-log:tab:{tab}")
}

/// This tab's id: kept in `sessionStorage`, made (64 random bits) when absent.
fn tab_id() -> String {
    let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(tab) = storage.as_ref().and_then(|s| s.get_item(TAB_KEY).ok().flatten()) {
        return tab;
    }
    let tab: String = random_bytes::<8>().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(storage) = storage {
        let _ = storage.set_item(TAB_KEY, &tab);
    }
    tab
}

/// Distinct warnings shown at most: past this the console stays quiet (a page that logs a bad
/// event in a loop must not flood it).
const MAX_WARNINGS: usize = 64;

thread_local! {
    /// The page's `onDeliveryError` callback, kept apart from the client state so that calling it
    /// (page code) never happens while the state is borrowed.
    static ON_DELIVERY_ERROR: RefCell<Option<Function>> = const { RefCell::new(None) };
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
    static WARNED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// `console.warn`s a problem the first time it happens (same text, once per page load).
fn warn_once(message: &str) {
    let first = WARNED.with(|w| {
        let Ok(mut seen) = w.try_borrow_mut() else { return false };
        if seen.len() >= MAX_WARNINGS || seen.iter().any(|m| m == message) {
            return false;
        }
        seen.push(message.to_owned());
        true
    });
    if first {
        web_sys::console::warn_1(&JsValue::from_str(&format!("session-log: {message}")));
    }
}

/// A pending `flush()`: resolved once `settled` reaches `target`.
struct Waiter {
    id: u32,
    target: u64,
    resolve: Function,
    reject: Function,
}

/// Everything the client keeps between calls.
struct Client {
    session: Session,
    /// This tab's id (its queue's name in storage).
    tab: String,
    queue: DurableQueue<LocalStore>,
    backoff: Backoff,
    /// A flush timer is set (1 s after the first queued event, by default).
    timer_armed: bool,
    /// A retry timer is set: no send before it fires.
    retry_pending: bool,
    /// Events ever queued in this page.
    enqueued: u64,
    /// Events that left the queue: delivered or refused for good.
    settled: u64,
    sent: u64,
    dropped: u64,
    retries: u64,
    last_error: Option<String>,
    waiters: Vec<Waiter>,
    next_waiter_id: u32,
    /// Delivery is paused until the browser is back online.
    offline: bool,
    /// A write-behind of pending events to storage is scheduled.
    persist_scheduled: bool,
    /// Other tabs whose lock this page waits on, to adopt their queues when they are gone.
    watched_tabs: Vec<String>,
}

/// What to do once the state is no longer borrowed.
enum Next {
    Nothing,
    SendNow,
    Timer(u32),
}

impl Client {
    fn new(config: Config) -> Self {
        let token = resolve_token(&config);
        let next_seq = load_seq(&token);
        let backoff = Backoff::new(config.retry_base_ms, config.retry_max_ms);
        let limits = Limits { max_events: config.max_queue_events, max_bytes: config.max_queue_bytes };
        let tab = tab_id();
        let queue = DurableQueue::open(LocalStore::open(), &tab, limits);
        let loaded = queue.queue().len() as u64;
        let next_seq = next_seq.max(queue.max_seq(&token).map_or(0, |s| s + 1));
        Client {
            session: Session::new(config, token, next_seq, user_agent()),
            tab,
            queue,
            backoff,
            timer_armed: false,
            retry_pending: false,
            enqueued: loaded,
            settled: 0,
            sent: 0,
            dropped: 0,
            retries: 0,
            last_error: None,
            waiters: Vec::new(),
            next_waiter_id: 0,
            offline: false,
            persist_scheduled: false,
            watched_tabs: Vec::new(),
        }
    }

    /// Writes pending events to storage (one chunk) and the session's next seq; accounts for any
    /// events dropped to make room.
    fn persist(&mut self) {
        self.persist_scheduled = false;
        if !self.queue.has_pending() {
            return;
        }
        let dropped = self.queue.persist();
        self.count_drops(dropped);
        storage_set(&format!("{SEQ_KEY_PREFIX}{}", self.session.token), &self.session.next_seq.to_string());
    }

    fn count_drops(&mut self, dropped: usize) {
        if dropped > 0 {
            self.settled += dropped as u64;
            self.dropped += dropped as u64;
            warn_once("the event queue is full (maxQueueEvents / maxQueueBytes, or storage quota): oldest events dropped and reported");
        }
    }

    /// After an event was queued: send now when a batch is due, else make sure a timer is set.
    fn schedule(&mut self) -> Next {
        let queue = self.queue.queue();
        if queue.in_flight() || self.retry_pending || self.offline || queue.is_empty() {
            return Next::Nothing;
        }
        let c = &self.session.config;
        if queue.is_due(c.max_batch_events, c.max_batch_bytes) || !self.waiters.is_empty() {
            return Next::SendNow;
        }
        if self.timer_armed {
            return Next::Nothing;
        }
        self.timer_armed = true;
        Next::Timer(c.flush_interval_ms)
    }

    /// Right after start: send what was loaded from storage at once (it is overdue).
    fn schedule_loaded(&mut self) -> Next {
        if self.queue.queue().is_empty() || self.queue.queue().in_flight() || self.offline {
            return Next::Nothing;
        }
        if !navigator_online() {
            self.offline = true;
            return Next::Nothing;
        }
        Next::SendNow
    }

    /// Waiters whose events have all settled, removed from the list.
    fn take_finished_waiters(&mut self) -> Vec<Waiter> {
        let settled = self.settled;
        let (done, pending) = std::mem::take(&mut self.waiters).into_iter().partition(|w| w.target <= settled);
        self.waiters = pending;
        done
    }

    /// Applies the server's answer to the batch in flight; returns what to do next and how the
    /// reply was classified.
    fn on_reply(&mut self, count: usize, reply: Result<Reply, String>) -> (Next, Outcome) {
        let status = reply.as_ref().map_or(0, |r| r.status);
        let outcome = core::outcome(status);
        let next = match outcome {
            Outcome::Delivered => {
                // `BatchResponse.rejected`: the events of the batch refused for good.
                let rejected = reply
                    .ok()
                    .and_then(|r| json_field(&r.body, "rejected"))
                    .and_then(|v| v.dyn_into::<js_sys::Array>().ok())
                    .map_or(0, |rejected| {
                        let first = rejected.get(0);
                        let error = Reflect::get(&first, &"error".into()).map(|e| text(&e)).unwrap_or_default();
                        warn_once(&format!("the server refused {} event(s): {error}", rejected.length()));
                        rejected.length() as usize
                    });
                self.finish(count, rejected);
                self.backoff.reset();
                if self.queue.queue().is_empty() {
                    Next::Nothing
                } else {
                    Next::SendNow
                }
            }
            Outcome::Refused => {
                let reply = reply.ok();
                // `ErrorResponse.error`: the server's reason.
                let error = reply
                    .as_ref()
                    .and_then(|r| json_field(&r.body, "error"))
                    .map_or_else(|| format!("HTTP {status}"), |e| text(&e));
                let message = format!("the server refused a batch of {count} event(s) (HTTP {status}): {error}");
                warn_once(&message);
                self.last_error = Some(message);
                self.finish(count, count);
                if self.queue.queue().is_empty() {
                    Next::Nothing
                } else {
                    Next::SendNow
                }
            }
            Outcome::Retry => {
                self.queue.release_batch();
                self.retries += 1;
                let message = match &reply {
                    Ok(_) => format!("the server answered HTTP {status}; will retry"),
                    Err(e) => format!("could not reach {}: {e}; will retry", self.session.config.endpoint),
                };
                warn_once(&message);
                self.last_error = Some(message);
                if !navigator_online() {
                    // No retries burnt while offline: the `online` event resumes delivery.
                    self.offline = true;
                    return (Next::Nothing, outcome);
                }
                let backoff = self.backoff.next_delay_ms(js_sys::Math::random());
                let retry_after = reply.ok().and_then(|r| r.retry_after).and_then(|h| {
                    core::retry_after_ms(&h, js_sys::Date::now(), |date| Some(js_sys::Date::parse(date)))
                });
                self.retry_pending = true;
                Next::Timer(backoff.max(retry_after.unwrap_or(0)))
            }
        };
        (next, outcome)
    }

    /// Removes the batch in flight: `count` events, `refused` of them refused for good.
    fn finish(&mut self, count: usize, refused: usize) {
        let removed = self.queue.finish_batch();
        debug_assert_eq!(removed, count);
        self.settled += removed as u64;
        self.sent += (removed - refused.min(removed)) as u64;
        self.dropped += refused.min(removed) as u64;
    }
}

/// Runs `f` on the client state, creating it with defaults on first use. `None` when the state is
/// already borrowed (a call re-entered from page code the client was running), which is reported.
fn with_client<R>(f: impl FnOnce(&mut Client) -> R) -> Option<R> {
    let mut created = false;
    let result = CLIENT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => Some(f(slot.get_or_insert_with(|| {
            created = true;
            Client::new(Config::default())
        }))),
        Err(_) => {
            warn_once("a logging call re-entered the client and was skipped");
            None
        }
    });
    if created {
        start_background_work();
    }
    result
}

/// Once per page, when the client is created: hold this tab's lock, adopt the queues of tabs that
/// are gone, send what a previous page left, and listen for page exit and connectivity.
fn start_background_work() {
    let Some(tab) = with_client(|c| c.tab.clone()) else { return };
    if hold_lock(&tab_lock_name(&tab)) {
        watch_other_tabs();
    } else {
        warn_once("this browser has no Web Locks: events left by closed tabs are sent only when that tab reloads");
    }
    if let Some(window) = web_sys::window() {
        let on_exit = Closure::<dyn Fn(web_sys::Event)>::new(|event: web_sys::Event| {
            let hidden = event.type_() == "pagehide"
                || web_sys::window()
                    .and_then(|w| w.document())
                    .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden);
            if hidden {
                send_beacons();
            }
        });
        let _ = window.add_event_listener_with_callback("pagehide", on_exit.as_ref().unchecked_ref());
        if let Some(document) = window.document() {
            let _ = document.add_event_listener_with_callback("visibilitychange", on_exit.as_ref().unchecked_ref());
        }
        on_exit.forget();
        let on_online = Closure::<dyn Fn()>::new(|| {
            let next = with_client(|c| {
                c.offline = false;
                c.retry_pending = false;
                c.backoff.reset();
                c.schedule()
            });
            if let Some(next) = next {
                run(next);
            }
        });
        let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
        on_online.forget();
    }
    // Events a previous page of this tab left behind go out now.
    let next = with_client(Client::schedule_loaded);
    if let Some(next) = next {
        run(next);
    }
}

fn navigator_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// The beacon budget of a page being closed: Chrome allows 64 KiB of beacon and keepalive data in
/// flight per page (Fetch standard, "keepalive" quota); stay under it.
const BEACON_BUDGET_BYTES: usize = 60 * 1024;

/// Page exit: sends what is queued with `navigator.sendBeacon`, as `text/plain` (a CORS-safelisted
/// type: a JSON beacon would need a preflight that cannot finish while the page is torn down), in
/// chunks within the beacon budget; `fetch(…, {keepalive: true})` where a beacon is refused. The
/// events stay in the durable queue: a later page sends them again unless acknowledged (the
/// server's dedup on `eventId` makes that safe).
fn send_beacons() {
    let Some((bodies, endpoint)) = with_client(|c| {
        c.persist();
        let cfg = &c.session.config;
        // `max_batch_events` is at most the server's batch limit (`Config::validate`).
        (c.queue.chunks(cfg.max_batch_events, BEACON_BUDGET_BYTES), cfg.endpoint.clone())
    }) else {
        return;
    };
    let Some(window) = web_sys::window() else { return };
    let navigator = window.navigator();
    let mut budget = BEACON_BUDGET_BYTES;
    for body in bodies {
        if body.len() > budget {
            break;
        }
        budget -= body.len();
        let queued = navigator.send_beacon_with_opt_str(&endpoint, Some(&body)).unwrap_or(false);
        if !queued {
            let init = web_sys::RequestInit::new();
            init.set_method("POST");
            let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
            init.set_body(&JsValue::from_str(&body));
            let headers = web_sys::Headers::new().ok();
            if let Some(headers) = &headers {
                let _ = headers.set("Content-Type", "text/plain;charset=UTF-8");
                init.set_headers(headers);
            }
            let _ = window.fetch_with_str_and_init(&endpoint, &init);
        }
    }
}

/// Runs an export's body and turns any error into a warning: nothing reaches the page.
fn guarded(name: &str, f: impl FnOnce() -> Result<(), JsValue>) {
    if let Err(error) = f() {
        warn_once(&format!("{name}: {}", describe(&error)));
    }
}

fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

fn run(next: Next) {
    match next {
        Next::Nothing => {}
        Next::SendNow => wasm_bindgen_futures::spawn_local(pump()),
        Next::Timer(ms) => set_timeout(ms, || {
            with_client(|c| {
                c.timer_armed = false;
                c.retry_pending = false;
            });
            wasm_bindgen_futures::spawn_local(pump());
        }),
    }
}

fn set_timeout(ms: u32, f: impl FnOnce() + 'static) {
    let callback = Closure::once_into_js(f);
    if let Some(window) = web_sys::window() {
        let delay = i32::try_from(ms).unwrap_or(i32::MAX);
        let set = window.set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), delay);
        if set.is_err() {
            warn_once("setTimeout failed; events wait for the next call");
        }
    }
}

/// Sends batches until the queue is empty, a send fails, or another send is in flight.
async fn pump() {
    loop {
        let Some((batch, endpoint)) = with_client(|c| {
            if c.retry_pending || c.offline {
                return None;
            }
            c.persist();
            let cfg = &c.session.config;
            let (max_events, max_bytes, endpoint) = (cfg.max_batch_events, cfg.max_batch_bytes, cfg.endpoint.clone());
            let batch = c.queue.start_batch(max_events, max_bytes)?;
            Some((batch, endpoint))
        })
        .flatten() else {
            return;
        };
        let reply = post(&endpoint, batch.body).await;
        let outcome = with_client(|c| {
            let dropped_before = c.dropped;
            let (next, outcome) = c.on_reply(batch.count, reply);
            let failed = outcome == Outcome::Retry || c.dropped != dropped_before;
            let problem = failed.then(|| DeliveryError {
                message: c.last_error.clone().unwrap_or_default(),
                will_retry: outcome == Outcome::Retry,
                queued: c.queue.queue().len(),
            });
            (next, c.take_finished_waiters(), problem)
        });
        let Some((next, finished, problem)) = outcome else { return };
        for waiter in finished {
            let _ = waiter.resolve.call0(&JsValue::UNDEFINED);
        }
        if let Some(problem) = problem {
            report_delivery_error(&problem);
        }
        match next {
            Next::SendNow => continue,
            other => {
                run(other);
                return;
            }
        }
    }
}

/// What `onDeliveryError` callbacks receive: `{message, willRetry, queued}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryError {
    message: String,
    will_retry: bool,
    queued: usize,
}

fn report_delivery_error(problem: &DeliveryError) {
    let callback = ON_DELIVERY_ERROR.with(|cb| cb.try_borrow().ok().and_then(|cb| cb.clone()));
    if let (Some(callback), Ok(value)) = (callback, to_js(problem)) {
        if let Err(error) = callback.call1(&JsValue::UNDEFINED, &value) {
            warn_once(&format!("onDeliveryError callback threw: {}", describe(&error)));
        }
    }
}

/// Registers `callback`, called after each failed delivery with `{message, willRetry, queued}`
/// (a page can show its own notice). `null` removes it. A callback that throws is reported once.
#[wasm_bindgen(js_name = onDeliveryError)]
pub fn on_delivery_error(
    #[wasm_bindgen(unchecked_param_type = "((error: SessionLogDeliveryError) => void) | null")] callback: JsValue,
) {
    let callback = callback.dyn_into::<Function>().ok();
    ON_DELIVERY_ERROR.with(|cb| {
        if let Ok(mut cb) = cb.try_borrow_mut() {
            *cb = callback;
        }
    });
}

/// The parts of an HTTP answer the client uses.
struct Reply {
    status: u16,
    body: String,
    retry_after: Option<String>,
}

/// POSTs one batch; `Err` for a network error or a timeout (no HTTP answer at all).
async fn post(endpoint: &str, body: String) -> Result<Reply, String> {
    let signal = web_sys::AbortSignal::timeout_with_u32(REQUEST_TIMEOUT_MS);
    let request = gloo_net::http::Request::post(endpoint)
        .header("Content-Type", "application/json")
        .abort_signal(Some(&signal))
        .body(body)
        .map_err(|e| e.to_string())?;
    let response = request.send().await.map_err(|e| e.to_string())?;
    let retry_after = response.headers().get("retry-after");
    let body = response.text().await.unwrap_or_default();
    Ok(Reply { status: response.status(), body, retry_after })
}

/// A field of a JSON object body (the server's `BatchResponse` / `ErrorResponse`), read without
/// serde to keep deserialisers out of the wasm.
fn json_field(body: &str, field: &str) -> Option<JsValue> {
    let value = JSON::parse(body).ok()?;
    Reflect::get(&value, &field.into()).ok().filter(|v| !v.is_undefined() && !v.is_null())
}

fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
    value.serialize(&serializer).map_err(JsValue::from)
}

fn local_storage() -> Option<web_sys::Storage> {
    match web_sys::window().map(|w| w.local_storage()) {
        Some(Ok(storage)) => storage,
        _ => {
            warn_once("localStorage is unavailable; the session lasts until the page closes");
            None
        }
    }
}

fn storage_get(key: &str) -> Option<String> {
    LocalStore::open().get(key)
}

fn storage_set(key: &str, value: &str) {
    if LocalStore::open().set(key, value).is_err() {
        warn_once("localStorage refused a write (quota or privacy settings)");
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        warn_once("crypto.getRandomValues is unavailable; ids use Math.random");
        for byte in &mut bytes {
            *byte = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes
}

/// The token to use: the configured one, else the one kept in `localStorage`, else a new one
/// (128 random bits) that is kept there so a reload continues the session.
fn resolve_token(config: &Config) -> String {
    if let Some(token) = &config.session_token {
        return token.clone();
    }
    if let Some(stored) = storage_get(TOKEN_KEY) {
        if session_log_protocol::check_session_token(&stored).is_ok() {
            return stored;
        }
    }
    let token = core::session_token(random_bytes());
    storage_set(TOKEN_KEY, &token);
    token
}

/// The next seq of `token` as last written (per stored chunk; the queued events' own seqs count too).
fn load_seq(token: &str) -> u64 {
    storage_get(&format!("{SEQ_KEY_PREFIX}{token}")).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn user_agent() -> String {
    web_sys::window().and_then(|w| w.navigator().user_agent().ok()).unwrap_or_default()
}

/// A text argument: a string as is, an `Error` by its message, a number or boolean as written,
/// `null`/`undefined` as empty, anything else as its JSON.
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
    if let Some(b) = value.as_bool() {
        return if b { "true" } else { "false" }.to_owned();
    }
    if value.as_f64().is_some() {
        // JavaScript's own formatting (Rust's float formatting would add ~15 KB to the wasm).
        let number: &js_sys::Number = value.unchecked_ref();
        return number.to_string_with_radix(10).map(String::from).unwrap_or_default();
    }
    JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_default()
}

/// The event payload: a JavaScript object passed through serde untouched.
#[derive(Serialize)]
#[serde(transparent)]
struct JsData(#[serde(with = "serde_wasm_bindgen::preserve")] JsValue);

/// What a logging call needs from the state, taken in one short borrow.
struct Prepared {
    token: String,
    email: Option<String>,
    name: Option<String>,
    seq: u64,
    named: JsValue,
    context: JsValue,
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
        if let Ok(stack) = Reflect::get(error, &"stack".into()) {
            Reflect::set(data, &"stack".into(), &stack)?;
        }
        return Ok(());
    }
    if details.is_object() && !js_sys::Array::is_array(details) {
        object_assign(data, details)?;
    } else {
        Reflect::set(data, &"details".into(), details)?;
    }
    Ok(())
}

/// Builds, serialises and queues one event. `named` makes the function's own fields (it runs under
/// the borrow, so it must not run page code); `details` and `extra` are page values merged outside
/// it. Field precedence, lowest first: details, the function's fields, the context fields.
fn log_event(
    event_type: &str,
    named: impl FnOnce(&mut Session) -> Result<JsValue, JsValue>,
    details: &JsValue,
    extra: &[(&str, &JsValue)],
) -> Result<(), JsValue> {
    let now = js_sys::Date::now();
    let timestamp = String::from(js_sys::Date::new(&now.into()).to_iso_string());
    let Some(prepared) = with_client(|c| -> Result<Prepared, JsValue> {
        let named = named(&mut c.session)?;
        let s = &mut c.session;
        let seq = s.take_seq();
        Ok(Prepared {
            token: s.token.clone(),
            email: s.config.student_email.clone(),
            name: s.config.student_name.clone(),
            seq,
            context: to_js(&s.context(timestamp))?,
            named,
        })
    }) else {
        return Ok(());
    };
    let p = prepared?;

    // Page code may run from here on (getters, toJSON): the state is not borrowed.
    let data = Object::new();
    object_assign(&data, &p.named)?;
    if let Err(error) = merge_details(&data, details) {
        warn_once(&format!("could not read the details of a {event_type} event: {}", describe(&error)));
    }
    for (key, value) in extra {
        Reflect::set(&data, &(*key).into(), value)?;
    }
    object_assign(&data, &p.named)?;
    object_assign(&data, &p.context)?;
    let mut event = Event {
        session_token: p.token,
        student_email: p.email,
        student_name: p.name,
        event_type: event_type.to_owned(),
        event_data: JsData(data.into()),
        event_id: Some(core::event_id(now, random_bytes())),
        seq: Some(p.seq),
    };
    let json = match JSON::stringify(&to_js(&event)?) {
        Ok(json) => json,
        Err(error) => {
            // Cyclic data, a BigInt, a throwing toJSON: keep the event, without the page's details.
            let reason = describe(&error);
            warn_once(&format!("a {event_type} event's data is not JSON ({reason}); sent without it"));
            let data = Object::new();
            object_assign(&data, &p.named)?;
            object_assign(&data, &p.context)?;
            Reflect::set(&data, &"serializationError".into(), &reason.into())?;
            event.event_data = JsData(data.into());
            JSON::stringify(&to_js(&event)?)?
        }
    };
    let json = json.as_string().unwrap_or_default();
    if let Some(next) = with_client(|c| {
        let dropped = c.queue.push(json);
        c.enqueued += 1;
        c.count_drops(dropped);
        let persist = !std::mem::replace(&mut c.persist_scheduled, true);
        (c.schedule(), persist)
    }) {
        let (next, persist) = next;
        if persist {
            // Write-behind: store this task's events in one write, in the next task.
            set_timeout(0, || {
                with_client(Client::persist);
            });
        }
        run(next);
    }
    Ok(())
}

/// Options of `configure`, as TypeScript sees them.
#[wasm_bindgen(typescript_custom_section)]
const CONFIG_TS: &str = r#"
/** Options of `configure`; every field is optional. */
export interface SessionLogConfig {
  /** Where batches are POSTed: a path or an absolute URL. Default "/api/session-log". */
  endpoint?: string;
  /** Step names by step number from 0. */
  steps?: string[];
  /** Sent with every event; anonymous when absent. */
  studentEmail?: string;
  /** Sent with every event. */
  studentName?: string;
  /** Session token to use; generated (128 random bits) and kept in localStorage when absent. */
  sessionToken?: string;
  /** Copied into every event's demoMode. Default false. */
  demoMode?: boolean;
  /** Send as soon as this many events are queued (1–500). Default 50. */
  maxBatchEvents?: number;
  /** Send as soon as the queued JSON reaches this many bytes. Default 16384. */
  maxBatchBytes?: number;
  /** Send this long after the first queued event (ms). Default 1000. */
  flushIntervalMs?: number;
  /** flush() rejects after this long (ms). Default 10000. */
  flushTimeoutMs?: number;
  /** First retry delay (ms), doubled per failure with full jitter. Default 1000. */
  retryBaseMs?: number;
  /** Longest retry delay (ms). Default 60000. */
  retryMaxMs?: number;
  /** Most events kept waiting (in memory and localStorage); past it the oldest are dropped and reported. Default 1000. */
  maxQueueEvents?: number;
  /** Most bytes of events kept waiting. Default 1048576. */
  maxQueueBytes?: number;
}

/** What an `onDeliveryError` callback receives. */
export interface SessionLogDeliveryError {
  /** What went wrong, e.g. "the server answered HTTP 503; will retry". */
  message: string;
  /** Whether the events stay queued for another try (false: the server refused them for good). */
  willRetry: boolean;
  /** Events waiting to be delivered. */
  queued: number;
}

/** Delivery counters returned by `stats()`. */
export interface SessionLogStats {
  /** Events waiting to be delivered. */
  queued: number;
  /** Events the server acknowledged. */
  sent: number;
  /** Events refused by the server for good, or dropped from a full queue. */
  dropped: number;
  /** Failed sends that will be (or were) retried. */
  retries: number;
  /** The last delivery problem, or null. */
  lastError: string | null;
}
"#;

/// Converts one option's JavaScript value.
fn option_value(value: &JsValue) -> core::OptionValue {
    use core::OptionValue;
    if value.is_undefined() || value.is_null() {
        OptionValue::Absent
    } else if let Some(s) = value.as_string() {
        OptionValue::Text(s)
    } else if let Some(b) = value.as_bool() {
        OptionValue::Flag(b)
    } else if let Some(n) = value.as_f64() {
        OptionValue::Number(n)
    } else if let Some(array) = value.dyn_ref::<js_sys::Array>() {
        let items: Option<Vec<String>> = array.iter().map(|item| item.as_string()).collect();
        items.map_or(OptionValue::Other("an array of non-strings"), OptionValue::List)
    } else {
        OptionValue::Other("an object")
    }
}

/// Sets the options (see `SessionLogConfig`). Missing options keep their current values' defaults;
/// an unknown or invalid option is reported with `console.warn` and the previous options stay.
/// Changing `sessionToken` starts numbering that session's events where it left off.
#[wasm_bindgen]
pub fn configure(#[wasm_bindgen(unchecked_param_type = "SessionLogConfig")] options: JsValue) {
    guarded("configure", || {
        if !options.is_object() {
            warn_once("configure expects an options object");
            return Ok(());
        }
        // Read option by option (no serde deserialiser: it would pull Rust's float formatting
        // into the wasm through its error messages).
        let mut config = Config::default();
        let mut unknown = Vec::new();
        for key in Object::keys(options.unchecked_ref::<Object>()).iter().filter_map(|k| k.as_string()) {
            let value = Reflect::get(&options, &key.as_str().into()).unwrap_or(JsValue::UNDEFINED);
            match config.set(&key, option_value(&value)) {
                Ok(()) => {}
                Err(_) if !core::CONFIG_KEYS.contains(&key.as_str()) => unknown.push(key),
                Err(error) => {
                    warn_once(&format!("configure: {error}; options unchanged"));
                    return Ok(());
                }
            }
        }
        if !unknown.is_empty() {
            warn_once(&format!(
                "configure: unknown option(s) {} (known: {})",
                unknown.join(", "),
                core::CONFIG_KEYS.join(", ")
            ));
        }
        if let Err(error) = config.validate() {
            warn_once(&format!("configure: {error}; options unchanged"));
            return Ok(());
        }
        let token = resolve_token(&config);
        let next_seq = load_seq(&token);
        with_client(|c| {
            if c.session.token != token {
                c.persist();
                c.session.next_seq = next_seq.max(c.queue.max_seq(&token).map_or(0, |s| s + 1));
                c.session.token = token;
            }
            c.backoff = Backoff::new(config.retry_base_ms, config.retry_max_ms);
            c.session.config = config;
        });
        Ok(())
    })
}

/// Sets the current step (`currentStep` of the following events) to `step`, a whole number ≥ 0.
#[wasm_bindgen(js_name = setStep)]
pub fn set_step(step: f64) {
    match core::step_number(step) {
        Some(step) => {
            with_client(|c| c.session.current_step = step);
        }
        None => warn_once(&format!("setStep expects a whole number ≥ 0, got {}", text(&step.into()))),
    }
}

/// Logs an event of any type (reference: `logSessionEvent(eventType, eventData)`). `eventType` is
/// 1–50 letters, digits, `_`, `-` or `.`; `eventData` an object whose fields are sent as they are,
/// plus the context fields `currentStep`, `stepName`, `demoMode`, `userAgent` and `timestamp`.
#[wasm_bindgen(js_name = logSessionEvent)]
pub fn log_session_event(
    #[wasm_bindgen(unchecked_param_type = "string")] event_type: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] event_data: JsValue,
) {
    guarded("logSessionEvent", || {
        let event_type = text(&event_type);
        if let Err(error) = session_log_protocol::check_event_type(&event_type) {
            warn_once(&format!("logSessionEvent: eventType {event_type:?} {error}; not logged"));
            return Ok(());
        }
        log_event(&event_type, |_| Ok(Object::new().into()), &event_data, &[])
    })
}

/// Logs a move between steps: `eventData` `{from, to, fromStepName, toStepName}` (names from
/// `steps`). The current step becomes `to`.
#[wasm_bindgen(js_name = logNavigation)]
pub fn log_navigation(from: f64, to: f64) {
    guarded("logNavigation", || {
        log_event(
            session_log_protocol::event_type::NAVIGATION,
            |s| to_js(&s.navigate(from, to)),
            &JsValue::UNDEFINED,
            &[],
        )
    })
}

/// Logs an error: `eventData` `{errorType, errorMessage, …errorDetails}` (e.g. `statusCode`).
/// `errorMessage` may be an `Error`, whose message is used.
#[wasm_bindgen(js_name = logError)]
pub fn log_error(
    #[wasm_bindgen(unchecked_param_type = "string")] error_type: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string | Error")] error_message: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] error_details: JsValue,
) {
    guarded("logError", || {
        let fields = ErrorFields { error_type: text(&error_type), error_message: text(&error_message) };
        log_event(session_log_protocol::event_type::ERROR, |_| to_js(&fields), &error_details, &[])
    })
}

/// Logs a user action: `eventData` `{actionName, …actionDetails}`.
#[wasm_bindgen(js_name = logAction)]
pub fn log_action(
    #[wasm_bindgen(unchecked_param_type = "string")] action_name: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] action_details: JsValue,
) {
    guarded("logAction", || {
        let fields = ActionFields { action_name: text(&action_name) };
        log_event(session_log_protocol::event_type::ACTION, |_| to_js(&fields), &action_details, &[])
    })
}

/// Logs an external API call: `eventData` `{endpoint, method, status, success, …details}`;
/// `success` is true for a 2xx or 3xx `status` (use 0 for a network error).
#[wasm_bindgen(js_name = logApiCall)]
pub fn log_api_call(
    #[wasm_bindgen(unchecked_param_type = "string")] endpoint: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] method: JsValue,
    status: f64,
    #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] details: JsValue,
) {
    guarded("logApiCall", || {
        let fields = ApiCallFields::new(text(&endpoint), &text(&method), status);
        log_event(session_log_protocol::event_type::API_CALL, |_| to_js(&fields), &details, &[])
    })
}

/// Logs a change of a state variable: `eventData` `{stateName, oldValue, newValue}`; the values
/// may be any JSON value.
#[wasm_bindgen(js_name = logStateChange)]
pub fn log_state_change(
    #[wasm_bindgen(unchecked_param_type = "string")] state_name: JsValue,
    #[wasm_bindgen(unchecked_param_type = "unknown")] old_value: JsValue,
    #[wasm_bindgen(unchecked_param_type = "unknown")] new_value: JsValue,
) {
    guarded("logStateChange", || {
        let name: JsValue = text(&state_name).into();
        log_event(
            session_log_protocol::event_type::STATE_CHANGE,
            |_| Ok(Object::new().into()),
            &JsValue::UNDEFINED,
            &[("stateName", &name), ("oldValue", &old_value), ("newValue", &new_value)],
        )
    })
}

/// Sends what is queued now. The promise resolves when every event logged before the call has
/// been delivered (or refused by the server for good), and rejects with an `Error` when that has
/// not happened within `flushTimeoutMs` (default 10 000 ms); the events stay queued either way.
#[wasm_bindgen(unchecked_return_type = "Promise<void>")]
pub fn flush() -> Promise {
    Promise::new(&mut |resolve, reject| {
        let registered = with_client(|c| {
            if c.settled >= c.enqueued {
                return None;
            }
            c.next_waiter_id += 1;
            let id = c.next_waiter_id;
            c.waiters.push(Waiter { id, target: c.enqueued, resolve: resolve.clone(), reject });
            Some((id, c.session.config.flush_timeout_ms, c.schedule()))
        });
        match registered {
            Some(Some((id, timeout_ms, next))) => {
                run(next);
                set_timeout(timeout_ms, move || reject_waiter(id, timeout_ms));
            }
            _ => {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
    })
}

fn reject_waiter(id: u32, timeout_ms: u32) {
    let waiter = with_client(|c| {
        let index = c.waiters.iter().position(|w| w.id == id)?;
        let waiter = c.waiters.remove(index);
        Some((waiter, c.queue.queue().len()))
    })
    .flatten();
    if let Some((waiter, queued)) = waiter {
        let error = js_sys::Error::new(&format!(
            "session-log: flush timed out after {timeout_ms} ms; {queued} event(s) still queued and will be retried"
        ));
        let _ = waiter.reject.call1(&JsValue::UNDEFINED, &error);
    }
}

/// The session token events are sent with (students read it out to their instructor).
#[wasm_bindgen(js_name = getSessionToken)]
pub fn get_session_token() -> String {
    with_client(|c| c.session.token.clone()).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    queued: usize,
    sent: u64,
    dropped: u64,
    retries: u64,
    last_error: Option<String>,
}

/// Delivery counters: `{queued, sent, dropped, retries, lastError}` (see `SessionLogStats`).
#[wasm_bindgen(unchecked_return_type = "SessionLogStats")]
pub fn stats() -> JsValue {
    with_client(|c| Stats {
        queued: c.queue.queue().len(),
        sent: c.sent,
        dropped: c.dropped,
        retries: c.retries,
        last_error: c.last_error.clone(),
    })
    .and_then(|s| to_js(&s).ok())
    .unwrap_or(JsValue::NULL)
}
