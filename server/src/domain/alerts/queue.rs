//! The help queue: a `help_request` alert's lifecycle ([`HelpState`]: `waiting` → `claimed` by
//! a named helper → `resolved`, or `cancelled` by the student; a helper may unclaim or hand it
//! over), the order it is served in ([`fill_queue`]: first come, first served per room, each
//! waiting request with its `position`), what its student's page is told ([`StudentHelp`]) and
//! which waiting requests share a cause ([`group_of`]).
//!
//! The lifecycle is the alert's `help` object; the alert's own `status` stays `open` while the
//! request is waiting or claimed and becomes `resolved` when it is resolved or cancelled, so
//! every reader of alerts keeps working.

use serde::Serialize;

pub use super::help_state::{HelpState, HelpStatus};
use super::model::{Alert, AlertStatus, Rule};
use super::placed::Label;

/// Most characters of a helper's note kept.
pub const NOTE_CHARS: usize = 280;
/// Most characters of a helper's name kept.
pub const NAME_CHARS: usize = 80;

/// A helper's change to a help request ([`apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpChange {
    /// Claims it for `by` (a claimed request goes to the new helper: a hand-over).
    Claim {
        /// The helper's name.
        by: String,
        /// A note to the student.
        note: Option<String>,
    },
    /// Puts it back in the queue, at its first place.
    Unclaim {
        /// A note to the student.
        note: Option<String>,
    },
    /// Resolves it.
    Resolve {
        /// Who, when named.
        by: Option<String>,
        /// A note to the student.
        note: Option<String>,
    },
    /// The student withdrew it.
    Cancel,
}

