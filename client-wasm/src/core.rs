//! The client's rules in plain Rust, with no browser in it: configuration and how `configure`
//! merges it, enrichment (which fields an event gets, in which precedence), the queue, the
//! batching policy, the retry backoff and the warnings' dedup. [`crate::machine`] drives them;
//! `web` is the only part that touches JavaScript. Everything here is tested natively
//! (`cargo test -p session-log-client`).
//!
//! Nothing here uses Rust's `format!` machinery: strings are joined with [`cat`] and numbers
//! written with [`decimal`], which keeps `core::fmt` and its Unicode tables out of the wasm.

use session_log_protocol::redact::Rules;
use session_log_protocol::{event_type, push_json_string, Uuid};

/// Default `endpoint`: the reference's ingest path on the page's own origin.
pub const DEFAULT_ENDPOINT: &str = session_log_protocol::ENDPOINT_PATH;

/// Prefix of generated session tokens, as in the reference's `ws_1234567890`.
pub const TOKEN_PREFIX: &str = "ws_";

/// Joins string pieces into one `String` (the client's `format!`).
pub fn cat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// `items` joined by `separator`.
pub fn join(items: &[&str], separator: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(item);
    }
    out
}

impl EventPlan {
    /// The event's JSON around its `eventData` (`data_json`, an object as `JSON.stringify` wrote
    /// it): `{"sessionToken":…,"studentEmail"?:…,"studentName"?:…,"eventType":…,"eventData":…,
    /// "eventId":…,"seq":N}`, the shape the queue and the server read.
    pub fn to_json(&self, data_json: &str) -> String {
        let mut out = String::with_capacity(data_json.len() + self.session_token.len() + 128);
        out.push_str("{\"sessionToken\":");
        push_json_string(&mut out, &self.session_token);
        if let Some(email) = &self.student_email {
            out.push_str(",\"studentEmail\":");
            push_json_string(&mut out, email);
        }
        if let Some(name) = &self.student_name {
            out.push_str(",\"studentName\":");
            push_json_string(&mut out, name);
        }
        out.push_str(",\"eventType\":");
        push_json_string(&mut out, &self.event_type);
        out.push_str(",\"eventData\":");
        out.push_str(data_json);
        out.push_str(",\"eventId\":");
        push_json_string(&mut out, &self.event_id);
        out.push_str(",\"seq\":");
        out.push_str(&decimal(self.seq));
        out.push('}');
        out
    }
}

/// `n` in decimal digits.
pub fn decimal(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().map(|&d| char::from(d)).collect()
}

/// `n` as 16 lowercase hex digits, zero-padded (storage keys sort by it).
pub fn hex16(n: u64) -> String {
    (0..16).rev().map(|i| hex_digit((n >> (i * 4)) as u8)).collect()
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}

/// What a page passes to `configure(options)`, read option by option with [`Config::set`]. Every
/// option is optional; a missing one keeps its current value. Option names are the JavaScript ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where batches are POSTed: a path on the page's origin or an absolute URL.
    /// Default `/api/session-log`.
    pub endpoint: String,
    /// Step names, indexed by step number from 0; `stepName` of step `n` is `steps[n]`.
    pub steps: Vec<String>,
    /// Sent with every event as `studentEmail`; anonymous when absent.
    pub student_email: Option<String>,
    /// Sent with every event as `studentName`.
    pub student_name: Option<String>,
    /// The session token to use; when absent one is generated and kept in `localStorage`.
    pub session_token: Option<String>,
    /// Copied into every event's `demoMode`.
    pub demo_mode: bool,
    /// Send a batch as soon as this many events are queued (events, 1–500; default 50).
    pub max_batch_events: usize,
    /// Send a batch as soon as the queued events' JSON reaches this size (bytes, default 16 KiB).
    pub max_batch_bytes: usize,
    /// Send what is queued this long after the first event was queued (ms, default 1000).
    pub flush_interval_ms: u32,
    /// `flush()` rejects when its events are not acknowledged within this time (ms, default 10000).
    pub flush_timeout_ms: u32,
    /// First retry delay after a failed send (ms, default 1000); doubled per failure, with full jitter.
    pub retry_base_ms: u32,
    /// Longest retry delay (ms, default 8000): with full jitter, a server that comes back gets the
    /// queue within 8 s; an overloaded one says how long to wait with `Retry-After`, which wins.
    pub retry_max_ms: u32,
    /// Most events kept waiting, in memory and storage (events, default 1000); past it the oldest
    /// are dropped, counted and reported to the server.
    pub max_queue_events: usize,
    /// Most JSON kept waiting (bytes, default 1 MiB).
    pub max_queue_bytes: usize,
    /// Whether the default redaction applies before an event is queued (the default key names
    /// and the secret patterns of `session_log_protocol::redact`). Default true.
    pub redact: bool,
    /// More key names whose values are redacted (any case), also when `redact` is false.
    pub redact_keys: Vec<String>,
    /// Auto-capture of uncaught errors and unhandled rejections (`capture.errors`). Default off.
    pub capture_errors: bool,
    /// Auto-capture of the page's `fetch` and `XMLHttpRequest` calls (`capture.fetch`). Default off.
    pub capture_fetch: bool,
    /// Auto-capture of route changes: `pushState`, `replaceState`, `popstate`, `hashchange`
    /// (`capture.history`). Default off.
    pub capture_history: bool,
    /// Share of sessions whose events are sent, from 0 to 1 (default 1). Decided once per
    /// session token (see [`sampled`]), so a session is sent whole or not at all.
    pub sample_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            steps: Vec::new(),
            student_email: None,
            student_name: None,
            session_token: None,
            demo_mode: false,
            max_batch_events: 50,
            max_batch_bytes: 16 * 1024,
            flush_interval_ms: 1000,
            flush_timeout_ms: 10_000,
            retry_base_ms: 1000,
            retry_max_ms: 8_000,
            max_queue_events: 1000,
            max_queue_bytes: 1024 * 1024,
            redact: true,
            redact_keys: Vec::new(),
            capture_errors: false,
            capture_fetch: false,
            capture_history: false,
            sample_rate: 1.0,
        }
    }
}

/// The names `configure` knows, to warn about a misspelt option instead of ignoring it silently.
pub const CONFIG_KEYS: &[&str] = &[
    "endpoint",
    "steps",
    "studentEmail",
    "studentName",
    "sessionToken",
    "demoMode",
    "maxBatchEvents",
    "maxBatchBytes",
    "flushIntervalMs",
    "flushTimeoutMs",
    "retryBaseMs",
    "retryMaxMs",
    "maxQueueEvents",
    "maxQueueBytes",
    "redact",
    "redactKeys",
    "sampleRate",
    "beforeSend",
    "capture",
];

/// One option's value as `configure` received it, converted from JavaScript.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// `undefined`: the option is not given, and keeps its current value.
    Absent,
    /// `null`: back to the default (for the optional strings: none).
    Null,
    /// A string.
    Text(String),
    /// A boolean.
    Flag(bool),
    /// A number.
    Number(f64),
    /// An array whose items are all strings.
    List(Vec<String>),
    /// A function (kept by the browser layer: `beforeSend`).
    Function,
    /// A plain object's own fields, one level deep (`capture: {errors: true}`).
    Map(Vec<(String, OptionValue)>),
    /// Anything else, by kind (e.g. "an object").
    Other(&'static str),
}

