//! Parsing and validation of `POST /api/session-log` bodies: from bytes to events ready to store.
//!
//! A body is either one event (the reference's shape) or a batch `{"events": [...]}`. Each event of
//! a batch is validated on its own, so one bad event never costs the others: the valid ones are
//! stored and the bad ones reported by index. Rules (limits from [`IngestLimits`]):
//! - `sessionToken`: 1–128 printable characters; `eventType`: 1–50 of `[A-Za-z0-9_.-]` (the
//!   reference column is `VARCHAR(50)`); `studentEmail`: optional, a plausible address;
//! - `eventData`: a JSON object of at most `max_event_data_bytes` and `max_event_data_depth`;
//! - `eventId`: optional UUID (the server makes a UUIDv7 when absent); `seq`: optional integer ≥ 0.

use serde::Deserialize;
use serde_json::value::RawValue;
use session_log_protocol::{
    check_email, check_event_type, check_session_token, Event, FieldError, RejectedEvent, Uuid,
};

use session_log_protocol::redact::Rules;

use crate::domain::facts::EventFacts;

/// What ingest accepts: the server's `--max-batch-events`, the `eventData` bounds, and what is
/// redacted (`Config::ingest_limits` gives the configured ones).
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits<'a> {
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Largest `eventData`, as JSON text (bytes).
    pub max_event_data_bytes: usize,
    /// Deepest nesting of `eventData` (objects and arrays).
    pub max_event_data_depth: usize,
    /// What is redacted from `eventData` before anything reads or stores it.
    pub redaction: &'a Rules,
}

/// Longest `studentName`, in characters.
pub const MAX_NAME_CHARS: usize = 200;

pub use crate::domain::event::ValidEvent;

/// Why a body was refused as a whole (an invalid event inside a batch is reported by index
/// instead; see [`Parsed::Batch`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body has no bytes (or only whitespace).
    #[error("request body is empty: send an event or {{\"events\": [...]}} as JSON")]
    Empty,
    /// The body is not JSON, or not UTF-8; the message gives the position.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not an object.
    #[error("body must be a JSON object: an event or {{\"events\": [...]}}")]
    NotAnObject,
    /// A single event failed validation (or `events` is not a non-empty array); the message
    /// names the field.
    #[error("{0}")]
    InvalidEvent(String),
    /// A batch in which no event is valid; each one's index and reason.
    #[error("no valid event in the batch ({} rejected); first: {}", .0.len(), .0.first().map_or("", |r| r.error.as_str()))]
    NoValidEvents(Vec<RejectedEvent>),
    /// A batch holds more events than allowed.
    #[error("events: a batch holds at most {max} events, got {got}")]
    TooManyEvents {
        /// The limit, in events.
        max: usize,
        /// Events in the batch.
        got: usize,
    },
}

/// A parsed body.
#[derive(Debug)]
// Made once per request and taken apart at once: boxing the single event would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// The reference's single-event body.
    Single(ValidEvent),
    /// A batch: its valid events in order (plus, at the end, an `events_dropped` event when the
    /// client reported drops), and the rejected ones with their index.
    Batch {
        /// The valid events, in batch order.
        valid: Vec<ValidEvent>,
        /// The invalid events' indexes and reasons.
        rejected: Vec<RejectedEvent>,
    },
}

/// The top-level fields of a body that say where its events go (batch and single-event bodies
/// alike): the workshop's public write key and the room's join code, both optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `writeKey`: at most [`MAX_CREDENTIAL_BYTES`] bytes.
    pub write_key: Option<String>,
    /// `room`: a join code as typed, at most [`MAX_CREDENTIAL_BYTES`] bytes.
    pub room: Option<String>,
}

/// Longest `writeKey` or `room` (bytes).
pub const MAX_CREDENTIAL_BYTES: usize = 64;

