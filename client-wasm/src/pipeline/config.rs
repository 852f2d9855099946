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
