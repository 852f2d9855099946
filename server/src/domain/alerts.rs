//! Alerts: what needs an instructor now, as episodes. An alert opens once when its rule's
//! condition starts to hold, is updated (count, last seen, the sessions involved) while it holds,
//! and resolves when it clears; a help request resolves when it is acknowledged.
//!
//! The rules (thresholds in [`AlertRules`], defaults from the alerting issue):
//! - `error_burst`: at least 3 errors within 2 minutes in one session;
//! - `error_pattern`: the same `errorType` in at least 3 sessions within 10 minutes;
//! - `stuck`: an active session (an event within the active window) that reports steps, with no
//!   step change for 10 minutes; resolves when it moves to another step, completes or goes idle;
//! - `api_failures`: an endpoint whose calls failed at least 50% of the time over at least 5
//!   calls within 5 minutes;
//! - `help_request`: a `help_request` event (the client's `requestHelp(message)`).
//!
//! [`AlertEngine`] is pure: it is fed events ([`Observed`]) and the time ([`AlertEngine::tick`]),
//! and returns the changes ([`AlertChange`]); the background task persists and publishes them.
//! Times are milliseconds since the Unix epoch.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::summary::EventFacts;

/// The event type of a help request (`requestHelp(message)`).
pub const HELP_REQUEST: &str = "help_request";

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
    /// `stuck`: no step change for this long in an active session (default 10 minutes).
    pub stuck_after: Duration,
    /// A session is active while its last event is this recent (default 5 minutes).
    pub active_window: Duration,
    /// `api_failures`: at least this share of an endpoint's calls failed (default 0.5) …
    pub api_failure_rate: f64,
    /// … over at least this many calls (default 5) …
    pub api_failure_min_calls: usize,
    /// … within this window (default 5 minutes).
    pub api_failure_window: Duration,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            error_burst_count: 3,
            error_burst_window: Duration::from_secs(120),
            error_pattern_sessions: 3,
            error_pattern_window: Duration::from_secs(600),
            stuck_after: Duration::from_secs(600),
            active_window: Duration::from_secs(300),
            api_failure_rate: 0.5,
            api_failure_min_calls: 5,
            api_failure_window: Duration::from_secs(300),
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
    /// A session that does not move on.
    Stuck,
    /// An endpoint that fails.
    ApiFailures,
    /// A student asked for help.
    HelpRequest,
}

