//! One student across all their sessions (`GET /api/students/{email}`): each session's status,
//! span, furthest step, errors and failed calls, and the totals. Read from session summaries.

use serde::Serialize;

use crate::domain::clock::iso_ms;
use crate::domain::rows::SessionRow;
use crate::domain::summary::Status;

/// `GET /api/students/{email}`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudentProfile {
    /// Always `true`.
    pub success: bool,
    /// The email as stored (the first spelling seen).
    pub student_email: String,
    /// The latest name given, if any.
    pub student_name: Option<String>,
    /// Every session the student appears in, oldest first.
    pub sessions: Vec<StudentSession>,
    /// Sums and extremes over those sessions.
    pub totals: StudentTotals,
}

/// One session of the student.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudentSession {
    /// The session token.
    pub session_token: String,
    /// `active`, `idle` or `completed`.
    pub status: Status,
    /// First event (ISO 8601 UTC with ms).
    pub first_seen: String,
    /// Last event (same format).
    pub last_seen: String,
    /// From the first to the last event (ms).
    pub duration_ms: i64,
    /// The step the student is on.
    pub current_step: Option<i64>,
    /// The furthest step reached.
    pub max_step: Option<i64>,
    /// The current step's name.
    pub step_name: Option<String>,
    /// Events stored.
    pub events: u64,
    /// `error` events.
    pub errors: u64,
    /// API calls that failed.
    pub failed_api_calls: u64,
    /// When the session completed, if it did.
    pub completed_at: Option<String>,
}

/// The student's totals.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudentTotals {
    /// Sessions.
    pub sessions: u64,
    /// Of those, completed.
    pub completed_sessions: u64,
    /// Events over all sessions.
    pub events: u64,
    /// Errors over all sessions.
    pub errors: u64,
    /// Failed API calls over all sessions.
    pub failed_api_calls: u64,
    /// Time over all sessions, each from its first to its last event (ms).
    pub duration_ms: i64,
    /// The furthest step reached in any session.
    pub max_step: Option<i64>,
    /// The first event of any session.
    pub first_seen: Option<String>,
    /// The last event of any session.
    pub last_seen: Option<String>,
}

/// Milliseconds from `from` to `to` (ISO 8601 UTC, as stored); 0 when `to` is earlier.
fn span_ms(from: &str, to: &str) -> i64 {
    (iso_ms(to) - iso_ms(from)).max(0)
}

/// The profile of the student `rows` belong to (their sessions' summaries, any order); `None`
/// when there are none. A session is active when its last event is at or after `active_since`;
/// `final_step` completes sessions that reach it.
pub fn profile(rows: Vec<SessionRow>, active_since: &str, final_step: Option<i64>) -> Option<StudentProfile> {
    let first = rows.first()?;
    let (student_email, student_name) = (first.student_email.clone()?, first.student_name.clone());
    let mut sessions: Vec<StudentSession> = rows
        .into_iter()
        .map(|row| {
            let s = row.summary;
            StudentSession {
                status: s.status(active_since, final_step),
                duration_ms: span_ms(&s.first_seen, &s.last_seen),
                step_name: s.step_name().map(str::to_owned),
                session_token: row.session_token,
                current_step: s.current_step,
                max_step: s.max_step,
                events: s.events,
                errors: s.errors,
                failed_api_calls: s.failed_api_calls,
                completed_at: s.completed_at,
                first_seen: s.first_seen,
                last_seen: s.last_seen,
            }
        })
        .collect();
    sessions.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then_with(|| a.session_token.cmp(&b.session_token)));
    let totals = StudentTotals {
        sessions: sessions.len() as u64,
        completed_sessions: sessions.iter().filter(|s| s.status == Status::Completed).count() as u64,
        events: sessions.iter().map(|s| s.events).sum(),
        errors: sessions.iter().map(|s| s.errors).sum(),
        failed_api_calls: sessions.iter().map(|s| s.failed_api_calls).sum(),
        duration_ms: sessions.iter().map(|s| s.duration_ms).sum(),
        max_step: sessions.iter().filter_map(|s| s.max_step).max(),
        first_seen: sessions.iter().map(|s| s.first_seen.clone()).min(),
        last_seen: sessions.iter().map(|s| s.last_seen.clone()).max(),
    };
    Some(StudentProfile { success: true, student_email, student_name, sessions, totals })
}
