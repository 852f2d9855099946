//! `error_burst`: at least [`AlertRules::error_burst_count`](super::AlertRules::error_burst_count) errors within
//! [`AlertRules::error_burst_window`](super::AlertRules::error_burst_window) in one session. One alert per session, resolved when the
//! errors age out of the window.

use std::collections::{HashMap, VecDeque};

use super::episodes::Key;
use super::model::{AlertChange, AlertRules, Observed, Rule, MAX_SESSIONS};
use super::rule::{AlertRule, Cx};
use super::text::{ms, plural};
use super::window::{age_times, evict_oldest, push_time};
use crate::domain::summary::bounded_key;

/// Per session: its errors' times within the window (at most `window::KEPT`), oldest first.
#[derive(Debug, Default)]
pub(super) struct ErrorBurst {
    pub(super) errors: HashMap<String, VecDeque<i64>>,
}

impl ErrorBurst {
    /// Whether `times` hold a burst at `now`.
    fn holds(times: &VecDeque<i64>, now: i64, rules: &AlertRules) -> bool {
        times.iter().filter(|t| **t >= now - ms(rules.error_burst_window)).count() >= rules.error_burst_count
    }
}

impl AlertRule for ErrorBurst {
    fn observe(&mut self, cx: &mut Cx<'_>, event: &Observed<'_>, _left: Option<(i64, i64)>) -> Vec<AlertChange> {
        if event.event_type != "error" {
            return Vec::new();
        }
        let (now, token, rules) = (event.at_ms, event.session_token, cx.rules);
        if !self.errors.contains_key(token) && self.errors.len() >= MAX_SESSIONS {
            let open = &cx.episodes;
            *cx.evicted += evict_oldest(&mut self.errors, MAX_SESSIONS - 1, |token, times| {
                let held = open.is_open(&Key(Rule::ErrorBurst, token.to_owned()));
                (!held).then(|| times.back().copied().unwrap_or(0))
            });
        }
        let errors = self.errors.entry(token.to_owned()).or_default();
        push_time(errors, now);
        age_times(errors, now - ms(rules.error_burst_window));
        let in_window = errors.len();
        if in_window < rules.error_burst_count {
            return Vec::new();
        }
        let error_type = bounded_key(event.facts.error_type.as_deref().unwrap_or("unknown")).into_owned();
        let message = format!(
            "{} within {} in session {token}",
            plural(in_window, "error"),
            humantime::format_duration(rules.error_burst_window)
        );
        let students: Vec<String> = cx.student(token).into_iter().cloned().collect();
        let key = Key(Rule::ErrorBurst, token.to_owned());
        let opened = cx.episodes.hold(key, now, in_window as u64, |alert| {
            alert.session_tokens = vec![token.to_owned()];
            alert.student_emails.clone_from(&students);
            alert.error_type = Some(error_type.clone());
            alert.message.clone_from(&message);
            alert.sessions = 1;
        });
        opened.into_iter().collect()
    }

    fn tick(&mut self, cx: &mut Cx<'_>, now: i64) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        for key in cx.episodes.keys_of(Rule::ErrorBurst) {
            if !self.errors.get(&key.1).is_some_and(|t| Self::holds(t, now, cx.rules)) {
                changes.extend(cx.episodes.resolve(&key, now));
            }
        }
        let cutoff = now - ms(cx.rules.error_burst_window);
        self.errors.retain(|_, times| {
            age_times(times, cutoff);
            !times.is_empty()
        });
        changes
    }
}
