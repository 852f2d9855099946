//! `stuck` and `room_paused`, judged together on the clock. A session is stuck on a step when it
//! has been there longer than both [`AlertRules::stuck_after`](super::AlertRules::stuck_after) and [`AlertRules::stuck_factor`](super::AlertRules::stuck_factor)
//! × the room's median time on that step (the visits that ended within
//! [`AlertRules::room_window`](super::AlertRules::room_window), when at least [`AlertRules::room_min`](super::AlertRules::room_min) did; with fewer,
//! `stuck_after` alone). One `stuck` alert per step lists every such active session; a session
//! that moves on or completes leaves it at once, and it resolves when empty. When at least half
//! of the active sessions, and at least `room_min`, would be stuck at once, the room is listening
//! to the instructor: no `stuck` alert opens and no session joins one, and one `room_paused`
//! notice is open instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::episodes::Key;
use super::model::{Alert, AlertChange, AlertRules, ChangeKind, Observed, Rule};
use super::rule::{AlertRule, Cx};
use super::text::{human, iso, ms, plural};
use super::window::KEPT;

/// At most this many steps' visit histories are kept (steps are numbers pages choose).
const STEPS_KEPT: usize = 1000;

/// The subject of the one `room_paused` notice.
pub(super) const ROOM: &str = "room";

/// One step as the room went through it: the visits that ended, `(left at, time spent)` in ms,
/// oldest first (at most `window::KEPT`, within the room window), and its name when an event gave
/// one.
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

/// Per step (at most [`STEPS_KEPT`]): how long the room stayed there; and how long the same
/// workshop's earlier rooms did (medians, ms), for the steps this room has too few visits of.
#[derive(Debug, Default)]
pub(super) struct Stuck {
    steps: HashMap<i64, StepHistory>,
    pub(super) earlier: HashMap<i64, i64>,
}

/// The time a step usually takes, and whether it comes from earlier rooms (not this one).
type Typical = Option<(i64, bool)>;

impl Stuck {
    /// The history of `step`, made when there is room for another step.
    fn history(&mut self, step: i64) -> Option<&mut StepHistory> {
        if self.steps.len() >= STEPS_KEPT && !self.steps.contains_key(&step) {
            return None;
        }
        Some(self.steps.entry(step).or_default())
    }

    /// Takes `token` out of the `stuck` group of `step`: the group is updated, or resolved when
    /// it empties (even if restored recently: it emptied for a fact, not a window).
    fn leave(&mut self, cx: &mut Cx<'_>, step: i64, token: &str, now: i64) -> Option<AlertChange> {
        let key = Key(Rule::Stuck, step.to_string());
        let alert = cx.episodes.open.get(&key)?;
        if !alert.session_tokens.iter().any(|t| t == token) {
            return None;
        }
        let remaining: Vec<String> = alert.session_tokens.iter().filter(|t| *t != token).cloned().collect();
        if remaining.is_empty() {
            cx.episodes.restored.remove(&key);
            return cx.episodes.resolve(&key, now);
        }
        self.regroup(cx, &key, remaining, None, now);
        None
    }

    /// Sets the sessions of the open `stuck` alert `key` (and its typical time, when given),
    /// rewriting its count, emails and message; marks it updated when anything changed.
    fn regroup(&self, cx: &mut Cx<'_>, key: &Key, tokens: Vec<String>, typical: Option<Typical>, now: i64) {
        let name = key.1.parse::<i64>().ok().and_then(|s| self.steps.get(&s)).and_then(|h| h.name.clone());
        let emails: BTreeSet<String> = tokens.iter().filter_map(|t| cx.student(t).cloned()).collect();
        let Some(alert) = cx.episodes.open.get_mut(key) else { return };
        if fill_group(alert, tokens, emails, name, typical, now, cx.rules) {
            cx.episodes.touch(key);
        }
    }
}

/// Fills a `stuck` group with `tokens` (sorted), their students, the step's name (when known)
/// and typical time (when given); returns whether anything changed.
fn fill_group(
    alert: &mut Alert,
    tokens: Vec<String>,
    emails: BTreeSet<String>,
    name: Option<String>,
    typical: Option<Typical>,
    now: i64,
    rules: &AlertRules,
) -> bool {
    let (typical, earlier) = match typical {
        Some(typical) => (typical.map(|t| t.0), typical.is_some_and(|t| t.1)),
        None => (alert.typical_ms, alert.typical_from_earlier_runs),
    };
    if alert.session_tokens == tokens
        && alert.typical_ms == typical
        && alert.typical_from_earlier_runs == earlier
        && (name.is_none() || alert.step_name == name)
    {
        return false;
    }
    alert.typical_from_earlier_runs = earlier;
    alert.session_tokens = tokens;
    alert.student_emails = emails.into_iter().collect();
    if name.is_some() {
        alert.step_name = name;
    }
    alert.typical_ms = typical;
    alert.count = alert.session_tokens.len() as u64;
    alert.sessions = alert.count;
    alert.last_seen_at = iso(now);
    alert.message = stuck_message(alert, rules);
    true
}

