//! The alert tables' rows, the same on both backends: `alerts` (one row per alert: `alert_id`,
//! `status` as [`status_text`], `opened_at`, the alert's JSON as last written, its `workshop`
//! slug and `room` code, written when it opens, and a help request's `session_token`) and
//! `alert_changes` (a position, `alert_id`, the change's JSON). The backends only run the SQL;
//! what a row holds and how a change meets the stored alert is decided here.

use super::CorruptRow;
use crate::domain::alerts::{self, Alert, AlertAction, AlertChange, AlertStatus, ChangeKind};

/// The `status` column of an alert: `"open"` or `"resolved"` (the `status=` filter of
/// `GET /api/alerts` compares with it).
pub fn status_text(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Open => "open",
        AlertStatus::Resolved => "resolved",
    }
}

/// An alert from its stored JSON. Errors: [`CorruptRow`].
pub fn parse_alert(text: &str) -> Result<Alert, CorruptRow> {
    serde_json::from_str(text).map_err(|e| CorruptRow { what: "alert", reason: e.to_string() })
}

/// A logged change from its stored JSON. Errors: [`CorruptRow`].
pub fn parse_change(text: &str) -> Result<AlertChange, CorruptRow> {
    serde_json::from_str(text).map_err(|e| CorruptRow { what: "alert change", reason: e.to_string() })
}

/// What one alert change writes: the alert's row (upserted on `alert_id`) and the change's
/// JSON for the log.
#[derive(Debug, Clone)]
pub struct ChangeRows {
    /// The change as it is logged (its alert merged with the stored one).
    pub change: AlertChange,
    /// The `status` column.
    pub status: &'static str,
    /// The alert's JSON (the `alert` column).
    pub alert_json: String,
    /// The change's JSON (the `change` column of `alert_changes`).
    pub change_json: String,
    /// The `workshop` column: the alert's workshop slug (`default` when it names none).
    pub workshop: String,
    /// The `room` column: the alert's room join code (NULL for a lobby).
    pub room: Option<String>,
    /// The `session_token` column: a help request's session (NULL for other rules), which a
    /// student's page reads its request by.
    pub session: Option<String>,
}

impl ChangeRows {
    /// The rows of `kind` for `alert` as it is now.
    pub fn new(kind: ChangeKind, alert: Alert) -> ChangeRows {
        let alert_json = serde_json::to_string(&alert).expect("an alert serializes");
        let status = status_text(alert.status);
        let label = alerts::Label::of(&alert);
        let session =
            (alert.rule == alerts::Rule::HelpRequest).then(|| alert.session_tokens.first().cloned()).flatten();
        let change = AlertChange { kind, alert };
        let change_json = serde_json::to_string(&change).expect("an alert change serializes");
        ChangeRows { change, status, alert_json, change_json, workshop: label.workshop, room: label.room, session }
    }

    /// The rows of a change from the alert rules, given the alert as stored (`None` for a new
    /// alert): what instructors did to the stored alert (acknowledged, resolved, muted) is kept
    /// ([`alerts::merge_stored`]).
    pub fn recorded(AlertChange { kind, mut alert }: AlertChange, stored: Option<&Alert>) -> ChangeRows {
        if let Some(before) = stored {
            alerts::merge_stored(&mut alert, before);
        }
        ChangeRows::new(kind, alert)
    }

    /// The rows of an instructor's `action` on the stored `alert` at `at` (ISO 8601), and the
    /// alert after it; no rows when the action changes nothing (see [`alerts::act`]).
    pub fn acted(mut alert: Alert, action: AlertAction, at: &str) -> (Alert, Option<ChangeRows>) {
        let rows = alerts::act(&mut alert, action, at).map(|kind| ChangeRows::new(kind, alert.clone()));
        (alert, rows)
    }
}
