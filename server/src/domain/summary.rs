//! Per-session summaries: what `GET /api/sessions` and `GET /api/report` read, so that they never
//! scan the events table.
//!
//! A [`SessionSummary`] is a fold over a session's events in `event_id` order. Each event is reduced
//! at ingest to its [`EventFacts`] (a few fields of `eventData` that the reference's event shapes
//! define), and the writer thread applies the facts to the session's summary in the same
//! transaction that stores the event. Retention and deletion recompute a summary with the same
//! fold over the events that remain, so a summary always equals the fold of its stored events.

use std::collections::BTreeMap;

use crate::domain::clock::iso_ms;
use crate::domain::facts::EventFacts;
use serde::{Deserialize, Serialize};

/// Most distinct steps tracked per session (a summary stays small whatever a page sends; steps
/// past it still move `currentStep` but get no statistics).
pub const MAX_STEPS: usize = 100;
/// Most distinct endpoints tracked per session (calls to others still count as failed calls).
pub const MAX_ENDPOINTS: usize = 50;
/// Most distinct event types and error types counted per session, each; the rest are counted
/// under [`OTHER`] (types are strings pages choose: a summary stays small whatever they send).
pub const MAX_TYPES: usize = 50;
/// Longest error type, endpoint or step name kept in a summary (bytes); longer ones are cut at a
/// character boundary and end with `…`.
pub const MAX_KEY_BYTES: usize = 200;
/// The key that counts the types past [`MAX_TYPES`].
pub const OTHER: &str = "(other)";

/// `text` cut to at most [`MAX_KEY_BYTES`] bytes (then ending with `…`), at a character boundary.
pub fn bounded_key(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_KEY_BYTES {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_KEY_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

/// Counts one more `key` in `counts`, under [`OTHER`] when `counts` already holds [`MAX_TYPES`]
/// other keys.
fn count_bounded(counts: &mut BTreeMap<String, u64>, key: &str) {
    let key = bounded_key(key);
    if let Some(n) = counts.get_mut(key.as_ref()) {
        *n += 1;
    } else if counts.len() < MAX_TYPES {
        counts.insert(key.into_owned(), 1);
    } else {
        *counts.entry(OTHER.to_owned()).or_default() += 1;
    }
}

/// Most API call durations kept per session and endpoint, for the report's percentiles (the
/// latest ones are kept): 2,000 sessions give the report up to 40,000 samples per endpoint.
pub const MAX_DURATIONS: usize = 20;

/// One stored event as the fold sees it.
#[derive(Debug, Clone, Copy)]
pub struct FoldEvent<'a> {
    /// `eventType`.
    pub event_type: &'a str,
    /// The client's `seq`.
    pub seq: Option<u64>,
    /// The student's id, for events that named a student.
    pub student_id: Option<i64>,
    /// When the server stored it (ISO 8601 UTC with ms).
    pub created_at: &'a str,
    /// The facts of its `eventData`.
    pub facts: &'a EventFacts,
}

/// Time on one step of one session. Times are the client's `timestamp` when it sent one, else
/// the server's `created_at`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStats {
    /// The step's name, when an event named it.
    pub name: Option<String>,
    /// When the student first got there (ms since the Unix epoch).
    pub first_entered_ms: i64,
    /// Times the student got there.
    pub visits: u64,
    /// Visits that ended (the student moved to another step).
    pub left: u64,
    /// Time spent there over the visits that ended (ms).
    pub spent_ms: i64,
}

/// API calls of one session to one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    /// Calls.
    pub calls: u64,
    /// Failed calls (see [`EventFacts::api_failed`]).
    pub failed: u64,
    /// The latest [`MAX_DURATIONS`] durations (ms).
    pub durations_ms: Vec<f64>,
}

