//! `help_request` and `help_flood`. A `help_request` event (the client's `requestHelp(message)`)
//! opens one alert per session (a new request updates it), resolved by an acknowledgement (a
//! session that asks again after its request was closed gets a new one: [`asked_again`]). More
//! than [`HELP_FLOOD_COUNT`] requests within [`HELP_FLOOD_WINDOW`] from one client address (a
//! script, not a room: a room behind one address asks far slower) become one flagged
//! `help_flood` alert instead of one pinned request each; the requests that address opened
//! within the window fold into it, and it resolves when the address has been quiet for the
//! active window. A muted address raises neither.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::episodes::Key;
use super::help_state::HelpState;
use super::model::{Alert, AlertChange, AlertStatus, Observed, Rule, HELP_FLOOD_COUNT, HELP_FLOOD_WINDOW, MAX_KEYS};
use super::rule::{AlertRule, Cx};
use super::text::{iso_ms_of, ms, plural};
use super::window::{age_times, evict_oldest};
use crate::domain::event::HELP_REQUEST;

/// Most characters of a help request's message kept.
const MESSAGE_CHARS: usize = 500;
/// Most sessions a `help_flood` alert lists (its `sessions` counts them all).
pub(super) const FLOOD_TOKENS_LISTED: usize = 20;
/// Most muted addresses kept (the oldest mute goes first).
pub(super) const MAX_MUTES: usize = 10_000;

/// Per client address (at most [`MAX_KEYS`]): its help requests' times within
/// [`HELP_FLOOD_WINDOW`] (at most [`HELP_FLOOD_COUNT`] + 1), and its latest; and the addresses
/// muted by an instructor, with when.
#[derive(Debug, Default)]
pub(super) struct Help {
    from: HashMap<String, (VecDeque<i64>, i64)>,
    muted_addresses: HashMap<String, i64>,
}

impl Help {
    /// Silences `address` from `now` on (an instructor muted its flood).
    pub(super) fn mute(&mut self, address: String, now: i64) {
        mute(&mut self.muted_addresses, address, now);
    }

    /// A help request of `token` from `address` at `now`: folded into its address's flood, or
    /// its session's open request updated, or a new request opened.
    fn request(
        &mut self,
        cx: &mut Cx<'_>,
        token: &str,
        message: String,
        address: Option<&str>,
        now: i64,
    ) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        if address.is_some_and(|a| self.muted_addresses.contains_key(a)) {
            return changes;
        }
        let students: Vec<String> = cx.student(token).into_iter().cloned().collect();
        let flood_cutoff = now - ms(HELP_FLOOD_WINDOW);
        if let Some(address) = address {
            if !self.from.contains_key(address) && self.from.len() >= MAX_KEYS {
                let open = &cx.episodes;
                *cx.evicted += evict_oldest(&mut self.from, MAX_KEYS - 1, |key, (_, last)| {
                    (!open.is_open(&Key(Rule::HelpFlood, key.to_owned()))).then_some(*last)
                });
            }
            let (times, last) = self.from.entry(address.to_owned()).or_default();
            times.push_back(now);
            age_times(times, flood_cutoff);
            while times.len() > HELP_FLOOD_COUNT + 1 {
                times.pop_front();
            }
            *last = now;
            let flooding = times.len() > HELP_FLOOD_COUNT;
            let key = Key(Rule::HelpFlood, address.to_owned());
            if flooding || cx.episodes.is_open(&key) {
                changes.extend(fold_into_flood(cx, key, token, address, now));
                return changes;
            }
        }
        let key = Key(Rule::HelpRequest, token.to_owned());
        let address = address.map(str::to_owned);
        changes.extend(cx.episodes.hold(key, now, 1, |alert| {
            alert.session_tokens = vec![token.to_owned()];
            alert.student_emails.clone_from(&students);
            alert.message.clone_from(&message);
            alert.address.clone_from(&address);
            if alert.help.is_none() {
                alert.help = Some(HelpState { updated_at: alert.last_seen_at.clone(), ..HelpState::default() });
            }
        }));
        changes
    }
}

