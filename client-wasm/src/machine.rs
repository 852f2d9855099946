//! The client's delivery state machine: every decision about what to send, when, what to keep and
//! what to tell the page, with no I/O in it (in the style of `quinn-proto`). The browser layer
//! (`web`) feeds it inputs — an event was logged, options changed, a reply came, a timer fired,
//! the page went hidden, the browser went online or offline, another tab is gone — and carries out
//! the [`Action`]s it returns from [`Machine::poll_action`]: send this batch, send these beacons,
//! set a timer, resolve or reject a `flush()`, warn, call `onDeliveryError`, wait on a tab's lock.
//!
//! Storage is the one thing the machine reaches directly, through the synchronous [`Store`] trait
//! (`localStorage` is synchronous, and a page-exit handler must write before the page is torn
//! down); a refused write is an answer at once, not a later input. The native tests run the
//! machine with an in-memory store and scripted replies and timers.

use crate::capture::{Capture, ErrorCapture};
use crate::durable::{DurableQueue, Limits, Store};
use crate::pipeline::{self, cat, decimal, join, Backoff, Config, EventKind, EventPlan, OptionValue, Outcome, Session};

/// `localStorage` key of the generated session token.
pub const TOKEN_KEY: &str = "session-log:sessionToken";
/// `localStorage` key prefix of the next sequence number of a session (`…:<token>`).
pub const SEQ_KEY_PREFIX: &str = "session-log:seq:";
/// `localStorage` key set (to `1`) while the browser's user has opted out.
pub const OPT_OUT_KEY: &str = "session-log:optOut";
/// How often a page looks for queues of other tabs to wait on (ms).
pub const ADOPTION_SCAN_MS: u32 = 30_000;
/// The beacon budget of a page being closed: the Fetch standard caps keepalive bodies (beacons
/// included) at 64 KiB in flight per page, in total; stay under it (bytes).
pub const BEACON_BUDGET_BYTES: usize = 60 * 1024;

pub use crate::capture::{ERROR_BUCKET, ERROR_REFILL_MS, ERROR_WINDOW_MS};

/// The timers the machine asks for. [`Timer::code`] and [`Timer::from_code`] carry one through
/// `setTimeout`'s argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Send what is queued (`flushIntervalMs` after the first queued event).
    Flush,
    /// The backoff after a failed send is over.
    Retry,
    /// Write this task's events to storage (write-behind, 0 ms: the next task).
    Persist,
    /// Look for other tabs' queues to adopt.
    AdoptionScan,
    /// The collapse window of captured errors is over: log what it gathered.
    ErrorWindow,
    /// `flush()` number `id` has waited `flushTimeoutMs`.
    FlushTimeout(u32),
}

impl Timer {
    /// The timer as one number.
    pub fn code(self) -> u32 {
        match self {
            Timer::Flush => 0,
            Timer::Retry => 1,
            Timer::Persist => 2,
            Timer::AdoptionScan => 3,
            Timer::ErrorWindow => 4,
            Timer::FlushTimeout(id) => 5 + id,
        }
    }

    /// The timer of [`Timer::code`]'s number.
    pub fn from_code(code: u32) -> Timer {
        match code {
            0 => Timer::Flush,
            1 => Timer::Retry,
            2 => Timer::Persist,
            3 => Timer::AdoptionScan,
            4 => Timer::ErrorWindow,
            n => Timer::FlushTimeout(n - 5),
        }
    }
}

/// What the page's `onDeliveryError` callback receives: `{message, willRetry, queued}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryProblem {
    /// What went wrong, e.g. `the server answered HTTP 503; will retry`.
    pub message: String,
    /// Whether the events stay queued for another try.
    pub will_retry: bool,
    /// Events waiting to be delivered.
    pub queued: usize,
}

/// What the browser layer must do, in the order returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST `body` (`{"events": […], "dropped"?: N}`, JSON) to `endpoint`, then report the answer
    /// with [`Machine::on_reply`]. At most one is outstanding.
    Send {
        /// The URL to POST to.
        endpoint: String,
        /// The batch's JSON.
        body: String,
    },
    /// The page is going away: send each body with `navigator.sendBeacon` as `text/plain`
    /// (fetch with `keepalive` where a beacon is refused); no answer is awaited. Together they
    /// stay under [`BEACON_BUDGET_BYTES`].
    Beacons {
        /// The URL to send to.
        endpoint: String,
        /// The batches' JSON.
        bodies: Vec<String>,
    },
    /// Call [`Machine::on_timer`] with this timer after `ms` milliseconds.
    SetTimer(Timer, u32),
    /// Resolve `flush()` number `id`.
    ResolveFlush(u32),
    /// Reject `flush()` number `id` with an `Error` of this message.
    RejectFlush(u32, String),
    /// `console.warn` this (prefixed `session-log: `), once per distinct text.
    Warn(String),
    /// Call the page's `onDeliveryError` callback, if any.
    DeliveryError(DeliveryProblem),
    /// Wait for the Web Lock of this tab; when granted, the tab is gone: call
    /// [`Machine::on_tab_gone`].
    WatchTab(String),
    /// Install (true) or remove (false) the auto-capture hooks of each kind; sent when
    /// `configure` changes them.
    Capture {
        /// `error` and `unhandledrejection` listeners.
        errors: bool,
        /// `fetch` and `XMLHttpRequest` wrappers.
        fetch: bool,
        /// `pushState`/`replaceState` wrappers, `popstate` and `hashchange` listeners.
        history: bool,
    },
    /// Log this event as a logging call at `at_ms` would (auto-capture): plan it with
    /// [`Machine::plan`], build, redact and filter it, [`Machine::push_event`].
    Log(EventKind, f64),
}

/// The server's answer to a [`Action::Send`], as the browser layer read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// HTTP status; 0 when no answer came (network error, timeout).
    pub status: u16,
    /// The wait a `Retry-After` header asked for (ms; see [`pipeline::retry_after_ms`]).
    pub retry_after_ms: Option<u32>,
    /// How many of the batch's events a 2xx answer lists under `rejected` (refused for good).
    pub rejected: usize,
    /// The server's reason: `rejected[0].error` of a 2xx, `error` of a 4xx; for status 0 the
    /// network error's message.
    pub reason: Option<String>,
}

/// Delivery counters (`stats()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events waiting to be delivered.
    pub queued: usize,
    /// Events the server acknowledged.
    pub sent: u64,
    /// Events refused by the server for good, or dropped from a full queue.
    pub dropped: u64,
    /// Failed sends that will be (or were) retried.
    pub retries: u64,
    /// The last delivery problem.
    pub last_error: Option<String>,
    /// The endpoint in force (the help channel polls below it).
    pub endpoint: String,
}

/// A pending `flush()`: done once `settled` reaches `target`.
#[derive(Debug)]
struct Waiter {
    id: u32,
    target: u64,
}