/// Why a change cannot be made to an alert (the API answers 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelpRefusal {
    /// Only a `help_request` has a lifecycle.
    #[error("only a help request can be claimed, unclaimed or resolved (this alert is {0})")]
    NotAHelpRequest(&'static str),
    /// It was resolved or cancelled already.
    #[error("the help request is {0} already")]
    Closed(&'static str),
}

/// The help state of `alert` as it stands: its `help` object, or for a help request stored
/// before the lifecycle existed, `waiting` while open and `resolved` once resolved.
pub fn state_of(alert: &Alert) -> HelpState {
    alert.help.clone().unwrap_or_else(|| HelpState {
        status: if alert.status == AlertStatus::Open { HelpStatus::Waiting } else { HelpStatus::Resolved },
        updated_at: alert.last_seen_at.clone(),
        ..HelpState::default()
    })
}

/// Cuts `text` to `chars` characters, trimmed; `None` when nothing is left.
pub fn clean(text: Option<&str>, chars: usize) -> Option<String> {
    let text: String = text?.trim().chars().take(chars).collect();
    (!text.is_empty()).then_some(text)
}

/// Whether `change` can be made to `alert`. Errors: [`HelpRefusal`] for an alert that is not a
/// help request, or (for a claim, an unclaim or a resolve) one resolved or cancelled already.
pub fn check(alert: &Alert, change: &HelpChange) -> Result<(), HelpRefusal> {
    if alert.rule != Rule::HelpRequest {
        return Err(HelpRefusal::NotAHelpRequest(rule_name(alert.rule)));
    }
    match (state_of(alert).status, change) {
        (HelpStatus::Resolved, HelpChange::Resolve { .. }) | (HelpStatus::Cancelled, HelpChange::Cancel) => Ok(()),
        (HelpStatus::Resolved, _) => Err(HelpRefusal::Closed("resolved")),
        (HelpStatus::Cancelled, _) => Err(HelpRefusal::Closed("cancelled")),
        _ => Ok(()),
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::ErrorBurst => "error_burst",
        Rule::ErrorPattern => "error_pattern",
        Rule::Stuck => "stuck",
        Rule::ApiFailures => "api_failures",
        Rule::HelpRequest => "help_request",
        Rule::RoomPaused => "room_paused",
        Rule::HelpFlood => "help_flood",
    }
}

/// Makes `change` to help request `alert` at `at` (ISO 8601). Returns whether the alert
/// changed and whether it resolved (a resolve or a cancel of an open request); a change that
/// [`check`] refuses, or one that changes nothing (the same helper claiming again without a
/// note, an unclaim of a waiting request), changes nothing.
pub fn apply(alert: &mut Alert, change: HelpChange, at: &str) -> (bool, bool) {
    if check(alert, &change).is_err() {
        return (false, false);
    }
    let mut help = state_of(alert);
    let before = help.clone();
    let mut resolves = false;
    match change {
        HelpChange::Claim { by, note } => {
            if help.claimed_by.as_deref() != Some(by.as_str()) || help.status != HelpStatus::Claimed {
                help.claimed_at = Some(at.to_owned());
                help.note = None;
            }
            help.status = HelpStatus::Claimed;
            help.claimed_by = Some(by);
            if note.is_some() {
                help.note = note;
            }
        }
        HelpChange::Unclaim { note } => {
            if help.status == HelpStatus::Claimed {
                help.status = HelpStatus::Waiting;
                help.claimed_by = None;
                help.claimed_at = None;
                help.note = note;
            }
        }
        HelpChange::Resolve { by, note } => {
            if alert.status == AlertStatus::Resolved {
                return (false, false);
            }
            help.status = HelpStatus::Resolved;
            if by.is_some() {
                help.claimed_by = by;
            }
            if note.is_some() {
                help.note = note;
            }
            resolves = true;
        }
        HelpChange::Cancel => {
            if alert.status == AlertStatus::Resolved {
                return (false, false);
            }
            help.status = HelpStatus::Cancelled;
            resolves = true;
        }
    }
    if help == before && !resolves {
        return (false, false);
    }
    help.updated_at = at.to_owned();
    alert.help = Some(help);
    if resolves {
        alert.status = AlertStatus::Resolved;
        alert.resolved_at = Some(at.to_owned());
        if alert.acknowledged_at.is_none() {
            alert.acknowledged_at = Some(at.to_owned());
        }
    }
    (true, resolves)
}

/// Fills in each open help request's `help` (its lifecycle, with `position` while waiting:
/// first come, first served by `openedAt` within its room; and `group`, see [`group_of`]).
/// `alerts` must hold every open help request of the rooms it holds any of, or the positions
/// count only those given. `latest_cause` names a session's latest error type or failing
/// endpoint as `error:<type>` / `endpoint:<endpoint>` (from its evidence), when known.
pub fn fill_queue(alerts: &mut [Alert], latest_cause: &dyn Fn(&str) -> Option<String>) {
    let mut waiting: Vec<(Label, String, String, usize)> = alerts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.rule == Rule::HelpRequest && a.status == AlertStatus::Open)
        .map(|(i, a)| (Label::of(a), a.opened_at.clone(), a.id.clone(), i))
        .collect();
    waiting.sort();
    let mut position = 0;
    let mut room: Option<Label> = None;
    let mut causes: Vec<(Label, String, usize)> = Vec::new();
    for (label, _, _, i) in waiting {
        let mut help = state_of(&alerts[i]);
        if room.as_ref() != Some(&label) {
            room = Some(label.clone());
            position = 0;
        }
        if help.status == HelpStatus::Waiting {
            position += 1;
            help.position = Some(position);
            let token = alerts[i].session_tokens.first().cloned().unwrap_or_default();
            if let Some(cause) = latest_cause(&token) {
                causes.push((label.clone(), cause, i));
            }
        }
        alerts[i].help = Some(help);
    }
    for (label, cause, i) in &causes {
        if group_of(&causes, label, cause) > 1 {
            if let Some(help) = alerts[*i].help.as_mut() {
                help.group = Some(cause.clone());
            }
        }
    }
}

/// How many of the waiting requests in `causes` (room, cause, index) share `cause` in room
/// `label`: two or more are one group ("3 students: twilio_function_deploy_failed").
pub fn group_of(causes: &[(Label, String, usize)], label: &Label, cause: &str) -> usize {
    causes.iter().filter(|(l, c, _)| l == label && c == cause).count()
}

/// What a student's page is told about its latest help request (`GET
/// /api/session-log/help`): `{status, position, helper, note, updatedAt, message}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudentHelp {
    /// `waiting`, `claimed`, `resolved` or `cancelled`.
    pub status: HelpStatus,
    /// While waiting: its place in the room's queue, 1 being next.
    pub position: Option<u32>,
    /// The helper who claimed (or resolved) it.
    pub helper: Option<String>,
    /// The helper's note.
    pub note: Option<String>,
    /// When it last changed (ISO 8601 UTC with ms).
    pub updated_at: String,
    /// What the student asked.
    pub message: String,
}

