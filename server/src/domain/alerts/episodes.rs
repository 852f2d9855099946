//! The open alerts as episodes, shared by every rule: opening one, counting and refilling it while
//! it holds, resolving it, and publishing its updates (at most once per tick, and for the rules
//! whose alerts only grow, at most every [`AlertRules::count_update_every`](super::AlertRules::count_update_every)).

use std::collections::{HashMap, HashSet};

use super::model::{Alert, AlertChange, AlertRules, AlertStatus, ChangeKind, Rule};
use super::text::{iso, ms};

/// The subject of an open alert: one per rule and session, error type, endpoint, step, address
/// (or the room, for `room_paused`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key(pub Rule, pub String);

/// Whether updates of `rule`'s alerts wait for [`AlertRules::count_update_every`](super::AlertRules::count_update_every): the rules whose
/// open alerts only grow (more errors, failed calls, requests).
fn throttled(rule: Rule) -> bool {
    matches!(rule, Rule::ErrorBurst | Rule::ErrorPattern | Rule::ApiFailures | Rule::HelpFlood)
}

/// The open alerts, by subject.
#[derive(Debug, Default)]
pub(super) struct Episodes {
    pub open: HashMap<Key, Alert>,
    /// Alerts restored open from before this engine started: their windows' history is gone, so
    /// they are not resolved until a whole window has passed since the start.
    pub restored: HashSet<Key>,
    /// Open alerts changed since the last tick.
    updated: HashSet<Key>,
    /// When each open throttled alert was last published (opened or updated), ms.
    published_ms: HashMap<Key, i64>,
}

impl Episodes {
    /// Whether the alert of `key` is open.
    pub fn is_open(&self, key: &Key) -> bool {
        self.open.contains_key(key)
    }

    /// The open alerts of `rule`'s subjects.
    pub fn keys_of(&self, rule: Rule) -> Vec<Key> {
        self.open.keys().filter(|k| k.0 == rule).cloned().collect()
    }

    /// Marks the open alert of `key` changed, to be published by the next tick.
    pub fn touch(&mut self, key: &Key) {
        self.updated.insert(key.clone());
    }

    /// Opens `alert` under `key` as it is, for a rule that is not throttled (the caller
    /// publishes the opening).
    pub fn open_as(&mut self, key: Key, alert: Alert) {
        debug_assert!(!throttled(key.0));
        self.updated.remove(&key);
        self.open.insert(key, alert);
    }

    /// Forgets the alert of `key` without a change (resolved elsewhere: an acknowledgement).
    pub fn forget(&mut self, key: &Key) {
        self.open.remove(key);
        self.updated.remove(key);
        self.published_ms.remove(key);
    }

    /// Opens the alert of `key` with `count` events, applying `fill` (or, if open, counts one
    /// more event and applies `fill`, to be published by the next tick); returns the opening.
    pub fn hold(&mut self, key: Key, now: i64, count: u64, fill: impl Fn(&mut Alert)) -> Option<AlertChange> {
        let rule = key.0;
        match self.open.get_mut(&key) {
            Some(alert) => {
                alert.count += 1;
                alert.last_seen_at = iso(now);
                fill(alert);
                // Published once per tick, however many events fed it meanwhile.
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

    /// Resolves the open alert of `key`, if any (and not restored too recently to judge).
    pub fn resolve(&mut self, key: &Key, now: i64) -> Option<AlertChange> {
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

    /// Takes the keys of the open alerts changed since the last tick that are due for
    /// publishing at `now` (the throttled ones wait until `rules.count_update_every` since their
    /// last publication), and notes them published.
    pub fn due(&mut self, now: i64, rules: &AlertRules) -> Vec<Key> {
        let every = ms(rules.count_update_every);
        let published = &self.published_ms;
        let (due, later): (HashSet<Key>, HashSet<Key>) = std::mem::take(&mut self.updated)
            .into_iter()
            .partition(|key| !throttled(key.0) || published.get(key).is_none_or(|t| now - t >= every));
        self.updated = later;
        for key in due.iter().filter(|k| throttled(k.0)) {
            self.published_ms.insert(key.clone(), now);
        }
        due.into_iter().collect()
    }
}
