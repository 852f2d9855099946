//! The client's configuration: [`Config`], the options `configure` takes and how it merges
//! them ([`Config::set`]), and the limits a batch must keep ([`SERVER_MAX_BATCH_EVENTS`]).

use session_log_protocol::redact::Rules;

use super::{cat, decimal, step_number};

/// Default `endpoint`: the reference's ingest path on the page's own origin.
pub const DEFAULT_ENDPOINT: &str = session_log_protocol::ENDPOINT_PATH;

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
    /// session token (see [`super::sampled`]), so a session is sent whole or not at all.
    pub sample_rate: f64,
    /// The workshop's public write key (`wk_…`), sent once per batch as `writeKey`; at most
    /// [`MAX_ENVELOPE_FIELD_BYTES`]. None: the server's `default` workshop (when it takes keyless
    /// events).
    pub write_key: Option<String>,
    /// The room's join code, sent once per batch as `room`; the server ignores case, spaces and
    /// dashes. At most [`MAX_ENVELOPE_FIELD_BYTES`]. None: the workshop's open room, else its lobby.
    pub room: Option<String>,
}

/// Longest `writeKey` and `room` the server takes (bytes); a longer one fails the whole batch.
pub const MAX_ENVELOPE_FIELD_BYTES: usize = 64;

/// The numeric options' defaults (see [`Config`]), named once for `Config::default` and for
/// `configure({option: null})`, which puts one back without building a whole default `Config`
/// (the client's size: 0.2 KB gzipped).
mod defaults {
    pub const MAX_BATCH_EVENTS: usize = 50;
    pub const MAX_BATCH_BYTES: usize = 16 * 1024;
    pub const FLUSH_INTERVAL_MS: u32 = 1000;
    pub const FLUSH_TIMEOUT_MS: u32 = 10_000;
    pub const RETRY_BASE_MS: u32 = 1000;
    pub const RETRY_MAX_MS: u32 = 8_000;
    pub const MAX_QUEUE_EVENTS: usize = 1000;
    pub const MAX_QUEUE_BYTES: usize = 1024 * 1024;
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
            max_batch_events: defaults::MAX_BATCH_EVENTS,
            max_batch_bytes: defaults::MAX_BATCH_BYTES,
            flush_interval_ms: defaults::FLUSH_INTERVAL_MS,
            flush_timeout_ms: defaults::FLUSH_TIMEOUT_MS,
            retry_base_ms: defaults::RETRY_BASE_MS,
            retry_max_ms: defaults::RETRY_MAX_MS,
            max_queue_events: defaults::MAX_QUEUE_EVENTS,
            max_queue_bytes: defaults::MAX_QUEUE_BYTES,
            redact: true,
            redact_keys: Vec::new(),
            capture_errors: false,
            capture_fetch: false,
            capture_history: false,
            sample_rate: 1.0,
            write_key: None,
            room: None,
        }
    }
}

/// The names `configure` knows, to warn about a misspelt option instead of ignoring it silently;
/// [`OPTIONS`] holds, at the same index, the option each names.
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
    "writeKey",
    "room",
];

/// The options, one per name of [`CONFIG_KEYS`] (same order): matched as numbers, not as
/// strings, once the name is found (the client's size: one string comparison loop instead of
/// one per option in each of [`Config::set`] and the reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Endpoint,
    Steps,
    StudentEmail,
    StudentName,
    SessionToken,
    DemoMode,
    MaxBatchEvents,
    MaxBatchBytes,
    FlushIntervalMs,
    FlushTimeoutMs,
    RetryBaseMs,
    RetryMaxMs,
    MaxQueueEvents,
    MaxQueueBytes,
    Redact,
    RedactKeys,
    SampleRate,
    BeforeSend,
    Capture,
    WriteKey,
    Room,
}