impl Rule {
    fn severity(self) -> Severity {
        match self {
            Rule::ErrorBurst | Rule::Stuck => Severity::Warning,
            Rule::ErrorPattern | Rule::ApiFailures | Rule::HelpRequest => Severity::Critical,
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// One student has a problem.
    Warning,
    /// A pattern across the room, a failing endpoint, or a student asking.
    Critical,
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
    /// The sessions involved (one, except for `error_pattern`), sorted.
    pub session_tokens: Vec<String>,
    /// Their students' emails, when events named them, sorted.
    pub student_emails: Vec<String>,
    /// The error type (`error_pattern`, `error_burst`: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The endpoint (`api_failures`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What happened, in one line (a help request: the student's message).
    pub message: String,
    /// Events that fed it during the episode.
    pub count: u64,
    /// When it opened (ISO 8601 UTC with ms).
    pub opened_at: String,
    /// When an event last fed it, or its condition was last seen holding.
    pub last_seen_at: String,
    /// When it resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// When an instructor acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ChangeKind {
    /// It opened.
    #[serde(rename = "alert.opened")]
    Opened,
    /// It changed while open (count, sessions, acknowledgement).
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
    /// When it was stored (ms).
    pub at_ms: i64,
    /// Whether it completes the session (a completion event type).
    pub completes: bool,
}

/// What the engine knows of one session.
#[derive(Debug, Default)]
struct SessionState {
    student: Option<String>,
    errors: VecDeque<i64>,
    last_error_type: Option<String>,
    step: Option<i64>,
    step_since_ms: i64,
    last_seen_ms: i64,
    completed: bool,
}

/// An endpoint's calls within the window, counted per second: bounded whatever the call rate.
#[derive(Debug, Default)]
struct CallWindow {
    /// (second since the epoch, calls, failed calls), oldest first.
    seconds: VecDeque<(i64, usize, usize)>,
    calls: usize,
    failed: usize,
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

    /// Forgets the seconds that ended before `cutoff` (ms).
    fn age(&mut self, cutoff: i64) {
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

/// The subject of an open alert: one per rule and session, error type or endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(Rule, String);

/// The rules' state: sliding windows per session, error type and endpoint, and the open alerts.
#[derive(Debug, Default)]
pub struct AlertEngine {
    rules: AlertRules,
    sessions: HashMap<String, SessionState>,
    /// Per error type: each session's latest error of that type (pruned to the window on the
    /// clock), so memory is bounded by sessions × error types, not by errors.
    patterns: HashMap<String, HashMap<String, i64>>,
    /// Per endpoint: calls counted per second of the window.
    endpoints: HashMap<String, CallWindow>,
    open: HashMap<Key, Alert>,
    /// Alerts restored open from before this engine started, and when it started: their windows'
    /// history is gone, so they are not resolved until a whole window has passed since.
    restored: std::collections::HashSet<Key>,
    started_ms: Option<i64>,
    /// Open alerts changed since the last tick.
    updated: std::collections::HashSet<Key>,
}

/// ISO 8601 UTC with ms of `ms` since the epoch.
pub fn iso(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl AlertEngine {
    /// An engine with no history, `open` being the alerts still open from before (a restart, or
    /// another server that led before): they update and resolve instead of opening again.
    pub fn new(rules: AlertRules, open: Vec<Alert>) -> AlertEngine {
        let mut engine = AlertEngine { rules, ..AlertEngine::default() };
        for alert in open.into_iter().filter(|a| a.status == AlertStatus::Open && a.rule != Rule::HelpRequest) {
            let subject = match alert.rule {
                Rule::ErrorPattern => alert.error_type.clone(),
                Rule::ApiFailures => alert.endpoint.clone(),
                _ => alert.session_tokens.first().cloned(),
            };
            if let Some(subject) = subject {
                engine.restored.insert(Key(alert.rule, subject.clone()));
                engine.open.insert(Key(alert.rule, subject), alert);
            }
        }
        engine
    }

    /// Feeds one stored event; returns the alerts it opened or resolved (updates are published by
    /// the next [`AlertEngine::tick`], once per alert).
    pub fn observe(&mut self, event: &Observed<'_>) -> Vec<AlertChange> {
        let now = event.at_ms;
        self.started_ms.get_or_insert(now);
        let mut changes = Vec::new();
        let rules = self.rules.clone();
        let session = self
            .sessions
            .entry(event.session_token.to_owned())
            .or_insert_with(|| SessionState { step_since_ms: now, ..SessionState::default() });
        if let Some(email) = event.student_email {
            session.student = Some(email.to_owned());
        }
        session.last_seen_ms = session.last_seen_ms.max(now);
        session.completed |= event.completes;
        if let Some(step) = event.facts.step.filter(|s| session.step != Some(*s)) {
            session.step = Some(step);
            session.step_since_ms = now;
        }
        let student = session.student.clone();
        let students = || student.iter().cloned().collect::<Vec<_>>();
        let token = event.session_token;
        if event.event_type == "error" {
            let error_type = event.facts.error_type.clone().unwrap_or_else(|| "unknown".to_owned());
            // The latest `error_burst_count` errors are all the rule needs.
            session.errors.push_back(now);
            while session.errors.len() > rules.error_burst_count {
                session.errors.pop_front();
            }
            session.last_error_type = Some(error_type.clone());
            let in_window = session.errors.iter().filter(|t| **t >= now - ms(rules.error_burst_window)).count();
            if in_window >= rules.error_burst_count {
                let message = format!(
                    "{in_window} errors within {} in session {token}",
                    humantime::format_duration(rules.error_burst_window)
                );
                changes.extend(self.hold(Key(Rule::ErrorBurst, token.to_owned()), now, |alert| {
                    alert.session_tokens = vec![token.to_owned()];
                    alert.student_emails = students();
                    alert.error_type = Some(error_type.clone());
                    alert.message = message.clone();
                }));
            }
            let cutoff = now - ms(rules.error_pattern_window);
            let window = self.patterns.entry(error_type.clone()).or_default();
            let joined = window.insert(token.to_owned(), now).is_none_or(|before| before < cutoff);
            let key = Key(Rule::ErrorPattern, error_type.clone());
            if joined {
                // A session joined the pattern: count the sessions within the window again.
                let sessions: BTreeSet<&String> =
                    window.iter().filter(|(_, t)| **t >= cutoff).map(|(s, _)| s).collect();
                if sessions.len() >= rules.error_pattern_sessions {
                    let tokens: Vec<String> = sessions.iter().map(|s| (*s).clone()).collect();
                    let emails: BTreeSet<String> =
                        tokens.iter().filter_map(|s| self.sessions.get(s).and_then(|x| x.student.clone())).collect();
                    let message = format!(
                        "{error_type} in {} sessions within {}",
                        tokens.len(),
                        humantime::format_duration(rules.error_pattern_window)
                    );
                    changes.extend(self.hold(key, now, |alert| {
                        alert.session_tokens.clone_from(&tokens);
                        alert.student_emails = emails.iter().cloned().collect();
                        alert.error_type = Some(error_type.clone());
                        alert.message.clone_from(&message);
                    }));
                }
            } else if self.open.contains_key(&key) {
                // One more error of a session already in the pattern.
                changes.extend(self.hold(key, now, |_| {}));
            }
        } else if event.event_type == "api_call" {
            let endpoint = event.facts.endpoint.clone().unwrap_or_else(|| "unknown".to_owned());
            let window = self.endpoints.entry(endpoint.clone()).or_default();
            window.add(now, event.facts.api_failed);
            window.age(now - ms(rules.api_failure_window));
            let (calls, failed) = (window.calls, window.failed);
            let open = self.open.contains_key(&Key(Rule::ApiFailures, endpoint.clone()));
            // Opens on any call that tips the rate; while open, failed calls update it.
            if failing(calls, failed, &rules) && (event.facts.api_failed || !open) {
                let message = format!(
                    "{endpoint}: {failed} of {calls} calls failed within {}",
                    humantime::format_duration(rules.api_failure_window)
                );
                let sessions = BTreeSet::from([token.to_owned()]);
                changes.extend(self.hold(Key(Rule::ApiFailures, endpoint.clone()), now, |alert| {
                    let mut all: BTreeSet<String> = alert.session_tokens.iter().cloned().collect();
                    all.extend(sessions.iter().cloned());
                    alert.session_tokens = all.into_iter().collect();
                    let mut emails: BTreeSet<String> = alert.student_emails.iter().cloned().collect();
                    emails.extend(student.iter().cloned());
                    alert.student_emails = emails.into_iter().collect();
                    alert.endpoint = Some(endpoint.clone());
                    alert.message = message.clone();
                }));
            }
        } else if event.event_type == HELP_REQUEST {
            let message = event.message.filter(|m| !m.trim().is_empty()).unwrap_or("asked for help");
            // One alert per request, resolved by an acknowledgement only: not kept here.
            let alert = Alert {
                id: uuid::Uuid::now_v7().to_string(),
                rule: Rule::HelpRequest,
                severity: Rule::HelpRequest.severity(),
                status: AlertStatus::Open,
                session_tokens: vec![token.to_owned()],
                student_emails: students(),
                error_type: None,
                endpoint: None,
                message: message.chars().take(500).collect(),
                count: 1,
                opened_at: iso(now),
                last_seen_at: iso(now),
                resolved_at: None,
                acknowledged_at: None,
            };
            changes.push(AlertChange { kind: ChangeKind::Opened, alert });
        }
        // What this event alone can clear, at once; the rest clears on the clock (`tick`).
        let moved = self.sessions.get(token).is_some_and(|s| s.completed || s.step_since_ms == now);
        if moved {
            changes.extend(self.resolve(&Key(Rule::Stuck, token.to_owned()), now));
        }
        if event.event_type == "api_call" {
            let endpoint = event.facts.endpoint.clone().unwrap_or_else(|| "unknown".to_owned());
            let failing_now = self.endpoints.get(&endpoint).is_some_and(|w| failing(w.calls, w.failed, &self.rules));
            if !failing_now {
                changes.extend(self.resolve(&Key(Rule::ApiFailures, endpoint), now));
            }
        }
        changes
    }

    /// Resolves the open alert of `key`, if any (and not restored too recently to judge).
    fn resolve(&mut self, key: &Key, now: i64) -> Option<AlertChange> {
        if self.restored.contains(key) {
            return None;
        }
        let mut alert = self.open.remove(key)?;
        alert.status = AlertStatus::Resolved;
        alert.resolved_at = Some(iso(now));
        Some(AlertChange { kind: ChangeKind::Resolved, alert })
    }

    /// Opens the alert of `key` (or updates it if open, to be published by the next `tick`),
    /// applying `fill`; returns the opening.
    fn hold(&mut self, key: Key, now: i64, fill: impl Fn(&mut Alert)) -> Option<AlertChange> {
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
                let mut alert = Alert {
                    id: uuid::Uuid::now_v7().to_string(),
                    rule,
                    severity: rule.severity(),
                    status: AlertStatus::Open,
                    session_tokens: Vec::new(),
                    student_emails: Vec::new(),
                    error_type: None,
                    endpoint: None,
                    message: String::new(),
                    count: 1,
                    opened_at: iso(now),
                    last_seen_at: iso(now),
                    resolved_at: None,
                    acknowledged_at: None,
                };
                fill(&mut alert);
                self.open.insert(key, alert.clone());
                Some(AlertChange { kind: ChangeKind::Opened, alert })
            }
        }
    }

    /// Advances to `now`: ages windows, opens `stuck` alerts, resolves the alerts whose
    /// condition no longer holds, publishes the open alerts updated since the last tick (one
    /// change each), and forgets idle sessions without open alerts.
    pub fn tick(&mut self, now: i64) -> Vec<AlertChange> {
        let rules = self.rules.clone();
        let started = *self.started_ms.get_or_insert(now);
        let window = |rule: Rule| match rule {
            Rule::ErrorBurst => rules.error_burst_window,
            Rule::ErrorPattern => rules.error_pattern_window,
            Rule::ApiFailures => rules.api_failure_window,
            Rule::Stuck | Rule::HelpRequest => rules.active_window,
        };
        self.restored.retain(|key| now < started + ms(window(key.0)));
        let mut changes = Vec::new();
        for (token, session) in &self.sessions {
            let active = session.last_seen_ms >= now - ms(rules.active_window);
            let key = Key(Rule::Stuck, token.clone());
            // Only sessions that report steps (workshop pages) can be stuck on one.
            let stuck = active
                && session.step.is_some()
                && !session.completed
                && now - session.step_since_ms >= ms(rules.stuck_after);
            if stuck && !self.open.contains_key(&key) {
                let alert = Alert {
                    id: uuid::Uuid::now_v7().to_string(),
                    rule: Rule::Stuck,
                    severity: Rule::Stuck.severity(),
                    status: AlertStatus::Open,
                    session_tokens: vec![token.clone()],
                    student_emails: session.student.iter().cloned().collect(),
                    error_type: None,
                    endpoint: None,
                    message: format!(
                        "session {token} has been on step {} for {}",
                        session.step.map_or("–".to_owned(), |s| s.to_string()),
                        humantime::format_duration(Duration::from_secs(((now - session.step_since_ms) / 1000) as u64))
                    ),
                    count: 1,
                    opened_at: iso(now),
                    last_seen_at: iso(now),
                    resolved_at: None,
                    acknowledged_at: None,
                };
                self.open.insert(key, alert.clone());
                changes.push(AlertChange { kind: ChangeKind::Opened, alert });
            }
        }
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
                    w.values().filter(|t| **t >= cutoff).count() >= rules.error_pattern_sessions
                }),
                Rule::ApiFailures => self.endpoints.get_mut(&key.1).is_some_and(|w| {
                    w.age(now - ms(rules.api_failure_window));
                    failing(w.calls, w.failed, &rules)
                }),
                Rule::Stuck => self.sessions.get(&key.1).is_some_and(|s| {
                    s.last_seen_ms >= now - ms(rules.active_window)
                        && !s.completed
                        && now - s.step_since_ms >= ms(rules.stuck_after)
                }),
                Rule::HelpRequest => true,
            };
            if !holds {
                resolved.push(key.clone());
            }
        }
        for key in resolved {
            changes.extend(self.resolve(&key, now));
        }
        for key in std::mem::take(&mut self.updated) {
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
        let pattern_cutoff = now - ms(rules.error_pattern_window);
        for window in self.patterns.values_mut() {
            window.retain(|_, t| *t >= pattern_cutoff);
        }
        self.patterns.retain(|_, w| !w.is_empty());
        for window in self.endpoints.values_mut() {
            window.age(now - ms(rules.api_failure_window));
        }
        self.endpoints.retain(|_, w| w.calls > 0);
        changes
    }
}

