//! The alert model: what an alert is ([`Alert`], [`Rule`], [`Severity`], [`AlertStatus`]),
//! what happens to one ([`AlertChange`]), the order instructors read them in ([`rank`]), the
//! rules' thresholds ([`AlertRules`]) and the engine's input ([`Observed`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::text::iso;
use crate::domain::facts::EventFacts;

/// At most this many distinct error types, endpoints and client addresses are tracked, each;
/// past it the least recently seen tenth is forgotten (keys are strings clients choose).
pub const MAX_KEYS: usize = 1000;
/// At most this many sessions are tracked; past it the least recently seen tenth without an open
/// alert is forgotten.
pub const MAX_SESSIONS: usize = 20_000;
/// Help requests from one address within [`HELP_FLOOD_WINDOW`] above which they are a flood.
pub const HELP_FLOOD_COUNT: usize = 10;
/// The window of [`HELP_FLOOD_COUNT`].
pub const HELP_FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// Most sessions (and their students) an `error_pattern` or `api_failures` alert lists, the
/// first by token; its `sessions` counts them all. A pattern across a whole platform would
/// otherwise write every session's token into each of its updates.
pub const MAX_LISTED: usize = 50;

/// An open `error_burst`, `error_pattern`, `api_failures` or `help_flood` alert that only grows
/// (more errors, failed calls, requests; sessions joining) is published at most this often by
/// default ([`AlertRules::count_update_every`](super::AlertRules::count_update_every)); its opening and resolution, and every change of
/// `stuck`, `room_paused` and `help_request`, at once.
pub const COUNT_UPDATE_EVERY: Duration = Duration::from_secs(10);

/// Thresholds of the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// `error_burst`: errors in one session (default 3) …
    pub error_burst_count: usize,
    /// … within this window (default 2 minutes).
    pub error_burst_window: Duration,
    /// `error_pattern`: sessions with the same `errorType` (default 3) …
    pub error_pattern_sessions: usize,
    /// … within this window (default 10 minutes).
    pub error_pattern_window: Duration,
    /// `stuck`: no step change for at least this long in an active session (default 10 minutes) …
    pub stuck_after: Duration,
    /// … and for longer than this many times the room's median time on that step (default 2) …
    pub stuck_factor: f64,
    /// … the room being the visits of the step that ended within this window (default 2 hours) …
    pub room_window: Duration,
    /// … when at least this many did (default 3; else `stuck_after` alone). Also the fewest
    /// stuck sessions that make a room pause.
    pub room_min: usize,
    /// A session is active while its last event is this recent (default 5 minutes).
    pub active_window: Duration,
    /// `api_failures`: at least this share of an endpoint's calls failed (default 0.5) …
    pub api_failure_rate: f64,
    /// … over at least this many calls (default 5) …
    pub api_failure_min_calls: usize,
    /// … within this window (default 5 minutes).
    pub api_failure_window: Duration,
    /// How often an open alert that only grows is published again (default
    /// [`COUNT_UPDATE_EVERY`]).
    pub count_update_every: Duration,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            error_burst_count: 3,
            error_burst_window: Duration::from_secs(120),
            error_pattern_sessions: 3,
            error_pattern_window: Duration::from_secs(600),
            stuck_after: Duration::from_secs(600),
            stuck_factor: 2.0,
            room_window: Duration::from_secs(7200),
            room_min: 3,
            active_window: Duration::from_secs(300),
            api_failure_rate: 0.5,
            api_failure_min_calls: 5,
            api_failure_window: Duration::from_secs(300),
            count_update_every: COUNT_UPDATE_EVERY,
        }
    }
}

/// Which rule an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Errors piling up in one session.
    ErrorBurst,
    /// One error type across sessions.
    ErrorPattern,
    /// Sessions that stay on one step longer than usual.
    Stuck,
    /// An endpoint that fails.
    ApiFailures,
    /// A student asked for help.
    HelpRequest,
    /// Half the room stopped moving at once (the instructor is talking): a notice, not a page.
    RoomPaused,
    /// Help requests from one address faster than a room asks: flagged, not pinned.
    HelpFlood,
}