impl Config {
    /// Sets the option `key` (a JavaScript name from [`CONFIG_KEYS`]) from `value`.
    /// [`OptionValue::Absent`] keeps the current value; [`OptionValue::Null`] restores the default.
    ///
    /// Errors: `unknown option <key>` for a name not in [`CONFIG_KEYS`]; `<key> must be …` for a
    /// value of the wrong type (a string, a boolean, a list of strings, or a whole number ≥ 0).
    /// An empty `studentEmail`, `studentName` or `sessionToken` counts as none.
    pub fn set(&mut self, key: &str, value: OptionValue) -> Result<(), String> {
        if !CONFIG_KEYS.contains(&key) {
            return Err(cat(&["unknown option ", key]));
        }
        let value = match value {
            OptionValue::Absent => return Ok(()),
            OptionValue::Null => return self.reset(key),
            value => value,
        };
        let wrong = |what: &str| cat(&[key, " must be ", what]);
        let text = |value: OptionValue| match value {
            OptionValue::Text(s) => Ok(s),
            _ => Err(wrong("a string")),
        };
        let optional_text = |value: OptionValue| text(value).map(|s| Some(s).filter(|s| !s.is_empty()));
        let whole = |value: OptionValue| match value {
            OptionValue::Number(n) => step_number(n).ok_or_else(|| wrong("a whole number ≥ 0")),
            _ => Err(wrong("a number")),
        };
        match key {
            "endpoint" => self.endpoint = text(value)?,
            "steps" => match value {
                OptionValue::List(steps) => self.steps = steps,
                _ => return Err(wrong("an array of strings")),
            },
            "studentEmail" => self.student_email = optional_text(value)?,
            "studentName" => self.student_name = optional_text(value)?,
            "sessionToken" => self.session_token = optional_text(value)?,
            "demoMode" => match value {
                OptionValue::Flag(flag) => self.demo_mode = flag,
                _ => return Err(wrong("a boolean")),
            },
            "maxBatchEvents" => self.max_batch_events = whole(value)? as usize,
            "maxBatchBytes" => self.max_batch_bytes = whole(value)? as usize,
            "flushIntervalMs" => self.flush_interval_ms = whole(value)?,
            "flushTimeoutMs" => self.flush_timeout_ms = whole(value)?,
            "retryBaseMs" => self.retry_base_ms = whole(value)?,
            "retryMaxMs" => self.retry_max_ms = whole(value)?,
            "maxQueueEvents" => self.max_queue_events = whole(value)? as usize,
            "maxQueueBytes" => self.max_queue_bytes = whole(value)? as usize,
            "redact" => match value {
                OptionValue::Flag(flag) => self.redact = flag,
                _ => return Err(wrong("a boolean")),
            },
            "redactKeys" => match value {
                OptionValue::List(keys) => self.redact_keys = keys,
                _ => return Err(wrong("an array of strings")),
            },
            "sampleRate" => match value {
                OptionValue::Number(rate) if (0.0..=1.0).contains(&rate) => self.sample_rate = rate,
                _ => return Err(wrong("a number from 0 to 1")),
            },
            "capture" => match value {
                OptionValue::Map(kinds) => {
                    for (kind, on) in kinds {
                        let flag = match on {
                            OptionValue::Flag(flag) => flag,
                            OptionValue::Absent => continue,
                            _ => return Err(cat(&["capture.", &kind, " must be a boolean"])),
                        };
                        match kind.as_str() {
                            "errors" => self.capture_errors = flag,
                            "fetch" => self.capture_fetch = flag,
                            "history" => self.capture_history = flag,
                            _ => {
                                return Err(cat(&[
                                    "capture.",
                                    &kind,
                                    " is not a kind of capture (errors, fetch, history)",
                                ]))
                            }
                        }
                    }
                }
                _ => return Err(wrong("an object like {errors: true, fetch: true, history: true}")),
            },
            // `beforeSend`: the function itself stays with the browser layer.
            _ => match value {
                OptionValue::Function => {}
                _ => return Err(wrong("a function")),
            },
        }
        Ok(())
    }

    /// Restores option `key` to its default.
    fn reset(&mut self, key: &str) -> Result<(), String> {
        let default = Config::default();
        match key {
            "endpoint" => self.endpoint = default.endpoint,
            "steps" => self.steps = default.steps,
            "studentEmail" => self.student_email = None,
            "studentName" => self.student_name = None,
            "sessionToken" => self.session_token = None,
            "demoMode" => self.demo_mode = default.demo_mode,
            "maxBatchEvents" => self.max_batch_events = default.max_batch_events,
            "maxBatchBytes" => self.max_batch_bytes = default.max_batch_bytes,
            "flushIntervalMs" => self.flush_interval_ms = default.flush_interval_ms,
            "flushTimeoutMs" => self.flush_timeout_ms = default.flush_timeout_ms,
            "retryBaseMs" => self.retry_base_ms = default.retry_base_ms,
            "retryMaxMs" => self.retry_max_ms = default.retry_max_ms,
            "maxQueueEvents" => self.max_queue_events = default.max_queue_events,
            "maxQueueBytes" => self.max_queue_bytes = default.max_queue_bytes,
            "redact" => self.redact = default.redact,
            "redactKeys" => self.redact_keys = default.redact_keys,
            "sampleRate" => self.sample_rate = default.sample_rate,
            "capture" => {
                self.capture_errors = false;
                self.capture_fetch = false;
                self.capture_history = false;
            }
            _ => {}
        }
        Ok(())
    }

    /// The options after `configure(options)`: `options` (name, value) merged into `self`, the
    /// options in force, so a second call keeps what the first one set and did not name.
    ///
    /// Errors: the first refused option's message (see [`Config::set`]) or the merged options'
    /// [`Config::validate`] error; then nothing changes. Unknown names are not errors: they are
    /// returned in the second field, for a warning.
    pub fn merged(&self, options: Vec<(String, OptionValue)>) -> Result<(Config, Vec<String>), String> {
        let mut config = self.clone();
        let mut unknown = Vec::new();
        for (key, value) in options {
            if !CONFIG_KEYS.contains(&key.as_str()) {
                unknown.push(key);
                continue;
            }
            config.set(&key, value)?;
        }
        config.validate()?;
        Ok((config, unknown))
    }
}

impl Config {
    /// The redaction rules these options ask for.
    pub fn rules(&self) -> Rules {
        Rules::new(self.redact, &self.redact_keys)
    }
}

/// Largest batch the server takes by default (events); see the server's limits.
pub const SERVER_MAX_BATCH_EVENTS: usize = 500;

impl Config {
    /// Checks the options against each other and the server's limits.
    ///
    /// Errors: a message naming the first bad option (`maxBatchEvents`, `maxQueueEvents`,
    /// `maxBatchBytes`, `endpoint`, `sessionToken`, `studentEmail`), meant for `console.warn`.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=SERVER_MAX_BATCH_EVENTS).contains(&self.max_batch_events) {
            return Err(cat(&[
                "maxBatchEvents must be 1–",
                &decimal(SERVER_MAX_BATCH_EVENTS as u64),
                ", got ",
                &decimal(self.max_batch_events as u64),
            ]));
        }
        if self.max_queue_events < self.max_batch_events {
            return Err(cat(&[
                "maxQueueEvents must be at least maxBatchEvents (",
                &decimal(self.max_batch_events as u64),
                ")",
            ]));
        }
        if self.max_batch_bytes < 1024 {
            return Err(cat(&["maxBatchBytes must be at least 1024, got ", &decimal(self.max_batch_bytes as u64)]));
        }
        if self.max_queue_bytes < self.max_batch_bytes {
            return Err(cat(&[
                "maxQueueBytes must be at least maxBatchBytes (",
                &decimal(self.max_batch_bytes as u64),
                ")",
            ]));
        }
        if self.endpoint.is_empty() {
            return Err("endpoint must not be empty".to_owned());
        }
        if let Some(token) = &self.session_token {
            session_log_protocol::check_session_token(token).map_err(|e| cat(&["sessionToken ", e.reason()]))?;
        }
        if let Some(email) = &self.student_email {
            session_log_protocol::check_email(email).map_err(|e| cat(&["studentEmail ", e.reason()]))?;
        }
        Ok(())
    }
}

