//! `error_pattern`: the same `errorType` in at least [`AlertRules::error_pattern_sessions`](super::AlertRules::error_pattern_sessions)
//! sessions within [`AlertRules::error_pattern_window`](super::AlertRules::error_pattern_window). One alert per error type, listing the
//! first [`MAX_LISTED`] sessions; resolved when too few sessions remain in the window.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::episodes::Key;
use super::model::{Alert, AlertChange, Observed, Rule, MAX_KEYS, MAX_LISTED};
use super::rule::{AlertRule, Cx};
use super::text::{ms, plural};
use super::window::{age_times, evict_oldest, push_time};
use crate::domain::summary::bounded_key;

/// Per error type (at most [`MAX_KEYS`], cut to `summary::MAX_KEY_BYTES`): each session's
/// errors of that type within the window, pruned on the clock, so memory is bounded by sessions
/// × error types × `window::KEPT`.
#[derive(Debug, Default)]
pub(super) struct ErrorPattern {
    pub(super) patterns: HashMap<String, HashMap<String, VecDeque<i64>>>,
}

impl ErrorPattern {
    /// The sessions (sorted) with an error of `error_type` at or after `cutoff`, and how many
    /// such errors they had.
    fn tally(&mut self, error_type: &str, cutoff: i64) -> (Vec<String>, usize) {
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
}

/// What an `error_pattern` alert of `error_type` says with these sessions (sorted) and errors:
/// its sessions, students and message.
fn fill_pattern(cx: &Cx<'_>, error_type: &str, mut tokens: Vec<String>, errors: usize) -> impl Fn(&mut Alert) {
    let sessions = tokens.len();
    tokens.truncate(MAX_LISTED);
    let emails: Vec<String> =
        tokens.iter().filter_map(|t| cx.student(t).cloned()).collect::<BTreeSet<String>>().into_iter().collect();
    let message = format!(
        "{error_type}: {} in {} within {}",
        plural(errors, "error"),
        plural(sessions, "session"),
        humantime::format_duration(cx.rules.error_pattern_window)
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

impl AlertRule for ErrorPattern {
    fn observe(&mut self, cx: &mut Cx<'_>, event: &Observed<'_>, _left: Option<(i64, i64)>) -> Vec<AlertChange> {
        if event.event_type != "error" {
            return Vec::new();
        }
        let (now, token) = (event.at_ms, event.session_token);
        let error_type = bounded_key(event.facts.error_type.as_deref().unwrap_or("unknown")).into_owned();
        let cutoff = now - ms(cx.rules.error_pattern_window);
        if !self.patterns.contains_key(&error_type) && self.patterns.len() >= MAX_KEYS {
            let open = &cx.episodes;
            *cx.evicted += evict_oldest(&mut self.patterns, MAX_KEYS - 1, |key, w| {
                let held = open.is_open(&Key(Rule::ErrorPattern, key.to_owned()));
                (!held).then(|| w.values().filter_map(|t| t.back().copied()).max().unwrap_or(0))
            });
        }
        let times = self.patterns.entry(error_type.clone()).or_default().entry(token.to_owned()).or_default();
        age_times(times, cutoff);
        let joined = times.is_empty();
        push_time(times, now);
        let key = Key(Rule::ErrorPattern, error_type.clone());
        if joined {
            // A session joined: count the pattern's sessions and errors again.
            let (tokens, errors) = self.tally(&error_type, cutoff);
            if tokens.len() >= cx.rules.error_pattern_sessions {
                let fill = fill_pattern(cx, &error_type, tokens, errors);
                return cx.episodes.hold(key, now, errors as u64, fill).into_iter().collect();
            }
        } else if cx.episodes.is_open(&key) {
            // One more error of a session already in the pattern: counted now, described again
            // at the tick (once, however many errors came meanwhile).
            cx.episodes.hold(key, now, 0, |_| {});
        }
        Vec::new()
    }

    fn tick(&mut self, cx: &mut Cx<'_>, now: i64) -> Vec<AlertChange> {
        let cutoff = now - ms(cx.rules.error_pattern_window);
        let mut changes = Vec::new();
        for key in cx.episodes.keys_of(Rule::ErrorPattern) {
            let holds = self.patterns.get(&key.1).is_some_and(|w| {
                w.values().filter(|t| t.back().is_some_and(|last| *last >= cutoff)).count()
                    >= cx.rules.error_pattern_sessions
            });
            if !holds {
                changes.extend(cx.episodes.resolve(&key, now));
            }
        }
        for window in self.patterns.values_mut() {
            window.retain(|_, t| {
                age_times(t, cutoff);
                !t.is_empty()
            });
        }
        self.patterns.retain(|_, w| !w.is_empty());
        changes
    }

    fn describe(&mut self, cx: &mut Cx<'_>, key: &Key, now: i64) {
        let (tokens, errors) = self.tally(&key.1, now - ms(cx.rules.error_pattern_window));
        if !tokens.is_empty() {
            let fill = fill_pattern(cx, &key.1, tokens, errors);
            if let Some(alert) = cx.episodes.open.get_mut(key) {
                fill(alert);
            }
        }
    }
}