/// The client: session, durable queue, delivery state and counters.
pub struct Machine<S: Store> {
    session: Session,
    tab: String,
    queue: DurableQueue<S>,
    backoff: Backoff,
    /// A flush timer is set.
    flush_timer: bool,
    /// A retry timer is set: no send before it fires.
    retry_pending: bool,
    /// Events in the batch being sent (0: none).
    in_flight: usize,
    /// Delivery is paused until the browser is back online.
    offline: bool,
    /// A write-behind of pending events is scheduled.
    persist_scheduled: bool,
    /// Events ever queued in this page.
    enqueued: u64,
    /// Events that left the queue: delivered, refused for good or dropped.
    settled: u64,
    sent: u64,
    dropped: u64,
    retries: u64,
    last_error: Option<String>,
    waiters: Vec<Waiter>,
    next_waiter_id: u32,
    /// Other tabs whose lock this page waits on.
    watched_tabs: Vec<String>,
    /// The user opted out ([`OPT_OUT_KEY`]; read again before each send, so another tab's
    /// opt-out stops this one too).
    opted_out: bool,
    /// What the page captures by itself.
    capture: Capture,
    actions: Vec<Action>,
}

fn limits(config: &Config) -> Limits {
    Limits { max_events: config.max_queue_events, max_bytes: config.max_queue_bytes }
}

/// The token for `config`: the configured one, else the one kept in the store, else a new one
/// from `fresh` (128 random bits), which is kept there so a reload continues the session.
fn resolve_token<S: Store>(config: &Config, store: &mut S, fresh: [u8; 16]) -> String {
    if let Some(token) = &config.session_token {
        return token.clone();
    }
    if let Some(stored) = store.get(TOKEN_KEY) {
        if session_log_protocol::check_session_token(&stored).is_ok() {
            return stored;
        }
    }
    let token = pipeline::session_token(fresh);
    let _ = store.set(TOKEN_KEY, &token);
    token
}

impl<S: Store> Machine<S> {
    /// Starts the client of tab `tab` with default options: loads the tab's stored queue and the
    /// session token (`fresh` makes a new one when none is kept), and asks to send what a previous
    /// page left (in the next task, after the page's first `configure`) and to scan for other
    /// tabs' queues.
    pub fn new(mut store: S, tab: &str, user_agent: String, fresh: [u8; 16], online: bool) -> Self {
        let config = Config::default();
        let token = resolve_token(&config, &mut store, fresh);
        let queue = DurableQueue::open(store, tab, limits(&config));
        let mut machine = Machine {
            backoff: Backoff::new(config.retry_base_ms, config.retry_max_ms),
            session: Session::new(config, token, 0, user_agent),
            tab: tab.to_owned(),
            enqueued: queue.queue().len() as u64,
            queue,
            flush_timer: false,
            retry_pending: false,
            in_flight: 0,
            offline: !online,
            persist_scheduled: false,
            settled: 0,
            sent: 0,
            dropped: 0,
            retries: 0,
            last_error: None,
            waiters: Vec::new(),
            next_waiter_id: 0,
            watched_tabs: Vec::new(),
            opted_out: false,
            capture: Capture::default(),
            actions: Vec::new(),
        };
        machine.opted_out = machine.read_opt_out();
        machine.session.next_seq = machine.next_seq_of(&machine.session.token.clone());
        machine.actions.push(Action::SetTimer(Timer::AdoptionScan, 0));
        // Events a previous page of this tab left behind are overdue: send them in the next task,
        // once the page's first calls (its `configure`, with the endpoint) have run.
        if !machine.queue.queue().is_empty() {
            machine.flush_timer = true;
            machine.actions.push(Action::SetTimer(Timer::Flush, 0));
        }
        machine
    }

    /// The next action to carry out, oldest first; `None` when there is nothing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// The session token events are sent with.
    pub fn token(&self) -> &str {
        &self.session.token
    }

    /// This tab's id (its queue's name in storage).
    pub fn tab(&self) -> &str {
        &self.tab
    }

    /// The delivery counters.
    pub fn stats(&self) -> Stats {
        Stats {
            queued: self.queue.queue().len(),
            sent: self.sent,
            dropped: self.dropped,
            retries: self.retries,
            last_error: self.last_error.clone(),
            endpoint: self.session.config.endpoint.clone(),
        }
    }

    fn warn(&mut self, message: String) {
        self.actions.push(Action::Warn(message));
    }

    /// `configure(options)`: merges `options` into the options in force (see [`Config::merged`]).
    /// A bad option warns and changes nothing; unknown names warn and are ignored. A different
    /// session token (configured, or back to the kept one, or `fresh` when none is kept) continues
    /// that session's numbering; smaller queue bounds drop the oldest events at once.
    ///
    /// Returns whether the options were applied (the browser layer then keeps `beforeSend`).
    pub fn configure(&mut self, options: Vec<(String, OptionValue)>, fresh: [u8; 16]) -> bool {
        let (config, unknown) = match self.session.config.merged(options) {
            Ok(merged) => merged,
            Err(error) => {
                self.warn(cat(&["configure: ", &error, "; options unchanged"]));
                return false;
            }
        };
        if !unknown.is_empty() {
            self.warn(cat(&[
                "configure: unknown option(s) ",
                &join(&unknown.iter().map(String::as_str).collect::<Vec<_>>(), ", "),
                " (known: ",
                &join(pipeline::CONFIG_KEYS, ", "),
                ")",
            ]));
        }
        let token = resolve_token(&config, self.queue.store_mut(), fresh);
        if token != self.session.token {
            self.persist();
            self.session.next_seq = self.next_seq_of(&token);
            self.session.token = token;
        }
        self.backoff = Backoff::new(config.retry_base_ms, config.retry_max_ms);
        let dropped = self.queue.set_limits(limits(&config));
        self.session.rules = config.rules();
        self.queue.set_envelope(config.envelope());
        let old = &self.session.config;
        if (old.capture_errors, old.capture_fetch, old.capture_history)
            != (config.capture_errors, config.capture_fetch, config.capture_history)
        {
            self.actions.push(Action::Capture {
                errors: config.capture_errors,
                fetch: config.capture_fetch,
                history: config.capture_history,
            });
        }
        self.session.config = config;
        self.count_drops(dropped);
        self.schedule();
        true
    }

    /// `setStep(step)`: the current step of the following events. Not a whole number ≥ 0: a
    /// warning, and the step stays.
    pub fn set_step(&mut self, step: f64) {
        match pipeline::step_number(step) {
            Some(step) => self.session.current_step = step,
            None => self.warn("setStep expects a whole number ≥ 0".to_owned()),
        }
    }