/// Whether session `token` is among the sampled ones at `rate` (0 to 1): a hash of the token
/// (FNV-1a, 64 bits) read as a number in [0, 1) is below the rate. The same token always gets
/// the same answer, across reloads and tabs, with nothing stored; raising the rate only adds
/// sessions.
pub fn sampled(token: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in token.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// A session token from 16 random bytes (128 bits): `ws_` and 32 lowercase hex digits.
pub fn session_token(random: [u8; 16]) -> String {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 32);
    token.push_str(TOKEN_PREFIX);
    for byte in random {
        token.push(hex_digit(byte >> 4));
        token.push(hex_digit(byte));
    }
    token
}

/// An event id: a UUIDv7 (RFC 9562) from the time it was logged and 10 random bytes.
/// Time-ordered ids keep the server's unique index writes local.
pub fn event_id(epoch_ms: f64, random: [u8; 10]) -> Uuid {
    let ms = if epoch_ms.is_finite() && epoch_ms > 0.0 { epoch_ms as u64 } else { 0 };
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}

/// A step number from a JavaScript number: a whole number from 0 to 2^32 - 1, else `None`.
pub fn step_number(value: f64) -> Option<u32> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX)).then_some(value as u32)
}

/// `success` of an API call event: a 2xx or 3xx status (the reference shows
/// `status: 200, success: true`). Status 0 (a network error in `fetch`) is a failure.
pub fn api_call_succeeded(status: f64) -> bool {
    (200.0..400.0).contains(&status)
}

/// Which logging function was called, with its arguments converted to text and numbers. The
/// arguments that stay JavaScript values (details, old and new values) are referred to by
/// position in [`Value::Arg`] and [`EventPlan::details`]: position 0 is the call's first argument.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `logNavigation(from, to)`.
    Navigation {
        /// The step left (a JavaScript number).
        from: f64,
        /// The step entered.
        to: f64,
    },
    /// `logError(errorType, errorMessage, errorDetails)`; details at position 2.
    Error {
        /// e.g. `openai_validation_failed`.
        error_type: String,
        /// e.g. `Incorrect API key provided` (an `Error`'s message).
        error_message: String,
        /// The `stack` of an `Error` passed as the message, sent as `stack`.
        stack: Option<String>,
    },
    /// `logAction(actionName, actionDetails)`; details at position 1.
    Action {
        /// e.g. `openai_connected`.
        action_name: String,
    },
    /// `logApiCall(endpoint, method, status, details)`; details at position 3.
    ApiCall {
        /// e.g. `/v1/models`.
        endpoint: String,
        /// e.g. `get`; sent upper-cased.
        method: String,
        /// The HTTP status (0 for a network error).
        status: f64,
    },
    /// `logStateChange(stateName, oldValue, newValue)`; the values at positions 1 and 2.
    StateChange {
        /// e.g. `servicesReady`.
        state_name: String,
    },
    /// An uncaught error or unhandled rejection seen by auto-capture, `count` times within the
    /// collapse window.
    CapturedError {
        /// `uncaught_error` or `unhandled_rejection`.
        error_type: &'static str,
        /// The error's message (a rejection's reason as text).
        message: String,
        /// Its stack, if any.
        stack: Option<String>,
        /// The script's URL, line and column (uncaught errors).
        source: Option<(String, u32, u32)>,
        /// How many identical errors this event stands for.
        count: u32,
    },
    /// A `fetch` or `XMLHttpRequest` of the page, seen by auto-capture.
    CapturedRequest {
        /// The URL's path, without query or fragment.
        path: String,
        /// The URL's host, when it is another origin.
        host: Option<String>,
        /// e.g. `GET`.
        method: String,
        /// The HTTP status, 0 when the request failed.
        status: f64,
        /// From the call to its answer (ms).
        duration_ms: f64,
    },
    /// A route change seen by auto-capture: `page_view`.
    PageView {
        /// The new path (with its `#fragment` route, without the query).
        path: String,
        /// The path before, if known.
        previous_path: Option<String>,
    },
    /// `logSessionEvent(eventType, eventData)`; data at position 1.
    Custom {
        /// The page's own type, checked with `check_event_type`.
        event_type: String,
    },
}

/// `eventType` of a route change seen by auto-capture.
pub const PAGE_VIEW: &str = "page_view";

/// An absolute URL's origin (`scheme://host[:port]`), host, and path without query or fragment;
/// `None` for a URL that is not absolute.
pub fn url_parts(url: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = url.find(':')?;
    if url.get(scheme_end..scheme_end + 3) != Some("://") {
        return None;
    }
    let rest = url.get(scheme_end + 3..)?;
    let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest.get(..host_len)?;
    let origin = url.get(..scheme_end + 3 + host_len)?;
    let after = rest.get(host_len..)?;
    let path = after.get(..after.find(['?', '#']).unwrap_or(after.len()))?;
    Some((origin, host, if path.is_empty() { "/" } else { path }))
}

/// The route of an absolute URL, as history capture reports it: the path and its `#fragment`
/// (the route of hash-routed pages), without the query; `None` for a URL that is not absolute.
pub fn route(url: &str) -> Option<String> {
    let (_, _, path) = url_parts(url)?;
    let fragment = url.find('#').and_then(|at| url.get(at..)).filter(|f| f.len() > 1).unwrap_or("");
    Some(cat(&[path, fragment]))
}

/// One `eventData` field's value in an [`EventPlan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
    /// A time (ms since the Unix epoch), sent as ISO 8601 UTC with ms (`2025-10-27T15:30:45.123Z`,
    /// the reference's `timestamp`; the browser's `Date.prototype.toISOString` writes it).
    Time(f64),
    /// The call's argument at this position, as the page passed it.
    Arg(usize),
}

/// How to build one event: what `web` turns into the JSON the queue holds,
/// `{"sessionToken", "studentEmail"?, "studentName"?, "eventType", "eventData", "eventId", "seq"}`
/// in that order (the durable queue reads `sessionToken` at the start and `seq` at the end).
///
/// `eventData` is built in precedence order, lowest first: the page's details (an object's own
/// fields; an `Error`'s name, message and stack; anything else under `details`), then `fields`
/// in order (the function's own fields, then the context fields). So the function's arguments win
/// over details that repeat them, and the context (`currentStep`, `stepName`, `demoMode`,
/// `userAgent`, `timestamp`) wins over both.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPlan {
    /// `eventType`.
    pub event_type: String,
    /// Position of the argument whose fields are merged first, if the function takes details.
    pub details: Option<usize>,
    /// The fields set after the details, in order.
    pub fields: Vec<(&'static str, Value)>,
    /// `sessionToken`.
    pub session_token: String,
    /// `studentEmail`, if configured.
    pub student_email: Option<String>,
    /// `studentName`, if configured.
    pub student_name: Option<String>,
    /// `eventId`, a hyphenated lowercase UUIDv7.
    pub event_id: String,
    /// `seq`, the event's number in its session.
    pub seq: u64,
}