/// What a session did, kept up to date by the writer (see the module docs). Stored as JSON in
/// `sessions.summary`, beside indexed copies of `student_id`, `first_seen` and `last_seen`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// The student named by the session's latest event that named one.
    pub student_id: Option<i64>,
    /// The first event's `created_at`.
    pub first_seen: String,
    /// The latest event's `created_at`.
    pub last_seen: String,
    /// When the session last moved to another step (`created_at`), or its first event's.
    pub last_progress_at: String,
    /// The step the student is on (from the latest event that carried one).
    pub current_step: Option<i64>,
    /// The highest step reached.
    pub max_step: Option<i64>,
    /// Events stored.
    pub events: u64,
    /// Events by `eventType`.
    pub events_by_type: BTreeMap<String, u64>,
    /// `error` events.
    pub errors: u64,
    /// `error` events by `errorType`.
    pub errors_by_type: BTreeMap<String, u64>,
    /// `api_call` events that failed.
    pub failed_api_calls: u64,
    /// `api_call` events by `endpoint`.
    pub api_calls: BTreeMap<String, EndpointStats>,
    /// Events that carried a `seq`.
    pub seq_count: u64,
    /// The highest `seq`.
    pub max_seq: Option<u64>,
    /// Events the client reported dropping (`events_dropped`).
    pub dropped_events: u64,
    /// When the session completed: its first event of a completion type (`created_at`).
    pub completed_at: Option<String>,
    /// The steps reached, by number.
    pub steps: BTreeMap<i64, StepStats>,
    /// When the current visit to `currentStep` started (ms since the Unix epoch).
    pub step_entered_ms: Option<i64>,
}

impl SessionSummary {
    /// Applies one event (the next in `event_id` order). `completion_types` are the event types
    /// that mark a session completed (configuration).
    pub fn apply(&mut self, event: &FoldEvent<'_>, completion_types: &[String]) {
        let facts = event.facts;
        if self.events == 0 || event.created_at < self.first_seen.as_str() {
            self.first_seen = event.created_at.to_owned();
        }
        if self.events == 0 {
            self.last_progress_at = event.created_at.to_owned();
        }
        if event.created_at > self.last_seen.as_str() {
            self.last_seen = event.created_at.to_owned();
        }
        self.events += 1;
        count_bounded(&mut self.events_by_type, event.event_type);
        if event.student_id.is_some() {
            self.student_id = event.student_id;
        }
        if let Some(seq) = event.seq {
            self.seq_count += 1;
            self.max_seq = Some(self.max_seq.map_or(seq, |m| m.max(seq)));
        }
        if let Some(error_type) = &facts.error_type {
            self.errors += 1;
            count_bounded(&mut self.errors_by_type, error_type);
        }
        if let Some(endpoint) = &facts.endpoint {
            if facts.api_failed {
                self.failed_api_calls += 1;
            }
            let endpoint = bounded_key(endpoint);
            if self.api_calls.len() < MAX_ENDPOINTS || self.api_calls.contains_key(endpoint.as_ref()) {
                let stats = self.api_calls.entry(endpoint.into_owned()).or_default();
                stats.calls += 1;
                if facts.api_failed {
                    stats.failed += 1;
                }
                if let Some(duration) = facts.duration_ms {
                    if stats.durations_ms.len() >= MAX_DURATIONS {
                        stats.durations_ms.remove(0);
                    }
                    stats.durations_ms.push(duration);
                }
            }
        }
        self.dropped_events += facts.dropped;
        if self.completed_at.is_none() && completion_types.iter().any(|t| t == event.event_type) {
            self.completed_at = Some(event.created_at.to_owned());
        }
        if let Some(step) = facts.step {
            let at = facts.client_time_ms.unwrap_or_else(|| iso_ms(event.created_at));
            if self.current_step != Some(step) {
                if let Some(previous) = self.current_step {
                    if let (Some(stats), Some(entered)) = (self.steps.get_mut(&previous), self.step_entered_ms) {
                        stats.left += 1;
                        stats.spent_ms += (at - entered).max(0);
                    }
                    self.last_progress_at = event.created_at.to_owned();
                }
                if self.steps.len() < MAX_STEPS || self.steps.contains_key(&step) {
                    let stats =
                        self.steps.entry(step).or_insert(StepStats { first_entered_ms: at, ..StepStats::default() });
                    stats.visits += 1;
                    stats.first_entered_ms = stats.first_entered_ms.min(at);
                }
                self.step_entered_ms = Some(at);
                self.current_step = Some(step);
            }
            if let (Some(name), Some(stats)) = (&facts.step_name, self.steps.get_mut(&step)) {
                let name = bounded_key(name);
                if stats.name.as_deref() != Some(name.as_ref()) {
                    stats.name = Some(name.into_owned());
                }
            }
            self.max_step = Some(self.max_step.map_or(step, |m| m.max(step)));
        }
    }