/// Parses and validates a body, and reads its [`Credentials`]: a single event, a batch
/// `{"events": [...]}`, or the calls of a page left before its module was ready
/// (`{"sessionToken": …, "calls": [[name, args, at], …]}`, made into a batch by
/// [`early_calls::events_of_calls`](super::early_calls::events_of_calls); its configured
/// `writeKey` and `room` count when the body's top level has none).
///
/// Errors: [`BodyError::Empty`], [`BodyError::MalformedJson`] (not UTF-8 or not JSON, with the
/// position), [`BodyError::NotAnObject`], [`BodyError::InvalidEvent`] (a single event, naming the
/// field), [`BodyError::TooManyEvents`], [`BodyError::NoValidEvents`] (a batch with no valid event);
/// [`BodyError::InvalidEvent`] naming `writeKey` or `room` when one is not a string of at most
/// [`MAX_CREDENTIAL_BYTES`] bytes.
pub fn parse_body(body: &[u8], limits: &IngestLimits<'_>) -> Result<(Parsed, Credentials), BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let text = std::str::from_utf8(body).map_err(|e| BodyError::MalformedJson(format!("body is not UTF-8 ({e})")))?;
    #[derive(Deserialize)]
    struct MaybeBatch<'a, E> {
        events: Option<E>,
        // As the document says: a whole number when present (not null).
        #[serde(default, deserialize_with = "dropped_count")]
        dropped: Option<u64>,
        #[serde(rename = "writeKey", borrow)]
        write_key: Option<&'a RawValue>,
        #[serde(borrow)]
        room: Option<&'a RawValue>,
        // The calls of a page left before its module was ready (`crate::domain::early_calls`).
        #[serde(borrow)]
        calls: Option<&'a RawValue>,
        #[serde(rename = "sessionToken", borrow)]
        session_token: Option<&'a RawValue>,
        // A single event that also has a `calls` field is a single event.
        #[serde(rename = "eventType", borrow)]
        event_type: Option<&'a RawValue>,
    }
    // One pass over the whole body finds the batch's events (or learns it is a single event).
    // Checked first: serde would also read a struct from a JSON array.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => BodyError::NotAnObject,
            Err(e) => BodyError::MalformedJson(e.to_string()),
        });
    }
    let probe: MaybeBatch<Vec<&RawValue>> = match serde_json::from_str(text) {
        Ok(probe) => probe,
        // Malformed JSON, or an `events` that is not an array: a second parse tells which.
        Err(e) => {
            return Err(match serde_json::from_str::<MaybeBatch<&RawValue>>(text) {
                Ok(_) => BodyError::InvalidEvent("events: must be an array of events".into()),
                Err(_) => BodyError::MalformedJson(e.to_string()),
            })
        }
    };
    let mut credentials =
        Credentials { write_key: credential("writeKey", probe.write_key)?, room: credential("room", probe.room)? };
    let events: Vec<std::borrow::Cow<'_, str>> = match (probe.events, probe.calls) {
        (Some(events), _) => events.into_iter().map(|e| e.get().into()).collect(),
        (None, Some(calls)) if probe.event_type.is_none() => {
            let calls: Vec<serde_json::Value> = serde_json::from_str(calls.get())
                .map_err(|_| BodyError::InvalidEvent("calls: must be an array of [name, args, at]".into()))?;
            let token: serde_json::Value =
                probe.session_token.and_then(|t| serde_json::from_str(t.get()).ok()).unwrap_or_default();
            let (events, configured) = super::early_calls::events_of_calls(&token, &calls);
            credentials.write_key = credentials.write_key.or(configured.write_key);
            credentials.room = credentials.room.or(configured.room);
            if events.is_empty() {
                return Err(BodyError::InvalidEvent("calls: holds no logging call".into()));
            }
            events.iter().map(|e| e.to_string().into()).collect()
        }
        (None, _) => {
            let event = validate_event(text.trim(), limits).map_err(BodyError::InvalidEvent)?;
            return Ok((Parsed::Single(event), credentials));
        }
    };
    if events.is_empty() {
        return Err(BodyError::InvalidEvent("events: must not be empty".into()));
    }
    if events.len() > limits.max_batch_events {
        return Err(BodyError::TooManyEvents { max: limits.max_batch_events, got: events.len() });
    }
    let mut valid = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (index, raw) in events.iter().enumerate() {
        match validate_event(raw, limits) {
            Ok(event) => valid.push(event),
            Err(error) => rejected.push(RejectedEvent { index, error }),
        }
    }
    if valid.is_empty() {
        return Err(BodyError::NoValidEvents(rejected));
    }
    if let Some(dropped) = probe.dropped.filter(|n| *n > 0) {
        valid.push(dropped_event(&valid[0], dropped));
    }
    Ok((Parsed::Batch { valid, rejected }, credentials))
}