/// The option of each name in [`CONFIG_KEYS`].
const OPTIONS: [Opt; 21] = [
    Opt::Endpoint,
    Opt::Steps,
    Opt::StudentEmail,
    Opt::StudentName,
    Opt::SessionToken,
    Opt::DemoMode,
    Opt::MaxBatchEvents,
    Opt::MaxBatchBytes,
    Opt::FlushIntervalMs,
    Opt::FlushTimeoutMs,
    Opt::RetryBaseMs,
    Opt::RetryMaxMs,
    Opt::MaxQueueEvents,
    Opt::MaxQueueBytes,
    Opt::Redact,
    Opt::RedactKeys,
    Opt::SampleRate,
    Opt::BeforeSend,
    Opt::Capture,
    Opt::WriteKey,
    Opt::Room,
];

/// A string option's value. Errors: what it must be.
fn text(value: OptionValue) -> Result<String, &'static str> {
    match value {
        OptionValue::Text(s) => Ok(s),
        _ => Err("a string"),
    }
}

/// An optional string option's value: empty is none. Errors: what it must be.
fn optional_text(value: OptionValue) -> Result<Option<String>, &'static str> {
    text(value).map(|s| Some(s).filter(|s| !s.is_empty()))
}

/// A whole-number option's value. Errors: what it must be.
fn whole(value: OptionValue) -> Result<u32, &'static str> {
    match value {
        OptionValue::Number(n) => step_number(n).ok_or("a whole number ≥ 0"),
        _ => Err("a number"),
    }
}

/// A boolean option's value. Errors: what it must be.
fn flag(value: OptionValue) -> Result<bool, &'static str> {
    match value {
        OptionValue::Flag(flag) => Ok(flag),
        _ => Err("a boolean"),
    }
}

