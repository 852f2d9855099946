//! Alerts: what needs an instructor now, as episodes. An alert opens once when its rule's
//! condition starts to hold, is updated (count, last seen, the sessions involved) while it holds,
//! and resolves when it clears; a help request resolves when it is acknowledged.
//!
//! The rules (thresholds in [`AlertRules`], defaults from the alerting issue):
//! - `error_burst`: at least 3 errors within 2 minutes in one session;
//! - `error_pattern`: the same `errorType` in at least 3 sessions within 10 minutes;
//! - `stuck`: active sessions (an event within the active window) that report steps and have
//!   stayed on their step longer than usual, one alert per step listing every such session. A
//!   session is stuck on a step when it has been there longer than both `stuck_after` (default
//!   10 minutes) and `stuck_factor` (default 2) × the room's median time on that step, the room
//!   being the visits of that step that ended within `room_window` (default 2 h), when at least
//!   `room_min` (default 3) did; with fewer, `stuck_after` alone. A session that moves on leaves
//!   the group; the group resolves when it is empty;
//! - `room_paused` (severity `info`): when at least half of the active sessions, and at least
//!   `room_min`, would be stuck at once, the room is listening to the instructor, not stuck: no
//!   `stuck` alert opens and no session joins one while it lasts, and this one notice is open
//!   instead;
//! - `api_failures`: an endpoint whose calls failed at least 50% of the time over at least 5
//!   calls within 5 minutes;
//! - `help_request`: a `help_request` event (the client's `requestHelp(message)`): at most one
//!   open per session (a new request updates it), resolved by an acknowledgement;
//! - `help_flood` (severity `warning`): more than [`HELP_FLOOD_COUNT`] help requests within
//!   [`HELP_FLOOD_WINDOW`] from one client address (a script, not a room: a room behind one
//!   address asks far slower) become this one flagged alert instead of one pinned request each;
//!   the requests that address opened within the window fold into it. It resolves when the
//!   address has been quiet for the active window.
//!
//! An instructor can mute a help request (its session) or a flood (its address): their help
//! requests and, for a session, all its events then raise nothing ([`AlertEngine::settle`]).
//!
//! Memory is bounded whatever clients send: at most [`MAX_KEYS`] error types, endpoints and
//! addresses and [`MAX_SESSIONS`] sessions are tracked (the least recently seen go first,
//! counted in [`AlertEngine::evicted`]), and keys are cut to `summary::MAX_KEY_BYTES`.
//!
//! `count` is the number of events in the episode (errors, failed calls; for `stuck` and
//! `room_paused` the sessions), `sessions` the number of sessions in it, and messages state the
//! real numbers within the window.
//!
//! [`AlertEngine`] is pure: it is fed events ([`Observed`]) and the time ([`AlertEngine::tick`]),
//! and returns the changes ([`AlertChange`]); the background task persists and publishes them.
//! [`rank`] is the order instructors read open alerts in. Times are milliseconds since the Unix
//! epoch.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::event::HELP_REQUEST;
use crate::domain::facts::EventFacts;
use crate::domain::summary::bounded_key;

/// At most this many times are kept per window (a session's errors, one error type's errors in
/// one session, one step's ended visits): memory stays bounded whatever a page sends, and a count
/// past it reads as this many.
const KEPT: usize = 1000;

/// At most this many steps' visit histories are kept (steps are numbers pages choose).
const STEPS_KEPT: usize = 1000;

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
/// Most muted sessions and addresses kept, each (the oldest mute goes first).
const MAX_MUTES: usize = 10_000;

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
    fn severity(self) -> Severity {
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
    /// when enough of the room left the step; see [`AlertRules::room_min`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical_ms: Option<i64>,
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
}

