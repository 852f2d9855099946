//! [`AlertEngine`]: feeds each stored event and the clock to every rule, keeps what all rules
//! share (each session's student, step and activity; the open alerts; the mutes), and publishes
//! the open alerts' updates once per tick.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::api_failures::ApiFailures;
use super::episodes::{Episodes, Key};
use super::error_burst::ErrorBurst;
use super::error_pattern::ErrorPattern;
use super::help::{mute, Help};
use super::model::{Alert, AlertChange, AlertRules, AlertStatus, ChangeKind, Observed, Rule, MAX_SESSIONS};
use super::rule::{AlertRule, Cx, SessionState};
use super::stuck::{Stuck, ROOM};
use super::text::{iso, ms};
use super::window::evict_oldest;

/// The rules' state: what every rule shares (sessions, open alerts, mutes) and each rule's own
/// windows.
#[derive(Debug, Default)]
pub struct AlertEngine {
    rules: AlertRules,
    pub(super) sessions: HashMap<String, SessionState>,
    pub(super) episodes: Episodes,
    /// Alerts restored open that no rule can hold any more (an older server's per-session
    /// `stuck` alerts): resolved at the first tick.
    orphans: Vec<Alert>,
    started_ms: Option<i64>,
    /// Sessions muted by an instructor, with when (at most `help::MAX_MUTES`).
    muted_sessions: HashMap<String, i64>,
    /// Keys forgotten to stay within `MAX_KEYS` and [`MAX_SESSIONS`].
    evicted: u64,
    stuck: Stuck,
    pub(super) error_burst: ErrorBurst,
    pub(super) error_pattern: ErrorPattern,
    pub(super) api_failures: ApiFailures,
    help: Help,
}

/// The subject of an open `alert` (its session, error type, endpoint, step, address or the
/// room), or `None` when no rule holds such an alert any more.
fn subject(alert: &Alert) -> Option<String> {
    match alert.rule {
        Rule::ErrorPattern => alert.error_type.clone(),
        Rule::ApiFailures => alert.endpoint.clone(),
        Rule::Stuck => alert.step.map(|s| s.to_string()),
        Rule::RoomPaused => Some(ROOM.to_owned()),
        Rule::HelpFlood => alert.address.clone(),
        Rule::ErrorBurst | Rule::HelpRequest => alert.session_tokens.first().cloned(),
    }
}

/// The window over which `rule` judges: a restored alert of it waits this long after a start.
fn window(rules: &AlertRules, rule: Rule) -> std::time::Duration {
    match rule {
        Rule::ErrorBurst => rules.error_burst_window,
        Rule::ErrorPattern => rules.error_pattern_window,
        Rule::ApiFailures => rules.api_failure_window,
        Rule::Stuck | Rule::HelpRequest | Rule::RoomPaused | Rule::HelpFlood => rules.active_window,
    }
}

