//! What a `workshops` row holds, the same on both backends: the allowed origins as a JSON array
//! of strings, and the new workshop an admin asks for.

use super::CorruptRow;

/// A workshop to create (`POST /api/workshops`, `session-log-server workshop create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorkshop {
    /// Its slug, checked by `domain::workshop::check_slug`.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// The origins allowed to send with its key, checked by
    /// `domain::origin::parse_allowed_origins` (empty: any).
    pub allowed_origins: Vec<String>,
    /// Its write key (`domain::workshop::write_key`).
    pub write_key: String,
}

/// What the command line does to the workshops (`session-log-server workshop …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkshopOp {
    /// Create one.
    Create(NewWorkshop),
    /// Revoke the write key of the workshop with this slug.
    Revoke(String),
    /// List them all.
    List,
}

/// The stored text of `origins`.
pub fn origins_to_json(origins: &[String]) -> String {
    serde_json::to_string(origins).expect("strings serialize")
}

/// The origins in stored `text`. Errors: [`CorruptRow`] when it is not a JSON array of strings.
pub fn origins_from_json(text: &str) -> Result<Vec<String>, CorruptRow> {
    serde_json::from_str(text).map_err(|e| CorruptRow { what: "workshop", reason: e.to_string() })
}
