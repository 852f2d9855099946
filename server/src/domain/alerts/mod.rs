//! Alerts: what needs an instructor now, as episodes. An alert opens once when its rule's
//! condition starts to hold, is updated (count, last seen, the sessions involved) while it holds,
//! and resolves when it clears; a help request resolves when it is acknowledged.
//!
//! The rules, one file each behind one interface ([`rule`]), thresholds in [`AlertRules`]:
//! - `error_burst` ([`error_burst`]): at least 3 errors within 2 minutes in one session;
//! - `error_pattern` ([`error_pattern`]): the same `errorType` in at least 3 sessions within 10
//!   minutes;
//! - `stuck` and `room_paused` ([`stuck`]): active sessions that have stayed on their step longer
//!   than usual, one alert per step, judged against the room's median time there; or, when half
//!   the room would be stuck at once, one `room_paused` notice (severity `info`) instead;
//! - `api_failures` ([`api_failures`]): an endpoint whose calls failed at least 50% of the time
//!   over at least 5 calls within 5 minutes;
//! - `help_request` and `help_flood` ([`help`]): a student's `requestHelp(message)`, at most one
//!   open per session, resolved by an acknowledgement; more than [`HELP_FLOOD_COUNT`] within
//!   [`HELP_FLOOD_WINDOW`] from one address become one flagged `help_flood` instead.
//!
//! A help request has a lifecycle ([`queue`]): `waiting` in its room's queue (first come, first
//! served), `claimed` by a named helper, then `resolved`, or `cancelled` by the student; the
//! student's page reads it as [`StudentHelp`]. Its evidence ([`evidence`]) is what the session
//! was doing: its step against the room's median, its latest errors and failed calls.
//!
//! An instructor can mute a help request (its session) or a flood (its address): their help
//! requests and, for a session, all its events then raise nothing ([`AlertEngine::settle`](AlertEngine::settle)).
//!
//! Memory is bounded whatever clients send: at most [`MAX_KEYS`] error types, endpoints and
//! addresses and [`MAX_SESSIONS`] sessions are tracked (the least recently seen go first,
//! counted in [`AlertEngine::evicted`](AlertEngine::evicted)), and keys are cut to `summary::MAX_KEY_BYTES`.
//!
//! `count` is the number of events in the episode (errors, failed calls; for `stuck` and
//! `room_paused` the sessions), `sessions` the number of sessions in it, and messages state the
//! real numbers within the window.
//!
//! The rules run per place (a workshop's room, or its lobby): [`PlacedEngines`] ([`placed`])
//! keeps one engine per place and stamps each change with its workshop and room.
//!
//! [`AlertEngine`] ([`engine`]) is pure: it is fed events ([`Observed`]) and the time
//! ([`AlertEngine::tick`](AlertEngine::tick)), and returns the changes ([`AlertChange`]); the background task
//! persists and publishes them. [`rank`] is the order instructors read open alerts in. Times are
//! milliseconds since the Unix epoch.

mod actions;
mod api_failures;
mod engine;
mod episodes;
mod error_burst;
mod error_pattern;
mod evidence;
mod help;
mod help_state;
mod model;
mod placed;
mod queue;
mod rule;
mod stuck;
mod text;
mod window;

pub use actions::{acknowledge, act, merge_stored, AlertAction};
pub use engine::AlertEngine;
pub use evidence::{Evidence, EvidenceEvent, EVIDENCE_EVENTS, EVIDENCE_WINDOW};
pub use help::asked_again;
pub use model::{
    rank, Alert, AlertChange, AlertRules, AlertStatus, ChangeKind, Observed, Place, Rule, Severity, COUNT_UPDATE_EVERY,
    HELP_FLOOD_COUNT, HELP_FLOOD_WINDOW, MAX_KEYS, MAX_LISTED, MAX_SESSIONS,
};
pub use placed::{Label, PlacedEngines, DEFAULT_WORKSHOP};
pub use queue::{
    apply as apply_help, check as check_help, clean, fill_queue, state_of as help_state, HelpChange, HelpRefusal,
    HelpState, HelpStatus, StudentHelp, NAME_CHARS, NOTE_CHARS,
};
pub use text::iso;

#[cfg(test)]
mod tests;
