//! Wire types of session-log, shared by the wasm client and the server.
//!
//! The shapes and names come from the session logging system session-log grew from (the README
//! describes its wire format): requests use its camelCase names
//! (`sessionToken`, `studentEmail`, `eventType`, `eventData`), the query response its snake_case
//! names (`event_id`, `session_token`, …). Everything session-log adds (batches, `studentName`,
//! `eventId`, `seq`, `rejected`) is an optional extension, so a body written against the reference
//! is still valid and a reader of the reference's response still finds every field it expects.
//!
//! The event payload type `D` is generic: the server uses `serde_json` values, the wasm client a
//! JavaScript object passed through untouched (it has no `serde_json` inside, to stay small).
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
pub use uuid::Uuid;

pub mod redact;

/// Appends `text` to `out` as a JSON string, quotes included (RFC 8259 §7: `"`, `\` and the
/// control characters escaped; everything else as it is).
pub fn push_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(char::from(HEX[(c as usize >> 4) & 0xf]));
                out.push(char::from(HEX[c as usize & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Path of the ingest and query endpoint (reference: "API Endpoints").
pub const ENDPOINT_PATH: &str = "/api/session-log";

/// The `message` of a successful single-event POST, exactly as the reference answers it.
pub const LOGGED_MESSAGE: &str = "Event logged successfully";

/// Longest `eventType`, in characters: the reference column is `VARCHAR(50)`.
pub const MAX_EVENT_TYPE_CHARS: usize = 50;

/// Longest `sessionToken`, in characters.
pub const MAX_SESSION_TOKEN_CHARS: usize = 128;

/// Longest `studentEmail`, in characters (RFC 5321's path limit of 256 octets less the brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// `success` of an API call event: a 2xx or 3xx status (the reference shows
/// `status: 200, success: true`). Status 0 (a network error in `fetch`) is a failure.
pub fn api_call_succeeded(status: f64) -> bool {
    (200.0..400.0).contains(&status)
}

/// The `eventType` of each client function (reference: "Event Types").
pub mod event_type {
    /// `logNavigation(from, to)`.
    pub const NAVIGATION: &str = "navigation";
    /// `logError(errorType, errorMessage, errorDetails)`.
    pub const ERROR: &str = "error";
    /// `logAction(actionName, actionDetails)`.
    pub const ACTION: &str = "action";
    /// `logApiCall(endpoint, method, status, details)`.
    pub const API_CALL: &str = "api_call";
    /// `logStateChange(stateName, oldValue, newValue)`.
    pub const STATE_CHANGE: &str = "state_change";
}

/// One event as a page sends it: the body of the reference's `POST /api/session-log`.
///
/// ```json
/// {"sessionToken": "ws_1234567890", "studentEmail": "student@example.com",
///  "eventType": "navigation", "eventData": {"from": 1, "to": 2},
///  "eventId": "01890a5d-ac96-774b-bcce-b302099a8057", "seq": 7}
/// ```
/// `studentEmail` is optional (anonymous sessions). `studentName`, `eventId` (a UUIDv7 the client
/// makes when the event is logged, so a retried event is stored once) and `seq` (the event's
/// number within its session, 0-based) are session-log extensions and optional too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Event<D> {
    /// The session's token, e.g. `ws_3f9c…`; 1–128 printable characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]{1,128}$"
        )
    )]
    pub session_token: String,
    /// The student's email, if the page knows it: text, `@`, and a domain with a dot inside
    /// (at most 254 characters, no spaces or control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 254,
            pattern = "^[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+@[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@.][^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@]*\\.[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@]*[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@.]$"
        )
    )]
    pub student_email: Option<String>,
    /// The student's display name, if the page knows it (extension); at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub student_name: Option<String>,
    /// `navigation`, `error`, `action`, `api_call`, `state_change` or a page's own type;
    /// 1–50 characters of letters, digits, `_`, `-` and `.`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_.-]{1,50}$"))]
    pub event_type: String,
    /// The event's fields: a JSON object.
    pub event_data: D,
    /// The event's identity, a UUIDv7 (extension): hyphenated or 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$"
        )
    )]
    pub event_id: Option<Uuid>,
    /// The event's number within its session, counting from 0 (extension). A JSON number with
    /// an integral value (`17` or `17.0`, as JSON Schema's `integer` allows) up to 2^53.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::option")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740992_u64))]
    pub seq: Option<u64>,
}