impl AlertEngine {
    /// An engine with no history, `open` being the alerts still open from before (a restart, or
    /// another server that led before): they update and resolve instead of opening again.
    pub fn new(rules: AlertRules, open: Vec<Alert>) -> AlertEngine {
        let mut engine = AlertEngine { rules, ..AlertEngine::default() };
        for alert in open.into_iter().filter(|a| a.status == AlertStatus::Open) {
            match subject(&alert) {
                // A help request waits for its acknowledgement, whenever it came.
                Some(subject) if alert.rule == Rule::HelpRequest => {
                    engine.episodes.open.insert(Key(alert.rule, subject), alert);
                }
                Some(subject) => {
                    engine.episodes.restored.insert(Key(alert.rule, subject.clone()));
                    engine.episodes.open.insert(Key(alert.rule, subject), alert);
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
    ///
    /// The rules learn of a close at their next turn: a session that asked again since (its
    /// request here was fed after `resolvedAt`) gets a new waiting request
    /// ([`help::asked_again`](super::help::asked_again)), which this returns as opened.
    pub fn settle(&mut self, alert: &Alert, now: i64) -> Option<AlertChange> {
        let key = match alert.rule {
            Rule::HelpRequest => alert.session_tokens.first().map(|t| Key(Rule::HelpRequest, t.clone())),
            Rule::HelpFlood => alert.address.clone().map(|a| Key(Rule::HelpFlood, a)),
            _ => None,
        };
        let key = key?;
        let mut reopened = None;
        if alert.status == AlertStatus::Resolved && self.episodes.open.get(&key).is_some_and(|open| open.id == alert.id)
        {
            let fresh = self.episodes.open.get(&key).and_then(|held| super::help::asked_again(held, alert));
            self.episodes.forget(&key);
            if let Some(fresh) = fresh {
                self.episodes.open.insert(key.clone(), fresh.clone());
                reopened = Some(AlertChange { kind: ChangeKind::Opened, alert: fresh });
            }
        }
        if alert.muted_at.is_some() {
            match key.0 {
                Rule::HelpRequest => mute(&mut self.muted_sessions, key.1, now),
                _ => self.help.mute(key.1, now),
            }
        }
        reopened
    }

    /// The median time (ms) the same workshop's earlier rooms spent on each step: what `stuck`
    /// judges a step by while this room has fewer than `room_min` visits of it.
    pub fn set_earlier_medians(&mut self, medians: HashMap<i64, i64>) {
        self.stuck.earlier = medians;
    }

    /// Keys forgotten so far to keep memory bounded (error types, endpoints, addresses,
    /// sessions).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The rules, in the order they see each event and each tick, with what they share.
    fn each_rule(&mut self) -> ([&mut dyn AlertRule; 5], Cx<'_>) {
        let cx = Cx {
            rules: &self.rules,
            sessions: &self.sessions,
            episodes: &mut self.episodes,
            evicted: &mut self.evicted,
        };
        ([&mut self.stuck, &mut self.error_burst, &mut self.error_pattern, &mut self.api_failures, &mut self.help], cx)
    }

    /// Feeds one stored event; returns the alerts it opened or resolved (updates are published by
    /// the next [`AlertEngine::tick`](super::AlertEngine::tick), once per alert).
    pub fn observe(&mut self, event: &Observed<'_>) -> Vec<AlertChange> {
        let now = event.at_ms;
        self.started_ms.get_or_insert(now);
        let token = event.session_token;
        if self.muted_sessions.contains_key(token) {
            return Vec::new();
        }
        if !self.sessions.contains_key(token) && self.sessions.len() >= MAX_SESSIONS {
            // Sessions of open alerts go last, but they can go: an alert may list any number.
            let held: HashSet<String> =
                self.episodes.open.values().flat_map(|a| a.session_tokens.iter().cloned()).collect();
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
        let mut left = None;
        if let Some(step) = event.facts.step.filter(|s| session.step != Some(*s)) {
            left = session.step.map(|old| (old, now - session.step_since_ms));
            session.step = Some(step);
            session.step_since_ms = now;
        }
        let (rules, mut cx) = self.each_rule();
        rules.into_iter().flat_map(|rule| rule.observe(&mut cx, event, left)).collect()
    }

    /// Advances to `now`: each rule judges, resolves and ages ([`AlertRule::tick`]); then the open
    /// alerts updated since the last tick are published (one change each), and idle sessions
    /// without open alerts are forgotten.
    pub fn tick(&mut self, now: i64) -> Vec<AlertChange> {
        let started = *self.started_ms.get_or_insert(now);
        let rules = &self.rules;
        self.episodes.restored.retain(|key| now < started + ms(window(rules, key.0)));
        let mut changes: Vec<AlertChange> = std::mem::take(&mut self.orphans)
            .into_iter()
            .map(|mut alert| {
                alert.status = AlertStatus::Resolved;
                alert.resolved_at = Some(iso(now));
                AlertChange { kind: ChangeKind::Resolved, alert }
            })
            .collect();
        let (each, mut cx) = self.each_rule();
        for rule in each {
            changes.extend(rule.tick(&mut cx, now));
        }
        for key in self.episodes.due(now, &self.rules) {
            let mut cx = Cx {
                rules: &self.rules,
                sessions: &self.sessions,
                episodes: &mut self.episodes,
                evicted: &mut self.evicted,
            };
            let rule: &mut dyn AlertRule = match key.0 {
                Rule::ErrorPattern => &mut self.error_pattern,
                Rule::ErrorBurst => &mut self.error_burst,
                Rule::ApiFailures => &mut self.api_failures,
                Rule::Stuck | Rule::RoomPaused => &mut self.stuck,
                Rule::HelpRequest | Rule::HelpFlood => &mut self.help,
            };
            rule.describe(&mut cx, &key, now);
            if let Some(alert) = self.episodes.open.get(&key) {
                changes.push(AlertChange { kind: ChangeKind::Updated, alert: alert.clone() });
            }
        }
        let rules = &self.rules;
        let keep = ms(rules.active_window.max(rules.error_pattern_window).max(rules.api_failure_window));
        let open_sessions: BTreeSet<&String> =
            self.episodes.open.values().flat_map(|a| a.session_tokens.iter()).collect();
        self.sessions.retain(|token, s| s.last_seen_ms >= now - keep || open_sessions.contains(token));
        changes
    }
}