/// A list-of-strings option's value. Errors: what it must be.
fn list(value: OptionValue) -> Result<Vec<String>, &'static str> {
    match value {
        OptionValue::List(items) => Ok(items),
        _ => Err("an array of strings"),
    }
}

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
    /// An empty `studentEmail`, `studentName`, `sessionToken`, `writeKey` or `room` counts as none.
    pub fn set(&mut self, key: &str, value: OptionValue) -> Result<(), String> {
        let Some(index) = CONFIG_KEYS.iter().position(|k| *k == key) else {
            return Err(cat(&["unknown option ", key]));
        };
        let option = OPTIONS[index];
        let value = match value {
            OptionValue::Absent => return Ok(()),
            OptionValue::Null => {
                self.reset(option);
                return Ok(());
            }
            value => value,
        };
        // Each conversion says what the value must be; the message is built once, below (the
        // client's size: one `cat` call instead of one per option).
        let result = match option {
            Opt::Capture => return self.set_capture(value),
            option => self.apply(option, value),
        };
        result.map_err(|what| cat(&[key, " must be ", what]))
    }

    /// Sets `option` (not `capture`) from `value`. Errors: what the value must be.
    fn apply(&mut self, option: Opt, value: OptionValue) -> Result<(), &'static str> {
        match option {
            Opt::Endpoint => self.endpoint = text(value)?,
            Opt::Steps => self.steps = list(value)?,
            Opt::StudentEmail => self.student_email = optional_text(value)?,
            Opt::StudentName => self.student_name = optional_text(value)?,
            Opt::SessionToken => self.session_token = optional_text(value)?,
            Opt::WriteKey => self.write_key = optional_text(value)?,
            Opt::Room => self.room = optional_text(value)?,
            Opt::DemoMode => self.demo_mode = flag(value)?,
            Opt::MaxBatchEvents => self.max_batch_events = whole(value)? as usize,
            Opt::MaxBatchBytes => self.max_batch_bytes = whole(value)? as usize,
            Opt::FlushIntervalMs => self.flush_interval_ms = whole(value)?,
            Opt::FlushTimeoutMs => self.flush_timeout_ms = whole(value)?,
            Opt::RetryBaseMs => self.retry_base_ms = whole(value)?,
            Opt::RetryMaxMs => self.retry_max_ms = whole(value)?,
            Opt::MaxQueueEvents => self.max_queue_events = whole(value)? as usize,
            Opt::MaxQueueBytes => self.max_queue_bytes = whole(value)? as usize,
            Opt::Redact => self.redact = flag(value)?,
            Opt::RedactKeys => self.redact_keys = list(value)?,
            Opt::SampleRate => match value {
                OptionValue::Number(rate) if (0.0..=1.0).contains(&rate) => self.sample_rate = rate,
                _ => return Err("a number from 0 to 1"),
            },
            // `beforeSend`: the function itself stays with the browser layer.
            Opt::BeforeSend | Opt::Capture => match value {
                OptionValue::Function => {}
                _ => return Err("a function"),
            },
        }
        Ok(())
    }

    /// Sets `capture` from `value`, `{errors?, fetch?, history?}` of booleans. Errors: the
    /// whole message.
    fn set_capture(&mut self, value: OptionValue) -> Result<(), String> {
        let OptionValue::Map(kinds) = value else {
            return Err("capture must be an object like {errors: true, fetch: true, history: true}".to_owned());
        };
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
                _ => return Err(cat(&["capture.", &kind, " is not a kind of capture (errors, fetch, history)"])),
            }
        }
        Ok(())
    }

    /// Restores `option` to its default.
    fn reset(&mut self, option: Opt) {
        match option {
            Opt::Endpoint => self.endpoint = DEFAULT_ENDPOINT.to_owned(),
            Opt::Steps => self.steps = Vec::new(),
            Opt::StudentEmail => self.student_email = None,
            Opt::StudentName => self.student_name = None,
            Opt::SessionToken => self.session_token = None,
            Opt::WriteKey => self.write_key = None,
            Opt::Room => self.room = None,
            Opt::DemoMode => self.demo_mode = false,
            Opt::MaxBatchEvents => self.max_batch_events = defaults::MAX_BATCH_EVENTS,
            Opt::MaxBatchBytes => self.max_batch_bytes = defaults::MAX_BATCH_BYTES,
            Opt::FlushIntervalMs => self.flush_interval_ms = defaults::FLUSH_INTERVAL_MS,
            Opt::FlushTimeoutMs => self.flush_timeout_ms = defaults::FLUSH_TIMEOUT_MS,
            Opt::RetryBaseMs => self.retry_base_ms = defaults::RETRY_BASE_MS,
            Opt::RetryMaxMs => self.retry_max_ms = defaults::RETRY_MAX_MS,
            Opt::MaxQueueEvents => self.max_queue_events = defaults::MAX_QUEUE_EVENTS,
            Opt::MaxQueueBytes => self.max_queue_bytes = defaults::MAX_QUEUE_BYTES,
            Opt::Redact => self.redact = true,
            Opt::RedactKeys => self.redact_keys = Vec::new(),
            Opt::SampleRate => self.sample_rate = 1.0,
            Opt::Capture => {
                self.capture_errors = false;
                self.capture_fetch = false;
                self.capture_history = false;
            }
            Opt::BeforeSend => {}
        }
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
    /// The batch fields these options add after `events`: `,"writeKey":"…","room":"…"`, either
    /// left out when not configured; empty when neither is.
    pub fn envelope(&self) -> String {
        let mut out = String::new();
        if let Some(key) = &self.write_key {
            out.push_str(",\"writeKey\":");
            session_log_protocol::push_json_string(&mut out, key);
        }
        if let Some(room) = &self.room {
            out.push_str(",\"room\":");
            session_log_protocol::push_json_string(&mut out, room);
        }
        out
    }

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
    /// `maxBatchBytes`, `endpoint`, `sessionToken`, `writeKey`, `room`, `studentEmail`), meant for `console.warn`.
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
        if [&self.write_key, &self.room].iter().any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_ENVELOPE_FIELD_BYTES))
        {
            return Err("writeKey, room: 64 bytes at most".to_owned());
        }
        if let Some(email) = &self.student_email {
            session_log_protocol::check_email(email).map_err(|e| cat(&["studentEmail ", e.reason()]))?;
        }
        Ok(())
    }
}