impl Alert {
    /// A new open alert of `rule` at `now`, with a fresh UUIDv7 and nothing else filled in.
    fn opening(rule: Rule, now: i64) -> Alert {
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
            message: String::new(),
            count: 1,
            sessions: 1,
            opened_at: iso(now),
            last_seen_at: iso(now),
            resolved_at: None,
            acknowledged_at: None,
            address: None,
            muted_at: None,
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

/// What the engine knows of one session.
#[derive(Debug, Default)]
struct SessionState {
    student: Option<String>,
    /// Its errors' times within the burst window (at most [`KEPT`]), oldest first.
    errors: VecDeque<i64>,
    step: Option<i64>,
    step_since_ms: i64,
    last_seen_ms: i64,
    completed: bool,
}

impl SessionState {
    fn active(&self, now: i64, rules: &AlertRules) -> bool {
        self.last_seen_ms >= now - ms(rules.active_window) && !self.completed
    }
}

/// An endpoint's calls within the window, counted per second: bounded whatever the call rate.
#[derive(Debug, Default)]
struct CallWindow {
    /// (second since the epoch, calls, failed calls), oldest first.
    seconds: VecDeque<(i64, usize, usize)>,
    calls: usize,
    failed: usize,
    /// The sessions with a failed call within the window, with their latest (at most
    /// [`MAX_SESSIONS`] / 4, the least recent forgotten first).
    failing_sessions: HashMap<String, i64>,
}

impl CallWindow {
    fn add(&mut self, now: i64, failed: bool) {
        let second = now.div_euclid(1000);
        match self.seconds.back_mut() {
            Some(last) if last.0 == second => {
                last.1 += 1;
                last.2 += usize::from(failed);
            }
            _ => self.seconds.push_back((second, 1, usize::from(failed))),
        }
        self.calls += 1;
        self.failed += usize::from(failed);
    }

    /// Notes a failed call of `token` at `now`; returns how many keys were forgotten to stay
    /// bounded.
    fn failing_session(&mut self, token: &str, now: i64) -> u64 {
        let mut evicted = 0;
        if !self.failing_sessions.contains_key(token) && self.failing_sessions.len() >= MAX_SESSIONS / 4 {
            evicted = evict_oldest(&mut self.failing_sessions, MAX_SESSIONS / 4 - 1, |_, last| Some(*last));
        }
        self.failing_sessions.insert(token.to_owned(), now);
        evicted
    }

    /// Forgets the seconds that ended before `cutoff` (ms).
    fn age(&mut self, cutoff: i64) {
        self.failing_sessions.retain(|_, last| *last >= cutoff);
        while let Some(&(second, calls, failed)) = self.seconds.front() {
            if (second + 1) * 1000 > cutoff {
                break;
            }
            self.seconds.pop_front();
            self.calls -= calls;
            self.failed -= failed;
        }
    }
}

/// Drops the times before `cutoff` from the front of `times` (oldest first).
fn age_times(times: &mut VecDeque<i64>, cutoff: i64) {
    while times.front().is_some_and(|t| *t < cutoff) {
        times.pop_front();
    }
}

/// Appends `t`, keeping at most [`KEPT`] times.
fn push_time(times: &mut VecDeque<i64>, t: i64) {
    times.push_back(t);
    if times.len() > KEPT {
        times.pop_front();
    }
}

/// One step as the room went through it: the visits that ended, `(left at, time spent)` in ms,
/// oldest first (at most [`KEPT`], within the room window), and its name when an event gave one.
#[derive(Debug, Default)]
struct StepHistory {
    visits: VecDeque<(i64, i64)>,
    name: Option<String>,
}

impl StepHistory {
    /// The median time spent over the visits that ended at or after `cutoff`, when at least
    /// `min` did.
    fn median(&mut self, cutoff: i64, min: usize) -> Option<i64> {
        while self.visits.front().is_some_and(|v| v.0 < cutoff) {
            self.visits.pop_front();
        }
        if self.visits.len() < min.max(1) {
            return None;
        }
        let mut spent: Vec<i64> = self.visits.iter().map(|v| v.1).collect();
        spent.sort_unstable();
        Some(spent[(spent.len() - 1) / 2])
    }
}

/// The subject of an open alert: one per rule and session, error type, endpoint or step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(Rule, String);

/// The subject of the one `room_paused` notice.
const ROOM: &str = "room";

/// The rules' state: sliding windows per session, error type, endpoint and step, and the open
/// alerts.
#[derive(Debug, Default)]
pub struct AlertEngine {
    rules: AlertRules,
    sessions: HashMap<String, SessionState>,
    /// Per error type: each session's errors of that type within the window (pruned on the
    /// clock), so memory is bounded by sessions × error types × [`KEPT`].
    patterns: HashMap<String, HashMap<String, VecDeque<i64>>>,
    /// Per endpoint: calls counted per second of the window.
    endpoints: HashMap<String, CallWindow>,
    /// Per step: how long the room stayed there.
    steps: HashMap<i64, StepHistory>,
    open: HashMap<Key, Alert>,
    /// Alerts restored open from before this engine started, and when it started: their windows'
    /// history is gone, so they are not resolved until a whole window has passed since.
    restored: HashSet<Key>,
    /// Alerts restored open that no rule can hold any more (an older server's per-session
    /// `stuck` alerts): resolved at the first tick.
    orphans: Vec<Alert>,
    started_ms: Option<i64>,
    /// Open alerts changed since the last tick.
    updated: HashSet<Key>,
    /// Per client address: its help requests' times within [`HELP_FLOOD_WINDOW`] (at most
    /// [`HELP_FLOOD_COUNT`] + 1), and its latest.
    help_from: HashMap<String, (VecDeque<i64>, i64)>,
    /// Sessions and addresses muted by an instructor, with when.
    muted_sessions: HashMap<String, i64>,
    muted_addresses: HashMap<String, i64>,
    /// Keys forgotten to stay within [`MAX_KEYS`] and [`MAX_SESSIONS`].
    evicted: u64,
    /// When each open throttled alert was last published (opened or updated), ms.
    published_ms: HashMap<Key, i64>,
}

/// Forgets the least recently seen tenth of `map` once it holds more than `cap` keys; `last`
/// gives a key's latest time, or `None` for a key that must stay. Returns how many went.
fn evict_oldest<V>(map: &mut HashMap<String, V>, cap: usize, last: impl Fn(&str, &V) -> Option<i64>) -> u64 {
    if map.len() <= cap {
        return 0;
    }
    let mut ages: Vec<(i64, String)> = map.iter().filter_map(|(k, v)| Some((last(k, v)?, k.clone()))).collect();
    let excess = (map.len() - cap * 9 / 10).min(ages.len());
    if excess == 0 {
        return 0;
    }
    ages.select_nth_unstable(excess - 1);
    for (_, key) in ages.drain(..excess) {
        map.remove(&key);
    }
    excess as u64
}

/// An open `error_burst`, `error_pattern`, `api_failures` or `help_flood` alert that only grows
/// (more errors, failed calls, requests; sessions joining) is published at most this often by
/// default ([`AlertRules::count_update_every`]); its
/// opening and resolution, and every change of `stuck`, `room_paused` and `help_request`, at
/// once. With every session of a 3,000-session room in an error burst, publishing each count at
/// every tick wrote 250 alert changes a second (39 MB of change log in 6 minutes).
pub const COUNT_UPDATE_EVERY: Duration = Duration::from_secs(10);

/// Whether updates of `rule`'s alerts wait for [`COUNT_UPDATE_EVERY`].
fn throttled(rule: Rule) -> bool {
    matches!(rule, Rule::ErrorBurst | Rule::ErrorPattern | Rule::ApiFailures | Rule::HelpFlood)
}

/// Most characters of a help request's message kept.
const MESSAGE_CHARS: usize = 500;
/// Most sessions a `help_flood` alert lists (its `sessions` counts them all).
const FLOOD_TOKENS_LISTED: usize = 20;
/// Most sessions (and their students) an `error_pattern` or `api_failures` alert lists, the
/// first by token; its `sessions` counts them all. A pattern across a whole platform would
/// otherwise write every session's token into each of its updates.
pub const MAX_LISTED: usize = 50;

/// ms since the epoch of an ISO 8601 time this module wrote (0 when it cannot be read).
fn iso_ms_of(text: &str) -> i64 {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// ISO 8601 UTC with ms of `ms` since the epoch.
pub fn iso(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// `d` ms as people read it, to the second: `3m 10s`, `45s`.
fn human(d: i64) -> String {
    humantime::format_duration(Duration::from_secs((d.max(0) / 1000) as u64)).to_string()
}

/// `n` and the noun, in the plural unless `n` is 1: `1 student`, `4 students`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl AlertEngine {
    /// An engine with no history, `open` being the alerts still open from before (a restart, or
    /// another server that led before): they update and resolve instead of opening again.
    pub fn new(rules: AlertRules, open: Vec<Alert>) -> AlertEngine {
        let mut engine = AlertEngine { rules, ..AlertEngine::default() };
        for alert in open.into_iter().filter(|a| a.status == AlertStatus::Open) {
            let subject = match alert.rule {
                Rule::ErrorPattern => alert.error_type.clone(),
                Rule::ApiFailures => alert.endpoint.clone(),
                Rule::Stuck => alert.step.map(|s| s.to_string()),
                Rule::RoomPaused => Some(ROOM.to_owned()),
                Rule::HelpFlood => alert.address.clone(),
                Rule::ErrorBurst | Rule::HelpRequest => alert.session_tokens.first().cloned(),
            };
            match subject {
                // A help request waits for its acknowledgement, whenever it came.
                Some(subject) if alert.rule == Rule::HelpRequest => {
                    engine.open.insert(Key(alert.rule, subject), alert);
                }
                Some(subject) => {
                    engine.restored.insert(Key(alert.rule, subject.clone()));
                    engine.open.insert(Key(alert.rule, subject), alert);
                }
                None => engine.orphans.push(alert),
            }
        }
        engine
    }

    /// Takes in a stored change of an alert, whoever made it (this engine, or an instructor's
    /// acknowledgement or mute on any server): a help request acknowledged no longer holds its
    /// session's place (the next request opens a new alert), and a mute silences the alert's
    /// session (`help_request`) or address (`help_flood`) from now on. `now` is in ms.
    pub fn settle(&mut self, alert: &Alert, now: i64) {
        let key = match alert.rule {
            Rule::HelpRequest => alert.session_tokens.first().map(|t| Key(Rule::HelpRequest, t.clone())),
            Rule::HelpFlood => alert.address.clone().map(|a| Key(Rule::HelpFlood, a)),
            _ => None,
        };
        let Some(key) = key else { return };
        if alert.status == AlertStatus::Resolved && self.open.get(&key).is_some_and(|open| open.id == alert.id) {
            self.open.remove(&key);
            self.updated.remove(&key);
        }
        if alert.muted_at.is_some() {
            let muted = if key.0 == Rule::HelpRequest { &mut self.muted_sessions } else { &mut self.muted_addresses };
            muted.insert(key.1, now);
            if muted.len() > MAX_MUTES {
                let oldest = muted.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    muted.remove(&oldest);
                }
            }
        }
    }

    /// Keys forgotten so far to keep memory bounded (error types, endpoints, addresses,
    /// sessions).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Feeds one stored event; returns the alerts it opened or resolved (updates are published by
    /// the next [`AlertEngine::tick`], once per alert).
    pub fn observe(&mut self, event: &Observed<'_>) -> Vec<AlertChange> {
        let now = event.at_ms;
        self.started_ms.get_or_insert(now);
        let mut changes = Vec::new();
        let rules = self.rules.clone();
        let token = event.session_token;
        if self.muted_sessions.contains_key(token) {
            return changes;
        }
        if !self.sessions.contains_key(token) && self.sessions.len() >= MAX_SESSIONS {
            // Sessions of open alerts go last, but they can go: an alert may list any number.
            let held: HashSet<String> = self.open.values().flat_map(|a| a.session_tokens.iter().cloned()).collect();
            self.evicted += evict_oldest(&mut self.sessions, MAX_SESSIONS - 1, |token, s| {
                Some(if held.contains(token) { s.last_seen_ms.saturating_add(i64::MAX / 2) } else { s.last_seen_ms })
            });
        }
        let session = self
            .sessions
            .entry(token.to_owned())
            .or_insert_with(|| SessionState { step_since_ms: now, ..SessionState::default() });
        if let Some(email) = event.student_email {
            session.student = Some(email.to_owned());
        }
        session.last_seen_ms = session.last_seen_ms.max(now);
        session.completed |= event.completes;
        let mut left_step = None;
        if let Some(step) = event.facts.step.filter(|s| session.step != Some(*s)) {
            left_step = session.step.map(|old| (old, now - session.step_since_ms));
            session.step = Some(step);
            session.step_since_ms = now;
        }
        let completed = session.completed;
        let student = session.student.clone();
        let students = || student.iter().cloned().collect::<Vec<_>>();
        if let Some(step) = event.facts.step {
            if let Some(history) = self.step_history(step) {
                if let Some(name) = event.facts.step_name.as_ref().filter(|n| history.name.as_ref() != Some(*n)) {
                    history.name = Some(name.clone());
                }
            }
        }
        if let Some((old, spent)) = left_step {
            if let Some(history) = self.step_history(old) {
                history.visits.push_back((now, spent));
                if history.visits.len() > KEPT {
                    history.visits.pop_front();
                }
            }
            // A session that moves on leaves its step's group at once.
            changes.extend(self.leave_stuck(old, token, now));
        }
        if completed {
            if let Some(step) = self.sessions.get(token).and_then(|s| s.step) {
                changes.extend(self.leave_stuck(step, token, now));
            }
        }
        if event.event_type == "error" {
            let error_type = bounded_key(event.facts.error_type.as_deref().unwrap_or("unknown")).into_owned();
            let burst_cutoff = now - ms(rules.error_burst_window);
            let errors = &mut self.sessions.get_mut(token).expect("entered above").errors;
            push_time(errors, now);
            age_times(errors, burst_cutoff);
            let in_window = errors.len();
            if in_window >= rules.error_burst_count {
                let message = format!(
                    "{} within {} in session {token}",
                    plural(in_window, "error"),
                    humantime::format_duration(rules.error_burst_window)
                );
                let key = Key(Rule::ErrorBurst, token.to_owned());
                changes.extend(self.hold(key, now, in_window as u64, |alert| {
                    alert.session_tokens = vec![token.to_owned()];
                    alert.student_emails = students();
                    alert.error_type = Some(error_type.clone());
                    alert.message.clone_from(&message);
                    alert.sessions = 1;
                }));
            }
            let cutoff = now - ms(rules.error_pattern_window);
            if !self.patterns.contains_key(&error_type) && self.patterns.len() >= MAX_KEYS {
                let open = &self.open;
                self.evicted += evict_oldest(&mut self.patterns, MAX_KEYS - 1, |key, w| {
                    let held = open.contains_key(&Key(Rule::ErrorPattern, key.to_owned()));
                    (!held).then(|| w.values().filter_map(|t| t.back().copied()).max().unwrap_or(0))
                });
            }
            let window = self.patterns.entry(error_type.clone()).or_default();
            let times = window.entry(token.to_owned()).or_default();
            age_times(times, cutoff);
            let joined = times.is_empty();
            push_time(times, now);
            let key = Key(Rule::ErrorPattern, error_type.clone());
            if joined {
                // A session joined: count the pattern's sessions and errors again.
                let (tokens, errors) = self.pattern_tally(&error_type, cutoff);
                if tokens.len() >= rules.error_pattern_sessions {
                    let fill = self.describe_pattern(&error_type, tokens, errors);
                    changes.extend(self.hold(key, now, errors as u64, fill));
                }
            } else if self.open.contains_key(&key) {
                // One more error of a session already in the pattern: counted now, described
                // again at the tick (once, however many errors came meanwhile).
                changes.extend(self.hold(key, now, 0, |_| {}));
            }
        } else if event.event_type == "api_call" {
            let endpoint = bounded_key(event.facts.endpoint.as_deref().unwrap_or("unknown")).into_owned();
            if !self.endpoints.contains_key(&endpoint) && self.endpoints.len() >= MAX_KEYS {
                let open = &self.open;
                self.evicted += evict_oldest(&mut self.endpoints, MAX_KEYS - 1, |key, w| {
                    let held = open.contains_key(&Key(Rule::ApiFailures, key.to_owned()));
                    (!held).then(|| w.seconds.back().map_or(0, |s| s.0 * 1000))
                });
            }
            let window = self.endpoints.entry(endpoint.clone()).or_default();
            window.add(now, event.facts.api_failed);
            if event.facts.api_failed {
                self.evicted += window.failing_session(token, now);
            }
            window.age(now - ms(rules.api_failure_window));
            let (calls, failed, failing_sessions) = (window.calls, window.failed, window.failing_sessions.len());
            let key = Key(Rule::ApiFailures, endpoint.clone());
            // At the opening, the sessions that failed so far are listed (the first by token).
            let first_listed: Vec<String> = if self.open.contains_key(&key) {
                Vec::new()
            } else {
                let mut tokens: Vec<String> = window.failing_sessions.keys().cloned().collect();
                tokens.sort_unstable();
                tokens.truncate(MAX_LISTED);
                tokens
            };
            let open = self.open.contains_key(&key);
            // Opens on any call that tips the rate; while open, failed calls update it.
            if failing(calls, failed, &rules) && (event.facts.api_failed || !open) {
                let message = format!(
                    "{endpoint}: {failed} of {} failed within {}",
                    plural(calls, "call"),
                    humantime::format_duration(rules.api_failure_window)
                );
                changes.extend(self.hold(key, now, failed as u64, |alert| {
                    if alert.session_tokens.is_empty() {
                        alert.session_tokens.clone_from(&first_listed);
                    }
                    if alert.session_tokens.len() < MAX_LISTED && !alert.session_tokens.iter().any(|t| t == token) {
                        let at = alert.session_tokens.binary_search_by(|t| t.as_str().cmp(token)).unwrap_or_else(|i| i);
                        alert.session_tokens.insert(at, token.to_owned());
                        if let Some(email) = student.as_ref().filter(|e| !alert.student_emails.contains(e)) {
                            alert.student_emails.push(email.clone());
                            alert.student_emails.sort();
                        }
                    }
                    alert.endpoint = Some(endpoint.clone());
                    alert.message.clone_from(&message);
                    alert.sessions = failing_sessions.max(alert.session_tokens.len()) as u64;
                }));
            } else if !failing(calls, failed, &rules) {
                // What this call alone can clear, at once; the rest clears on the clock (`tick`).
                changes.extend(self.resolve(&key, now));
            }
        } else if event.event_type == HELP_REQUEST {
            let message: String = event
                .message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or("asked for help")
                .chars()
                .take(MESSAGE_CHARS)
                .collect();
            changes.extend(self.help_request(token, students(), message, event.address, now));
        }
        changes
    }

    /// A help request of `token` from `address` at `now`: folded into its address's flood, or
    /// its session's open request updated, or a new request opened.
    fn help_request(
        &mut self,
        token: &str,
        students: Vec<String>,
        message: String,
        address: Option<&str>,
        now: i64,
    ) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        if address.is_some_and(|a| self.muted_addresses.contains_key(a)) {
            return changes;
        }
        let flood_cutoff = now - ms(HELP_FLOOD_WINDOW);
        if let Some(address) = address {
            if !self.help_from.contains_key(address) && self.help_from.len() >= MAX_KEYS {
                let open = &self.open;
                self.evicted += evict_oldest(&mut self.help_from, MAX_KEYS - 1, |key, (_, last)| {
                    (!open.contains_key(&Key(Rule::HelpFlood, key.to_owned()))).then_some(*last)
                });
            }
            let (times, last) = self.help_from.entry(address.to_owned()).or_default();
            times.push_back(now);
            age_times(times, flood_cutoff);
            while times.len() > HELP_FLOOD_COUNT + 1 {
                times.pop_front();
            }
            *last = now;
            let flooding = times.len() > HELP_FLOOD_COUNT;
            let key = Key(Rule::HelpFlood, address.to_owned());
            if flooding || self.open.contains_key(&key) {
                // The requests this address opened within the window fold into the flood.
                let folded: Vec<Key> = self
                    .open
                    .iter()
                    .filter(|(k, a)| {
                        k.0 == Rule::HelpRequest
                            && a.address.as_deref() == Some(address)
                            && iso_ms_of(&a.opened_at) >= flood_cutoff
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut folded_tokens: Vec<String> = Vec::new();
                for k in folded {
                    folded_tokens.push(k.1.clone());
                    // What a flood wrote is not shown again, not even in the resolved list.
                    if let Some(alert) = self.open.get_mut(&k) {
                        alert.message = format!("folded into the help flood from {address}");
                    }
                    changes.extend(self.resolve(&k, now));
                }
                let count = folded_tokens.len() as u64 + 1;
                let address = address.to_owned();
                changes.extend(self.hold(key.clone(), now, count, |alert| {
                    alert.address = Some(address.clone());
                    let mut tokens: BTreeSet<String> = alert.session_tokens.iter().cloned().collect();
                    let before = tokens.len();
                    tokens.extend(folded_tokens.iter().cloned());
                    tokens.insert(token.to_owned());
                    // Sessions past the listed ones count once per request.
                    let listed_full = before >= FLOOD_TOKENS_LISTED && !alert.session_tokens.iter().any(|t| t == token);
                    alert.sessions = if alert.sessions <= 1 && before == 0 {
                        tokens.len() as u64
                    } else {
                        alert.sessions + u64::from(listed_full || tokens.len() > before)
                    };
                    // The first sessions are listed; the count says how many asked.
                    alert.session_tokens = tokens.into_iter().take(FLOOD_TOKENS_LISTED).collect();
                    alert.message = format!(
                        "{} from one address ({address}), more than {HELP_FLOOD_COUNT} within {}s: flagged, not pinned",
                        plural(alert.count as usize, "help request"),
                        HELP_FLOOD_WINDOW.as_secs()
                    );
                }));
                return changes;
            }
        }
        let key = Key(Rule::HelpRequest, token.to_owned());
        let address = address.map(str::to_owned);
        changes.extend(self.hold(key, now, 1, |alert| {
            alert.session_tokens = vec![token.to_owned()];
            alert.student_emails.clone_from(&students);
            alert.message.clone_from(&message);
            alert.address.clone_from(&address);
        }));
        changes
    }

    /// The history of `step`, made when there is room for another step.
    fn step_history(&mut self, step: i64) -> Option<&mut StepHistory> {
        if self.steps.len() >= STEPS_KEPT && !self.steps.contains_key(&step) {
            return None;
        }
        Some(self.steps.entry(step).or_default())
    }

    /// The sessions (sorted) with an error of `error_type` at or after `cutoff`, and how many
    /// such errors they had.
    fn pattern_tally(&mut self, error_type: &str, cutoff: i64) -> (Vec<String>, usize) {
        let Some(window) = self.patterns.get_mut(error_type) else { return (Vec::new(), 0) };
        let mut tokens = Vec::new();
        let mut errors = 0;
        for (token, times) in window.iter_mut() {
            age_times(times, cutoff);
            if !times.is_empty() {
                tokens.push(token.clone());
                errors += times.len();
            }
        }
        tokens.sort();
        (tokens, errors)
    }

    /// What an `error_pattern` alert of `error_type` says with these sessions (sorted) and
    /// errors: its sessions, students and message.
    fn describe_pattern(&self, error_type: &str, mut tokens: Vec<String>, errors: usize) -> impl Fn(&mut Alert) {
        let sessions = tokens.len();
        tokens.truncate(MAX_LISTED);
        let emails: Vec<String> = tokens
            .iter()
            .filter_map(|s| self.sessions.get(s).and_then(|x| x.student.clone()))
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let message = format!(
            "{error_type}: {} in {} within {}",
            plural(errors, "error"),
            plural(sessions, "session"),
            humantime::format_duration(self.rules.error_pattern_window)
        );
        let error_type = error_type.to_owned();
        move |alert: &mut Alert| {
            alert.message.clone_from(&message);
            alert.sessions = sessions as u64;
            alert.session_tokens.clone_from(&tokens);
            alert.student_emails.clone_from(&emails);
            alert.error_type = Some(error_type.clone());
        }
    }

    /// Takes `token` out of the `stuck` group of `step`: the group is updated, or resolved when
    /// it empties (unless restored too recently to judge).
    fn leave_stuck(&mut self, step: i64, token: &str, now: i64) -> Option<AlertChange> {
        let key = Key(Rule::Stuck, step.to_string());
        let alert = self.open.get(&key)?;
        if !alert.session_tokens.iter().any(|t| t == token) {
            return None;
        }
        let remaining: Vec<String> = alert.session_tokens.iter().filter(|t| *t != token).cloned().collect();
        if remaining.is_empty() {
            self.restored.remove(&key);
            return self.resolve(&key, now);
        }
        self.regroup(&key, remaining, None, now);
        None
    }

    /// Sets the sessions of the open `stuck` alert `key` (and its typical time, when given),
    /// rewriting its count, emails and message; marks it updated when anything changed.
    fn regroup(&mut self, key: &Key, tokens: Vec<String>, typical: Option<Option<i64>>, now: i64) {
        let emails: BTreeSet<String> =
            tokens.iter().filter_map(|t| self.sessions.get(t).and_then(|s| s.student.clone())).collect();
        let step = key.1.parse::<i64>().ok();
        let name = step.and_then(|s| self.steps.get(&s)).and_then(|h| h.name.clone());
        let rules = &self.rules;
        let Some(alert) = self.open.get_mut(key) else { return };
        let typical = typical.unwrap_or(alert.typical_ms);
        if alert.session_tokens == tokens && alert.typical_ms == typical && (name.is_none() || alert.step_name == name)
        {
            return;
        }
        alert.session_tokens = tokens;
        alert.student_emails = emails.into_iter().collect();
        alert.step = step;
        if name.is_some() {
            alert.step_name = name;
        }
        alert.typical_ms = typical;
        alert.count = alert.session_tokens.len() as u64;
        alert.sessions = alert.count;
        alert.last_seen_at = iso(now);
        alert.message = stuck_message(alert, rules);
        self.updated.insert(key.clone());
    }

    /// Resolves the open alert of `key`, if any (and not restored too recently to judge).
    fn resolve(&mut self, key: &Key, now: i64) -> Option<AlertChange> {
        if self.restored.contains(key) {
            return None;
        }
        let mut alert = self.open.remove(key)?;
        self.updated.remove(key);
        self.published_ms.remove(key);
        alert.status = AlertStatus::Resolved;
        alert.resolved_at = Some(iso(now));
        Some(AlertChange { kind: ChangeKind::Resolved, alert })
    }

    /// Opens the alert of `key` with `count` events, applying `fill` (or, if open, counts one
    /// more event and applies `fill`, to be published by the next `tick`); returns the opening.
    fn hold(&mut self, key: Key, now: i64, count: u64, fill: impl Fn(&mut Alert)) -> Option<AlertChange> {
        let rule = key.0;
        match self.open.get_mut(&key) {
            Some(alert) => {
                alert.count += 1;
                alert.last_seen_at = iso(now);
                fill(alert);
                // Published once per tick (`tick`), however many events fed it meanwhile.
                self.updated.insert(key);
                None
            }
            None => {
                let mut alert = Alert::opening(rule, now);
                alert.count = count.max(1);
                fill(&mut alert);
                if throttled(rule) {
                    self.published_ms.insert(key.clone(), now);
                }
                self.open.insert(key, alert.clone());
                Some(AlertChange { kind: ChangeKind::Opened, alert })
            }
        }
    }

    /// The `stuck` rule on the clock: which active sessions are stuck on which step, judged
    /// against the room; one group per step, or the `room_paused` notice when half the room
    /// would be stuck.
    fn stuck_groups(&mut self, now: i64) -> Vec<AlertChange> {
        let rules = self.rules.clone();
        let room_cutoff = now - ms(rules.room_window);
        let mut typical: HashMap<i64, Option<i64>> = HashMap::new();
        let mut groups: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut active = 0usize;
        for (token, session) in &self.sessions {
            let Some(step) = session.step.filter(|_| session.active(now, &rules)) else { continue };
            active += 1;
            let median = *typical
                .entry(step)
                .or_insert_with(|| self.steps.get_mut(&step).and_then(|h| h.median(room_cutoff, rules.room_min)));
            let limit = median.map_or(ms(rules.stuck_after), |m| {
                ms(rules.stuck_after).max((rules.stuck_factor * m as f64).ceil() as i64)
            });
            if now - session.step_since_ms >= limit {
                groups.entry(step).or_default().push(token.clone());
            }
        }
        let stuck: usize = groups.values().map(Vec::len).sum();
        let paused = stuck >= rules.room_min.max(1) && 2 * stuck >= active;
        let mut changes = Vec::new();
        let room = Key(Rule::RoomPaused, ROOM.to_owned());
        if paused {
            let message = format!(
                "room paused: {stuck} of {} active students are on their step longer than usual; no stuck alerts meanwhile",
                active
            );
            match self.open.get_mut(&room) {
                Some(notice) if notice.count != stuck as u64 || notice.sessions != active as u64 => {
                    notice.count = stuck as u64;
                    notice.sessions = active as u64;
                    notice.message = message;
                    notice.last_seen_at = iso(now);
                    self.updated.insert(room.clone());
                }
                Some(_) => {}
                None => {
                    let mut notice = Alert::opening(Rule::RoomPaused, now);
                    notice.count = stuck as u64;
                    notice.sessions = active as u64;
                    notice.message = message;
                    self.open.insert(room.clone(), notice.clone());
                    changes.push(AlertChange { kind: ChangeKind::Opened, alert: notice });
                }
            }
        } else {
            changes.extend(self.resolve(&room, now));
        }
        // Open groups: sessions leave when no longer stuck there; they join unless the room is
        // paused; a group that empties resolves.
        let open_steps: Vec<Key> = self.open.keys().filter(|k| k.0 == Rule::Stuck).cloned().collect();
        for key in &open_steps {
            let step = key.1.parse::<i64>().ok();
            let now_stuck = step.and_then(|s| groups.remove(&s)).unwrap_or_default();
            let before = &self.open[key].session_tokens;
            let mut tokens: Vec<String> =
                if paused { now_stuck.into_iter().filter(|t| before.contains(t)).collect() } else { now_stuck };
            tokens.sort();
            if tokens.is_empty() {
                changes.extend(self.resolve(key, now));
            } else {
                let median = step.and_then(|s| typical.get(&s).copied().flatten());
                self.regroup(key, tokens, Some(median), now);
            }
        }
        if paused {
            return changes;
        }
        for (step, mut tokens) in groups {
            tokens.sort();
            let key = Key(Rule::Stuck, step.to_string());
            let mut alert = Alert::opening(Rule::Stuck, now);
            alert.step = Some(step);
            self.open.insert(key.clone(), alert);
            self.regroup(&key, tokens, Some(typical.get(&step).copied().flatten()), now);
            self.updated.remove(&key);
            let alert = self.open[&key].clone();
            changes.push(AlertChange { kind: ChangeKind::Opened, alert });
        }
        changes
    }

    /// Advances to `now`: ages windows, groups `stuck` sessions, resolves the alerts whose
    /// condition no longer holds, publishes the open alerts updated since the last tick (one
    /// change each), and forgets idle sessions without open alerts.
    pub fn tick(&mut self, now: i64) -> Vec<AlertChange> {
        let rules = self.rules.clone();
        let started = *self.started_ms.get_or_insert(now);
        let window = |rule: Rule| match rule {
            Rule::ErrorBurst => rules.error_burst_window,
            Rule::ErrorPattern => rules.error_pattern_window,
            Rule::ApiFailures => rules.api_failure_window,
            Rule::Stuck | Rule::HelpRequest | Rule::RoomPaused | Rule::HelpFlood => rules.active_window,
        };
        self.restored.retain(|key| now < started + ms(window(key.0)));
        let mut changes: Vec<AlertChange> = std::mem::take(&mut self.orphans)
            .into_iter()
            .map(|mut alert| {
                alert.status = AlertStatus::Resolved;
                alert.resolved_at = Some(iso(now));
                AlertChange { kind: ChangeKind::Resolved, alert }
            })
            .collect();
        changes.extend(self.stuck_groups(now));
        let mut resolved = Vec::new();
        let keys: Vec<Key> = self.open.keys().cloned().collect();
        for key in &keys {
            if self.restored.contains(key) {
                continue; // its window's history is not known yet
            }
            let holds = match key.0 {
                Rule::ErrorBurst => self.sessions.get(&key.1).is_some_and(|s| {
                    s.errors.iter().filter(|t| **t >= now - ms(rules.error_burst_window)).count()
                        >= rules.error_burst_count
                }),
                Rule::ErrorPattern => self.patterns.get(&key.1).is_some_and(|w| {
                    let cutoff = now - ms(rules.error_pattern_window);
                    w.values().filter(|t| t.back().is_some_and(|last| *last >= cutoff)).count()
                        >= rules.error_pattern_sessions
                }),
                Rule::ApiFailures => self.endpoints.get_mut(&key.1).is_some_and(|w| {
                    w.age(now - ms(rules.api_failure_window));
                    failing(w.calls, w.failed, &rules)
                }),
                // A flood while its address keeps asking within the active window.
                Rule::HelpFlood => {
                    self.help_from.get(&key.1).is_some_and(|(_, last)| *last >= now - ms(rules.active_window))
                }
                // Held by `stuck_groups`; a help request by an acknowledgement.
                Rule::Stuck | Rule::RoomPaused | Rule::HelpRequest => true,
            };
            if !holds {
                resolved.push(key.clone());
            }
        }
        for key in resolved {
            changes.extend(self.resolve(&key, now));
        }
        let every = ms(rules.count_update_every);
        let (due, later): (HashSet<Key>, HashSet<Key>) = std::mem::take(&mut self.updated)
            .into_iter()
            .partition(|key| !throttled(key.0) || self.published_ms.get(key).is_none_or(|t| now - t >= every));
        self.updated = later;
        for key in due {
            if throttled(key.0) {
                self.published_ms.insert(key.clone(), now);
            }
            if key.0 == Rule::ErrorPattern {
                let (tokens, errors) = self.pattern_tally(&key.1, now - ms(rules.error_pattern_window));
                if !tokens.is_empty() {
                    let fill = self.describe_pattern(&key.1, tokens, errors);
                    if let Some(alert) = self.open.get_mut(&key) {
                        fill(alert);
                    }
                }
            }
            if let Some(alert) = self.open.get(&key) {
                changes.push(AlertChange { kind: ChangeKind::Updated, alert: alert.clone() });
            }
        }
        let keep = ms(rules.active_window.max(rules.error_pattern_window).max(rules.api_failure_window));
        let open_sessions: BTreeSet<&String> = self.open.values().flat_map(|a| a.session_tokens.iter()).collect();
        let forget: Vec<String> = self
            .sessions
            .iter()
            .filter(|(token, s)| s.last_seen_ms < now - keep && !open_sessions.contains(token))
            .map(|(token, _)| token.clone())
            .collect();
        for token in forget {
            self.sessions.remove(&token);
        }
        let burst_cutoff = now - ms(rules.error_burst_window);
        for session in self.sessions.values_mut() {
            age_times(&mut session.errors, burst_cutoff);
        }
        let pattern_cutoff = now - ms(rules.error_pattern_window);
        for window in self.patterns.values_mut() {
            window.retain(|_, t| {
                age_times(t, pattern_cutoff);
                !t.is_empty()
            });
        }
        self.patterns.retain(|_, w| !w.is_empty());
        for window in self.endpoints.values_mut() {
            window.age(now - ms(rules.api_failure_window));
        }
        self.endpoints.retain(|_, w| w.calls > 0);
        let quiet = now - ms(rules.active_window);
        self.help_from.retain(|_, (_, last)| *last >= quiet);
        let room_cutoff = now - ms(rules.room_window);
        self.steps.retain(|_, h| {
            while h.visits.front().is_some_and(|v| v.0 < room_cutoff) {
                h.visits.pop_front();
            }
            !h.visits.is_empty() || h.name.is_some()
        });
        changes
    }
}

/// The one line of a `stuck` group: `4 students stuck on step 2 · Provision Services (the room
/// takes 3m 10s there)`, or `… for over 10m` when the room has not told yet.
fn stuck_message(alert: &Alert, rules: &AlertRules) -> String {
    let students = plural(alert.session_tokens.len(), "student");
    let step = alert.step.map_or("–".to_owned(), |s| s.to_string());
    let name = alert.step_name.as_ref().map_or(String::new(), |n| format!(" · {n}"));
    match alert.typical_ms {
        Some(typical) => format!("{students} stuck on step {step}{name} (the room takes {} there)", human(typical)),
        None => format!("{students} stuck on step {step}{name} for over {}", human(ms(rules.stuck_after))),
    }
}

/// Keeps what instructors did to a stored alert when the engine writes a newer version of it: an
/// acknowledgement stays, and a resolved alert stays resolved (an acknowledged help request, or
/// an episode that ended: a new episode is a new alert).
pub fn merge_stored(new: &mut Alert, stored: &Alert) {
    if new.acknowledged_at.is_none() {
        new.acknowledged_at.clone_from(&stored.acknowledged_at);
    }
    if new.muted_at.is_none() {
        new.muted_at.clone_from(&stored.muted_at);
    }
    if stored.status == AlertStatus::Resolved {
        new.status = AlertStatus::Resolved;
        if new.resolved_at.is_none() {
            new.resolved_at.clone_from(&stored.resolved_at);
        }
    }
}

/// What an instructor does to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// `POST /api/alerts/{id}/ack`: see [`acknowledge`].
    Acknowledge,
    /// `POST /api/alerts/{id}/mute`: acknowledges it, resolves it, and marks it muted, so its
    /// session (`help_request`) or address (`help_flood`) raises no more help alerts
    /// ([`AlertEngine::settle`]). Muting again changes nothing.
    Mute,
}

/// Does `action` to `alert` at `at` (ISO 8601). Returns the change to publish, or `None` when it
/// changed nothing (both actions are idempotent).
pub fn act(alert: &mut Alert, action: AlertAction, at: &str) -> Option<ChangeKind> {
    match action {
        AlertAction::Acknowledge => acknowledge(alert, at),
        AlertAction::Mute => {
            if alert.muted_at.is_some() {
                return None;
            }
            alert.muted_at = Some(at.to_owned());
            if alert.acknowledged_at.is_none() {
                alert.acknowledged_at = Some(at.to_owned());
            }
            if alert.status == AlertStatus::Open {
                alert.status = AlertStatus::Resolved;
                alert.resolved_at = Some(at.to_owned());
                return Some(ChangeKind::Resolved);
            }
            Some(ChangeKind::Updated)
        }
    }
}

/// Acknowledges `alert` at `at` (ISO 8601); a help request resolves too. Returns the change to
/// publish, or `None` when it was already acknowledged (acknowledging is idempotent).
pub fn acknowledge(alert: &mut Alert, at: &str) -> Option<ChangeKind> {
    if alert.acknowledged_at.is_some() {
        return None;
    }
    alert.acknowledged_at = Some(at.to_owned());
    if alert.rule == Rule::HelpRequest && alert.status == AlertStatus::Open {
        alert.status = AlertStatus::Resolved;
        alert.resolved_at = Some(at.to_owned());
        return Some(ChangeKind::Resolved);
    }
    Some(ChangeKind::Updated)
}

/// Whether `failed` of `calls` crosses the `api_failures` threshold.
fn failing(calls: usize, failed: usize, rules: &AlertRules) -> bool {
    calls >= rules.api_failure_min_calls && failed as f64 >= rules.api_failure_rate * calls as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const SEC: i64 = 1000;

    struct Feed {
        engine: AlertEngine,
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                engine: AlertEngine::new(
                    AlertRules { count_update_every: Duration::ZERO, ..AlertRules::default() },
                    Vec::new(),
                ),
            }
        }

        fn event(&mut self, at: i64, token: &str, event_type: &str, facts: EventFacts) -> Vec<AlertChange> {
            let observed = Observed {
                session_token: token,
                student_email: Some("ada@example.com"),
                event_type,
                facts: &facts,
                message: Some("I am lost on step 3"),
                address: Some("203.0.113.7"),
                at_ms: at,
                completes: event_type == "workshop_completed",
            };
            self.engine.observe(&observed)
        }

        fn error(&mut self, at: i64, token: &str, error_type: &str) -> Vec<AlertChange> {
            let facts = EventFacts { error_type: Some(error_type.into()), ..EventFacts::default() };
            self.event(at, token, "error", facts)
        }

        /// An action of `token` on `step` (a navigation when it changes the step).
        fn on_step(&mut self, at: i64, token: &str, step: i64) -> Vec<AlertChange> {
            let facts =
                EventFacts { step: Some(step), step_name: Some(format!("Step {step}")), ..EventFacts::default() };
            self.event(at, token, "action", facts)
        }

        fn call(&mut self, at: i64, failed: bool) -> Vec<AlertChange> {
            let facts =
                EventFacts { endpoint: Some("/api/deploy".into()), api_failed: failed, ..EventFacts::default() };
            self.event(at, "ws_calls", "api_call", facts)
        }
    }

