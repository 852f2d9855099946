//! What a `workshops` row holds, the same on both backends: the allowed origins as a JSON array
//! of strings, a helper token's rooms and role, and the new workshop, room or helper token an
//! admin asks for.

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

/// A room to create (`POST /api/workshops/{slug}/rooms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// Its workshop's row id.
    pub workshop_id: i64,
    /// Its name, 1 to `domain::workshop::MAX_ROOM_NAME` characters.
    pub name: String,
    /// Its join code (`domain::workshop::join_code`).
    pub code: String,
    /// When it opens (ISO 8601 UTC with ms), if set.
    pub opens_at: Option<String>,
    /// When it closes (same format), if set.
    pub closes_at: Option<String>,
}

/// A helper token to create (`POST /api/tokens`): only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHelperToken {
    /// Whose it is.
    pub name: String,
    /// What it may do.
    pub role: crate::domain::helper::HelperRole,
    /// `domain::helper::hash_token` of the token.
    pub token_hash: String,
    /// The row ids of the rooms it covers.
    pub rooms: Vec<i64>,
}

/// The stored text of a helper token's `rooms`.
pub fn rooms_to_json(rooms: &[i64]) -> String {
    serde_json::to_string(rooms).expect("integers serialize")
}

/// A helper token's rooms from stored `text`. Errors: [`CorruptRow`] when it is not a JSON
/// array of integers.
pub fn rooms_from_json(text: &str) -> Result<Vec<i64>, CorruptRow> {
    serde_json::from_str(text).map_err(|e| CorruptRow { what: "helper token", reason: e.to_string() })
}

/// A helper token's role from its stored text. Errors: [`CorruptRow`] for another text.
pub fn role_from_text(text: &str) -> Result<crate::domain::helper::HelperRole, CorruptRow> {
    crate::domain::helper::HelperRole::parse(text)
        .ok_or_else(|| CorruptRow { what: "helper token", reason: format!("unknown role {text:?}") })
}

/// How many join codes a room's creation draws before it gives up (each taken one is drawn
/// again; 31^6, about 887 million, exist).
pub const CODE_DRAWS: usize = 5;

/// A new join code (`domain::workshop::join_code` of random bytes). Errors:
/// [`super::StoreError::Internal`] when the system has no randomness to give.
pub fn draw_join_code() -> Result<String, super::StoreError> {
    let mut random = [0u8; crate::domain::workshop::CODE_LEN];
    getrandom::fill(&mut random)
        .map_err(|e| super::StoreError::Internal(format!("no randomness for a join code: {e}")))?;
    Ok(crate::domain::workshop::join_code(random))
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

/// What the command line does to rooms and helper tokens (`session-log-server room …`,
/// `token …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryOp {
    /// Create a room with a new join code (its `code` is ignored; drawn as by
    /// `Storage::create_room`).
    CreateRoom(NewRoom),
    /// Store a helper token (its hash).
    CreateToken(NewHelperToken),
    /// Revoke the helper token with this id.
    RevokeToken(i64),
    /// Change nothing.
    Read,
}

/// The workshops, rooms and helper tokens after a [`DirectoryOp`], and what it made or changed.
#[derive(Debug, Clone, Default)]
pub struct DirectoryRows {
    /// Every workshop, by id.
    pub workshops: Vec<crate::domain::workshop::Workshop>,
    /// Every room, by id.
    pub rooms: Vec<crate::domain::workshop::Room>,
    /// Every helper token, by id.
    pub tokens: Vec<crate::domain::helper::HelperToken>,
    /// The room created, if the op created one.
    pub room: Option<crate::domain::workshop::Room>,
    /// The token created or revoked, if the op did (none when no token has the id).
    pub token: Option<crate::domain::helper::HelperToken>,
}