/// Several events in one POST (extension): `{"events": [Event, …], "dropped": 3}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Batch<E> {
    /// The events, in the order they were logged (1–500 by default: `--max-batch-events`).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 500))]
    pub events: Vec<E>,
    /// Events the client dropped (its queue was full) since its last acknowledged report; the
    /// server records them as an [`EVENTS_DROPPED`] event of the batch's session. Omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero_u64", deserialize_with = "integral::plain")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740992_u64))]
    pub dropped: u64,
}

/// `eventType` of the event the server records when a client reports dropped events; its
/// `eventData` is `{"droppedCount": N, "reason": "…"}`.
pub const EVENTS_DROPPED: &str = "events_dropped";

/// Answer to a single-event POST, exactly the reference's:
/// `{"success": true, "message": "Event logged successfully"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoggedResponse {
    /// Always `true`.
    pub success: bool,
    /// Always [`LOGGED_MESSAGE`].
    pub message: String,
}

impl Default for LoggedResponse {
    fn default() -> Self {
        LoggedResponse { success: true, message: LOGGED_MESSAGE.to_owned() }
    }
}

/// Answer to a batch POST: `{"success": true, "accepted": 49, "rejected": [{"index": 3, "error": "…"}]}`.
///
/// `accepted` counts the events that are stored now, including those the server already had
/// (a retried batch is acknowledged as a whole); `duplicates` says how many of them it already had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResponse {
    /// `true`: at least the accepted events are stored.
    pub success: bool,
    /// Events stored (new or already present).
    pub accepted: usize,
    /// Events of the batch that were already stored (matched by `eventId`); omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicates: usize,
    /// Events refused for good, with the reason; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvent>,
}

/// One event of a batch that the server refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectedEvent {
    /// Position of the event in the batch's `events`, from 0.
    pub index: usize,
    /// What is wrong with it, naming the field, e.g. `eventType: must not be empty`.
    pub error: String,
}

/// Body of every 4xx/5xx answer: `{"success": false, "error": "…"}`.
///
/// For a batch in which no event was valid, `rejected` lists each event's reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    /// Always `false`.
    pub success: bool,
    /// What went wrong, in words meant for the developer who sent the request.
    pub error: String,
    /// Per-event reasons, for a batch; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvent>,
}

/// Answer to `GET /api/session-log`, exactly the reference's shape:
/// `{"success": true, "count": 15, "events": [StoredEvent, …]}`, newest first. With a
/// `sessionToken` filter it also says what that session lost (extensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryResponse<D> {
    /// Always `true`.
    pub success: bool,
    /// `events.len()`.
    pub count: usize,
    /// The matching events.
    pub events: Vec<StoredEvent<D>>,
    /// For a `sessionToken` query: numbers missing from the session's `seq` 0…max (events the
    /// client logged that never arrived, or have not arrived yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_events: Option<u64>,
    /// For a `sessionToken` query: events the client reported dropping (its queue was full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_events: Option<u64>,
    /// Present when more events match than were returned: pass it as `cursor` (same filters and
    /// order) for the next page (extension).
    #[serde(rename = "nextCursor", default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One stored event as the query returns it (reference: the `events` table joined with `students`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent<D> {
    /// The server's sequence number of the event (the table's primary key).
    pub event_id: i64,
    /// The session's token.
    pub session_token: String,
    /// The event type.
    pub event_type: String,
    /// The event's fields, as the page sent them plus the client's context fields.
    pub event_data: D,
    /// When the server stored the event: ISO 8601 UTC with milliseconds, e.g. `2025-10-27T15:30:45.123Z`.
    pub created_at: String,
    /// The student's email, or `null` for an anonymous session.
    pub student_email: Option<String>,
    /// The student's name, or `null`.
    pub student_name: Option<String>,
    /// The event's UUID (the client's `eventId`, or one the server made) (extension).
    pub event_uuid: Uuid,
    /// The client's `seq`, or `null` (extension).
    pub seq: Option<u64>,
}