    fn kinds(changes: &[AlertChange], rule: Rule) -> Vec<ChangeKind> {
        changes.iter().filter(|c| c.alert.rule == rule).map(|c| c.kind).collect()
    }

    // error_burst opens at the third error within 2 minutes, updates on the fourth, and
    // resolves once they age out of the window; a later burst is a new episode.
    #[test]
    fn error_burst_is_one_episode() {
        let mut feed = Feed::new();
        assert!(feed.error(T0, "ws_a", "x").is_empty());
        assert!(feed.error(T0 + 10 * SEC, "ws_a", "x").is_empty());
        let opened = feed.error(T0 + 20 * SEC, "ws_a", "y");
        assert_eq!(kinds(&opened, Rule::ErrorBurst), [ChangeKind::Opened]);
        let alert = &opened[0].alert;
        assert_eq!((alert.count, alert.sessions), (3, 1), "opens counting the errors that opened it");
        assert_eq!(
            (alert.session_tokens.clone(), alert.student_emails.clone()),
            (vec!["ws_a".to_owned()], vec!["ada@example.com".to_owned()])
        );
        assert_eq!(alert.severity, Severity::Warning);
        assert!(
            kinds(&feed.error(T0 + 30 * SEC, "ws_a", "y"), Rule::ErrorBurst).is_empty(),
            "updates wait for the tick"
        );
        feed.error(T0 + 31 * SEC, "ws_a", "y");
        let updated = feed.engine.tick(T0 + 32 * SEC);
        assert_eq!(kinds(&updated, Rule::ErrorBurst), [ChangeKind::Updated], "one update for two errors");
        assert_eq!(updated[0].alert.id, alert.id, "the same episode");
        assert_eq!(updated[0].alert.count, 5, "every error of the episode");
        assert_eq!(updated[0].alert.message, "5 errors within 2m in session ws_a");
        assert!(feed.engine.tick(T0 + 120 * SEC).is_empty(), "still three within 2 minutes");
        let resolved = feed.engine.tick(T0 + 141 * SEC);
        assert_eq!(kinds(&resolved, Rule::ErrorBurst), [ChangeKind::Resolved]);
        assert_eq!(resolved[0].alert.status, AlertStatus::Resolved);
        let again: Vec<AlertChange> = (0..3).flat_map(|i| feed.error(T0 + 600 * SEC + i * SEC, "ws_a", "z")).collect();
        let reopened: Vec<&AlertChange> = again.iter().filter(|c| c.alert.rule == Rule::ErrorBurst).collect();
        assert_eq!(reopened[0].kind, ChangeKind::Opened);
        assert_ne!(reopened[0].alert.id, alert.id, "a new episode");
    }

