//! A help request's evidence: what its session was doing when the helper reads it. Its step and
//! how long it has been there against the room's median on that step, and its latest errors
//! and failed API calls ([`EVIDENCE_WINDOW`], at most [`EVIDENCE_EVENTS`], newest first), read
//! from the session's summary and events ([`Evidence::build`]). Its `cause` (the newest of
//! them) groups waiting requests that share one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::facts::EventFacts;
use crate::domain::rows::EventRow;
use crate::domain::summary::SessionSummary;

/// How far back a request's errors and failed calls are read.
pub const EVIDENCE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most errors and failed calls a request lists.
pub const EVIDENCE_EVENTS: usize = 10;
/// Most characters of an error's message kept.
const MESSAGE_CHARS: usize = 200;

/// One error or failed API call of the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceEvent {
    /// `error` or `api_call`.
    pub event_type: String,
    /// When it was stored (ISO 8601 UTC with ms).
    pub at: String,
    /// The error's `errorType` (`error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The error's `errorMessage`, at most 200 characters (`error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The call's `endpoint` (`api_call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The call's `method` (`api_call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The call's HTTP `status`, when a number (`api_call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
}

/// What the session of a help request was doing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The step it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// That step's name, when events named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// How long it has been on that step (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_step_ms: Option<i64>,
    /// The room's median time on that step (ms), when enough of the room left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical_ms: Option<i64>,
    /// Its errors and failed API calls of the last 15 minutes, newest first, at most 10.
    pub recent: Vec<EvidenceEvent>,
    /// The newest of them as a cause: `error:<errorType>` or `endpoint:<endpoint>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The fields of `eventData` an evidence line shows, read leniently.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Shown {
    error_message: Option<serde_json::Value>,
    method: Option<serde_json::Value>,
    status: Option<serde_json::Value>,
}

impl EvidenceEvent {
    /// The evidence line of `row`, when it is an error or a failed API call.
    pub fn of(row: &EventRow) -> Option<EvidenceEvent> {
        let data = row.event_data.get();
        let facts = EventFacts::read(&row.event_type, data);
        let failed_call = row.event_type == "api_call" && facts.api_failed;
        if row.event_type != "error" && !failed_call {
            return None;
        }
        let shown: Shown = serde_json::from_str(data).unwrap_or_default();
        let text = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s.chars().take(MESSAGE_CHARS).collect()),
            _ => None,
        };
        Some(EvidenceEvent {
            event_type: row.event_type.clone(),
            at: row.created_at.clone(),
            error_type: facts.error_type,
            message: text(shown.error_message),
            endpoint: facts.endpoint,
            method: text(shown.method),
            status: shown.status.and_then(|s| s.as_i64()),
        })
    }

    /// This line as a cause: `error:<errorType>` or `endpoint:<endpoint>`.
    pub fn cause(&self) -> Option<String> {
        match (&self.error_type, &self.endpoint) {
            (Some(error_type), _) => Some(format!("error:{error_type}")),
            (None, Some(endpoint)) => Some(format!("endpoint:{endpoint}")),
            (None, None) => None,
        }
    }
}

impl Evidence {
    /// The evidence of a session from its `summary` (when stored), its `events` of the window
    /// (any order, any types: the errors and failed calls are picked), the room's median time on
    /// its step `typical_ms`, at `now_ms` (ms since the Unix epoch).
    pub fn build(
        summary: Option<&SessionSummary>,
        events: &[EventRow],
        typical_ms: Option<i64>,
        now_ms: i64,
    ) -> Evidence {
        let mut recent: Vec<EvidenceEvent> = events.iter().filter_map(EvidenceEvent::of).collect();
        recent.sort_by(|a, b| b.at.cmp(&a.at));
        recent.truncate(EVIDENCE_EVENTS);
        let step = summary.and_then(|s| s.current_step);
        Evidence {
            step,
            step_name: summary.zip(step).and_then(|(s, step)| s.steps.get(&step)).and_then(|v| v.name.clone()),
            on_step_ms: summary.and_then(|s| s.step_entered_ms).map(|entered| (now_ms - entered).max(0)),
            typical_ms: step.and(typical_ms),
            cause: recent.first().and_then(EvidenceEvent::cause),
            recent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn row(event_type: &str, data: &str, at: &str) -> EventRow {
        EventRow {
            event_id: 1,
            session_token: "ws_1".into(),
            event_type: event_type.into(),
            event_data: RawValue::from_string(data.into()).unwrap(),
            created_at: at.into(),
            student_email: None,
            student_name: None,
            event_uuid: uuid::Uuid::nil(),
            seq: None,
        }
    }

    // The evidence lists errors and failed calls only, newest first, and its cause is the
    // newest; the step's time is measured from when the session entered it.
    #[test]
    fn evidence_is_the_latest_errors_and_failed_calls() {
        let events = vec![
            row(
                "error",
                r#"{"errorType":"twilio_deploy_failed","errorMessage":"401 Unauthorized"}"#,
                "2027-01-15T08:01:00.000Z",
            ),
            row("api_call", r#"{"endpoint":"/provision","method":"POST","status":502}"#, "2027-01-15T08:03:00.000Z"),
            row("api_call", r#"{"endpoint":"/ok","method":"GET","status":200}"#, "2027-01-15T08:04:00.000Z"),
            row("action", r#"{"actionName":"click"}"#, "2027-01-15T08:05:00.000Z"),
        ];
        let summary =
            SessionSummary { current_step: Some(3), step_entered_ms: Some(1_000), ..SessionSummary::default() };
        let evidence = Evidence::build(Some(&summary), &events, Some(60_000), 181_000);
        assert_eq!(evidence.recent.len(), 2);
        assert_eq!(evidence.recent[0].endpoint.as_deref(), Some("/provision"));
        assert_eq!(evidence.recent[0].status, Some(502));
        assert_eq!(evidence.recent[1].message.as_deref(), Some("401 Unauthorized"));
        assert_eq!(evidence.cause.as_deref(), Some("endpoint:/provision"));
        assert_eq!((evidence.step, evidence.on_step_ms, evidence.typical_ms), (Some(3), Some(180_000), Some(60_000)));
        let many: Vec<EventRow> =
            (0..15).map(|i| row("error", r#"{"errorType":"x"}"#, &format!("2027-01-15T08:{i:02}:00.000Z"))).collect();
        assert_eq!(Evidence::build(None, &many, None, 0).recent.len(), EVIDENCE_EVENTS);
    }
}
