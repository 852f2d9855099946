//! What instructors do to a stored alert ([`act`]: acknowledge, mute), and how the engine's newer
//! version of an alert keeps it ([`merge_stored`]).

use super::model::{Alert, AlertStatus, ChangeKind, Rule};
use super::queue::{self, HelpChange, HelpStatus};

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
    // The lifecycle is the helpers' (and the student's): the rules only open a request.
    if stored.help.is_some() {
        new.help.clone_from(&stored.help);
    }
    if stored.status == AlertStatus::Resolved {
        // A closed help request keeps what it was asked: a later ask is a new request
        // (`help::asked_again`), not part of this one.
        if stored.rule == super::Rule::HelpRequest {
            new.message.clone_from(&stored.message);
            new.count = stored.count;
            new.last_seen_at.clone_from(&stored.last_seen_at);
        }
        new.status = AlertStatus::Resolved;
        if new.resolved_at.is_none() {
            new.resolved_at.clone_from(&stored.resolved_at);
        }
    }
}

/// What an instructor does to an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertAction {
    /// `POST /api/alerts/{id}/ack`: see [`acknowledge`].
    Acknowledge,
    /// `POST /api/alerts/{id}/mute`: acknowledges it, resolves it, and marks it muted, so its
    /// session (`help_request`) or address (`help_flood`) raises no more help alerts
    /// ([`AlertEngine::settle`](super::AlertEngine::settle)). Muting again changes nothing.
    Mute,
    /// A change to a help request's lifecycle (claim, unclaim, resolve, cancel): see
    /// [`queue::apply`].
    Help(HelpChange),
}

/// Does `action` to `alert` at `at` (ISO 8601). Returns the change to publish, or `None` when it
/// changed nothing (both actions are idempotent).
pub fn act(alert: &mut Alert, action: AlertAction, at: &str) -> Option<ChangeKind> {
    match action {
        AlertAction::Acknowledge => acknowledge(alert, at),
        AlertAction::Help(change) => match queue::apply(alert, change, at) {
            (false, _) => None,
            (true, false) => Some(ChangeKind::Updated),
            (true, true) => Some(ChangeKind::Resolved),
        },
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
        let mut help = queue::state_of(alert);
        help.status = HelpStatus::Resolved;
        help.updated_at = at.to_owned();
        alert.help = Some(help);
        alert.status = AlertStatus::Resolved;
        alert.resolved_at = Some(at.to_owned());
        return Some(ChangeKind::Resolved);
    }
    Some(ChangeKind::Updated)
}