    // error_pattern needs one errorType in three sessions within 10 minutes, lists them, and
    // resolves when they age out.
    #[test]
    fn error_pattern_spans_sessions() {
        let mut feed = Feed::new();
        feed.error(T0, "ws_a", "twilio_timeout");
        feed.error(T0 + SEC, "ws_a", "twilio_timeout");
        feed.error(T0 + 2 * SEC, "ws_b", "other");
        assert!(kinds(&feed.error(T0 + 3 * SEC, "ws_b", "twilio_timeout"), Rule::ErrorPattern).is_empty());
        let opened = feed.error(T0 + 4 * SEC, "ws_c", "twilio_timeout");
        let pattern: Vec<&AlertChange> = opened.iter().filter(|c| c.alert.rule == Rule::ErrorPattern).collect();
        assert_eq!(pattern.len(), 1);
        assert_eq!(pattern[0].kind, ChangeKind::Opened);
        assert_eq!(pattern[0].alert.session_tokens, ["ws_a", "ws_b", "ws_c"]);
        assert_eq!(pattern[0].alert.error_type.as_deref(), Some("twilio_timeout"));
        assert_eq!(pattern[0].alert.severity, Severity::Critical);
        assert!(kinds(&feed.error(T0 + 5 * SEC, "ws_d", "twilio_timeout"), Rule::ErrorPattern).is_empty());
        let updated = feed.engine.tick(T0 + 6 * SEC);
        assert_eq!(kinds(&updated, Rule::ErrorPattern), [ChangeKind::Updated], "published by the tick");
        assert_eq!(kinds(&feed.engine.tick(T0 + 602 * SEC), Rule::ErrorPattern), [], "b, c, d are still within");
        assert_eq!(kinds(&feed.engine.tick(T0 + 604 * SEC), Rule::ErrorPattern), [ChangeKind::Resolved]);
    }

