//! `api_failures`: an endpoint whose calls failed at least [`AlertRules::api_failure_rate`](super::AlertRules::api_failure_rate) of
//! the time over at least [`AlertRules::api_failure_min_calls`](super::AlertRules::api_failure_min_calls) calls within
//! [`AlertRules::api_failure_window`](super::AlertRules::api_failure_window). One alert per endpoint, listing the first [`MAX_LISTED`]
//! failing sessions; resolved when the rate drops below the threshold.

use std::collections::{HashMap, VecDeque};

use super::episodes::Key;
use super::model::{AlertChange, AlertRules, Observed, Rule, MAX_KEYS, MAX_LISTED, MAX_SESSIONS};
use super::rule::{AlertRule, Cx};
use super::text::{ms, plural};
use super::window::evict_oldest;
use crate::domain::summary::bounded_key;

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

    /// Whether its calls cross the threshold.
    fn failing(&self, rules: &AlertRules) -> bool {
        self.calls >= rules.api_failure_min_calls && self.failed as f64 >= rules.api_failure_rate * self.calls as f64
    }
}

/// Per endpoint (at most [`MAX_KEYS`], cut to `summary::MAX_KEY_BYTES`): its calls within the
/// window.
#[derive(Debug, Default)]
pub(super) struct ApiFailures {
    endpoints: HashMap<String, CallWindow>,
}

impl ApiFailures {
    /// The endpoints tracked.
    #[cfg(test)]
    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.endpoints.keys()
    }
}

impl AlertRule for ApiFailures {
    fn observe(&mut self, cx: &mut Cx<'_>, event: &Observed<'_>, _left: Option<(i64, i64)>) -> Vec<AlertChange> {
        if event.event_type != "api_call" {
            return Vec::new();
        }
        let (now, token, rules) = (event.at_ms, event.session_token, cx.rules);
        let endpoint = bounded_key(event.facts.endpoint.as_deref().unwrap_or("unknown")).into_owned();
        if !self.endpoints.contains_key(&endpoint) && self.endpoints.len() >= MAX_KEYS {
            let open = &cx.episodes;
            *cx.evicted += evict_oldest(&mut self.endpoints, MAX_KEYS - 1, |key, w| {
                let held = open.is_open(&Key(Rule::ApiFailures, key.to_owned()));
                (!held).then(|| w.seconds.back().map_or(0, |s| s.0 * 1000))
            });
        }
        let window = self.endpoints.entry(endpoint.clone()).or_default();
        window.add(now, event.facts.api_failed);
        if event.facts.api_failed {
            *cx.evicted += window.failing_session(token, now);
        }
        window.age(now - ms(rules.api_failure_window));
        let (calls, failed, failing_sessions) = (window.calls, window.failed, window.failing_sessions.len());
        let key = Key(Rule::ApiFailures, endpoint.clone());
        let open = cx.episodes.is_open(&key);
        if !window.failing(rules) {
            // What this call alone can clear, at once; the rest clears on the clock (`tick`).
            return cx.episodes.resolve(&key, now).into_iter().collect();
        }
        // Opens on any call that tips the rate; while open, failed calls update it.
        if open && !event.facts.api_failed {
            return Vec::new();
        }
        // At the opening, the sessions that failed so far are listed (the first by token).
        let first_listed: Vec<String> = if open {
            Vec::new()
        } else {
            let mut tokens: Vec<String> = window.failing_sessions.keys().cloned().collect();
            tokens.sort_unstable();
            tokens.truncate(MAX_LISTED);
            tokens
        };
        let message = format!(
            "{endpoint}: {failed} of {} failed within {}",
            plural(calls, "call"),
            humantime::format_duration(rules.api_failure_window)
        );
        let student = cx.student(token).cloned();
        let opened = cx.episodes.hold(key, now, failed as u64, |alert| {
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
        });
        opened.into_iter().collect()
    }

    fn tick(&mut self, cx: &mut Cx<'_>, now: i64) -> Vec<AlertChange> {
        let cutoff = now - ms(cx.rules.api_failure_window);
        for window in self.endpoints.values_mut() {
            window.age(cutoff);
        }
        let mut changes = Vec::new();
        for key in cx.episodes.keys_of(Rule::ApiFailures) {
            if !self.endpoints.get(&key.1).is_some_and(|w| w.failing(cx.rules)) {
                changes.extend(cx.episodes.resolve(&key, now));
            }
        }
        self.endpoints.retain(|_, w| w.calls > 0);
        changes
    }
}