/// The one line of a `stuck` group: `4 students stuck on step 2 · Provision Services (the room
/// takes 3m 10s there)`, `… (usually 3m 10s here in earlier runs)` when earlier rooms told, or
/// `… for over 10m` when neither has.
fn stuck_message(alert: &Alert, rules: &AlertRules) -> String {
    let students = plural(alert.session_tokens.len(), "student");
    let step = alert.step.map_or("–".to_owned(), |s| s.to_string());
    let name = alert.step_name.as_ref().map_or(String::new(), |n| format!(" · {n}"));
    match alert.typical_ms {
        Some(typical) if alert.typical_from_earlier_runs => {
            format!("{students} stuck on step {step}{name} (usually {} here in earlier runs)", human(typical))
        }
        Some(typical) => format!("{students} stuck on step {step}{name} (the room takes {} there)", human(typical)),
        None => format!("{students} stuck on step {step}{name} for over {}", human(ms(rules.stuck_after))),
    }
}

impl AlertRule for Stuck {
    fn observe(&mut self, cx: &mut Cx<'_>, event: &Observed<'_>, left: Option<(i64, i64)>) -> Vec<AlertChange> {
        let (now, token) = (event.at_ms, event.session_token);
        let mut changes = Vec::new();
        if let Some(step) = event.facts.step {
            if let Some(history) = self.history(step) {
                if let Some(name) = event.facts.step_name.as_ref().filter(|n| history.name.as_ref() != Some(*n)) {
                    history.name = Some(name.clone());
                }
            }
        }
        if let Some((old, spent)) = left {
            if let Some(history) = self.history(old) {
                history.visits.push_back((now, spent));
                if history.visits.len() > KEPT {
                    history.visits.pop_front();
                }
            }
            // A session that moves on leaves its step's group at once.
            changes.extend(self.leave(cx, old, token, now));
        }
        let session = cx.sessions.get(token);
        if let Some(step) = session.filter(|s| s.completed).and_then(|s| s.step) {
            changes.extend(self.leave(cx, step, token, now));
        }
        changes
    }

    /// Which active sessions are stuck on which step, judged against the room; one group per
    /// step, or the `room_paused` notice when half the room would be stuck.
    fn tick(&mut self, cx: &mut Cx<'_>, now: i64) -> Vec<AlertChange> {
        let rules = cx.rules;
        let room_cutoff = now - ms(rules.room_window);
        let mut typical: HashMap<i64, Typical> = HashMap::new();
        let mut groups: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut active = 0usize;
        for (token, session) in cx.sessions {
            let Some(step) = session.step.filter(|_| session.active(now, rules)) else { continue };
            active += 1;
            let median = *typical.entry(step).or_insert_with(|| {
                let own = self.steps.get_mut(&step).and_then(|h| h.median(room_cutoff, rules.room_min));
                own.map(|m| (m, false)).or_else(|| self.earlier.get(&step).map(|m| (*m, true)))
            });
            let limit = median.map_or(ms(rules.stuck_after), |(m, _)| {
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
                "room paused: {stuck} of {active} active students are on their step longer than usual; no stuck alerts meanwhile"
            );
            match cx.episodes.open.get_mut(&room) {
                Some(notice) if notice.count != stuck as u64 || notice.sessions != active as u64 => {
                    notice.count = stuck as u64;
                    notice.sessions = active as u64;
                    notice.message = message;
                    notice.last_seen_at = iso(now);
                    cx.episodes.touch(&room);
                }
                Some(_) => {}
                None => {
                    let mut notice = Alert::opening(Rule::RoomPaused, now);
                    notice.count = stuck as u64;
                    notice.sessions = active as u64;
                    notice.message = message;
                    cx.episodes.open_as(room, notice.clone());
                    changes.push(AlertChange { kind: ChangeKind::Opened, alert: notice });
                }
            }
        } else {
            changes.extend(cx.episodes.resolve(&room, now));
        }
        // Open groups: sessions leave when no longer stuck there; they join unless the room is
        // paused; a group that empties resolves.
        for key in cx.episodes.keys_of(Rule::Stuck) {
            let step = key.1.parse::<i64>().ok();
            let now_stuck = step.and_then(|s| groups.remove(&s)).unwrap_or_default();
            let before = &cx.episodes.open[&key].session_tokens;
            let mut tokens: Vec<String> =
                if paused { now_stuck.into_iter().filter(|t| before.contains(t)).collect() } else { now_stuck };
            tokens.sort();
            if tokens.is_empty() {
                changes.extend(cx.episodes.resolve(&key, now));
            } else {
                let median = step.and_then(|s| typical.get(&s).copied().flatten());
                self.regroup(cx, &key, tokens, Some(median), now);
            }
        }
        if !paused {
            for (step, mut tokens) in groups {
                tokens.sort();
                let name = self.steps.get(&step).and_then(|h| h.name.clone());
                let emails: BTreeSet<String> = tokens.iter().filter_map(|t| cx.student(t).cloned()).collect();
                let mut alert = Alert::opening(Rule::Stuck, now);
                alert.step = Some(step);
                fill_group(&mut alert, tokens, emails, name, Some(typical.get(&step).copied().flatten()), now, rules);
                cx.episodes.open_as(Key(Rule::Stuck, step.to_string()), alert.clone());
                changes.push(AlertChange { kind: ChangeKind::Opened, alert });
            }
        }
        self.steps.retain(|_, h| {
            while h.visits.front().is_some_and(|v| v.0 < room_cutoff) {
                h.visits.pop_front();
            }
            !h.visits.is_empty() || h.name.is_some()
        });
        changes
    }
}