    // stuck opens on the timer for an active session on one step for 10 minutes, and resolves
    // when it moves to another step.
    #[test]
    fn stuck_opens_on_the_timer_and_resolves_on_a_step_change() {
        let mut feed = Feed::new();
        let at_step = |step| EventFacts { step: Some(step), ..EventFacts::default() };
        feed.event(T0, "ws_s", "navigation", at_step(2));
        feed.event(T0 + 240 * SEC, "ws_s", "action", at_step(2));
        feed.event(T0 + 480 * SEC, "ws_s", "action", at_step(2));
        assert!(feed.engine.tick(T0 + 599 * SEC).is_empty());
        let opened = feed.engine.tick(T0 + 600 * SEC);
        assert_eq!(kinds(&opened, Rule::Stuck), [ChangeKind::Opened]);
        assert!(opened[0].alert.message.contains("step 2"), "{}", opened[0].alert.message);
        assert!(feed.engine.tick(T0 + 610 * SEC).is_empty(), "opens once");
        let moved = feed.event(T0 + 620 * SEC, "ws_s", "navigation", at_step(3));
        assert_eq!(kinds(&moved, Rule::Stuck), [ChangeKind::Resolved]);
        // An idle session is not stuck: nobody is there.
        feed.event(T0 + 700 * SEC, "ws_idle", "navigation", at_step(1));
        assert!(kinds(&feed.engine.tick(T0 + 1400 * SEC), Rule::Stuck).is_empty());
    }