/// The session as the client sees it: configuration, current step and event numbering.
#[derive(Debug, Clone)]
pub struct Session {
    /// The options in force.
    pub config: Config,
    /// The current step (`currentStep`), moved by `logNavigation` and `setStep`; starts at 0.
    pub current_step: u32,
    /// The session token events are sent with.
    pub token: String,
    /// The `seq` the next event gets.
    pub next_seq: u64,
    /// `navigator.userAgent`, read once.
    pub user_agent: String,
    /// The redaction rules of `config` (`redact`, `redactKeys`).
    pub rules: Rules,
}

impl Session {
    /// A session at step 0 with `token`, numbering events from `next_seq`.
    pub fn new(config: Config, token: String, next_seq: u64, user_agent: String) -> Self {
        let rules = config.rules();
        Session { config, current_step: 0, token, next_seq, user_agent, rules }
    }

    /// The name of step `step` from the configured `steps`, as a field value (`null` when none).
    pub fn step_name(&self, step: f64) -> Value {
        step_number(step)
            .and_then(|index| self.config.steps.get(index as usize))
            .map_or(Value::Null, |name| Value::Text(name.clone()))
    }

    /// Plans the event of one logging call made at `at_ms` (ms since the epoch), taking its `seq`;
    /// `logNavigation` also moves the current step to `to` when `to` is a valid step number.
    ///
    /// Errors: for [`EventKind::Custom`], an `eventType` that `check_event_type` refuses (the
    /// reason, for a warning); nothing changes then.
    pub fn plan(&mut self, kind: EventKind, at_ms: f64, random: [u8; 10]) -> Result<EventPlan, &'static str> {
        let (event_type, details, mut fields) = match kind {
            EventKind::Navigation { from, to } => {
                if let Some(step) = step_number(to) {
                    self.current_step = step;
                }
                let fields = vec![
                    ("from", Value::Number(from)),
                    ("to", Value::Number(to)),
                    ("fromStepName", self.step_name(from)),
                    ("toStepName", self.step_name(to)),
                ];
                (event_type::NAVIGATION.to_owned(), None, fields)
            }
            EventKind::Error { error_type, error_message, stack } => {
                let mut fields =
                    vec![("errorType", Value::Text(error_type)), ("errorMessage", Value::Text(error_message))];
                if let Some(stack) = stack {
                    fields.push(("stack", Value::Text(stack)));
                }
                (event_type::ERROR.to_owned(), Some(2), fields)
            }
            EventKind::Action { action_name } => {
                (event_type::ACTION.to_owned(), Some(1), vec![("actionName", Value::Text(action_name))])
            }
            EventKind::ApiCall { endpoint, method, status } => (
                event_type::API_CALL.to_owned(),
                Some(3),
                vec![
                    ("endpoint", Value::Text(endpoint)),
                    ("method", Value::Text(method.to_ascii_uppercase())),
                    ("status", Value::Number(status)),
                    ("success", Value::Bool(api_call_succeeded(status))),
                ],
            ),
            EventKind::StateChange { state_name } => (
                event_type::STATE_CHANGE.to_owned(),
                None,
                vec![("stateName", Value::Text(state_name)), ("oldValue", Value::Arg(1)), ("newValue", Value::Arg(2))],
            ),
            EventKind::CapturedError { error_type, message, stack, source, count } => {
                let mut fields =
                    vec![("errorType", Value::Text(error_type.to_owned())), ("errorMessage", Value::Text(message))];
                if let Some(stack) = stack {
                    fields.push(("stack", Value::Text(stack)));
                }
                if let Some((url, line, column)) = source {
                    fields.push(("source", Value::Text(url)));
                    fields.push(("line", Value::Number(f64::from(line))));
                    fields.push(("column", Value::Number(f64::from(column))));
                }
                fields.push(("count", Value::Number(f64::from(count))));
                (event_type::ERROR.to_owned(), None, fields)
            }
            EventKind::CapturedRequest { path, host, method, status, duration_ms } => {
                let mut fields = vec![("endpoint", Value::Text(path))];
                if let Some(host) = host {
                    fields.push(("host", Value::Text(host)));
                }
                fields.extend([
                    ("method", Value::Text(method.to_ascii_uppercase())),
                    ("status", Value::Number(status)),
                    ("success", Value::Bool(api_call_succeeded(status))),
                    ("durationMs", Value::Number(duration_ms.max(0.0).round())),
                ]);
                (event_type::API_CALL.to_owned(), None, fields)
            }
            EventKind::PageView { path, previous_path } => {
                let previous = previous_path.map_or(Value::Null, Value::Text);
                (PAGE_VIEW.to_owned(), None, vec![("path", Value::Text(path)), ("previousPath", previous)])
            }
            EventKind::Custom { event_type } => {
                session_log_protocol::check_event_type(&event_type).map_err(|e| e.reason())?;
                (event_type, Some(1), Vec::new())
            }
        };
        fields.extend([
            ("currentStep", Value::Number(f64::from(self.current_step))),
            ("stepName", self.step_name(f64::from(self.current_step))),
            ("demoMode", Value::Bool(self.config.demo_mode)),
            ("userAgent", Value::Text(self.user_agent.clone())),
            ("timestamp", Value::Time(at_ms)),
        ]);
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut id = Uuid::encode_buffer();
        Ok(EventPlan {
            event_type,
            details,
            fields,
            session_token: self.token.clone(),
            student_email: self.config.student_email.clone(),
            student_name: self.config.student_name.clone(),
            event_id: event_id(at_ms, random).hyphenated().encode_lower(&mut id).to_owned(),
            seq,
        })
    }
}

/// Distinct warnings shown at most: past this the console stays quiet (a page that logs a bad
/// event in a loop must not flood it).
pub const MAX_WARNINGS: usize = 64;

/// The warnings already shown: each distinct text once per page, at most [`MAX_WARNINGS`].
#[derive(Debug, Default)]
pub struct Warnings(Vec<String>);

impl Warnings {
    /// No warning shown yet.
    pub const fn new() -> Self {
        Warnings(Vec::new())
    }

    /// Whether `message` should be shown now (first time, and under the cap); records it.
    pub fn first(&mut self, message: &str) -> bool {
        if self.0.len() >= MAX_WARNINGS || self.0.iter().any(|m| m == message) {
            return false;
        }
        self.0.push(message.to_owned());
        true
    }
}

/// A batch taken from the queue for sending: its JSON body and how many events it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingBatch {
    /// `{"events":[…]}`, ready to POST.
    pub body: String,
    /// Number of events in it (the first `count` of the queue).
    pub count: usize,
}

/// The events waiting to be delivered, each already serialised to JSON, oldest first.
///
/// Invariant: at most one batch is in flight, and it is always the first `in_flight` events; they
/// stay in the queue until the server acknowledges them, so a failed send loses nothing.
#[derive(Debug, Default, Clone)]
pub struct Queue {
    events: Vec<(u64, String)>,
    bytes: usize,
    in_flight: usize,
    in_flight_bytes: usize,
}

