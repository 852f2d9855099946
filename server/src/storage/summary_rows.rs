//! The `sessions` rows and the fold of stored events, the same on both backends: a summary is
//! stored as its JSON, and a session's summary is recomputed by folding its stored events in
//! `event_id` order from the columns each backend reads ([`FoldColumns`]).

use super::CorruptRow;
use crate::domain::facts::EventFacts;
use crate::domain::summary::{FoldEvent, SessionSummary};

/// A summary from its stored JSON. Errors: [`CorruptRow`].
pub fn parse(text: &str) -> Result<SessionSummary, CorruptRow> {
    serde_json::from_str(text).map_err(|e| CorruptRow { what: "session summary", reason: e.to_string() })
}

/// A summary's JSON, as it is stored.
pub fn to_json(summary: &SessionSummary) -> String {
    serde_json::to_string(summary).expect("a session summary serializes")
}

/// One stored event as the fold reads it from the `events` table.
#[derive(Debug, Clone, Copy)]
pub struct FoldColumns<'r> {
    /// `event_type`.
    pub event_type: &'r str,
    /// `seq`.
    pub seq: Option<i64>,
    /// `student_id`.
    pub student_id: Option<i64>,
    /// `created_at` as ISO 8601 UTC with ms.
    pub created_at: &'r str,
    /// `event_data` as JSON text.
    pub data: &'r str,
}

/// Folds one stored event into `summary` (started when it is the session's first).
pub fn fold(summary: &mut Option<SessionSummary>, columns: FoldColumns<'_>, completion_types: &[String]) {
    let facts = EventFacts::read(columns.event_type, columns.data);
    let event = FoldEvent {
        event_type: columns.event_type,
        seq: columns.seq.map(|s| s as u64),
        student_id: columns.student_id,
        created_at: columns.created_at,
        facts: &facts,
    };
    summary.get_or_insert_with(SessionSummary::default).apply(&event, completion_types);
}