    // api_failures needs at least 5 calls within 5 minutes of which half failed, and resolves
    // when the rate drops.
    #[test]
    fn api_failures_follow_the_failure_rate() {
        let mut feed = Feed::new();
        for i in 0..4 {
            assert!(feed.call(T0 + i * SEC, true).is_empty(), "fewer than 5 calls");
        }
        let opened = feed.call(T0 + 4 * SEC, true);
        assert_eq!(kinds(&opened, Rule::ApiFailures), [ChangeKind::Opened]);
        assert_eq!(opened[0].alert.endpoint.as_deref(), Some("/api/deploy"));
        for i in 5..8 {
            feed.call(T0 + i * SEC, false);
        }
        let still = feed.engine.tick(T0 + 8 * SEC);
        assert!(kinds(&still, Rule::ApiFailures).is_empty(), "5 of 8 failed");
        let mut resolved = Vec::new();
        for i in 8..11 {
            resolved.extend(feed.call(T0 + i * SEC, false));
        }
        assert_eq!(kinds(&resolved, Rule::ApiFailures), [ChangeKind::Resolved], "5 of 11 failed");
    }

    /// An event of `token` with `facts` at `at`, no student, message or address.
    fn feed_one(
        engine: &mut AlertEngine,
        token: &str,
        event_type: &str,
        facts: &EventFacts,
        at: i64,
    ) -> Vec<AlertChange> {
        engine.observe(&Observed {
            session_token: token,
            student_email: None,
            event_type,
            facts,
            message: None,
            address: None,
            at_ms: at,
            completes: false,
        })
    }

    /// A help request of `token` from `address` at `at`.
    fn help(engine: &mut AlertEngine, at: i64, token: &str, address: &str, message: &str) -> Vec<AlertChange> {
        let facts = EventFacts::default();
        engine.observe(&Observed {
            session_token: token,
            student_email: None,
            event_type: HELP_REQUEST,
            facts: &facts,
            message: Some(message),
            address: Some(address),
            at_ms: at,
            completes: false,
        })
    }

    // A session has at most one open help request: asking again updates it (its message, its
    // count); once acknowledged, the next request opens a new one.
    #[test]
    fn one_open_help_request_per_session() {
        let mut feed = Feed::new();
        let first = feed.event(T0, "ws_h", HELP_REQUEST, EventFacts::default());
        assert_eq!(kinds(&first, Rule::HelpRequest), [ChangeKind::Opened]);
        assert_eq!(first[0].alert.message, "I am lost on step 3");
        assert_eq!(first[0].alert.address.as_deref(), Some("203.0.113.7"));
        let again = help(&mut feed.engine, T0 + SEC, "ws_h", "203.0.113.7", "still stuck");
        assert!(again.is_empty(), "no second alert: {again:?}");
        let updated = feed.engine.tick(T0 + 2 * SEC);
        let help_changes = of(&updated, Rule::HelpRequest);
        assert_eq!(help_changes.len(), 1);
        assert_eq!(help_changes[0].kind, ChangeKind::Updated);
        assert_eq!(
            (&*help_changes[0].alert.id, &*help_changes[0].alert.message, help_changes[0].alert.count),
            (&*first[0].alert.id, "still stuck", 2)
        );
        assert!(
            feed.engine.tick(T0 + 86_400 * SEC).iter().all(|c| c.alert.rule != Rule::HelpRequest),
            "only an ack resolves it"
        );
        // An instructor acknowledges it (on any server); the engine settles the stored change.
        let mut acked = help_changes[0].alert.clone();
        assert_eq!(acknowledge(&mut acked, "2027-01-15T08:00:00.000Z"), Some(ChangeKind::Resolved));
        feed.engine.settle(&acked, T0 + 86_401 * SEC);
        let next = help(&mut feed.engine, T0 + 86_402 * SEC, "ws_h", "203.0.113.7", "new problem");
        assert_eq!(kinds(&next, Rule::HelpRequest), [ChangeKind::Opened]);
        assert_ne!(next[0].alert.id, first[0].alert.id);
    }