/// The top-level `name` field: absent or `null`, or a string of at most
/// [`MAX_CREDENTIAL_BYTES`] bytes. Errors: [`BodyError::InvalidEvent`] naming it.
fn credential(name: &str, raw: Option<&RawValue>) -> Result<Option<String>, BodyError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || BodyError::InvalidEvent(format!("{name}: must be a string of at most {MAX_CREDENTIAL_BYTES} bytes"));
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(None) => Ok(None),
        Ok(Some(value)) if value.len() <= MAX_CREDENTIAL_BYTES => Ok(Some(value)),
        _ => Err(bad()),
    }
}

/// `dropped` of a batch, when present: a whole number (see `session_log_protocol::integral`).
fn dropped_count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    session_log_protocol::integral::plain(deserializer).map(Some)
}

/// The event that records a client's report of `count` dropped events, in the session of `first`
/// (the batch's first valid event). Its id is derived from `first`'s, so a retried batch records
/// the report once.
fn dropped_event(first: &ValidEvent, count: u64) -> ValidEvent {
    let mut bytes = *first.uuid.as_bytes();
    for (byte, mask) in bytes.iter_mut().zip(b"session-log:drop") {
        *byte ^= mask;
    }
    ValidEvent {
        uuid: uuid::Builder::from_custom_bytes(bytes).into_uuid(),
        seq: None,
        session_token: first.session_token.clone(),
        event_type: session_log_protocol::EVENTS_DROPPED.to_owned(),
        event_data: serde_json::json!({
            "droppedCount": count,
            "reason": "the client's queue was full (maxQueueEvents, maxQueueBytes or the storage quota)"
        })
        .to_string(),
        student_email: first.student_email.clone(),
        student_name: first.student_name.clone(),
        redacted: 0,
        facts: EventFacts { dropped: count, ..EventFacts::default() },
        placement: first.placement,
    }
}

/// Validates one event's JSON text. Errors: the reason, starting with the field's name.
pub fn validate_event(json: &str, limits: &IngestLimits<'_>) -> Result<ValidEvent, String> {
    // Plain serde first: tracking the path costs about a third of the parse, and only an
    // invalid event needs it, for its message.
    let event: Event<&RawValue> = match serde_json::from_str(json) {
        Ok(event) => event,
        Err(_) => return Err(shape_error(json)),
    };
    check_session_token(&event.session_token).map_err(|e| format!("sessionToken: {e}"))?;
    check_event_type(&event.event_type).map_err(|e| format!("eventType: {e}"))?;
    if let Some(email) = &event.student_email {
        check_email(email).map_err(|e| match e {
            FieldError::NotEmail => format!("studentEmail: {e}: {email:?}"),
            e => format!("studentEmail: {e}"),
        })?;
    }
    if let Some(name) = &event.student_name {
        let chars = name.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(format!("studentName: must be at most {MAX_NAME_CHARS} characters, got {chars}"));
        }
    }
    let data = event.event_data.get();
    if !data.starts_with('{') {
        return Err(format!("eventData: must be a JSON object, got {}", json_kind(data)));
    }
    if data.len() > limits.max_event_data_bytes {
        return Err(format!(
            "eventData: must be at most {} bytes of JSON, got {}",
            limits.max_event_data_bytes,
            data.len()
        ));
    }
    let depth = nesting_depth(data);
    if depth > limits.max_event_data_depth {
        return Err(format!("eventData: must nest at most {} levels, got {depth}", limits.max_event_data_depth));
    }
    // Secrets go before anything reads or stores the data.
    let (data, redacted) = match limits.redaction.redact_json(data) {
        Some((clean, count)) => (clean, count),
        None => (data.to_owned(), 0),
    };
    let facts = EventFacts::read(&event.event_type, &data);
    Ok(ValidEvent {
        facts,
        redacted,
        placement: Default::default(),
        uuid: event.event_id.unwrap_or_else(Uuid::now_v7),
        seq: event.seq,
        session_token: event.session_token,
        event_type: event.event_type,
        event_data: data,
        student_email: event.student_email.filter(|e| !e.is_empty()),
        student_name: event.student_name.filter(|n| !n.is_empty()),
    })
}

