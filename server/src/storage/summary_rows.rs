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

impl FoldColumns<'_> {
    /// Calls `f` with the event as the fold reads it (its facts read from `data`).
    pub fn with_event<T>(&self, f: impl FnOnce(&FoldEvent<'_>) -> T) -> T {
        let facts = EventFacts::read(self.event_type, self.data);
        f(&FoldEvent {
            event_type: self.event_type,
            seq: self.seq.map(|s| s as u64),
            student_id: self.student_id,
            created_at: self.created_at,
            facts: &facts,
        })
    }
}

/// Folds one stored event into `summary` (started when it is the session's first).
pub fn fold(summary: &mut Option<SessionSummary>, columns: FoldColumns<'_>, completion_types: &[String]) {
    columns.with_event(|event| summary.get_or_insert_with(SessionSummary::default).apply(event, completion_types));
}
