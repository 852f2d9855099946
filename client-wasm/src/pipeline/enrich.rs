//! Enrichment: which fields an event gets and in which precedence ([`Session`], [`EventPlan`]),
//! the kinds of event a page logs ([`EventKind`]) and their values.

use session_log_protocol::redact::Rules;
use session_log_protocol::{event_type, push_json_string, Uuid};

use super::{decimal, event_id, Config, PAGE_VIEW};

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

/// A step number from a JavaScript number: a whole number from 0 to 2^32 - 1, else `None`.
pub fn step_number(value: f64) -> Option<u32> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX)).then_some(value as u32)
}

pub use session_log_protocol::api_call_succeeded;

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