impl Rule {
    /// How urgent its alerts are.
    pub fn severity(self) -> Severity {
        match self {
            Rule::ErrorBurst | Rule::Stuck | Rule::HelpFlood => Severity::Warning,
            Rule::ErrorPattern | Rule::ApiFailures | Rule::HelpRequest => Severity::Critical,
            Rule::RoomPaused => Severity::Info,
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Students have a problem.
    Warning,
    /// A pattern across the room, a failing endpoint, or a student asking.
    Critical,
    /// Worth knowing, nobody to help (`room_paused`).
    Info,
}

/// Whether an alert's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// It holds (or, for a help request, nobody acknowledged it yet).
    Open,
    /// It cleared (or was acknowledged, for a help request).
    Resolved,
}

/// One alert, as `GET /api/alerts`, the alert stream and webhooks carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Its id (a UUIDv7).
    pub id: String,
    /// The rule.
    pub rule: Rule,
    /// How urgent.
    pub severity: Severity,
    /// Open or resolved.
    pub status: AlertStatus,
    /// The sessions involved, sorted (one for `error_burst` and `help_request`; every stuck
    /// session of the step for `stuck`; the first [`MAX_LISTED`] for `error_pattern` and
    /// `api_failures`, the first 20 for `help_flood`: `sessions` counts them all).
    pub session_tokens: Vec<String>,
    /// Their students' emails, when events named them, sorted.
    pub student_emails: Vec<String>,
    /// The error type (`error_pattern`, `error_burst`: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The endpoint (`api_failures`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The step (`stuck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// The step's name, when events named it (`stuck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// The room's median time on the step (ms) that the sessions were compared with (`stuck`,
    /// when enough of the room left the step; see [`AlertRules::room_min`](super::AlertRules::room_min)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical_ms: Option<i64>,
    /// Whether `typicalMs` is the median of the same workshop's earlier rooms on the step (the
    /// room itself had too few visits; see [`AlertRules::room_min`](super::AlertRules::room_min)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typical_from_earlier_runs: bool,
    /// What happened, in one line (a help request: the student's message).
    pub message: String,
    /// Events in the episode: errors (`error_burst`, `error_pattern`), failed calls
    /// (`api_failures`), 1 (`help_request`); sessions for `stuck` and `room_paused`.
    pub count: u64,
    /// Sessions in the episode (`stuck`, `room_paused`: as they are now).
    #[serde(default)]
    pub sessions: u64,
    /// When it opened (ISO 8601 UTC with ms).
    pub opened_at: String,
    /// When an event last fed it, or its condition was last seen changing.
    pub last_seen_at: String,
    /// When it resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// When an instructor acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    /// The client address the requests came from (`help_request`, `help_flood`), as the server
    /// saw it (behind `--trusted-proxy`, the forwarded client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// When an instructor muted it: its session (`help_request`) or address (`help_flood`)
    /// raises no more help alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_at: Option<String>,
    /// The slug of the workshop whose sessions raised it (the rules run per room: see
    /// [`Place`]); alerts stored before rooms are `default`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workshop: Option<String>,
    /// The join code of the room whose sessions raised it; absent for a workshop's lobby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// A help request's lifecycle (`help_request` only): `{status: waiting|claimed|resolved|
    /// cancelled, claimedBy, claimedAt, note, updatedAt, position, group}`; see
    /// [`HelpState`](super::HelpState).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<super::help_state::HelpState>,
    /// What the session was doing when it asked (`help_request`, filled in on reads): its
    /// step against the room's median, its latest errors and failed calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<super::evidence::Evidence>,
}

/// Where the rules judge a session: its workshop and its room (`None`: the workshop's lobby),
/// by row id. Each place has its own medians, pause, error patterns and help requests.
pub type Place = (i64, Option<i64>);

impl Alert {
    /// A new open alert of `rule` at `now`, with a fresh UUIDv7 and nothing else filled in.
    pub(super) fn opening(rule: Rule, now: i64) -> Alert {
        Alert {
            id: uuid::Uuid::now_v7().to_string(),
            rule,
            severity: rule.severity(),
            status: AlertStatus::Open,
            session_tokens: Vec::new(),
            student_emails: Vec::new(),
            error_type: None,
            endpoint: None,
            step: None,
            step_name: None,
            typical_ms: None,
            typical_from_earlier_runs: false,
            message: String::new(),
            count: 1,
            sessions: 1,
            opened_at: iso(now),
            last_seen_at: iso(now),
            resolved_at: None,
            acknowledged_at: None,
            address: None,
            muted_at: None,
            workshop: None,
            room: None,
            help: None,
            evidence: None,
        }
    }
}

/// The order instructors read alerts in (`GET /api/alerts`, the dashboard): open before
/// resolved; open alerts by urgency (help requests first, then the other critical alerts, then
/// warnings, then `info` notices), each by `lastSeenAt`, newest first; resolved alerts by
/// `openedAt`, newest first. Ties go to the newer id (UUIDv7 ids sort by time).
pub fn rank(alerts: &mut [Alert]) {
    fn urgency(alert: &Alert) -> u8 {
        match (alert.rule, alert.severity) {
            (Rule::HelpRequest, _) => 0,
            (_, Severity::Critical) => 1,
            (_, Severity::Warning) => 2,
            (_, Severity::Info) => 3,
        }
    }
    alerts.sort_by(|a, b| match (a.status, b.status) {
        (AlertStatus::Open, AlertStatus::Resolved) => std::cmp::Ordering::Less,
        (AlertStatus::Resolved, AlertStatus::Open) => std::cmp::Ordering::Greater,
        (AlertStatus::Open, AlertStatus::Open) => {
            urgency(a).cmp(&urgency(b)).then_with(|| b.last_seen_at.cmp(&a.last_seen_at)).then_with(|| b.id.cmp(&a.id))
        }
        (AlertStatus::Resolved, AlertStatus::Resolved) => b.opened_at.cmp(&a.opened_at).then_with(|| b.id.cmp(&a.id)),
    });
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ChangeKind {
    /// It opened.
    #[serde(rename = "alert.opened")]
    Opened,
    /// It changed while open (count, sessions joining or leaving, acknowledgement).
    #[serde(rename = "alert.updated")]
    Updated,
    /// It resolved.
    #[serde(rename = "alert.resolved")]
    Resolved,
}

impl ChangeKind {
    /// Its name on the wire (`alert.opened`, …), also the metrics' label.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Opened => "alert.opened",
            ChangeKind::Updated => "alert.updated",
            ChangeKind::Resolved => "alert.resolved",
        }
    }
}

/// One change, as webhooks carry it: `{"type": "alert.opened", "alert": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertChange {
    /// `alert.opened`, `alert.updated` or `alert.resolved`.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The alert after the change.
    pub alert: Alert,
}

/// One stored event as the engine sees it.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// Its session.
    pub session_token: &'a str,
    /// Its student, when named.
    pub student_email: Option<&'a str>,
    /// Its type.
    pub event_type: &'a str,
    /// Its facts (step, error type, endpoint, failure).
    pub facts: &'a EventFacts,
    /// `eventData.message` (help requests).
    pub message: Option<&'a str>,
    /// The client address the server saw (help requests).
    pub address: Option<&'a str>,
    /// When it was stored (ms).
    pub at_ms: i64,
    /// Whether it completes the session (a completion event type).
    pub completes: bool,
}