/// Counts one more request of `token` in the flood of `address` (opening it), folding into it
/// the requests that address opened within the window.
fn fold_into_flood(cx: &mut Cx<'_>, key: Key, token: &str, address: &str, now: i64) -> Vec<AlertChange> {
    let mut changes = Vec::new();
    let flood_cutoff = now - ms(HELP_FLOOD_WINDOW);
    let folded: Vec<Key> = cx
        .episodes
        .open
        .iter()
        .filter(|(k, a)| {
            k.0 == Rule::HelpRequest && a.address.as_deref() == Some(address) && iso_ms_of(&a.opened_at) >= flood_cutoff
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut folded_tokens: Vec<String> = Vec::new();
    for k in folded {
        folded_tokens.push(k.1.clone());
        // What a flood wrote is not shown again, not even in the resolved list.
        if let Some(alert) = cx.episodes.open.get_mut(&k) {
            alert.message = format!("folded into the help flood from {address}");
        }
        changes.extend(cx.episodes.resolve(&k, now));
    }
    let count = folded_tokens.len() as u64 + 1;
    changes.extend(cx.episodes.hold(key, now, count, |alert| {
        alert.address = Some(address.to_owned());
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
    changes
}

/// Notes `subject` muted at `now` in `muted`, forgetting the oldest mute past [`MAX_MUTES`].
pub(super) fn mute(muted: &mut HashMap<String, i64>, subject: String, now: i64) {
    muted.insert(subject, now);
    if muted.len() > MAX_MUTES {
        let oldest = muted.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            muted.remove(&oldest);
        }
    }
}

impl AlertRule for Help {
    fn observe(&mut self, cx: &mut Cx<'_>, event: &Observed<'_>, _left: Option<(i64, i64)>) -> Vec<AlertChange> {
        if event.event_type != HELP_REQUEST {
            return Vec::new();
        }
        let message: String = event
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or("asked for help")
            .chars()
            .take(MESSAGE_CHARS)
            .collect();
        self.request(cx, event.session_token, message, event.address, event.at_ms)
    }

    /// Resolves the floods whose address has been quiet for the active window (help requests
    /// wait for an acknowledgement), and forgets quiet addresses.
    fn tick(&mut self, cx: &mut Cx<'_>, now: i64) -> Vec<AlertChange> {
        let quiet = now - ms(cx.rules.active_window);
        let mut changes = Vec::new();
        for key in cx.episodes.keys_of(Rule::HelpFlood) {
            if self.from.get(&key.1).is_none_or(|(_, last)| *last < quiet) {
                changes.extend(cx.episodes.resolve(&key, now));
            }
        }
        self.from.retain(|_, (_, last)| *last >= quiet);
        changes
    }
}

/// The new request of a session that asked again after its request was closed (resolved or
/// cancelled, not muted), before the alert rules learnt of the close (they do at their next
/// turn, about a second later; see `AlertEngine::settle`): `held` is the request the rules
/// still hold open (fed at its `lastSeenAt`), `stored` the closed one. The new request is
/// waiting (opened at the new ask, counted once, no helper or note) and has an id derived from
/// the closed one's. `None` when the session did not ask after the close, or for another rule.
pub fn asked_again(held: &Alert, stored: &Alert) -> Option<Alert> {
    let closed_at = stored.resolved_at.as_deref()?;
    let asked_after = held.last_seen_at.as_str() > closed_at;
    if held.rule != Rule::HelpRequest
        || stored.status != AlertStatus::Resolved
        || stored.muted_at.is_some()
        || held.status != AlertStatus::Open
        || !asked_after
    {
        return None;
    }
    let mut fresh = held.clone();
    fresh.id = derived_id(&stored.id);
    fresh.opened_at.clone_from(&held.last_seen_at);
    fresh.count = 1;
    fresh.resolved_at = None;
    fresh.acknowledged_at = None;
    fresh.help = Some(HelpState { updated_at: held.last_seen_at.clone(), ..HelpState::default() });
    fresh.evidence = None;
    Some(fresh)
}

/// The id of the request that follows closed request `id` ([`asked_again`]): its UUID's bytes
/// masked (any text for an id that is not a UUID).
fn derived_id(id: &str) -> String {
    match uuid::Uuid::parse_str(id) {
        Ok(uuid) => {
            let mut bytes = *uuid.as_bytes();
            for (byte, mask) in bytes.iter_mut().zip(b"session-log:aska") {
                *byte ^= mask;
            }
            uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
        }
        Err(_) => format!("{id}-again"),
    }
}
