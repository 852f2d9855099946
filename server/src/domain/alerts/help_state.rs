//! A help request's lifecycle as its alert carries it (the `help` object): the nouns only;
//! what changes them is [`super::queue`].

use serde::{Deserialize, Serialize};

/// Where a help request is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HelpStatus {
    /// Nobody has claimed it yet; it has a `position` in its room's queue.
    #[default]
    Waiting,
    /// A helper (`claimedBy`) is on it.
    Claimed,
    /// A helper resolved it (or acknowledged it).
    Resolved,
    /// The student cancelled it.
    Cancelled,
}

/// A help request's lifecycle, the `help` object of its alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelpState {
    /// `waiting`, `claimed`, `resolved` or `cancelled`.
    pub status: HelpStatus,
    /// The helper who claimed it (and, once resolved, who resolved it, when named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// When it was last claimed (ISO 8601 UTC with ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    /// The helper's note to the student ("on my way"), at most 280 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the lifecycle last changed (ISO 8601 UTC with ms).
    #[serde(default)]
    pub updated_at: String,
    /// Its place among its room's waiting requests, 1 being served next (filled in on reads
    /// while it is waiting; never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// The cause it shares with other waiting requests of its room (filled in on reads, see
    /// `queue::group_of`; never stored): `error:<errorType>` or `endpoint:<endpoint>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}