impl StudentHelp {
    /// The student's view of `alert` after [`fill_queue`].
    pub fn of(alert: &Alert) -> StudentHelp {
        let help = state_of(alert);
        StudentHelp {
            status: help.status,
            position: help.position,
            helper: help.claimed_by,
            note: help.note,
            updated_at: help.updated_at,
            message: alert.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, token: &str, room: &str, opened: &str) -> Alert {
        let mut alert = Alert::opening(Rule::HelpRequest, 0);
        alert.id = id.into();
        alert.session_tokens = vec![token.into()];
        alert.room = Some(room.into());
        alert.workshop = Some("voice".into());
        alert.opened_at = opened.into();
        alert
    }

    // A request is waiting, claimed by a named helper (who can be replaced: a hand-over), put
    // back, then resolved with a note; nothing more can be claimed once it is resolved.
    #[test]
    fn a_request_goes_through_its_lifecycle() {
        let mut alert = request("a", "ws_1", "ROOM01", "2027-01-15T08:00:00.000Z");
        assert_eq!(state_of(&alert).status, HelpStatus::Waiting);
        let claim = |by: &str, note: Option<&str>| HelpChange::Claim { by: by.into(), note: note.map(Into::into) };
        assert_eq!(apply(&mut alert, claim("Alex", Some("on my way")), "t1"), (true, false));
        let help = state_of(&alert);
        assert_eq!(
            (help.status, help.claimed_by.as_deref(), help.note.as_deref()),
            (HelpStatus::Claimed, Some("Alex"), Some("on my way"))
        );
        // The same helper claiming again without a note changes nothing.
        assert_eq!(apply(&mut alert, claim("Alex", None), "t2"), (false, false));
        // Another helper takes it over; the first one's note goes with them.
        assert_eq!(apply(&mut alert, claim("Sam", None), "t3"), (true, false));
        assert_eq!((state_of(&alert).claimed_by.as_deref(), state_of(&alert).note), (Some("Sam"), None));
        assert_eq!(apply(&mut alert, HelpChange::Unclaim { note: None }, "t4"), (true, false));
        assert_eq!(state_of(&alert).status, HelpStatus::Waiting);
        let resolve = HelpChange::Resolve { by: Some("Sam".into()), note: Some("a space after your key".into()) };
        assert_eq!(apply(&mut alert, resolve.clone(), "t5"), (true, true));
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert_eq!(state_of(&alert).note.as_deref(), Some("a space after your key"));
        assert_eq!(check(&alert, &claim("Alex", None)), Err(HelpRefusal::Closed("resolved")));
        assert_eq!(apply(&mut alert, resolve, "t6"), (false, false));
    }

    // A student's cancel resolves the request as cancelled; only help requests have a lifecycle.
    #[test]
    fn a_cancel_closes_it_and_other_alerts_refuse() {
        let mut alert = request("a", "ws_1", "ROOM01", "2027-01-15T08:00:00.000Z");
        assert_eq!(apply(&mut alert, HelpChange::Cancel, "t1"), (true, true));
        assert_eq!((alert.status, state_of(&alert).status), (AlertStatus::Resolved, HelpStatus::Cancelled));
        let burst = Alert::opening(Rule::ErrorBurst, 0);
        let claim = HelpChange::Claim { by: "Alex".into(), note: None };
        assert_eq!(check(&burst, &claim), Err(HelpRefusal::NotAHelpRequest("error_burst")));
    }

    // Waiting requests are numbered first come, first served within their own room; a claimed
    // one has no position; two waiting requests with the same cause are one group.
    #[test]
    fn the_queue_is_per_room_and_first_come_first_served() {
        let mut alerts = vec![
            request("c", "ws_3", "ROOM01", "2027-01-15T08:03:00.000Z"),
            request("a", "ws_1", "ROOM01", "2027-01-15T08:01:00.000Z"),
            request("b", "ws_2", "ROOM01", "2027-01-15T08:02:00.000Z"),
            request("d", "ws_4", "ROOM02", "2027-01-15T08:00:00.000Z"),
        ];
        apply(&mut alerts[1], HelpChange::Claim { by: "Alex".into(), note: None }, "t");
        let cause = |token: &str| (token != "ws_4").then(|| "error:twilio_deploy_failed".to_owned());
        fill_queue(&mut alerts, &cause);
        let position = |i: usize| alerts[i].help.as_ref().and_then(|h| h.position);
        assert_eq!((position(1), position(2), position(0), position(3)), (None, Some(1), Some(2), Some(1)));
        let group = |i: usize| alerts[i].help.as_ref().and_then(|h| h.group.clone());
        assert_eq!(group(2).as_deref(), Some("error:twilio_deploy_failed"));
        assert_eq!(group(0), group(2));
        assert_eq!(group(3), None, "alone in its room");
        let student = StudentHelp::of(&alerts[1]);
        assert_eq!((student.status, student.helper.as_deref()), (HelpStatus::Claimed, Some("Alex")));
    }
}
