//! An event that passed validation: what `ingest` makes and the storage layer takes. Its own
//! module so that storage does not depend on ingest (nor, through it, on the HTTP errors).

use session_log_protocol::Uuid;

use crate::domain::summary::EventFacts;

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
}