    /// A logging call at `at_ms`: plans its event (see [`Session::plan`]); the browser layer
    /// builds its `eventData` from the plan, passes it through [`Machine::redact`] (and the
    /// page's `beforeSend`) and hands it to [`Machine::push_event`]. `None` when nothing is to be
    /// logged: the user opted out, the session is not sampled (`sampleRate`), or (with a warning)
    /// the call is refused, e.g. a custom `eventType` the server would refuse.
    pub fn plan(&mut self, kind: EventKind, at_ms: f64, random: [u8; 10]) -> Option<EventPlan> {
        if self.opted_out || !pipeline::sampled(&self.session.token, self.session.config.sample_rate) {
            return None;
        }
        match self.session.plan(kind, at_ms, random) {
            Ok(plan) => Some(plan),
            Err(reason) => {
                self.warn(cat(&["logSessionEvent: eventType ", reason, "; not logged"]));
                None
            }
        }
    }

    /// `eventData` (JSON text of an object) with the configured redaction applied.
    pub fn redact(&self, data_json: String) -> String {
        match self.session.rules.redact_json(&data_json) {
            Some((clean, _)) => clean,
            None => data_json,
        }
    }

    /// Queues the event of `plan` with its (redacted) `eventData`.
    pub fn push_event(&mut self, plan: &EventPlan, data_json: &str) {
        if !self.opted_out {
            self.push(plan.to_json(data_json));
        }
    }

    /// The page's `beforeSend` threw for an event: it is dropped (a broken privacy filter must
    /// not leak), counted in `stats().dropped`, and reported once.
    pub fn filter_failed(&mut self, reason: &str) {
        self.dropped += 1;
        self.warn(cat(&["beforeSend threw (", reason, "); the event was dropped"]));
    }

    /// `optOut()`: nothing is queued, stored or sent any more, in this page or (from their next
    /// send) the origin's other tabs, until [`Machine::opt_in`]; what is waiting is forgotten,
    /// and pending `flush()`es resolve. Kept across reloads.
    pub fn opt_out(&mut self) {
        self.opted_out = true;
        let _ = self.queue.store_mut().set(OPT_OUT_KEY, "1");
        let forgotten = self.queue.clear() as u64;
        self.in_flight = 0;
        self.settled += forgotten;
        self.finish_waiters();
    }

    /// `optIn()`: logging resumes (from the next call).
    pub fn opt_in(&mut self) {
        self.opted_out = false;
        self.queue.store_mut().remove(OPT_OUT_KEY);
    }

    /// `hasOptedOut()`.
    pub fn has_opted_out(&self) -> bool {
        self.opted_out
    }

    fn read_opt_out(&mut self) -> bool {
        self.queue.store_mut().get(OPT_OUT_KEY).is_some_and(|v| v == "1")
    }

    /// An uncaught error or an unhandled rejection, at `at_ms` (see [`Capture::error`]): the
    /// first of a window sets its timer; one over the rate limit warns instead.
    pub fn captured_error(
        &mut self,
        rejection: bool,
        message: String,
        stack: Option<String>,
        source: Option<(String, u32, u32)>,
        at_ms: f64,
    ) {
        match self.capture.error(rejection, message, stack, source, at_ms) {
            ErrorCapture::OpensWindow => self.actions.push(Action::SetTimer(Timer::ErrorWindow, ERROR_WINDOW_MS)),
            ErrorCapture::Limited(error_type) => self.warn(cat(&[
                "captured ",
                error_type,
                " events are limited to 10 at once and 6 a minute; more were not logged",
            ])),
            ErrorCapture::Gathered => {}
        }
    }

    /// Logs the captured errors gathered so far (the window closed, or the page is going away).
    pub fn flush_captured(&mut self) {
        for burst in self.capture.take_errors() {
            self.actions.push(Action::Log(burst.kind, burst.at_ms));
        }
    }

    /// A `fetch` or `XMLHttpRequest` of the page ended at `at_ms` (see [`Capture::request`]);
    /// requests to the configured endpoint (the client's own) are not logged.
    pub fn captured_request(
        &mut self,
        method: &str,
        url: &str,
        status: f64,
        duration_ms: f64,
        page_origin: &str,
        at_ms: f64,
    ) {
        let endpoint = &self.session.config.endpoint;
        if let Some(kind) = Capture::request(endpoint, method, url, status, duration_ms, page_origin) {
            self.actions.push(Action::Log(kind, at_ms));
        }
    }

    /// The page's route changed to `url` at `at_ms` (see [`Capture::navigation`]).
    pub fn captured_navigation(&mut self, url: &str, at_ms: f64) {
        if let Some(kind) = self.capture.navigation(url) {
            self.actions.push(Action::Log(kind, at_ms));
        }
    }

    /// The path the page had when history capture started (no event).
    pub fn set_current_path(&mut self, url: &str) {
        self.capture.set_current_path(url);
    }

    /// Queues one event's JSON (see [`Machine::push_event`]). Over the queue's bounds the oldest
    /// events are dropped and reported; a batch is sent when due, else a flush timer is set; the
    /// write to storage happens in the next task.
    fn push(&mut self, json: String) {
        let dropped = self.queue.push(json);
        self.enqueued += 1;
        self.count_drops(dropped);
        if !self.persist_scheduled {
            self.persist_scheduled = true;
            self.actions.push(Action::SetTimer(Timer::Persist, 0));
        }
        self.schedule();
    }

    /// `flush()`: send now. `None` when nothing logged is still pending (resolve at once); else
    /// the id of the flush, which is resolved ([`Action::ResolveFlush`]) once every event queued
    /// before it has settled, or rejected after `flushTimeoutMs`.
    pub fn flush(&mut self) -> Option<u32> {
        if self.settled >= self.enqueued {
            return None;
        }
        self.next_waiter_id += 1;
        let id = self.next_waiter_id;
        self.waiters.push(Waiter { id, target: self.enqueued });
        self.actions.push(Action::SetTimer(Timer::FlushTimeout(id), self.session.config.flush_timeout_ms));
        self.schedule();
        Some(id)
    }