/// Keeps what instructors did to a stored alert when the engine writes a newer version of it: an
/// acknowledgement stays, and a resolved alert stays resolved (an acknowledged help request, or
/// an episode that ended: a new episode is a new alert).
pub fn merge_stored(new: &mut Alert, stored: &Alert) {
    if new.acknowledged_at.is_none() {
        new.acknowledged_at.clone_from(&stored.acknowledged_at);
    }
    if stored.status == AlertStatus::Resolved {
        new.status = AlertStatus::Resolved;
        if new.resolved_at.is_none() {
            new.resolved_at.clone_from(&stored.resolved_at);
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
            Feed { engine: AlertEngine::new(AlertRules::default(), Vec::new()) }
        }

        fn event(&mut self, at: i64, token: &str, event_type: &str, facts: EventFacts) -> Vec<AlertChange> {
            let observed = Observed {
                session_token: token,
                student_email: Some("ada@example.com"),
                event_type,
                facts: &facts,
                message: Some("I am lost on step 3"),
                at_ms: at,
                completes: event_type == "workshop_completed",
            };
            self.engine.observe(&observed)
        }

        fn error(&mut self, at: i64, token: &str, error_type: &str) -> Vec<AlertChange> {
            let facts = EventFacts { error_type: Some(error_type.into()), ..EventFacts::default() };
            self.event(at, token, "error", facts)
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
        assert_eq!(updated[0].alert.count, 3);
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

    // A help request opens its own alert with the student's message each time.
    #[test]
    fn help_requests_open_one_alert_each() {
        let mut feed = Feed::new();
        let first = feed.event(T0, "ws_h", HELP_REQUEST, EventFacts::default());
        let second = feed.event(T0 + SEC, "ws_h", HELP_REQUEST, EventFacts::default());
        assert_eq!(kinds(&first, Rule::HelpRequest), [ChangeKind::Opened]);
        assert_eq!(first[0].alert.message, "I am lost on step 3");
        assert_ne!(first[0].alert.id, second[0].alert.id);
        assert!(
            feed.engine.tick(T0 + 86_400 * SEC).iter().all(|c| c.alert.rule != Rule::HelpRequest),
            "only an ack resolves it"
        );
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
            let observed = Observed {
                session_token: "ws_r",
                student_email: None,
                event_type: "error",
                facts: &facts,
                message: None,
                at_ms: T0 + i * SEC,
                completes: false,
            };
            changes.extend(engine.observe(&observed));
        }
        changes.extend(engine.tick(T0 + 6 * SEC));
        let burst_changes: Vec<&AlertChange> = changes.iter().filter(|c| c.alert.rule == Rule::ErrorBurst).collect();
        assert_eq!(burst_changes.last().unwrap().kind, ChangeKind::Updated);
        assert!(burst_changes.iter().all(|c| c.alert.id == burst.id));
    }
}