    /// The current step's name (from the latest event that named it).
    pub fn step_name(&self) -> Option<&str> {
        self.current_step.and_then(|step| self.steps.get(&step)).and_then(|s| s.name.as_deref())
    }

    /// Numbers missing from the session's `seq` 0…max: events its client logged that have not
    /// arrived (yet). Assumes `seq` is unique within a session, as the client makes it.
    pub fn missing_events(&self) -> u64 {
        self.max_seq.map_or(0, |max| (max + 1).saturating_sub(self.seq_count))
    }

    /// The session's status at `now` (ISO text): `completed` when it completed (or reached
    /// `final_step`), else `active` when its last event is at or after `active_since`, else `idle`.
    pub fn status(&self, active_since: &str, final_step: Option<i64>) -> Status {
        let reached_final = matches!((final_step, self.max_step), (Some(f), Some(m)) if m >= f);
        if self.completed_at.is_some() || reached_final {
            Status::Completed
        } else if self.last_seen.as_str() >= active_since {
            Status::Active
        } else {
            Status::Idle
        }
    }

    /// Time spent on each step (ms), summed over the visits that ended; steps never left are
    /// absent.
    pub fn time_on_steps(&self) -> BTreeMap<i64, i64> {
        self.steps.iter().filter(|(_, s)| s.left > 0).map(|(step, s)| (*step, s.spent_ms)).collect()
    }
}

/// A session's status (see [`SessionSummary::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// An event within the active window (default 5 minutes).
    Active,
    /// No event within the active window.
    Idle,
    /// Reached the end of the workshop.
    Completed,
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Status, String> {
        match s {
            "active" => Ok(Status::Active),
            "idle" => Ok(Status::Idle),
            "completed" => Ok(Status::Completed),
            other => Err(format!("must be active, idle or completed, got {other:?}")),
        }
    }
}