    /// A timer set by [`Action::SetTimer`] fired.
    pub fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Flush => {
                self.flush_timer = false;
                self.pump();
            }
            Timer::Retry => {
                self.retry_pending = false;
                self.pump();
            }
            Timer::Persist => self.persist(),
            Timer::ErrorWindow => self.flush_captured(),
            Timer::AdoptionScan => {
                for tab in self.queue.other_tabs() {
                    if !self.watched_tabs.contains(&tab) {
                        self.watched_tabs.push(tab.clone());
                        self.actions.push(Action::WatchTab(tab));
                    }
                }
                self.actions.push(Action::SetTimer(Timer::AdoptionScan, ADOPTION_SCAN_MS));
            }
            Timer::FlushTimeout(id) => {
                let Some(index) = self.waiters.iter().position(|w| w.id == id) else {
                    return;
                };
                self.waiters.remove(index);
                let message = cat(&[
                    "session-log: flush timed out after ",
                    &decimal(u64::from(self.session.config.flush_timeout_ms)),
                    " ms; ",
                    &decimal(self.queue.queue().len() as u64),
                    " event(s) still queued and will be retried",
                ]);
                self.actions.push(Action::RejectFlush(id, message));
            }
        }
    }

    /// The answer to the outstanding [`Action::Send`]; `online` is `navigator.onLine` now and
    /// `random` a uniform number in `[0, 1)` for the backoff's jitter.
    ///
    /// 2xx: the batch leaves the queue (its `rejected` events count as dropped, with a warning).
    /// Network error, 408, 429, 5xx: the batch stays first; retry after the backoff or the
    /// `Retry-After`, whichever is longer; while offline, no retry is spent until
    /// [`Machine::on_online`]. Other 4xx: the batch is refused for good, with a warning.
    pub fn on_reply(&mut self, reply: Reply, online: bool, random: f64) {
        let count = std::mem::take(&mut self.in_flight);
        if count == 0 {
            return;
        }
        let status = reply.status;
        let reason = reply.reason.unwrap_or_default();
        let outcome = pipeline::outcome(status);
        match outcome {
            Outcome::Delivered => {
                let refused = reply.rejected;
                if refused > 0 {
                    let message = cat(&["the server refused ", &decimal(refused as u64), " event(s): ", &reason]);
                    self.warn(message.clone());
                    self.last_error = Some(message);
                }
                self.finish(refused);
                self.backoff.reset();
            }
            Outcome::Refused => {
                // No count in the text: a refused key or origin refuses every batch alike, and
                // warns once, not once per batch size.
                let end = if reason.is_empty() { ")" } else { "): " };
                let message = cat(&["the server refused a batch (HTTP ", &decimal(u64::from(status)), end, &reason]);
                self.warn(message.clone());
                self.last_error = Some(message);
                self.finish(usize::MAX);
            }
            Outcome::Retry => {
                self.queue.release_batch();
                self.retries += 1;
                let message = if status == 0 {
                    cat(&["could not reach ", &self.session.config.endpoint, ": ", &reason, "; will retry"])
                } else {
                    cat(&["the server answered HTTP ", &decimal(u64::from(status)), "; will retry"])
                };
                self.warn(message.clone());
                self.last_error = Some(message);
                if online {
                    let delay = self.backoff.next_delay_ms(random).max(reply.retry_after_ms.unwrap_or(0));
                    self.retry_pending = true;
                    self.actions.push(Action::SetTimer(Timer::Retry, delay));
                } else {
                    self.offline = true;
                }
            }
        }
        if outcome != Outcome::Delivered || reply.rejected > 0 {
            let problem = DeliveryProblem {
                message: self.last_error.clone().unwrap_or_default(),
                will_retry: outcome == Outcome::Retry,
                queued: self.queue.queue().len(),
            };
            self.actions.push(Action::DeliveryError(problem));
        }
        self.finish_waiters();
        self.pump();
    }

    /// The browser went online (`true`: send what is queued at once, backoff reset) or offline (`false`: no
    /// retries are spent until it is back).
    pub fn on_online(&mut self, online: bool) {
        if !online {
            self.offline = true;
            return;
        }
        self.offline = false;
        self.retry_pending = false;
        self.backoff.reset();
        self.pump();
    }

    /// The page is going away (`pagehide`, or hidden): writes what is pending to storage and
    /// sends the whole queue as beacons within the budget. The events stay queued and stored: a
    /// later page sends them again unless acknowledged (the server's dedup makes that safe).
    pub fn on_page_hidden(&mut self) {
        self.persist();
        let max_events = self.session.config.max_batch_events;
        let mut budget = BEACON_BUDGET_BYTES;
        let mut bodies = Vec::new();
        for body in self.queue.chunks(max_events, BEACON_BUDGET_BYTES) {
            if body.len() > budget {
                break;
            }
            budget -= body.len();
            bodies.push(body);
        }
        if !bodies.is_empty() {
            self.actions.push(Action::Beacons { endpoint: self.session.config.endpoint.clone(), bodies });
        }
    }

    /// Tab `tab`'s lock was granted: it is gone, and its stored queue joins this one.
    pub fn on_tab_gone(&mut self, tab: &str) {
        self.watched_tabs.retain(|t| t != tab);
        if self.opted_out {
            return;
        }
        let adopted = self.queue.adopt(tab);
        self.enqueued += adopted as u64;
        self.schedule();
    }

    /// After a change: send now when a batch is due (or a flush waits), else make sure a flush
    /// timer is set.
    fn schedule(&mut self) {
        let queue = self.queue.queue();
        if self.in_flight > 0 || self.retry_pending || self.offline || queue.is_empty() {
            return;
        }
        let c = &self.session.config;
        if queue.is_due(c.max_batch_events, c.max_batch_bytes) || !self.waiters.is_empty() {
            return self.pump();
        }
        if !self.flush_timer {
            self.flush_timer = true;
            self.actions.push(Action::SetTimer(Timer::Flush, c.flush_interval_ms));
        }
    }

    /// Starts the next batch unless one is in flight, a retry waits, or the browser is offline.
    /// An opt-out made by another tab since the last send clears the queue instead.
    fn pump(&mut self) {
        if self.in_flight > 0 || self.retry_pending || self.offline {
            return;
        }
        if !self.opted_out && !self.queue.queue().is_empty() && self.read_opt_out() {
            self.opt_out();
        }
        if self.opted_out {
            return;
        }
        self.persist();
        let c = &self.session.config;
        let Some(batch) = self.queue.start_batch(c.max_batch_events, c.max_batch_bytes) else {
            return;
        };
        self.in_flight = batch.count;
        self.actions.push(Action::Send { endpoint: c.endpoint.clone(), body: batch.body });
    }

    /// Writes pending events to storage (one chunk) and the session's next seq.
    fn persist(&mut self) {
        self.persist_scheduled = false;
        if !self.queue.has_pending() {
            return;
        }
        let dropped = self.queue.persist();
        self.count_drops(dropped);
        let key = cat(&[SEQ_KEY_PREFIX, &self.session.token]);
        let seq = decimal(self.session.next_seq);
        if self.queue.store_mut().set(&key, &seq).is_err() {
            self.warn("localStorage refused a write (quota or privacy settings)".to_owned());
        }
    }

    /// The next seq of `token`: past what was stored and what is queued.
    fn next_seq_of(&mut self, token: &str) -> u64 {
        let stored = self.queue.store_mut().get(&cat(&[SEQ_KEY_PREFIX, token])).and_then(|s| s.parse().ok());
        stored.unwrap_or(0).max(self.queue.max_seq(token).map_or(0, |s| s + 1))
    }

    fn count_drops(&mut self, dropped: usize) {
        if dropped > 0 {
            self.settled += dropped as u64;
            self.dropped += dropped as u64;
            self.warn(
                "the event queue is full (maxQueueEvents / maxQueueBytes, or storage quota): oldest events dropped and reported"
                    .to_owned(),
            );
            self.finish_waiters();
        }
    }

    /// Removes the batch in flight; `refused` of its events (at most all) were refused for good.
    fn finish(&mut self, refused: usize) {
        let removed = self.queue.finish_batch();
        let refused = refused.min(removed);
        self.settled += removed as u64;
        self.sent += (removed - refused) as u64;
        self.dropped += refused as u64;
    }

    fn finish_waiters(&mut self) {
        let settled = self.settled;
        let mut index = 0;
        while let Some(waiter) = self.waiters.get(index) {
            if waiter.target <= settled {
                let id = waiter.id;
                self.waiters.remove(index);
                self.actions.push(Action::ResolveFlush(id));
            } else {
                index += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use serde_json::Value;

    use super::*;
    use crate::durable::StoreFull;

    /// An in-memory `localStorage` that the test can read while the machine owns it.
    #[derive(Clone, Default)]
    struct SharedStore(Rc<RefCell<BTreeMap<String, String>>>);

    impl Store for SharedStore {
        fn get(&self, key: &str) -> Option<String> {
            self.0.borrow().get(key).cloned()
        }
        fn set(&mut self, key: &str, value: &str) -> Result<(), StoreFull> {
            self.0.borrow_mut().insert(key.to_owned(), value.to_owned());
            Ok(())
        }
        fn remove(&mut self, key: &str) {
            self.0.borrow_mut().remove(key);
        }
        fn keys(&self) -> Vec<String> {
            self.0.borrow().keys().cloned().collect()
        }
    }

    fn machine(store: &SharedStore) -> Machine<SharedStore> {
        let mut m = Machine::new(store.clone(), "tab1", "UA".into(), [1; 16], true);
        drain(&mut m);
        m
    }

    fn drain(m: &mut Machine<SharedStore>) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn options(pairs: &[(&str, OptionValue)]) -> Vec<(String, OptionValue)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn num(n: f64) -> OptionValue {
        OptionValue::Number(n)
    }

    /// Logs one action event the way `web` does: plan, then a JSON string shaped like the real one.
    fn log(m: &mut Machine<SharedStore>, name: &str) {
        let plan = m.plan(EventKind::Action { action_name: name.into() }, 1_000.0, [0; 10]).unwrap();
        let data = m.redact(serde_json::json!({ "actionName": name }).to_string());
        m.push_event(&plan, &data);
    }

    fn sends(actions: &[Action]) -> Vec<Vec<String>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { body, .. } => Some(names(body)),
                _ => None,
            })
            .collect()
    }

    fn names(body: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(body).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventData"]["actionName"].as_str().unwrap().to_owned())
            .collect()
    }

    fn ok() -> Reply {
        Reply { status: 200, ..Reply::default() }
    }

    // The first event sets the flush timer; the timer sends what is queued as one batch.
    #[test]
    fn flush_timer_sends_the_queue() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        log(&mut m, "a");
        log(&mut m, "b");
        let actions = drain(&mut m);
        assert!(actions.contains(&Action::SetTimer(Timer::Flush, 1000)));
        assert_eq!(actions.iter().filter(|a| matches!(a, Action::SetTimer(Timer::Flush, _))).count(), 1);
        assert!(sends(&actions).is_empty());
        m.on_timer(Timer::Flush);
        assert_eq!(sends(&drain(&mut m)), [vec!["a", "b"]]);
    }

    // maxBatchEvents queued events send at once; one batch is in flight at a time.
    #[test]
    fn full_batch_sends_at_once_one_at_a_time() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        m.configure(options(&[("maxBatchEvents", num(2.0))]), [2; 16]);
        for name in ["a", "b", "c", "d", "e"] {
            log(&mut m, name);
        }
        assert_eq!(sends(&drain(&mut m)), [vec!["a", "b"]], "later batches wait for the answer");
        m.on_reply(ok(), true, 0.5);
        assert_eq!(sends(&drain(&mut m)), [vec!["c", "d"]]);
        m.on_reply(ok(), true, 0.5);
        assert_eq!(sends(&drain(&mut m)), [vec!["e"]]);
        m.on_reply(ok(), true, 0.5);
        assert_eq!(m.stats().sent, 5);
        assert_eq!(m.stats().queued, 0);
    }

    // A 503 keeps the batch first and retries after max(backoff, Retry-After).
    #[test]
    fn retry_waits_for_backoff_or_retry_after() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        log(&mut m, "a");
        m.on_timer(Timer::Flush);
        drain(&mut m);
        m.on_reply(Reply { status: 503, retry_after_ms: Some(5000), ..Reply::default() }, true, 0.5);
        let actions = drain(&mut m);
        assert!(actions.contains(&Action::SetTimer(Timer::Retry, 5000)), "{actions:?}");
        assert!(actions.iter().any(|a| matches!(a, Action::DeliveryError(p) if p.will_retry && p.queued == 1)));
        log(&mut m, "b");
        assert!(sends(&drain(&mut m)).is_empty(), "nothing is sent while the retry waits");
        m.on_timer(Timer::Retry);
        assert_eq!(sends(&drain(&mut m)), [vec!["a", "b"]]);
        m.on_reply(Reply { status: 0, reason: Some("Failed to fetch".into()), ..Reply::default() }, true, 0.999);
        let actions = drain(&mut m);
        assert!(actions.contains(&Action::SetTimer(Timer::Retry, 1998)), "doubled, with jitter: {actions:?}");
        assert!(m.stats().last_error.unwrap().contains("Failed to fetch"));
        assert_eq!(m.stats().retries, 2);
    }

    // Offline, a failure spends no retry timer; going online resumes at once.
    #[test]
    fn offline_waits_for_online() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        log(&mut m, "a");
        m.on_timer(Timer::Flush);
        drain(&mut m);
        m.on_reply(Reply::default(), false, 0.5);
        assert!(!drain(&mut m).iter().any(|a| matches!(a, Action::SetTimer(Timer::Retry, _))));
        m.on_online(true);
        assert_eq!(sends(&drain(&mut m)), [vec!["a"]]);
    }

    // A 4xx refuses the batch for good (warned, counted as dropped); events a 2xx lists as
    // rejected are dropped and the rest count as sent.
    #[test]
    fn refusals_drop_only_what_the_server_names() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        log(&mut m, "a");
        log(&mut m, "b");
        m.on_timer(Timer::Flush);
        drain(&mut m);
        m.on_reply(
            Reply { status: 200, rejected: 1, reason: Some("eventData: too deep".into()), ..Reply::default() },
            true,
            0.5,
        );
        let actions = drain(&mut m);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Warn(w) if w.contains("refused 1 event(s): eventData: too deep"))));
        assert_eq!((m.stats().sent, m.stats().dropped), (1, 1));
        log(&mut m, "c");
        m.on_timer(Timer::Flush);
        drain(&mut m);
        m.on_reply(Reply { status: 413, reason: Some("body too large".into()), ..Reply::default() }, true, 0.5);
        let actions = drain(&mut m);
        assert!(actions.iter().any(|a| matches!(a, Action::DeliveryError(p) if !p.will_retry)));
        assert_eq!((m.stats().sent, m.stats().dropped, m.stats().queued), (1, 2, 0));
        assert!(m.stats().last_error.unwrap().contains("(HTTP 413): body too large"));
    }

    /// The body of the one `Send` among `actions`.
    fn sent_body(actions: Vec<Action>) -> String {
        actions
            .into_iter()
            .find_map(|a| match a {
                Action::Send { body, .. } => Some(body),
                _ => None,
            })
            .expect("a Send")
    }

    // writeKey and room ride once on every batch and beacon body, after the events.
    #[test]
    fn write_key_and_room_travel_once_per_body() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let key = OptionValue::Text("wk_0123".into());
        m.configure(options(&[("writeKey", key), ("room", OptionValue::Text("K7P-Q2X".into()))]), [2; 16]);
        log(&mut m, "a");
        log(&mut m, "b");
        m.on_timer(Timer::Flush);
        let body = sent_body(drain(&mut m));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["writeKey"].as_str(), v["room"].as_str()), (Some("wk_0123"), Some("K7P-Q2X")));
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        assert_eq!(body.matches("wk_0123").count(), 1, "{body}");
        m.on_page_hidden();
        let beacons = drain(&mut m)
            .into_iter()
            .find_map(|a| match a {
                Action::Beacons { bodies, .. } => Some(bodies),
                _ => None,
            })
            .unwrap();
        let v: Value = serde_json::from_str(&beacons[0]).unwrap();
        assert_eq!((v["writeKey"].as_str(), v["room"].as_str()), (Some("wk_0123"), Some("K7P-Q2X")));
        m.configure(options(&[("room", OptionValue::Null)]), [2; 16]);
        m.on_reply(ok(), true, 0.5);
        log(&mut m, "c");
        m.on_timer(Timer::Flush);
        let body = sent_body(drain(&mut m));
        assert!(body.ends_with(r#"],"writeKey":"wk_0123"}"#), "{body}");
        let long = OptionValue::Text("x".repeat(65));
        assert!(!m.configure(options(&[("writeKey", long)]), [2; 16]), "a key the server would refuse");
    }

    // A refused key or origin (401/403) drops each batch once, not retried, and warns once.
    #[test]
    fn refused_key_drops_batches_with_one_warning() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let mut warnings = Vec::new();
        for round in 1..=3 {
            for n in 0..round {
                log(&mut m, &format!("e{n}"));
            }
            m.on_timer(Timer::Flush);
            drain(&mut m);
            let reason = Some("unknown writeKey".to_owned());
            m.on_reply(Reply { status: 401, reason, ..Reply::default() }, true, 0.5);
            let actions = drain(&mut m);
            assert!(!actions.iter().any(|a| matches!(a, Action::SetTimer(Timer::Retry, _))), "no retry");
            warnings.extend(actions.into_iter().filter_map(|a| match a {
                Action::Warn(w) => Some(w),
                _ => None,
            }));
        }
        warnings.dedup();
        assert_eq!(warnings, ["the server refused a batch (HTTP 401): unknown writeKey"]);
        assert_eq!((m.stats().dropped, m.stats().queued), (6, 0));
    }

    // maxQueueEvents set by configure bounds the queue: the oldest are dropped and the count
    // rides on the next batch.
    #[test]
    fn configured_queue_bound_drops_oldest_and_reports() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        m.configure(
            options(&[
                ("maxBatchEvents", num(10.0)),
                ("maxQueueEvents", num(60.0)),
                ("endpoint", OptionValue::Text("http://127.0.0.1:9/x".into())),
            ]),
            [2; 16],
        );
        drain(&mut m);
        m.on_online(false);
        for n in 0..100 {
            log(&mut m, &decimal(n));
        }
        let stats = m.stats();
        assert_eq!((stats.queued, stats.dropped), (60, 40));
        m.on_online(true);
        let actions = drain(&mut m);
        let Some(Action::Send { body, .. }) = actions.iter().find(|a| matches!(a, Action::Send { .. })) else {
            panic!("{actions:?}")
        };
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["dropped"], 40);
        assert_eq!(v["events"][0]["eventData"]["actionName"], "40", "the oldest went first");
        // Lowering the bound drops at once.
        m.configure(options(&[("maxQueueEvents", num(20.0))]), [2; 16]);
        assert_eq!(m.stats().queued, 20);
    }

    // A flush resolves once its events settle; one that cannot finish rejects at its timeout
    // and the events stay queued.
    #[test]
    fn flush_waiters_resolve_or_time_out() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        assert_eq!(m.flush(), None, "nothing pending: resolve at once");
        log(&mut m, "a");
        drain(&mut m);
        let id = m.flush().unwrap();
        let actions = drain(&mut m);
        assert!(actions.contains(&Action::SetTimer(Timer::FlushTimeout(id), 10_000)));
        assert_eq!(sends(&actions), [vec!["a"]], "a flush sends without waiting for the timer");
        m.on_reply(ok(), true, 0.5);
        assert!(drain(&mut m).contains(&Action::ResolveFlush(id)));
        m.on_timer(Timer::FlushTimeout(id));
        assert!(drain(&mut m).is_empty(), "a resolved flush does not reject later");

        log(&mut m, "b");
        let id = m.flush().unwrap();
        drain(&mut m);
        m.on_reply(Reply { status: 503, ..Reply::default() }, true, 0.5);
        drain(&mut m);
        m.on_timer(Timer::FlushTimeout(id));
        let actions = drain(&mut m);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::RejectFlush(i, msg) if *i == id && msg.contains("1 event(s) still queued"))));
        assert_eq!(m.stats().queued, 1);
    }

    // A second configure keeps the first one's options; a refused one changes nothing.
    #[test]
    fn configure_merges_and_refusal_keeps_options() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        m.configure(options(&[("endpoint", OptionValue::Text("https://logs.example/api".into()))]), [2; 16]);
        m.configure(options(&[("studentEmail", OptionValue::Text("ada@example.com".into()))]), [2; 16]);
        m.configure(options(&[("maxBatchEvents", num(0.0))]), [2; 16]);
        assert!(drain(&mut m).iter().any(|a| matches!(a, Action::Warn(w) if w.contains("maxBatchEvents"))));
        log(&mut m, "a");
        m.on_timer(Timer::Flush);
        let actions = drain(&mut m);
        let Some(Action::Send { endpoint, body }) = actions.iter().find(|a| matches!(a, Action::Send { .. })) else {
            panic!()
        };
        assert_eq!(endpoint, "https://logs.example/api");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            m.plan(EventKind::Action { action_name: "x".into() }, 0.0, [0; 10]).unwrap().student_email.as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(v["events"].as_array().unwrap().len(), 1);
    }

    // The generated token is kept in storage; a configured token numbers its own events, and
    // going back continues the first session's numbering.
    #[test]
    fn session_token_switches_keep_numbering() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let kept = m.token().to_owned();
        assert_eq!(store.get(TOKEN_KEY).as_deref(), Some(kept.as_str()));
        assert_eq!(kept, pipeline::session_token([1; 16]));
        log(&mut m, "a");
        log(&mut m, "b");
        m.configure(options(&[("sessionToken", OptionValue::Text("ws_given".into()))]), [2; 16]);
        assert_eq!(m.token(), "ws_given");
        assert_eq!(m.plan(EventKind::Action { action_name: "x".into() }, 0.0, [0; 10]).unwrap().seq, 0);
        m.configure(options(&[("sessionToken", OptionValue::Null)]), [3; 16]);
        assert_eq!(m.token(), kept, "back to the kept token, not a fresh one");
        log(&mut m, "y");
        let y: Value = serde_json::from_str(m.queue.queue().entries().last().unwrap().1).unwrap();
        assert_eq!(y["seq"], 2);
        // A new page of the same browser continues the session and its numbering.
        m.on_timer(Timer::Persist);
        let mut again = machine(&store);
        assert_eq!(again.token(), kept);
        assert_eq!(again.plan(EventKind::Action { action_name: "z".into() }, 0.0, [0; 10]).unwrap().seq, 3);
    }

    // Events logged in a task are written in the next one, as one chunk; a new page sends them.
    #[test]
    fn write_behind_and_reload() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        log(&mut m, "a");
        log(&mut m, "b");
        assert!(drain(&mut m).iter().filter(|a| matches!(a, Action::SetTimer(Timer::Persist, 0))).count() == 1);
        assert!(!store.keys().iter().any(|k| k.contains(":q:")), "nothing written during the calls");
        m.on_timer(Timer::Persist);
        assert_eq!(store.keys().iter().filter(|k| k.contains(":q:tab1:")).count(), 1);
        drop(m);
        let mut reloaded = Machine::new(store.clone(), "tab1", "UA".into(), [9; 16], true);
        assert_eq!(drain(&mut reloaded), [Action::SetTimer(Timer::AdoptionScan, 0), Action::SetTimer(Timer::Flush, 0)]);
        reloaded.configure(options(&[("endpoint", OptionValue::Text("https://logs.example/api".into()))]), [2; 16]);
        reloaded.on_timer(Timer::Flush);
        let actions = drain(&mut reloaded);
        assert_eq!(sends(&actions), [vec!["a", "b"]], "overdue events go out in the next task");
        assert!(
            matches!(&actions[0], Action::Send { endpoint, .. } if endpoint == "https://logs.example/api"),
            "to the configured endpoint"
        );
    }

    // On page exit the whole queue goes out as beacons under the 60 KiB budget, and stays stored.
    #[test]
    fn page_exit_sends_beacons_within_budget() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        m.configure(options(&[("maxBatchEvents", num(10.0))]), [2; 16]);
        m.on_online(false);
        let padding = "x".repeat(1000);
        for n in 0..100 {
            log(&mut m, &cat(&[&decimal(n), &padding]));
        }
        drain(&mut m);
        m.on_page_hidden();
        let actions = drain(&mut m);
        let Some(Action::Beacons { bodies, .. }) = actions.first() else { panic!("{actions:?}") };
        let total: usize = bodies.iter().map(String::len).sum();
        assert!(total <= BEACON_BUDGET_BYTES, "{total}");
        assert_eq!(bodies.len(), 5, "five bodies of ten ~1 KB events fit in 60 KiB");
        assert!(names(&bodies[0])[0].starts_with("0x"), "oldest first");
        assert_eq!(m.stats().queued, 100, "beaconed events stay until acknowledged");
        assert!(store.keys().iter().any(|k| k.contains(":q:tab1:")));
    }

    // A closed tab's stored queue is watched, then adopted when its lock is granted.
    #[test]
    fn closed_tab_queue_is_adopted() {
        let store = SharedStore::default();
        let mut other = Machine::new(store.clone(), "tab0", "UA".into(), [1; 16], false);
        log(&mut other, "orphan");
        other.on_timer(Timer::Persist);
        drop(other);
        let mut m = machine(&store);
        m.on_timer(Timer::AdoptionScan);
        let actions = drain(&mut m);
        assert!(actions.contains(&Action::WatchTab("tab0".into())));
        m.on_timer(Timer::AdoptionScan);
        assert!(!drain(&mut m).contains(&Action::WatchTab("tab0".into())), "each tab is watched once");
        m.on_tab_gone("tab0");
        m.on_timer(Timer::Flush);
        assert_eq!(sends(&drain(&mut m)), [vec!["orphan"]]);
        assert!(!store.keys().iter().any(|k| k.contains(":q:tab0:")));
    }

    // Secrets are redacted before an event is queued, so they never reach storage; redact: false
    // keeps the data as it is, and redactKeys adds names.
    #[test]
    fn events_are_redacted_before_they_are_queued() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let data = r#"{"apiKey":"sk-abcdefghijklmnopqrstuvwxyz","msg":"Bearer abcdefgh12345","phone":"+1555"}"#;
        assert_eq!(m.redact(data.to_owned()), r#"{"apiKey":"[redacted]","msg":"[redacted]","phone":"+1555"}"#);
        m.configure(
            options(&[("redact", OptionValue::Flag(false)), ("redactKeys", OptionValue::List(vec!["phone".into()]))]),
            [2; 16],
        );
        assert_eq!(
            m.redact(data.to_owned()),
            r#"{"apiKey":"sk-abcdefghijklmnopqrstuvwxyz","msg":"Bearer abcdefgh12345","phone":"[redacted]"}"#
        );
    }

    // Opting out forgets what waits (memory and storage), logs nothing more, survives a reload,
    // and reaches another tab at its next send; opting in resumes.
    #[test]
    fn opt_out_forgets_and_stops_everything() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let mut other = Machine::new(store.clone(), "tab2", "UA".into(), [1; 16], true);
        log(&mut other, "other_tab");
        log(&mut m, "a");
        m.on_timer(Timer::Persist);
        let id = m.flush().unwrap();
        drain(&mut m);
        m.opt_out();
        assert!(drain(&mut m).contains(&Action::ResolveFlush(id)), "nothing is pending any more");
        assert_eq!(m.stats().queued, 0);
        assert!(!store.keys().iter().any(|k| k.contains(":q:tab1:")), "the stored chunk is gone");
        assert!(m.plan(EventKind::Action { action_name: "x".into() }, 0.0, [0; 10]).is_none());
        m.on_reply(ok(), true, 0.5);
        assert!(sends(&drain(&mut m)).is_empty());
        let mut reloaded = machine(&store);
        assert!(reloaded.has_opted_out(), "kept across reloads");
        other.on_timer(Timer::Flush);
        assert!(sends(&drain(&mut other)).is_empty(), "the other tab stops at its next send");
        assert!(other.has_opted_out() && other.stats().queued == 0);
        reloaded.opt_in();
        log(&mut reloaded, "b");
        reloaded.on_timer(Timer::Flush);
        assert_eq!(sends(&drain(&mut reloaded)), [vec!["b"]]);
    }

    // sampleRate 0 logs nothing for this session; a throwing beforeSend counts the drop.
    #[test]
    fn sampling_and_failed_filters() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        m.configure(options(&[("sampleRate", OptionValue::Number(0.0))]), [2; 16]);
        assert!(m.plan(EventKind::Action { action_name: "x".into() }, 0.0, [0; 10]).is_none());
        m.configure(options(&[("sampleRate", OptionValue::Null)]), [2; 16]);
        assert!(m.plan(EventKind::Action { action_name: "x".into() }, 0.0, [0; 10]).is_some());
        m.filter_failed("TypeError: boom");
        assert_eq!(m.stats().dropped, 1);
        assert!(drain(&mut m)
            .iter()
            .any(|a| matches!(a, Action::Warn(w) if w.contains("beforeSend threw (TypeError: boom)"))));
    }

    fn logged(actions: &[Action]) -> Vec<EventKind> {
        actions.iter().filter_map(|a| if let Action::Log(kind, _) = a { Some(kind.clone()) } else { None }).collect()
    }

    // Identical errors within the window become one event with a count; different ones stay
    // apart; session-log's own errors are ignored.
    #[test]
    fn captured_errors_collapse() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        for n in 0..50 {
            m.captured_error(
                false,
                "boom".into(),
                Some("at f (app.js:1:1)".into()),
                Some(("app.js".into(), 1, 1)),
                1000.0 + f64::from(n),
            );
        }
        m.captured_error(true, "rejected".into(), None, None, 1100.0);
        m.captured_error(false, "own".into(), Some("at x (session_log_core.js:1:1)".into()), None, 1200.0);
        let actions = drain(&mut m);
        assert_eq!(actions, [Action::SetTimer(Timer::ErrorWindow, ERROR_WINDOW_MS)]);
        m.on_timer(Timer::ErrorWindow);
        let kinds = logged(&drain(&mut m));
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(
            matches!(&kinds[0], EventKind::CapturedError { error_type: "uncaught_error", count: 50, source: Some((s, 1, 1)), .. } if s == "app.js")
        );
        assert!(matches!(&kinds[1], EventKind::CapturedError { error_type: "unhandled_rejection", count: 1, .. }));
    }

    // Each kind is capped: ten at once, then one more every ten seconds.
    #[test]
    fn captured_errors_are_rate_limited() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let mut logged_count = 0;
        let mut at = 0.0;
        for round in 0..3 {
            for n in 0..20 {
                m.captured_error(false, cat(&["distinct ", &decimal(round * 100 + n)]), None, None, at);
            }
            m.on_timer(Timer::ErrorWindow);
            logged_count += logged(&drain(&mut m)).len();
            at += 10_000.0;
        }
        assert_eq!(logged_count, 12, "10 at once, then one per 10 s");
    }

    // Requests become api_call events with the path only (plus host for other origins); the
    // client's own endpoint is never logged.
    #[test]
    fn captured_requests() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let page = "http://127.0.0.1:8080";
        m.captured_request("get", "https://api.openai.com/v1/models?key=sk-x#f", 401.0, 12.4, page, 5.0);
        m.captured_request("POST", "http://127.0.0.1:8080/api/deploy", 0.0, 3.0, page, 6.0);
        m.captured_request("POST", "http://127.0.0.1:8080/api/session-log", 200.0, 1.0, page, 7.0);
        let kinds = logged(&drain(&mut m));
        assert_eq!(kinds.len(), 2, "the own endpoint is skipped: {kinds:?}");
        let mut s = Session::new(Config::default(), "ws_x".into(), 0, String::new());
        let plan = s.plan(kinds[0].clone(), 5.0, [0; 10]).unwrap();
        let field = |name: &str| plan.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        assert_eq!(field("endpoint"), Some(pipeline::Value::Text("/v1/models".into())));
        assert_eq!(field("host"), Some(pipeline::Value::Text("api.openai.com".into())));
        assert_eq!(field("method"), Some(pipeline::Value::Text("GET".into())));
        assert_eq!(field("success"), Some(pipeline::Value::Bool(false)));
        assert_eq!(field("durationMs"), Some(pipeline::Value::Number(12.0)));
        assert!(matches!(&kinds[1], EventKind::CapturedRequest { host: None, status, .. } if *status == 0.0));
        m.configure(options(&[("endpoint", OptionValue::Text("https://logs.example/ingest".into()))]), [2; 16]);
        m.captured_request("POST", "https://logs.example/ingest", 200.0, 1.0, page, 8.0);
        m.captured_request("POST", "http://127.0.0.1:8080/api/session-log", 200.0, 1.0, page, 9.0);
        assert_eq!(logged(&drain(&mut m)).len(), 1, "only the absolute endpoint is the client's own now");
    }

    // Route changes become page_view events with the path and the previous one, once per change.
    #[test]
    fn captured_navigation() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        m.set_current_path("http://h/workshop?student=ada");
        m.captured_navigation("http://h/workshop/step/2?x=1", 1.0);
        m.captured_navigation("http://h/workshop/step/2?x=2", 2.0);
        m.captured_navigation("http://h/workshop/step/2#/deploy", 3.0);
        let kinds = logged(&drain(&mut m));
        assert_eq!(
            kinds,
            [
                EventKind::PageView { path: "/workshop/step/2".into(), previous_path: Some("/workshop".into()) },
                EventKind::PageView {
                    path: "/workshop/step/2#/deploy".into(),
                    previous_path: Some("/workshop/step/2".into())
                },
            ]
        );
    }

    // Turning capture kinds on and off tells the browser layer once per change.
    #[test]
    fn capture_changes_are_announced() {
        let store = SharedStore::default();
        let mut m = machine(&store);
        let on = OptionValue::Map(vec![("errors".into(), OptionValue::Flag(true))]);
        m.configure(options(&[("capture", on.clone())]), [2; 16]);
        assert!(drain(&mut m).contains(&Action::Capture { errors: true, fetch: false, history: false }));
        m.configure(options(&[("capture", on)]), [2; 16]);
        assert!(!drain(&mut m).iter().any(|a| matches!(a, Action::Capture { .. })));
    }

    // Timer codes round-trip through setTimeout's argument.
    #[test]
    fn timer_codes_round_trip() {
        for timer in [
            Timer::Flush,
            Timer::Retry,
            Timer::Persist,
            Timer::AdoptionScan,
            Timer::FlushTimeout(0),
            Timer::FlushTimeout(77),
        ] {
            assert_eq!(Timer::from_code(timer.code()), timer);
        }
    }
}
