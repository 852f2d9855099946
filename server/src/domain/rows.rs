//! The rows the storage boundary fills and the rules read: a stored event ([`EventRow`]) and a
//! session's summary with its token and student ([`SessionRow`]). Defined here, below storage,
//! so the report, the export and the student view are computed from rows without depending on
//! the storage layer; `storage` re-exports them.

use serde_json::value::RawValue;
use session_log_protocol::StoredEvent;

use crate::domain::summary::SessionSummary;

/// A stored event as queries return it, its data as JSON text.
pub type EventRow = StoredEvent<Box<RawValue>>;

/// A session's summary with its token and student.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// The session token.
    pub session_token: String,
    /// The student's email, when an event named one.
    pub student_email: Option<String>,
    /// The student's name.
    pub student_name: Option<String>,
    /// The summary.
    pub summary: SessionSummary,
    /// Its workshop and room (`session_rooms`); `None` for a session with no placement row.
    pub placement: Option<crate::domain::workshop::Placement>,
}