    // 300 help requests from one address within seconds, each under a made-up session, pin at
    // most HELP_FLOOD_COUNT requests, and only until the flood is seen: then they fold into one
    // flagged help_flood alert (a warning) that counts them all. Another address is untouched.
    #[test]
    fn a_help_request_flood_is_one_flagged_alert() {
        let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
        let mut changes = Vec::new();
        for i in 0..300 {
            changes.extend(help(&mut engine, T0 + i * 10, &format!("ws_fake{i}"), "198.51.100.9", "token expired"));
        }
        changes.extend(help(&mut engine, T0 + 3_000, "ws_real", "203.0.113.7", "my purchase fails"));
        changes.extend(engine.tick(T0 + 4_000));
        assert!(kinds(&changes, Rule::HelpFlood) == [ChangeKind::Opened], "updates wait for count_update_every");
        changes.extend(engine.tick(T0 + 11 * SEC));
        let opened_help: Vec<&AlertChange> =
            of(&changes, Rule::HelpRequest).into_iter().filter(|c| c.kind == ChangeKind::Opened).collect();
        assert_eq!(opened_help.len(), HELP_FLOOD_COUNT + 1, "the first 10 and the real student");
        let open: Vec<&Alert> = engine.open.values().filter(|a| a.rule == Rule::HelpRequest).collect();
        assert_eq!(open.len(), 1, "only the real student's request stays pinned");
        assert_eq!(open[0].session_tokens, ["ws_real"]);
        let folded: Vec<&AlertChange> =
            of(&changes, Rule::HelpRequest).into_iter().filter(|c| c.kind == ChangeKind::Resolved).collect();
        assert_eq!(folded.len(), HELP_FLOOD_COUNT);
        assert!(folded.iter().all(|c| c.alert.message == "folded into the help flood from 198.51.100.9"));
        let flood = of(&changes, Rule::HelpFlood);
        assert_eq!(flood[0].kind, ChangeKind::Opened);
        let last = &flood.last().unwrap().alert;
        assert_eq!((last.count, last.sessions, last.severity), (300, 300, Severity::Warning));
        assert!(last.session_tokens.len() <= FLOOD_TOKENS_LISTED);
        assert_eq!(last.address.as_deref(), Some("198.51.100.9"));
        assert!(last.message.starts_with("300 help requests from one address (198.51.100.9)"), "{}", last.message);
        // Quiet for the active window: it resolves.
        let later = engine.tick(T0 + 4_000 + 301 * SEC);
        assert_eq!(kinds(&later, Rule::HelpFlood), [ChangeKind::Resolved]);
    }

    // An error type across 500 sessions and an endpoint failing for all of them list at most
    // MAX_LISTED sessions each, and count them all.
    #[test]
    fn wide_alerts_list_a_bounded_number_of_sessions() {
        let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
        let mut changes = Vec::new();
        for i in 0..500 {
            let facts = EventFacts {
                error_type: Some("twilio_down".into()),
                endpoint: Some("/v1/calls".into()),
                api_failed: true,
                ..EventFacts::default()
            };
            for event_type in ["error", "api_call"] {
                changes.extend(feed_one(&mut engine, &format!("ws_{i:03}"), event_type, &facts, T0 + i));
            }
        }
        changes.extend(engine.tick(T0 + 11 * SEC));
        for rule in [Rule::ErrorPattern, Rule::ApiFailures] {
            let last = &of(&changes, rule).last().unwrap().alert;
            assert_eq!((last.session_tokens.len(), last.sessions), (MAX_LISTED, 500), "{rule:?}");
            assert_eq!(last.session_tokens[0], "ws_000");
        }
    }

    // An error burst that keeps growing is published when it opens, then at most once per
    // count_update_every however many errors come; its resolution at once.
    #[test]
    fn growing_alerts_are_published_at_most_every_ten_seconds() {
        let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
        let facts = EventFacts { error_type: Some("boom".into()), ..EventFacts::default() };
        let mut published = Vec::new();
        for s in 0..60 {
            published.extend(feed_one(&mut engine, "ws_noisy", "error", &facts, T0 + s * SEC));
            published.extend(engine.tick(T0 + s * SEC + 500));
        }
        let burst = kinds(&published, Rule::ErrorBurst);
        assert_eq!(burst[0], ChangeKind::Opened);
        let updates = burst.iter().filter(|k| **k == ChangeKind::Updated).count();
        assert!((5..=6).contains(&updates), "{updates} updates in 58 s");
        let resolved = engine.tick(T0 + 300 * SEC);
        assert_eq!(kinds(&resolved, Rule::ErrorBurst), [ChangeKind::Resolved]);
    }

    // Muting a help request silences its session; muting a flood silences its address.
    #[test]
    fn muted_sessions_and_addresses_raise_nothing() {
        let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
        let mut request = help(&mut engine, T0, "ws_troll", "203.0.113.7", "hi")[0].alert.clone();
        assert_eq!(act(&mut request, AlertAction::Mute, "2027-01-15T08:00:00.000Z"), Some(ChangeKind::Resolved));
        engine.settle(&request, T0 + SEC);
        assert!(help(&mut engine, T0 + 2 * SEC, "ws_troll", "203.0.113.7", "hi again").is_empty());
        let facts = EventFacts { error_type: Some("x".into()), ..EventFacts::default() };
        for i in 0..5 {
            let raised = feed_one(&mut engine, "ws_troll", "error", &facts, T0 + (3 + i) * SEC);
            assert!(raised.is_empty(), "a muted session raises nothing");
        }
        let mut flood = AlertChange { kind: ChangeKind::Opened, alert: Alert::opening(Rule::HelpFlood, T0) }.alert;
        flood.address = Some("198.51.100.9".into());
        act(&mut flood, AlertAction::Mute, "2027-01-15T08:00:00.000Z");
        engine.settle(&flood, T0 + 10 * SEC);
        for i in 0..20 {
            assert!(help(&mut engine, T0 + 11 * SEC + i, &format!("ws_b{i}"), "198.51.100.9", "x").is_empty());
        }
        assert_eq!(
            kinds(&help(&mut engine, T0 + 12 * SEC, "ws_ok", "203.0.113.8", "x"), Rule::HelpRequest),
            [ChangeKind::Opened]
        );
    }

    // Distinct error types, endpoints and sessions beyond the caps are forgotten oldest first
    // and counted; long keys are cut. The engine's maps never exceed their caps.
    #[test]
    fn rule_windows_are_bounded_under_distinct_keys() {
        let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
        let long = "k".repeat(1_000);
        for i in 0..(MAX_SESSIONS as i64 + 5_000) {
            let facts = EventFacts {
                error_type: Some(format!("{i}{long}")),
                endpoint: Some(format!("/{i}/{long}")),
                ..EventFacts::default()
            };
            for event_type in ["error", "api_call"] {
                feed_one(&mut engine, &format!("ws_{i}"), event_type, &facts, T0 + i);
            }
            assert!(engine.patterns.len() <= MAX_KEYS && engine.endpoints.len() <= MAX_KEYS);
            assert!(engine.sessions.len() <= MAX_SESSIONS, "{} sessions at {i}", engine.sessions.len());
        }
        assert!(engine.evicted() > 0);
        let key_bytes = engine.patterns.keys().chain(engine.endpoints.keys()).map(String::len).max().unwrap();
        assert!(key_bytes <= crate::domain::summary::MAX_KEY_BYTES, "{key_bytes}");
        // The newest keys are the ones kept.
        assert!(engine.sessions.contains_key(&format!("ws_{}", MAX_SESSIONS as i64 + 4_999)));
    }

    // Alerts open before a restart (or on another server) update instead of opening again.
    #[test]
    fn open_alerts_survive_a_restart() {
        let mut feed = Feed::new();
        let opened: Vec<AlertChange> = (0..3).flat_map(|i| feed.error(T0 + i * SEC, "ws_r", "x")).collect();
        let burst = opened.iter().find(|c| c.alert.rule == Rule::ErrorBurst).unwrap().alert.clone();
        let mut engine = AlertEngine::new(AlertRules::default(), vec![burst.clone()]);
        let facts = EventFacts { error_type: Some("x".into()), ..EventFacts::default() };
        let mut changes = Vec::new();
        for i in 3..6 {
            changes.extend(feed_one(&mut engine, "ws_r", "error", &facts, T0 + i * SEC));
        }
        changes.extend(engine.tick(T0 + 6 * SEC));
        let burst_changes: Vec<&AlertChange> = changes.iter().filter(|c| c.alert.rule == Rule::ErrorBurst).collect();
        assert_eq!(burst_changes.last().unwrap().kind, ChangeKind::Updated);
        assert!(burst_changes.iter().all(|c| c.alert.id == burst.id));
    }

    fn of(changes: &[AlertChange], rule: Rule) -> Vec<&AlertChange> {
        changes.iter().filter(|c| c.alert.rule == rule).collect()
    }