/// Wire overhead of a batch around its events: `{"events":[` and `]}`.
const BATCH_ENVELOPE_BYTES: usize = r#"{"events":[]}"#.len();

impl Queue {
    /// Appends one event's JSON under `id` (the caller's key for it, e.g. its storage slot).
    pub fn push(&mut self, id: u64, event_json: String) {
        self.bytes += event_json.len();
        self.events.push((id, event_json));
    }

    /// The id of the oldest event not in flight.
    pub fn oldest_waiting(&self) -> Option<u64> {
        self.events.get(self.in_flight).map(|(id, _)| *id)
    }

    /// The queued events' ids and JSON, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &str)> {
        self.events.iter().map(|(id, json)| (*id, json.as_str()))
    }

    /// Removes the oldest event that is not in flight; returns its id and size (bytes).
    pub fn drop_oldest(&mut self) -> Option<(u64, usize)> {
        if self.in_flight >= self.events.len() {
            return None;
        }
        let (id, json) = self.events.remove(self.in_flight);
        self.bytes -= json.len();
        Some((id, json.len()))
    }

    /// Events queued, including the batch in flight.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes of JSON queued, including the batch in flight.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a batch is being sent.
    pub fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// Whether enough is waiting (not in flight) to send a batch now rather than at the timer:
    /// `max_events` events or `max_bytes` bytes of JSON.
    pub fn is_due(&self, max_events: usize, max_bytes: usize) -> bool {
        let waiting = self.events.len() - self.in_flight;
        let waiting_bytes = self.bytes - self.in_flight_bytes;
        waiting >= max_events || waiting_bytes >= max_bytes
    }

    /// Takes the next batch to send: the oldest events, at most `max_events` of them and, past the
    /// first, at most `max_bytes` of body. `None` when the queue is empty or a batch is in flight.
    pub fn start_batch(&mut self, max_events: usize, max_bytes: usize) -> Option<OutgoingBatch> {
        self.start_batch_reporting(max_events, max_bytes, 0)
    }

    /// As [`Queue::start_batch`], with the batch's `dropped` field (events the client dropped
    /// since the last acknowledged report; omitted when 0).
    pub fn start_batch_reporting(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        dropped: u64,
    ) -> Option<OutgoingBatch> {
        if self.in_flight > 0 || self.events.is_empty() {
            return None;
        }
        let mut body = String::with_capacity(self.bytes.min(max_bytes) + BATCH_ENVELOPE_BYTES + 64);
        body.push_str(r#"{"events":["#);
        let mut count = 0;
        let mut event_bytes = 0;
        for (_, event) in &self.events {
            let separator = usize::from(count > 0);
            if count == max_events.max(1) || (count > 0 && body.len() + separator + event.len() + 2 > max_bytes) {
                break;
            }
            if count > 0 {
                body.push(',');
            }
            body.push_str(event);
            event_bytes += event.len();
            count += 1;
        }
        body.push(']');
        if dropped > 0 {
            body.push_str(r#","dropped":"#);
            body.push_str(&decimal(dropped));
        }
        body.push('}');
        self.in_flight = count;
        self.in_flight_bytes = event_bytes;
        Some(OutgoingBatch { body, count })
    }

    /// Every queued event's JSON, oldest first, in bodies of at most `max_bytes` (one event may
    /// exceed it alone) each holding at most `max_events`: what a page sends with beacons as it
    /// closes. Nothing is removed or marked in flight.
    pub fn chunks(&self, max_events: usize, max_bytes: usize) -> Vec<String> {
        let mut bodies = Vec::new();
        let mut body = String::new();
        let mut count = 0;
        for (_, event) in &self.events {
            if count > 0 && (count == max_events || body.len() + event.len() + 3 > max_bytes) {
                body.push_str("]}");
                bodies.push(std::mem::take(&mut body));
                count = 0;
            }
            body.push_str(if count == 0 { r#"{"events":["# } else { "," });
            body.push_str(event);
            count += 1;
        }
        if count > 0 {
            body.push_str("]}");
            bodies.push(body);
        }
        bodies
    }

    /// The batch in flight was delivered (or refused for good): removes its events and returns
    /// their ids.
    pub fn finish_batch(&mut self) -> Vec<u64> {
        let ids = self.events.drain(..self.in_flight).map(|(id, _)| id).collect();
        self.bytes -= self.in_flight_bytes;
        self.in_flight = 0;
        self.in_flight_bytes = 0;
        ids
    }

    /// Removes every event, the batch in flight too.
    pub fn clear(&mut self) {
        *self = Queue::default();
    }

    /// The batch in flight failed: its events stay first in the queue, to be sent again.
    pub fn release_batch(&mut self) {
        self.in_flight = 0;
        self.in_flight_bytes = 0;
    }
}

/// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
/// after the n-th consecutive failure, wait a uniformly random time in `[0, min(max, base·2ⁿ⁻¹)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u32,
    max_ms: u32,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base_ms` and capped at `max_ms` (both ms).
    pub fn new(base_ms: u32, max_ms: u32) -> Self {
        Backoff { base_ms, max_ms: max_ms.max(base_ms), failures: 0 }
    }

    /// Records a failure and returns how long to wait before the next try (ms). `random` is a
    /// uniform number in `[0, 1)` (`Math.random()` in the browser).
    pub fn next_delay_ms(&mut self, random: f64) -> u32 {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(31);
        let ceiling = u64::from(self.base_ms).saturating_mul(1 << exp).min(u64::from(self.max_ms));
        (ceiling as f64 * random.clamp(0.0, 1.0)) as u32
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A send succeeded: the next failure starts from `base_ms` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The wait a `Retry-After` header asks for (RFC 9110 §10.2.3), in ms: `delay-seconds` (`"2"`) or
/// an HTTP-date (`"Sun, 06 Nov 1994 08:49:37 GMT"`) relative to `now_ms` (ms since the epoch).
/// `parse_date` turns an HTTP-date into ms since the epoch (the browser's `Date.parse`, which
/// keeps a date parser out of the wasm). `None` for a value that is neither; a past date means 0.
pub fn retry_after_ms(header: &str, now_ms: f64, parse_date: impl FnOnce(&str) -> Option<f64>) -> Option<u32> {
    let header = header.trim();
    if let Ok(seconds) = header.parse::<u32>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at_ms = parse_date(header).filter(|ms| ms.is_finite())?;
    Some((at_ms - now_ms).clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// What the client does with a batch after the server's answer, by HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the server has the batch's valid events; remove the batch from the queue.
    Delivered,
    /// Network error (status 0), 408, 429 or 5xx: keep the batch and try again after a backoff.
    Retry,
    /// Any other 4xx: the server refused the batch for good; remove it and warn.
    Refused,
}

/// Classifies a response status (0 for a network error).
pub fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        0 | 408 | 429 | 500..=599 => Outcome::Retry,
        400..=499 => Outcome::Refused,
        // 1xx and 3xx do not reach fetch's caller as final answers; treat them as transient.
        _ => Outcome::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::Value as V;
    use super::*;
    use serde_json::{json, Value};
    use std::time::{Duration, UNIX_EPOCH};

    fn session(steps: &[&str]) -> Session {
        let config = Config { steps: steps.iter().map(|s| s.to_string()).collect(), ..Config::default() };
        Session::new(config, "ws_test".into(), 0, "Mozilla/5.0 test".into())
    }

    const STEPS: &[&str] = &["Connect Accounts", "Choose Use Case", "Provision Services"];

    /// The event a plan describes, as JSON, with the page's arguments `args` as JSON (a stand-in
    /// for what `web` does with JavaScript values: details merged first, then the fields in order).
    fn build(plan: &EventPlan, args: &[Value]) -> Value {
        let mut data = serde_json::Map::new();
        if let Some(Value::Object(details)) = plan.details.and_then(|i| args.get(i)) {
            data.extend(details.clone());
        }
        for (key, value) in &plan.fields {
            let value = match value {
                V::Text(s) => json!(s),
                V::Number(n) => json!(n),
                V::Bool(b) => json!(b),
                V::Null => Value::Null,
                V::Time(ms) => json!(httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(*ms as u64))),
                V::Arg(i) => args.get(*i).cloned().unwrap_or(Value::Null),
            };
            data.insert((*key).to_owned(), value);
        }
        json!({"sessionToken": plan.session_token, "eventType": plan.event_type, "eventData": data,
               "eventId": plan.event_id, "seq": plan.seq})
    }

    fn plan(s: &mut Session, kind: EventKind) -> EventPlan {
        s.plan(kind, 1_761_579_045_123.0, [7; 10]).unwrap()
    }

    // A generated token is `ws_` plus 128 bits as 32 hex digits, different for different bytes.
    #[test]
    fn session_token_carries_128_bits() {
        let a = session_token([0xab; 16]);
        assert_eq!(a, format!("ws_{}", "ab".repeat(16)));
        assert_ne!(a, session_token([0xac; 16]));
        assert!(session_log_protocol::check_session_token(&a).is_ok());
    }

    // Event ids are UUIDv7 and sort by the time they were logged.
    #[test]
    fn event_ids_are_time_ordered_uuid_v7() {
        let early = event_id(1_000.0, [0xff; 10]);
        let late = event_id(1_001.0, [0x00; 10]);
        assert_eq!(early.get_version_num(), 7);
        assert!(early < late);
        let mut s = session(STEPS);
        let planned = plan(&mut s, EventKind::Action { action_name: "x".into() });
        assert_eq!(Uuid::parse_str(&planned.event_id).unwrap().get_version_num(), 7);
        assert_eq!(planned.event_id, planned.event_id.to_lowercase());
    }

    // The client's number and hex writers agree with Rust's formatting.
    #[test]
    fn decimal_and_hex_digits() {
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
            assert_eq!(hex16(n), format!("{n:016x}"));
        }
    }

    // Every event gets the reference's context fields, with the current step's name.
    #[test]
    fn context_fields_name_the_current_step() {
        let mut s = session(STEPS);
        s.current_step = 2;
        let event = build(&plan(&mut s, EventKind::Custom { event_type: "custom_event".into() }), &[]);
        assert_eq!(
            event["eventData"],
            json!({"currentStep": 2.0, "stepName": "Provision Services", "demoMode": false,
                   "userAgent": "Mozilla/5.0 test", "timestamp": "Mon, 27 Oct 2025 15:30:45 GMT"})
        );
        assert_eq!(event["eventType"], "custom_event");
    }

    // Navigation names both steps and moves the current step.
    #[test]
    fn navigation_names_steps_and_moves_current_step() {
        let mut s = session(STEPS);
        let event = build(&plan(&mut s, EventKind::Navigation { from: 1.0, to: 2.0 }), &[]);
        let data = &event["eventData"];
        assert_eq!((data["from"].clone(), data["to"].clone()), (json!(1.0), json!(2.0)));
        assert_eq!(data["fromStepName"], "Choose Use Case");
        assert_eq!(data["toStepName"], "Provision Services");
        assert_eq!(data["currentStep"], 2.0, "the event is logged at the step it enters");
        assert_eq!(s.current_step, 2);
    }

    // A step outside `steps`, or not a whole number, has a null name and does not move the step.
    #[test]
    fn unknown_steps_have_null_names() {
        let mut s = session(STEPS);
        let event = build(&plan(&mut s, EventKind::Navigation { from: 2.0, to: 9.0 }), &[]);
        assert_eq!(event["eventData"]["toStepName"], Value::Null);
        assert_eq!(s.current_step, 9);
        let event = build(&plan(&mut s, EventKind::Navigation { from: 9.0, to: 1.5 }), &[]);
        assert_eq!(event["eventData"]["toStepName"], Value::Null);
        assert_eq!(s.current_step, 9);
    }

    // An API call succeeds with 2xx/3xx only, and its method is upper-cased.
    #[test]
    fn api_call_success_follows_status() {
        let mut s = session(STEPS);
        let kind = EventKind::ApiCall { endpoint: "/v1/models".into(), method: "get".into(), status: 200.0 };
        let data = build(&plan(&mut s, kind), &[])["eventData"].clone();
        assert_eq!(
            (&data["endpoint"], &data["method"], &data["status"], &data["success"]),
            (&json!("/v1/models"), &json!("GET"), &json!(200.0), &json!(true))
        );
        assert!(api_call_succeeded(304.0));
        assert!(!api_call_succeeded(401.0));
        assert!(!api_call_succeeded(0.0));
    }

    // Details are merged first: the function's own fields and then the context win over them.
    #[test]
    fn details_lose_to_arguments_and_context() {
        let mut s = session(STEPS);
        let kind =
            EventKind::Error { error_type: "deploy_failed".into(), error_message: "timeout".into(), stack: None };
        let details = json!({"errorType": "from details", "currentStep": 99, "functionName": "voice-handler"});
        let event = build(&plan(&mut s, kind), &[Value::Null, Value::Null, details]);
        let data = &event["eventData"];
        assert_eq!(data["errorType"], "deploy_failed");
        assert_eq!(data["errorMessage"], "timeout");
        assert_eq!(data["currentStep"], 0.0);
        assert_eq!(data["functionName"], "voice-handler");
        let state = plan(&mut s, EventKind::StateChange { state_name: "servicesReady".into() });
        let event = build(&state, &[Value::Null, json!(false), json!({"deep": [1]})]);
        assert_eq!(event["eventData"]["oldValue"], false);
        assert_eq!(event["eventData"]["newValue"], json!({"deep": [1]}));
        assert_eq!(state.details, None);
    }

    // A custom event type must pass the server's rule; a refused one takes no seq.
    #[test]
    fn custom_event_types_are_checked() {
        let mut s = session(STEPS);
        assert!(s.plan(EventKind::Custom { event_type: "drop table".into() }, 0.0, [0; 10]).is_err());
        assert!(s.plan(EventKind::Custom { event_type: String::new() }, 0.0, [0; 10]).is_err());
        assert_eq!(s.next_seq, 0);
        assert_eq!(plan(&mut s, EventKind::Custom { event_type: "custom.event-1".into() }).seq, 0);
    }

    // Sequence numbers increase by one per event from where the session left off.
    #[test]
    fn sequence_numbers_continue() {
        let mut s = Session::new(Config::default(), "ws_x".into(), 41, String::new());
        let a = plan(&mut s, EventKind::Action { action_name: "a".into() }).seq;
        let b = plan(&mut s, EventKind::Action { action_name: "b".into() }).seq;
        assert_eq!((a, b), (41, 42));
    }

    // The event's JSON is valid, escapes what the page typed, and keeps the shape the queue reads
    // (token first, seq last).
    #[test]
    fn event_json_wraps_the_data() {
        let mut s = session(STEPS);
        s.config.student_email = Some("ada@example.com".into());
        s.config.student_name = Some("Ada \"the\" \\ Lovelace\n\u{1}".into());
        let planned = plan(&mut s, EventKind::Custom { event_type: "custom_event".into() });
        let json = planned.to_json(r#"{"a":1}"#);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["studentName"], "Ada \"the\" \\ Lovelace\n\u{1}");
        assert_eq!(v["eventData"], json!({"a": 1}));
        assert_eq!(v["seq"], 0);
        assert_eq!(v["eventId"], planned.event_id);
        assert!(json.starts_with(r#"{"sessionToken":"ws_test","#) && json.ends_with(r#","seq":0}"#), "{json}");
        let anonymous = Session::new(Config::default(), "ws_x".into(), 7, String::new()).plan(
            EventKind::Action { action_name: "é✓".into() },
            0.0,
            [0; 10],
        );
        let v: Value = serde_json::from_str(&anonymous.unwrap().to_json("{}")).unwrap();
        assert!(v.get("studentEmail").is_none());
    }

    // Sampling keeps or drops whole sessions, the same way every time, in proportion to the rate.
    #[test]
    fn sampling_is_per_session_and_proportional() {
        let tokens: Vec<String> = (0..10_000u64)
            .map(|n| session_token([n as u8, (n >> 8) as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]))
            .collect();
        let kept = tokens.iter().filter(|t| sampled(t, 0.25)).count();
        assert!((2200..2800).contains(&kept), "{kept} of 10,000 at 0.25");
        assert!(tokens.iter().all(|t| sampled(t, 0.25) == sampled(t, 0.25)));
        assert!(tokens.iter().filter(|t| sampled(t, 0.25)).all(|t| sampled(t, 0.5)), "raising the rate only adds");
        assert!(tokens.iter().all(|t| sampled(t, 1.0) && !sampled(t, 0.0)));
    }

    // The privacy options are read like the others and checked.
    #[test]
    fn privacy_options() {
        let (config, _) = Config::default()
            .merged(vec![
                ("redact".into(), OptionValue::Flag(false)),
                ("redactKeys".into(), OptionValue::List(vec!["phoneNumber".into()])),
                ("sampleRate".into(), OptionValue::Number(0.5)),
                ("beforeSend".into(), OptionValue::Function),
            ])
            .unwrap();
        assert!(!config.redact);
        assert_eq!(config.sample_rate, 0.5);
        assert!(config.rules().redacts_key("PhoneNumber") && !config.rules().redacts_key("password"));
        assert!(Config::default().merged(vec![("sampleRate".into(), OptionValue::Number(1.5))]).is_err());
        assert!(Config::default().merged(vec![("beforeSend".into(), OptionValue::Text("x".into()))]).is_err());
    }

    // URLs split into origin, host and a path without query or fragment.
    #[test]
    fn url_parts_drop_query_and_fragment() {
        assert_eq!(
            url_parts("https://api.openai.com:443/v1/models?key=sk-x#top"),
            Some(("https://api.openai.com:443", "api.openai.com:443", "/v1/models"))
        );
        assert_eq!(url_parts("http://127.0.0.1:8080"), Some(("http://127.0.0.1:8080", "127.0.0.1:8080", "/")));
        assert_eq!(url_parts("http://h/#/step/2"), Some(("http://h", "h", "/")));
        assert_eq!(url_parts("/relative"), None);
    }

    // capture takes an object of kinds, each a boolean; null turns them all off.
    #[test]
    fn capture_option() {
        let kinds = OptionValue::Map(vec![
            ("errors".into(), OptionValue::Flag(true)),
            ("fetch".into(), OptionValue::Flag(true)),
        ]);
        let (config, _) = Config::default().merged(vec![("capture".into(), kinds)]).unwrap();
        assert!(config.capture_errors && config.capture_fetch && !config.capture_history);
        let off = config
            .merged(vec![("capture".into(), OptionValue::Map(vec![("fetch".into(), OptionValue::Flag(false))]))])
            .unwrap()
            .0;
        assert!(off.capture_errors && !off.capture_fetch, "each kind on and off on its own");
        assert!(!off.merged(vec![("capture".into(), OptionValue::Null)]).unwrap().0.capture_errors);
        let bad = Config::default()
            .merged(vec![("capture".into(), OptionValue::Map(vec![("clicks".into(), OptionValue::Flag(true))]))]);
        assert!(bad.unwrap_err().contains("capture.clicks is not a kind of capture"));
    }

    // A warning is shown once per distinct text, and at most 64 in all.
    #[test]
    fn warnings_are_deduplicated_and_capped() {
        let mut w = Warnings::default();
        assert!(w.first("a"));
        assert!(!w.first("a"));
        for n in 0..100 {
            w.first(&decimal(n));
        }
        assert!(!w.first("new after the cap"));
    }

    // configure merges into the options in force; null restores a default; undefined keeps it.
    #[test]
    fn configure_merges_into_current_options() {
        let first = Config::default()
            .merged(vec![("endpoint".into(), OptionValue::Text("https://logs.example/api".into()))])
            .unwrap()
            .0;
        let (second, unknown) = first
            .merged(vec![
                ("studentEmail".into(), OptionValue::Text("ada@example.com".into())),
                ("steps".into(), OptionValue::Absent),
                ("endpont".into(), OptionValue::Text("/typo".into())),
            ])
            .unwrap();
        assert_eq!(second.endpoint, "https://logs.example/api", "the first call's endpoint stays");
        assert_eq!(second.student_email.as_deref(), Some("ada@example.com"));
        assert_eq!(unknown, ["endpont"]);
        let third = second.merged(vec![("endpoint".into(), OptionValue::Null)]).unwrap().0;
        assert_eq!(third.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(third.student_email.as_deref(), Some("ada@example.com"));
        let refused = third.merged(vec![("maxBatchEvents".into(), OptionValue::Number(0.0))]);
        assert!(refused.unwrap_err().contains("maxBatchEvents"));
    }

    // Bad options are refused with a message naming the option.
    #[test]
    fn config_validation_names_the_option() {
        let bad = Config { max_batch_events: 0, ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("maxBatchEvents"));
        let bad = Config { session_token: Some(String::new()), ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("sessionToken"));
        let bad = Config { student_email: Some("not an email".into()), ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("studentEmail"));
        assert_eq!(Config::default().validate(), Ok(()));
    }

    // Options are read by their JavaScript names; absent ones keep their defaults.
    #[test]
    fn options_set_by_javascript_name() {
        let mut config = Config::default();
        config.set("endpoint", OptionValue::Text("https://x/api/session-log".into())).unwrap();
        config.set("maxBatchEvents", OptionValue::Number(10.0)).unwrap();
        config.set("demoMode", OptionValue::Flag(true)).unwrap();
        config.set("steps", OptionValue::List(vec!["A".into(), "B".into()])).unwrap();
        config.set("studentEmail", OptionValue::Text(String::new())).unwrap();
        config.set("sessionToken", OptionValue::Absent).unwrap();
        assert_eq!(config.endpoint, "https://x/api/session-log");
        assert_eq!(config.max_batch_events, 10);
        assert!(config.demo_mode);
        assert_eq!(config.steps, ["A", "B"]);
        assert_eq!(config.student_email, None, "an empty email is anonymous");
        assert_eq!(config.flush_interval_ms, 1000);
        assert!(CONFIG_KEYS.iter().all(|k| Config::default().set(k, OptionValue::Absent).is_ok()));
    }

    // Wrong types and unknown names are refused with the option's name.
    #[test]
    fn bad_options_name_themselves() {
        let mut config = Config::default();
        let cases = [
            ("endpont", OptionValue::Text("/x".into()), "unknown option endpont"),
            ("maxBatchEvents", OptionValue::Text("5".into()), "maxBatchEvents must be a number"),
            ("flushIntervalMs", OptionValue::Number(1.5), "flushIntervalMs must be a whole number ≥ 0"),
            ("steps", OptionValue::Other("an object"), "steps must be an array of strings"),
            ("demoMode", OptionValue::Number(1.0), "demoMode must be a boolean"),
            ("studentName", OptionValue::Flag(true), "studentName must be a string"),
        ];
        for (key, value, expected) in cases {
            assert_eq!(config.set(key, value), Err(expected.to_owned()));
        }
        assert_eq!(config, Config::default(), "a refused option changes nothing");
    }

    fn event(n: usize, size: usize) -> String {
        format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(size))
    }

    // A batch is valid JSON holding the oldest events in order, and stays queued until finished.
    #[test]
    fn batch_holds_oldest_events_until_acknowledged() {
        let mut q = Queue::default();
        for n in 0..5 {
            q.push(n as u64, event(n, 1));
        }
        let batch = q.start_batch(3, 1 << 20).unwrap();
        let body: Value = serde_json::from_str(&batch.body).unwrap();
        let ns: Vec<u64> = body["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect();
        assert_eq!(ns, vec![0, 1, 2]);
        assert_eq!(q.len(), 5);
        assert!(q.start_batch(3, 1 << 20).is_none(), "one batch in flight at a time");
        assert_eq!(q.finish_batch(), vec![0, 1, 2]);
        assert_eq!(q.len(), 2);
        let next: Value = serde_json::from_str(&q.start_batch(3, 1 << 20).unwrap().body).unwrap();
        assert_eq!(next["events"][0]["n"], 3);
    }

    // A failed batch is sent again first, whole, with nothing lost.
    #[test]
    fn released_batch_is_resent_first() {
        let mut q = Queue::default();
        for n in 0..4 {
            q.push(n as u64, event(n, 1));
        }
        let first = q.start_batch(2, 1 << 20).unwrap();
        q.release_batch();
        let again = q.start_batch(2, 1 << 20).unwrap();
        assert_eq!(first, again);
        assert_eq!(q.len(), 4);
    }

    // Batches stay under the byte limit, but an event larger than it still goes out alone.
    #[test]
    fn batches_respect_byte_limit() {
        let mut q = Queue::default();
        q.push(0, event(0, 400));
        q.push(1, event(1, 400));
        q.push(2, event(2, 2000));
        let first = q.start_batch(50, 800).unwrap();
        assert_eq!(first.count, 1, "two ~415-byte events and the envelope exceed 800 bytes");
        assert!(first.body.len() <= 800);
        q.finish_batch();
        assert_eq!(q.start_batch(50, 800).unwrap().count, 1);
        q.finish_batch();
        let big = q.start_batch(50, 800).unwrap();
        assert_eq!(big.count, 1);
        assert!(big.body.len() > 800);
        q.finish_batch();
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    // A batch is due at the event count or the byte size, whichever comes first.
    #[test]
    fn batch_is_due_by_count_or_bytes() {
        let mut q = Queue::default();
        q.push(0, event(0, 10));
        assert!(!q.is_due(2, 1 << 20));
        q.push(1, event(1, 10));
        assert!(q.is_due(2, 1 << 20));
        let mut q = Queue::default();
        q.push(0, event(0, 5000));
        assert!(q.is_due(50, 4096));
    }

    // Page-exit bodies cover every queued event, in order, each body under the byte limit.
    #[test]
    fn chunks_cover_the_queue_under_the_limit() {
        let mut q = Queue::default();
        for n in 0..10 {
            q.push(n, event(n as usize, 100));
        }
        q.start_batch(3, 1 << 20);
        let bodies = q.chunks(50, 400);
        let ns: Vec<u64> = bodies
            .iter()
            .flat_map(|b| {
                assert!(b.len() <= 400, "{}", b.len());
                let v: Value = serde_json::from_str(b).unwrap();
                v["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ns, (0..10).collect::<Vec<_>>(), "in-flight events are included: the page may die first");
    }

    // The dropped count rides on the next batch, and dropping skips the batch in flight.
    #[test]
    fn dropped_count_and_drop_oldest() {
        let mut q = Queue::default();
        for n in 0..4 {
            q.push(n, event(n as usize, 1));
        }
        let batch = q.start_batch_reporting(2, 1 << 20, 7).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&batch.body).unwrap()["dropped"], 7);
        assert_eq!(q.drop_oldest().map(|(id, _)| id), Some(2), "the batch in flight stays");
        assert_eq!(q.finish_batch(), vec![0, 1]);
        assert_eq!(q.len(), 1);
        let plain = q.start_batch(2, 1 << 20).unwrap();
        assert!(!plain.body.contains("dropped"));
    }

    // Backoff doubles per failure up to the cap, scaled by the jitter, and resets on success.
    #[test]
    fn backoff_doubles_with_full_jitter_and_caps() {
        let mut b = Backoff::new(1000, 60_000);
        let delays: Vec<u32> = (0..9).map(|_| b.next_delay_ms(0.999_999)).collect();
        assert_eq!(delays[..7], [999, 1999, 3999, 7999, 15999, 31999, 59999]);
        assert_eq!(delays[8], 59999);
        assert_eq!(b.next_delay_ms(0.0), 0);
        assert_eq!(b.next_delay_ms(0.5), 30_000);
        b.reset();
        assert_eq!(b.next_delay_ms(0.5), 500);
    }

    // With the default options, however long the outage, the next try is at most 8 s away (a
    // server that comes back gets the queue within 8 s), and Retry-After can ask for longer.
    #[test]
    fn default_backoff_retries_within_8_s() {
        let config = Config::default();
        let mut b = Backoff::new(config.retry_base_ms, config.retry_max_ms);
        let delays: Vec<u32> = (0..40).map(|_| b.next_delay_ms(0.999_999)).collect();
        assert_eq!(delays[..4], [999, 1999, 3999, 7999]);
        assert!(delays.iter().all(|d| *d < 8000), "{delays:?}");
    }

    // Retry-After is read as seconds or as an HTTP date; anything else is ignored.
    #[test]
    fn retry_after_seconds_or_http_date() {
        let parse = |s: &str| {
            let at = httpdate::parse_http_date(s).ok()?;
            Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as f64)
        };
        assert_eq!(retry_after_ms("2", 0.0, parse), Some(2000));
        let now = 784_111_777_000.0; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:40 GMT", now, parse), Some(3000));
        assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:30 GMT", now, parse), Some(0));
        assert_eq!(retry_after_ms("soon", now, parse), None);
    }

    // Network errors, 408, 429 and 5xx are retried; other 4xx refuse the batch; 2xx delivers it.
    #[test]
    fn outcome_by_status() {
        assert_eq!(outcome(200), Outcome::Delivered);
        for status in [0, 408, 429, 500, 503] {
            assert_eq!(outcome(status), Outcome::Retry, "{status}");
        }
        for status in [400, 401, 413, 415] {
            assert_eq!(outcome(status), Outcome::Refused, "{status}");
        }
    }
}
