//! The interface every alert rule implements, and what the engine shares with the rules: the
//! thresholds, the open alerts, and what it knows of each session.

use std::collections::HashMap;

use super::episodes::{Episodes, Key};
use super::model::{AlertChange, AlertRules, Observed};
use super::text::ms;

/// What the engine knows of one session, for every rule: its student, its step and since when,
/// when it was last seen, whether it completed. Times in ms since the epoch.
#[derive(Debug, Default)]
pub(super) struct SessionState {
    pub student: Option<String>,
    pub step: Option<i64>,
    pub step_since_ms: i64,
    pub last_seen_ms: i64,
    pub completed: bool,
}

impl SessionState {
    /// Whether it is active at `now`: an event within the active window, not completed.
    pub fn active(&self, now: i64, rules: &AlertRules) -> bool {
        self.last_seen_ms >= now - ms(rules.active_window) && !self.completed
    }
}

/// What a rule works with: the thresholds and the sessions (read), the open alerts (opened,
/// updated and resolved through [`Episodes`]), and the count of keys forgotten to stay bounded.
pub(super) struct Cx<'a> {
    pub rules: &'a AlertRules,
    pub sessions: &'a HashMap<String, SessionState>,
    pub episodes: &'a mut Episodes,
    pub evicted: &'a mut u64,
}

impl Cx<'_> {
    /// The student of the session `token`, when its events named one.
    pub fn student(&self, token: &str) -> Option<&String> {
        self.sessions.get(token).and_then(|s| s.student.as_ref())
    }
}

/// One alert rule: its own windows, fed every stored event and the clock. A rule opens, updates
/// and resolves only the alerts of its own [`super::model::Rule`]s, and keeps its memory bounded
/// whatever clients send.
pub(super) trait AlertRule {
    /// Takes in one event, after the engine updated its session in [`Cx::sessions`]; `left` is
    /// the step the session left and the time it spent there (ms), when this event changed its
    /// step. Returns the alerts it opened or resolved at once; updates wait for the tick.
    fn observe(&mut self, cx: &mut Cx<'_>, event: &Observed<'_>, left: Option<(i64, i64)>) -> Vec<AlertChange>;

    /// Advances to `now` (ms): judges what only the clock decides, resolves the rule's open
    /// alerts whose condition no longer holds (not those restored within their window), and
    /// ages its windows.
    fn tick(&mut self, cx: &mut Cx<'_>, now: i64) -> Vec<AlertChange>;

    /// Describes the open alert of `key` again just before its update is published at `now`
    /// (once per tick, however many events fed it). By default it stays as the events left it.
    fn describe(&mut self, _cx: &mut Cx<'_>, _key: &Key, _now: i64) {}
}
