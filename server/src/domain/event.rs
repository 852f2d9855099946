//! An event that passed validation: what `ingest` makes and the storage layer takes. Its own
//! module so that storage does not depend on ingest (nor, through it, on the HTTP errors).

use session_log_protocol::Uuid;

use crate::domain::facts::EventFacts;

/// The event type of a student's request for help (the reference's `help_request`): the alert
/// rules pin it, ingest records the client address it came from.
pub const HELP_REQUEST: &str = "help_request";

/// An event that passed validation, as the storage layer takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    /// The client's `eventId`, or a UUIDv7 made on arrival.
    pub uuid: Uuid,
    /// The client's `seq`.
    pub seq: Option<u64>,
    /// `sessionToken`.
    pub session_token: String,
    /// `eventType`.
    pub event_type: String,
    /// `eventData`, as the JSON text the client sent (an object).
    pub event_data: String,
    /// `studentEmail`.
    pub student_email: Option<String>,
    /// `studentName`.
    pub student_name: Option<String>,
    /// Values of `eventData` redacted at ingest (`Config::redaction`).
    pub redacted: usize,
    /// What the session summaries use of `eventData` (read here, on the request's thread, so the
    /// writer does not parse JSON).
    pub facts: EventFacts,
    /// The workshop and room its session joins if this is the session's first stored event
    /// (set at ingest from the body's `writeKey` and `room`; a session keeps its first).
    pub placement: crate::domain::workshop::Placement,
}

/// A committed event as the alert rules take it: from the writer that committed it (the commit
/// feed, `storage::feed`), or read back from storage (events another server stored). Holds what
/// the rules use and nothing of `eventData` but its facts and a help request's message.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEvent {
    /// Its `event_id` (storage position).
    pub event_id: i64,
    /// `created_at`, the commit's time (ms since the Unix epoch).
    pub at_ms: i64,
    /// `sessionToken`.
    pub session_token: String,
    /// `studentEmail`.
    pub student_email: Option<String>,
    /// `eventType`.
    pub event_type: String,
    /// What the rules read of `eventData`.
    pub facts: EventFacts,
    /// `eventData.message` of a help request (`None` for other types).
    pub message: Option<String>,
    /// `eventData.clientAddress` of a help request: the address the server saw it come from
    /// (written at ingest by [`with_client_address`]).
    pub address: Option<String>,
}

impl CommittedEvent {
    /// The event a writer stored as `event_id` at `at_ms`, taking its strings (its `eventData` is
    /// read only for a help request's message, then dropped).
    pub fn of(event: ValidEvent, event_id: i64, at_ms: i64) -> CommittedEvent {
        let (message, address) = help_fields(&event.event_type, &event.event_data);
        CommittedEvent {
            event_id,
            at_ms,
            session_token: event.session_token,
            student_email: event.student_email,
            event_type: event.event_type,
            facts: event.facts,
            message,
            address,
        }
    }

    /// The event read back from storage: `event_data` is its JSON text, `created_at` its ISO 8601
    /// time. Facts are read from the text (one parse).
    pub fn read(
        event_id: i64,
        session_token: &str,
        student_email: Option<&str>,
        event_type: &str,
        event_data: &str,
        created_at: &str,
    ) -> CommittedEvent {
        let (message, address) = help_fields(event_type, event_data);
        CommittedEvent {
            event_id,
            at_ms: crate::domain::clock::iso_ms(created_at),
            session_token: session_token.to_owned(),
            student_email: student_email.map(str::to_owned),
            event_type: event_type.to_owned(),
            facts: EventFacts::read(event_type, event_data),
            message,
            address,
        }
    }
}

/// `eventData.message` and `eventData.clientAddress` of a help request; `None`s for any other
/// type (parsing every event's data again would cost as much as the rules themselves).
fn help_fields(event_type: &str, data: &str) -> (Option<String>, Option<String>) {
    if event_type != HELP_REQUEST {
        return (None, None);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else { return (None, None) };
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    (text("message"), text(CLIENT_ADDRESS))
}

/// The key of `eventData` under which ingest records a help request's client address.
pub const CLIENT_ADDRESS: &str = "clientAddress";

/// A help request's `eventData` (a JSON object) with [`CLIENT_ADDRESS`] set to `address`,
/// replacing whatever the client sent under that key (the server's view is the one that counts:
/// the alert rules group help requests by it). Text that is not an object is returned as is.
pub fn with_client_address(data: &str, address: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(data) {
        Ok(mut object) => {
            object.insert(CLIENT_ADDRESS.to_owned(), serde_json::Value::String(address.to_owned()));
            serde_json::Value::Object(object).to_string()
        }
        Err(_) => data.to_owned(),
    }
}