/// Why a field of an event is invalid ([`check_event_type`], [`check_session_token`],
/// [`check_email`]). `Display` gives the reason without the field name, e.g.
/// `must be at most 50 characters, got 51`; [`FieldError::reason`] gives it without figures, for
/// the wasm client (which keeps Rust's formatting machinery out of its module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// The value is empty.
    Empty,
    /// The value has `got` characters, more than `max`.
    TooLong {
        /// Most characters allowed.
        max: usize,
        /// Characters found.
        got: usize,
    },
    /// An `eventType` holds `found`, which is not a letter, digit, `_`, `-` or `.`.
    BadEventTypeChar {
        /// The first character not allowed.
        found: char,
    },
    /// A `sessionToken` holds a space or a control character.
    NotPrintable,
    /// A `studentEmail` is not shaped like an email address.
    NotEmail,
}

impl FieldError {
    /// The reason without figures, e.g. `is too long`.
    pub fn reason(&self) -> &'static str {
        match self {
            FieldError::Empty => "must not be empty",
            FieldError::TooLong { .. } => "is too long",
            FieldError::BadEventTypeChar { .. } => "may hold only letters, digits, '_', '-' and '.'",
            FieldError::NotPrintable => "must hold only printable characters without spaces",
            FieldError::NotEmail => "is not an email address",
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldError::TooLong { max, got } => {
                write!(f, "must be at most {max} characters, got {got}")
            }
            FieldError::BadEventTypeChar { found } => {
                write!(f, "{}, found {found:?}", self.reason())
            }
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for FieldError {}

/// Checks an `eventType`: 1–50 characters of ASCII letters, digits, `_`, `-` and `.`.
///
/// Errors: [`FieldError::Empty`], [`FieldError::TooLong`], [`FieldError::BadEventTypeChar`].
pub fn check_event_type(event_type: &str) -> Result<(), FieldError> {
    if event_type.is_empty() {
        return Err(FieldError::Empty);
    }
    let chars = event_type.chars().count();
    if chars > MAX_EVENT_TYPE_CHARS {
        return Err(FieldError::TooLong { max: MAX_EVENT_TYPE_CHARS, got: chars });
    }
    match event_type.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(found) => Err(FieldError::BadEventTypeChar { found }),
        None => Ok(()),
    }
}

/// Checks a `sessionToken`: 1–128 printable characters (no control characters, no spaces).
///
/// Errors: [`FieldError::Empty`], [`FieldError::TooLong`], [`FieldError::NotPrintable`].
pub fn check_session_token(token: &str) -> Result<(), FieldError> {
    if token.is_empty() {
        return Err(FieldError::Empty);
    }
    let chars = token.chars().count();
    if chars > MAX_SESSION_TOKEN_CHARS {
        return Err(FieldError::TooLong { max: MAX_SESSION_TOKEN_CHARS, got: chars });
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(FieldError::NotPrintable);
    }
    Ok(())
}

/// Checks a `studentEmail`: at most 254 characters, one `@` with text on both sides, a dot in the
/// domain, and no spaces or control characters. Deliberately loose (RFC 5322 allows far more than
/// forms do): it catches a name or a token typed into the email field, not every impossible address.
///
/// Errors: [`FieldError::TooLong`], [`FieldError::NotEmail`].
pub fn check_email(email: &str) -> Result<(), FieldError> {
    let chars = email.chars().count();
    if chars > MAX_EMAIL_CHARS {
        return Err(FieldError::TooLong { max: MAX_EMAIL_CHARS, got: chars });
    }
    let plausible = match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        }
        None => false,
    };
    if plausible {
        Ok(())
    } else {
        Err(FieldError::NotEmail)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Whole numbers as JSON Schema's `integer` means them: `17` and `17.0` alike, from 0 to 2^53
/// (the integers every JSON reader keeps exactly).
pub mod integral {
    use serde::{Deserialize, Deserializer};

    /// Largest accepted value: 2^53.
    pub const MAX: u64 = 1 << 53;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(u64),
        Float(f64),
    }

    fn whole<E: serde::de::Error>(number: Number) -> Result<u64, E> {
        match number {
            Number::Whole(n) if n <= MAX => Ok(n),
            Number::Float(f) if f.fract() == 0.0 && (0.0..=MAX as f64).contains(&f) => Ok(f as u64),
            _ => Err(E::custom(format!("must be a whole number from 0 to {MAX}"))),
        }
    }

    /// A whole number.
    pub fn plain<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        whole(Number::deserialize(deserializer)?)
    }

    /// A whole number or `null`.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Option::<Number>::deserialize(deserializer)?.map(whole).transpose()
    }
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    // The reference's own POST body is a valid event and serialises back to the same JSON.
    #[test]
    fn reference_post_body_round_trips() {
        let text = fixture("reference-post.json");
        let event: Event<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(event.session_token, "ws_1234567890");
        assert_eq!(event.student_email.as_deref(), Some("student@example.com"));
        assert_eq!(event.event_type, event_type::NAVIGATION);
        assert_eq!(event.event_id, None);
        let back = serde_json::to_value(&event).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(&text).unwrap());
    }

    // An event without an email is valid (anonymous sessions) and its JSON has no studentEmail key.
    #[test]
    fn anonymous_event_omits_email() {
        let event: Event<Value> = serde_json::from_value(json!({
            "sessionToken": "ws_1", "eventType": "action", "eventData": {"actionName": "x"}
        }))
        .unwrap();
        let back = serde_json::to_value(&event).unwrap();
        assert!(back.get("studentEmail").is_none());
    }

    // The reference's query response deserialises, and ours carries every field it shows by name.
    #[test]
    fn query_response_keeps_reference_field_names() {
        let reference: Value = serde_json::from_str(&fixture("reference-get-response.json")).unwrap();
        let ours = QueryResponse {
            success: true,
            count: 1,
            events: vec![StoredEvent {
                event_id: 123,
                session_token: "ws_1234567890".into(),
                event_type: "navigation".into(),
                event_data: json!({"from": 1, "to": 2}),
                created_at: "2025-10-27T15:30:45.123Z".into(),
                student_email: Some("student@example.com".into()),
                student_name: Some("John Doe".into()),
                event_uuid: Uuid::nil(),
                seq: None,
            }],
            missing_events: None,
            next_cursor: None,
            dropped_events: None,
        };
        let ours = serde_json::to_value(&ours).unwrap();
        for key in ["success", "count", "events"] {
            assert!(ours.get(key).is_some(), "missing {key}");
        }
        let theirs = reference["events"][0].as_object().unwrap();
        let ours = ours["events"][0].as_object().unwrap();
        for (key, value) in theirs {
            assert!(ours.contains_key(key), "our stored event lacks the reference's {key}");
            assert_eq!(ours[key], *value, "{key} differs");
        }
    }

    // Event types follow the reference column's 50-character limit and a safe character set.
    #[test]
    fn event_type_rules() {
        assert!(check_event_type("api_call").is_ok());
        assert!(check_event_type("custom.event-1").is_ok());
        assert!(check_event_type("").is_err());
        assert!(check_event_type(&"a".repeat(51)).unwrap_err().to_string().contains("50"));
        assert!(check_event_type("drop table").is_err());
    }

    // Tokens are printable and bounded; emails need a local part, an @ and a dotted domain.
    #[test]
    fn token_and_email_rules() {
        assert!(check_session_token("ws_1234567890").is_ok());
        assert!(check_session_token("ws 1").is_err());
        assert!(check_session_token(&"x".repeat(129)).is_err());
        assert!(check_email("student@example.com").is_ok());
        assert!(check_email("student@localhost").is_err());
        assert!(check_email("@example.com").is_err());
        assert!(check_email("Ada Lovelace").is_err());
        assert!(check_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    // A batch answer omits `rejected` and `duplicates` when there is nothing to report.
    #[test]
    fn batch_response_omits_empty_extensions() {
        let text =
            serde_json::to_string(&BatchResponse { success: true, accepted: 3, duplicates: 0, rejected: vec![] })
                .unwrap();
        assert_eq!(text, r#"{"success":true,"accepted":3}"#);
    }
}