/// Why `json` is not an event, naming the field (`serde_path_to_error`), e.g.
/// `eventData: invalid type: string "x", expected a JSON object`.
fn shape_error(json: &str) -> String {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, Event<&RawValue>>(&mut deserializer) {
        // Only trailing characters make plain serde fail where the tracked parse succeeds.
        Ok(_) => deserializer
            .end()
            .err()
            .map_or_else(|| "not a valid event".to_owned(), |e| strip_position(&e.to_string()).to_owned()),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let inner = strip_position(&inner);
            if path == "." {
                inner.to_owned()
            } else {
                format!("{path}: {inner}")
            }
        }
    }
}

/// serde_json appends " at line 1 column 42" to its messages; inside one event of a batch the
/// position means little, the field path says more.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Deepest nesting of objects and arrays in valid JSON text (`{}` is 1). Strings are skipped
/// with `memchr` (most of an event's bytes are inside strings), so this costs a fraction of the
/// parse it follows.
fn nesting_depth(json: &str) -> usize {
    let bytes = json.as_bytes();
    let (mut depth, mut max, mut at) = (0usize, 0usize, 0usize);
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => {
                // Jump to the closing quote, stepping over escapes (`\"` does not close it).
                at += 1;
                loop {
                    match bytes.get(at..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
                        Some(offset) if bytes[at + offset] == b'\\' => at += offset + 2,
                        Some(offset) => {
                            at += offset;
                            break;
                        }
                        None => return max, // unterminated: not valid JSON, nothing deeper follows
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The server's default limits.
    fn config() -> IngestLimits<'static> {
        static RULES: std::sync::LazyLock<Rules> = std::sync::LazyLock::new(Rules::default);
        IngestLimits {
            max_batch_events: 500,
            max_event_data_bytes: 32 * 1024,
            max_event_data_depth: 32,
            redaction: &RULES,
        }
    }

    fn err_of(value: serde_json::Value) -> String {
        match parse_body(value.to_string().as_bytes(), &config()) {
            Err(BodyError::InvalidEvent(message)) => message,
            other => panic!("expected InvalidEvent, got {other:?}"),
        }
    }

    // The reference's POST body is accepted, and the server gives it a UUIDv7.
    #[test]
    fn reference_body_is_valid() {
        let body = include_str!("../../../protocol/fixtures/reference-post.json");
        let Parsed::Single(event) = parse_body(body.as_bytes(), &config()).unwrap().0 else { panic!("single") };
        assert_eq!(event.session_token, "ws_1234567890");
        assert_eq!(event.event_type, "navigation");
        assert_eq!(event.uuid.get_version_num(), 7);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&event.event_data).unwrap(), json!({"from": 1, "to": 2}));
    }

    // A page's early calls become a batch with the configured credentials; a single event with
    // a stray `calls` field stays a single event; calls without a logging call are a 400.
    #[test]
    fn early_calls_are_a_batch() {
        let body = json!({"sessionToken": "ws_early", "calls": [
            ["configure", [{"writeKey": "wk_1", "room": "K7PQ2X"}], 1_765_152_000_000_u64],
            ["logAction", ["clicked"], 1_765_152_000_001_u64],
            ["logSessionEvent", ["bad type!", {}], 1_765_152_000_002_u64]
        ]});
        let (parsed, credentials) = parse_body(body.to_string().as_bytes(), &config()).unwrap();
        assert_eq!(credentials, Credentials { write_key: Some("wk_1".into()), room: Some("K7PQ2X".into()) });
        let Parsed::Batch { valid, rejected } = parsed else { panic!("a batch") };
        assert_eq!(
            (valid.len(), valid[0].event_type.as_str(), valid[0].session_token.as_str()),
            (1, "action", "ws_early")
        );
        assert_eq!(rejected.len(), 1, "the bad type is refused alone: {rejected:?}");
        let single = json!({"sessionToken": "ws_1", "eventType": "action", "eventData": {}, "calls": 5});
        assert!(matches!(parse_body(single.to_string().as_bytes(), &config()).unwrap().0, Parsed::Single(_)));
        assert_eq!(
            err_of(json!({"sessionToken": "ws_1", "calls": [["optIn", [], 1]]})),
            "calls: holds no logging call"
        );
        assert_eq!(err_of(json!({"sessionToken": "ws_1", "calls": 5})), "calls: must be an array of [name, args, at]");
    }

    // Each rule's error names the field at fault.
    #[test]
    fn errors_name_the_field() {
        let base = json!({"sessionToken": "ws_1", "eventType": "action", "eventData": {}});
        let with = |key: &str, value: serde_json::Value| {
            let mut v = base.clone();
            v[key] = value;
            v
        };
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("eventType");
        assert_eq!(err_of(missing), "missing field `eventType`");
        assert_eq!(err_of(with("eventData", json!("x"))), "eventData: must be a JSON object, got a string");
        assert_eq!(err_of(with("eventData", json!([1]))), "eventData: must be a JSON object, got an array");
        assert!(err_of(with("eventType", json!(5))).starts_with("eventType: invalid type: integer `5`"));
        assert!(err_of(with("eventType", json!(""))).starts_with("eventType: must not be empty"));
        assert!(err_of(with("eventType", json!("x".repeat(51)))).contains("at most 50"));
        assert!(err_of(with("sessionToken", json!(""))).starts_with("sessionToken:"));
        assert!(err_of(with("studentEmail", json!("nobody"))).starts_with("studentEmail:"));
        assert!(err_of(with("eventId", json!("not-a-uuid"))).starts_with("eventId:"));
        assert!(err_of(with("seq", json!(-1))).starts_with("seq:"));
    }

    // Oversized and over-deep eventData are refused with the limit in the message.
    #[test]
    fn event_data_size_and_depth_limits() {
        let big = json!({"sessionToken": "ws_1", "eventType": "a", "eventData": {"x": "y".repeat(40_000)}});
        assert!(err_of(big).contains("at most 32768 bytes"));
        let mut deep = json!({});
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        let deep = json!({"sessionToken": "ws_1", "eventType": "a", "eventData": deep});
        assert!(err_of(deep).contains("nest at most 32"));
    }

    // Brackets inside strings do not count towards the nesting depth.
    #[test]
    fn depth_ignores_strings() {
        assert_eq!(nesting_depth(r#"{"a":"[[[{{{\"]]]","b":[{}]}"#), 3);
        // An escaped backslash does not escape the quote after it.
        assert_eq!(nesting_depth(r#"{"a":"x\\","b":[[{"c":"\\\"{"}]]}"#), 4);
    }

    // A batch whose `events` is not an array is told so; a cut-off batch is malformed JSON.
    #[test]
    fn events_must_be_an_array() {
        match parse_body(br#"{"events": {"eventType": "a"}}"#, &config()) {
            Err(BodyError::InvalidEvent(message)) => assert_eq!(message, "events: must be an array of events"),
            other => panic!("expected InvalidEvent, got {other:?}"),
        }
        match parse_body(br#"{"events": [{"eventType": "a"}"#, &config()) {
            Err(BodyError::MalformedJson(message)) => assert!(message.contains("EOF"), "{message}"),
            other => panic!("expected MalformedJson, got {other:?}"),
        }
    }

    // A batch keeps its valid events and reports the invalid ones by index.
    #[test]
    fn batch_keeps_valid_events_and_reports_the_rest() {
        let body = json!({"events": [
            {"sessionToken": "ws_1", "eventType": "a", "eventData": {"n": 0}},
            {"sessionToken": "ws_1", "eventType": "", "eventData": {}},
            {"sessionToken": "ws_1", "eventType": "a", "eventData": {"n": 2}},
        ]});
        let (Parsed::Batch { valid, rejected }, _) = parse_body(body.to_string().as_bytes(), &config()).unwrap() else {
            panic!("batch")
        };
        assert_eq!(valid.len(), 2);
        assert_eq!(rejected, vec![RejectedEvent { index: 1, error: "eventType: must not be empty".into() }]);
    }

    // A reported drop becomes one events_dropped event of the batch's session, the same on a retry.
    #[test]
    fn dropped_report_becomes_an_event() {
        let body = json!({"events": [{"sessionToken": "ws_1", "eventType": "a", "eventData": {},
                                      "eventId": "01890a5d-ac96-774b-bcce-b302099a8057"}], "dropped": 4});
        let parse = || match parse_body(body.to_string().as_bytes(), &config()).unwrap().0 {
            Parsed::Batch { valid, .. } => valid,
            other => panic!("{other:?}"),
        };
        let (first, second) = (parse(), parse());
        assert_eq!(first.len(), 2);
        assert_eq!(first[1].event_type, "events_dropped");
        assert_eq!(first[1].session_token, "ws_1");
        assert!(first[1].event_data.contains(r#""droppedCount":4"#));
        assert_eq!(first[1].uuid, second[1].uuid, "a retried report has the same id");
        assert_ne!(first[1].uuid, first[0].uuid);
    }

    // A batch and a single event both carry the write key and the room at the top; a key that is
    // not a short string is refused, naming the field.
    #[test]
    fn credentials_travel_at_the_top_of_either_body() {
        let batch = json!({"writeKey": "wk_1", "room": "abc-234",
                           "events": [{"sessionToken": "ws_1", "eventType": "a", "eventData": {}}]});
        let (_, credentials) = parse_body(batch.to_string().as_bytes(), &config()).unwrap();
        assert_eq!(credentials, Credentials { write_key: Some("wk_1".into()), room: Some("abc-234".into()) });
        let single = json!({"writeKey": "wk_2", "sessionToken": "ws_1", "eventType": "a", "eventData": {}});
        let (parsed, credentials) = parse_body(single.to_string().as_bytes(), &config()).unwrap();
        assert!(matches!(parsed, Parsed::Single(_)));
        assert_eq!(credentials.write_key.as_deref(), Some("wk_2"));
        assert_eq!(credentials.room, None);
        for bad in [json!(5), json!("k".repeat(65))] {
            let body = json!({"writeKey": bad, "sessionToken": "ws_1", "eventType": "a", "eventData": {}});
            let error = parse_body(body.to_string().as_bytes(), &config()).unwrap_err();
            assert!(matches!(&error, BodyError::InvalidEvent(m) if m.starts_with("writeKey")), "{error:?}");
        }
    }

    // Bodies that are not JSON objects are refused as a whole.
    #[test]
    fn whole_body_errors() {
        assert!(matches!(parse_body(b"", &config()), Err(BodyError::Empty)));
        assert!(matches!(parse_body(b"{\"a\":", &config()), Err(BodyError::MalformedJson(_))));
        assert!(matches!(parse_body(b"[1]", &config()), Err(BodyError::NotAnObject)));
        assert!(matches!(parse_body(b"\xff\xfe", &config()), Err(BodyError::MalformedJson(_))));
        let empty = json!({"events": []}).to_string();
        assert!(matches!(parse_body(empty.as_bytes(), &config()), Err(BodyError::InvalidEvent(_))));
        let too_many = json!({"events": vec![json!({}); 501]}).to_string();
        assert!(matches!(
            parse_body(too_many.as_bytes(), &config()),
            Err(BodyError::TooManyEvents { max: 500, got: 501 })
        ));
        let none_valid = json!({"events": [{}]}).to_string();
        assert!(
            matches!(parse_body(none_valid.as_bytes(), &config()), Err(BodyError::NoValidEvents(r)) if r.len() == 1)
        );
    }
}