/// The value at quantile `q` (0–1) of `sorted` (nearest rank), or `None` when it is empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(events: &[(&str, &str, &str)]) -> SessionSummary {
        let mut summary = SessionSummary::default();
        for (n, (event_type, data, at)) in events.iter().enumerate() {
            let facts = EventFacts::read(event_type, data);
            summary.apply(
                &FoldEvent { event_type, seq: Some(n as u64), student_id: None, created_at: at, facts: &facts },
                &["workshop_completed".to_owned()],
            );
        }
        summary
    }

    // The reference's event shapes give steps, error types, endpoints, failures and durations.
    #[test]
    fn facts_from_reference_shapes() {
        let nav =
            EventFacts::read("navigation", r#"{"from":2,"to":3,"toStepName":"Provision Services","currentStep":2}"#);
        assert_eq!((nav.step, nav.step_name.as_deref()), (Some(3), Some("Provision Services")));
        let error = EventFacts::read("error", r#"{"errorType":"openai_validation_failed","currentStep":0}"#);
        assert_eq!(error.error_type.as_deref(), Some("openai_validation_failed"));
        let api = EventFacts::read("api_call", r#"{"endpoint":"/v1/models","status":500,"deploymentTime":1234}"#);
        assert_eq!(
            (api.endpoint.as_deref(), api.api_failed, api.duration_ms),
            (Some("/v1/models"), true, Some(1234.0))
        );
        let ok = EventFacts::read("api_call", r#"{"endpoint":"/x","status":200,"success":true}"#);
        assert!(!ok.api_failed);
        let odd = EventFacts::read("error", r#"{"currentStep":"three","errorType":7}"#);
        assert_eq!((odd.step, odd.error_type.as_deref()), (None, Some("unknown")), "odd types count as absent");
    }

    // Folding a session's events gives its step, visits, time on steps, errors and completion.
    #[test]
    fn fold_tracks_steps_and_completion() {
        let s = fold(&[
            (
                "action",
                r#"{"currentStep":0,"stepName":"A","timestamp":"2026-01-01T00:00:00.000Z"}"#,
                "2026-01-01T00:00:01.000Z",
            ),
            (
                "navigation",
                r#"{"from":0,"to":1,"toStepName":"B","timestamp":"2026-01-01T00:01:00.000Z"}"#,
                "2026-01-01T00:01:01.000Z",
            ),
            ("error", r#"{"errorType":"boom","currentStep":1}"#, "2026-01-01T00:01:02.000Z"),
            ("workshop_completed", r#"{"currentStep":1}"#, "2026-01-01T00:02:00.000Z"),
        ]);
        assert_eq!((s.current_step, s.step_name(), s.max_step), (Some(1), Some("B"), Some(1)));
        assert_eq!(s.time_on_steps(), BTreeMap::from([(0, 60_000)]));
        assert_eq!((s.errors, s.events, s.missing_events()), (1, 4, 0));
        assert_eq!(s.last_progress_at, "2026-01-01T00:01:01.000Z");
        assert_eq!(s.status("2030-01-01T00:00:00.000Z", None), Status::Completed);
    }

    // A session that sends thousands of distinct, long error types, endpoints and event types
    // keeps a summary of bounded size: the first MAX_TYPES are counted, the rest under "(other)",
    // and long keys are cut.
    #[test]
    fn summaries_stay_bounded_under_distinct_keys() {
        let long = "x".repeat(2_000);
        let mut events = Vec::new();
        for n in 0..2_000 {
            events.push((
                "error".to_owned(),
                format!(r#"{{"errorType":"{n}{long}","stepName":"{long}","currentStep":1}}"#),
            ));
            events.push(("api_call".to_owned(), format!(r#"{{"endpoint":"/{n}/{long}","status":500}}"#)));
            events.push((format!("custom_{n}"), "{}".to_owned()));
        }
        let borrowed: Vec<(&str, &str, &str)> =
            events.iter().map(|(t, d)| (t.as_str(), d.as_str(), "2026-01-01T00:00:00.000Z")).collect();
        let s = fold(&borrowed);
        assert_eq!(s.errors, 2_000, "every error is counted");
        assert_eq!(s.errors_by_type.len(), MAX_TYPES + 1);
        assert_eq!(s.errors_by_type[OTHER], 2_000 - MAX_TYPES as u64);
        assert_eq!(s.events_by_type.len(), MAX_TYPES + 1);
        assert_eq!(s.events_by_type.values().sum::<u64>(), 6_000);
        assert_eq!(s.api_calls.len(), MAX_ENDPOINTS);
        assert!(s.errors_by_type.keys().chain(s.api_calls.keys()).all(|k| k.len() <= MAX_KEY_BYTES));
        assert!(s.step_name().is_some_and(|n| n.len() <= MAX_KEY_BYTES && n.ends_with('…')));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.len() < 40_000, "the stored summary is {} bytes", json.len());
    }

    // Quantiles are nearest-rank.
    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.95), quantile(&[], 0.5)), (Some(2.0), Some(4.0), None));
    }
}