    /// Keeps `tokens` moving through steps 10, 11, … every 100 s from `from` to `to` (s after
    /// T0), so the room has active sessions that are not stuck.
    fn keep_moving(feed: &mut Feed, tokens: &[&str], from: i64, to: i64) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        for (i, at) in (from..=to).step_by(100).enumerate() {
            for token in tokens {
                changes.extend(feed.on_step(T0 + at * SEC, token, 10 + i as i64));
            }
        }
        changes
    }

    // Stuck sessions are one alert per step: sessions join it when they become stuck there,
    // leave it when they move on, and the alert resolves when the last one leaves.
    #[test]
    fn stuck_sessions_group_by_step() {
        let mut feed = Feed::new();
        let movers = ["ws_m1", "ws_m2", "ws_m3", "ws_m4", "ws_m5"];
        for token in ["ws_a", "ws_b"] {
            feed.on_step(T0, token, 2);
        }
        feed.on_step(T0, "ws_c", 3);
        feed.on_step(T0 + 60 * SEC, "ws_d", 2);
        keep_moving(&mut feed, &movers, 0, 600);
        for at in [200, 400] {
            for token in ["ws_a", "ws_b", "ws_c", "ws_d"] {
                let step = if token == "ws_c" { 3 } else { 2 };
                feed.on_step(T0 + at * SEC, token, step);
            }
        }
        let opened = feed.engine.tick(T0 + 600 * SEC);
        let stuck = of(&opened, Rule::Stuck);
        assert_eq!(stuck.len(), 2, "one alert per step: {opened:#?}");
        let step2 = stuck.iter().find(|c| c.alert.step == Some(2)).unwrap();
        assert_eq!(step2.kind, ChangeKind::Opened);
        assert_eq!(step2.alert.session_tokens, ["ws_a", "ws_b"]);
        assert_eq!((step2.alert.count, step2.alert.sessions), (2, 2));
        assert_eq!(step2.alert.step_name.as_deref(), Some("Step 2"));
        assert_eq!(step2.alert.message, "2 students stuck on step 2 · Step 2 for over 10m");
        let id = step2.alert.id.clone();

        // ws_d has been on step 2 for 10 minutes a minute later: it joins the same alert.
        keep_moving(&mut feed, &movers, 700, 700);
        let joined = feed.engine.tick(T0 + 660 * SEC);
        let update = of(&joined, Rule::Stuck);
        assert_eq!(update.len(), 1, "{joined:#?}");
        assert_eq!((update[0].kind, update[0].alert.id.clone()), (ChangeKind::Updated, id.clone()));
        assert_eq!(update[0].alert.session_tokens, ["ws_a", "ws_b", "ws_d"]);
        assert!(update[0].alert.message.starts_with("3 students stuck on step 2"), "{}", update[0].alert.message);

        // ws_a moves on: it leaves at once (published by the tick); the others follow and the
        // alert resolves.
        assert!(of(&feed.on_step(T0 + 670 * SEC, "ws_a", 3), Rule::Stuck).is_empty(), "an update waits for the tick");
        let left = feed.engine.tick(T0 + 671 * SEC);
        let update = of(&left, Rule::Stuck);
        assert_eq!(update.len(), 1, "{left:#?}");
        assert_eq!(update[0].alert.session_tokens, ["ws_b", "ws_d"]);
        feed.on_step(T0 + 680 * SEC, "ws_b", 3);
        let resolved = feed.on_step(T0 + 681 * SEC, "ws_d", 3);
        let resolved = of(&resolved, Rule::Stuck);
        assert_eq!(resolved.len(), 1);
        assert_eq!((resolved[0].kind, resolved[0].alert.id.clone()), (ChangeKind::Resolved, id));
    }

    // With enough of the room through a step, a session is stuck only past both the floor and
    // twice the room's median there, and the alert names the median it was compared with.
    #[test]
    fn stuck_is_judged_against_the_room() {
        let rules = AlertRules { stuck_after: Duration::from_secs(30), ..AlertRules::default() };
        let mut feed = Feed { engine: AlertEngine::new(rules, Vec::new()) };
        // Three students spend 40, 60 and 80 s on step 1 (then finish): the median is 60 s.
        for (token, spent) in [("ws_r1", 40), ("ws_r2", 60), ("ws_r3", 80)] {
            feed.on_step(T0, token, 1);
            feed.on_step(T0 + spent * SEC, token, 2);
            feed.event(T0 + spent * SEC, token, "workshop_completed", EventFacts::default());
        }
        feed.on_step(T0 + 100 * SEC, "ws_slow", 1);
        let movers = ["ws_m1", "ws_m2", "ws_m3"];
        keep_moving(&mut feed, &movers, 100, 300);
        assert!(of(&feed.engine.tick(T0 + 219 * SEC), Rule::Stuck).is_empty(), "119 s < 2 × 60 s");
        let opened = feed.engine.tick(T0 + 221 * SEC);
        let stuck = of(&opened, Rule::Stuck);
        assert_eq!(stuck.len(), 1, "{opened:#?}");
        assert_eq!(stuck[0].alert.session_tokens, ["ws_slow"]);
        assert_eq!(stuck[0].alert.typical_ms, Some(60_000));
        assert_eq!(stuck[0].alert.message, "1 student stuck on step 1 · Step 1 (the room takes 1m there)");

        // Where only two of the room went through, the floor alone decides.
        let rules = AlertRules { stuck_after: Duration::from_secs(30), ..AlertRules::default() };
        let mut feed = Feed { engine: AlertEngine::new(rules, Vec::new()) };
        for (token, spent) in [("ws_r1", 200), ("ws_r2", 200)] {
            feed.on_step(T0, token, 1);
            feed.on_step(T0 + spent * SEC, token, 2);
            feed.event(T0 + spent * SEC, token, "workshop_completed", EventFacts::default());
        }
        feed.on_step(T0 + 200 * SEC, "ws_slow", 1);
        keep_moving(&mut feed, &movers, 200, 300);
        let opened = feed.engine.tick(T0 + 231 * SEC);
        let stuck = of(&opened, Rule::Stuck);
        assert_eq!(stuck.len(), 1, "{opened:#?}");
        assert_eq!(stuck[0].alert.typical_ms, None);
    }

    // When half the active room would be stuck at once (the instructor is talking), no stuck
    // alert opens; one room_paused notice does, and resolves when the room moves again.
    #[test]
    fn a_room_wide_pause_does_not_page() {
        let mut feed = Feed::new();
        let sitting = ["ws_s1", "ws_s2", "ws_s3", "ws_s4"];
        for (i, token) in sitting.iter().enumerate() {
            for at in [0, 200, 400] {
                feed.on_step(T0 + at * SEC, token, 1 + (i as i64 % 2));
            }
        }
        keep_moving(&mut feed, &["ws_m1", "ws_m2", "ws_m3"], 0, 600);
        let paused = feed.engine.tick(T0 + 600 * SEC);
        assert!(of(&paused, Rule::Stuck).is_empty(), "no stuck alert during a pause: {paused:#?}");
        let notice = of(&paused, Rule::RoomPaused);
        assert_eq!(notice.len(), 1);
        assert_eq!(notice[0].kind, ChangeKind::Opened);
        assert_eq!(notice[0].alert.severity, Severity::Info);
        assert_eq!((notice[0].alert.count, notice[0].alert.sessions), (4, 7), "4 of 7 active sessions");
        assert!(feed.engine.tick(T0 + 601 * SEC).is_empty(), "quiet while it lasts");
        // The talk ends: three of them move on; the pause resolves.
        for token in &sitting[..3] {
            feed.on_step(T0 + 610 * SEC, token, 3);
        }
        let after = feed.engine.tick(T0 + 611 * SEC);
        assert_eq!(kinds(&after, Rule::RoomPaused), [ChangeKind::Resolved], "{after:#?}");
    }

    // An error_pattern counts every error of its type across its sessions, and says so.
    #[test]
    fn pattern_counts_errors_and_sessions() {
        let mut feed = Feed::new();
        for (i, token) in ["ws_a", "ws_a", "ws_b", "ws_c"].iter().enumerate() {
            feed.error(T0 + i as i64 * SEC, token, "deploy_failed");
        }
        feed.error(T0 + 5 * SEC, "ws_b", "deploy_failed");
        let updated = feed.engine.tick(T0 + 6 * SEC);
        let pattern = of(&updated, Rule::ErrorPattern);
        assert_eq!(pattern.len(), 1, "{updated:#?}");
        assert_eq!((pattern[0].alert.count, pattern[0].alert.sessions), (5, 3));
        assert_eq!(pattern[0].alert.message, "deploy_failed: 5 errors in 3 sessions within 10m");
    }

    // Open alerts read help requests first, then critical, then warnings, then notices, each
    // newest first; resolved ones after them.
    #[test]
    fn alerts_are_ranked_for_the_instructor() {
        let alert = |rule: Rule, seen: i64, status: AlertStatus| {
            let mut a = Alert::opening(rule, T0 + seen * SEC);
            a.status = status;
            a.message = format!("{rule:?} {seen}");
            a
        };
        let mut alerts = vec![
            alert(Rule::Stuck, 50, AlertStatus::Open),
            alert(Rule::ErrorPattern, 10, AlertStatus::Open),
            alert(Rule::HelpRequest, 5, AlertStatus::Resolved),
            alert(Rule::RoomPaused, 60, AlertStatus::Open),
            alert(Rule::ErrorBurst, 40, AlertStatus::Open),
            alert(Rule::HelpRequest, 1, AlertStatus::Open),
            alert(Rule::ApiFailures, 20, AlertStatus::Open),
            alert(Rule::Stuck, 30, AlertStatus::Resolved),
        ];
        rank(&mut alerts);
        let order: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
        assert_eq!(
            order,
            [
                "HelpRequest 1",
                "ApiFailures 20",
                "ErrorPattern 10",
                "Stuck 50",
                "ErrorBurst 40",
                "RoomPaused 60",
                "Stuck 30",
                "HelpRequest 5"
            ]
        );
    }

    // An older server's per-session stuck alert, restored open, is resolved at the first tick
    // instead of staying open forever.
    #[test]
    fn per_session_stuck_alerts_from_before_resolve() {
        let mut old = Alert::opening(Rule::Stuck, T0);
        old.session_tokens = vec!["ws_old".into()];
        let mut engine = AlertEngine::new(AlertRules::default(), vec![old.clone()]);
        let changes = engine.tick(T0 + SEC);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].kind, changes[0].alert.id.clone()), (ChangeKind::Resolved, old.id));
    }
}
