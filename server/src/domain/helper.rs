//! Helper tokens: personal read tokens of a teaching team, each with a role and the rooms it
//! covers, and what a request's token may see ([`Scope`]). Created by an admin, shown once,
//! stored only as a SHA-256 hash, revocable at once. The server-wide `--instructor-token` and
//! `--admin-token` see every room.
//!
//! Pure: the storage layer keeps the rows, `http::auth` finds the token of a request and the
//! handlers ask [`Scope::narrow`].

use sha2::{Digest, Sha256};

/// How a helper token starts (so a leaked one is recognisable, as GitHub's `ghp_`).
pub const TOKEN_PREFIX: &str = "ht_";
/// Longest helper name (characters).
pub const MAX_NAME: usize = 100;

/// What a helper token may do in its rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HelperRole {
    /// Everything in its rooms but deleting students (and managing workshops, rooms, tokens).
    Instructor,
    /// Reads its rooms; no export, no deletion.
    Assistant,
}

impl HelperRole {
    /// Its name on the wire and in the database: `instructor` or `assistant`.
    pub fn name(self) -> &'static str {
        match self {
            HelperRole::Instructor => "instructor",
            HelperRole::Assistant => "assistant",
        }
    }

    /// The role named `name`, `None` for another text.
    pub fn parse(name: &str) -> Option<HelperRole> {
        match name {
            "instructor" => Some(HelperRole::Instructor),
            "assistant" => Some(HelperRole::Assistant),
            _ => None,
        }
    }
}

/// A helper token as stored (its hash, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperToken {
    /// Its row id (what revocation names).
    pub id: i64,
    /// Whose it is ("Alex").
    pub name: String,
    /// What it may do.
    pub role: HelperRole,
    /// [`hash_token`] of the token.
    pub token_hash: String,
    /// The row ids of the rooms it covers.
    pub rooms: Vec<i64>,
    /// When it was made (ISO 8601 UTC).
    pub created_at: String,
    /// When it was revoked (ISO 8601 UTC), if it was.
    pub revoked_at: Option<String>,
    /// When a request last presented it (ISO 8601 UTC; written at most once a minute per
    /// server), if one did.
    pub last_used_at: Option<String>,
}

/// A new token from 24 random bytes: `ht_` and 48 lowercase hex digits (192 bits).
pub fn new_token(random: [u8; 24]) -> String {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 48);
    token.push_str(TOKEN_PREFIX);
    for b in random {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// The stored form of `token`: SHA-256, 64 lowercase hex digits. A token has 192 random bits,
/// so a plain hash is enough (no salt or slow hash: nothing to guess from it).
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The helper token `presented` is, when it is one of `tokens` and not revoked. Compares
/// hashes, so the time taken says nothing about the token.
pub fn find<'t>(tokens: &'t [HelperToken], presented: &str) -> Option<&'t HelperToken> {
    if !presented.starts_with(TOKEN_PREFIX) {
        return None;
    }
    let hash = hash_token(presented);
    tokens.iter().find(|t| t.token_hash == hash && t.revoked_at.is_none())
}

/// What a request's token may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every room, workshop and lobby: a server-wide token.
    All,
    /// These rooms only (row ids): a helper token.
    Rooms(Vec<i64>),
}

/// A room named in a query that the token does not cover (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this token does not cover that room")]
pub struct OutOfScope;

impl Scope {
    /// The rooms a query reads, given the rooms it `named` (`room=`, `None` when it named none):
    /// for [`Scope::All`], what it named; for [`Scope::Rooms`], what it named when the token
    /// covers all of it, else every room the token covers. Errors: [`OutOfScope`] when it
    /// named a room the token does not cover.
    pub fn narrow(&self, named: Option<Vec<i64>>) -> Result<Option<Vec<i64>>, OutOfScope> {
        match (self, named) {
            (Scope::All, named) => Ok(named),
            (Scope::Rooms(covered), Some(named)) if named.iter().all(|r| covered.contains(r)) => Ok(Some(named)),
            (Scope::Rooms(_), Some(_)) => Err(OutOfScope),
            (Scope::Rooms(covered), None) => Ok(Some(covered.clone())),
        }
    }

    /// Whether it covers room `room` (`None`: a lobby, which only server-wide tokens see).
    pub fn covers(&self, room: Option<i64>) -> bool {
        match self {
            Scope::All => true,
            Scope::Rooms(covered) => room.is_some_and(|r| covered.contains(&r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A helper token reads its rooms only: a room it does not cover is refused, no room named
    // means all of its rooms; a server-wide token reads what it names.
    #[test]
    fn scopes_narrow_queries_to_covered_rooms() {
        let helper = Scope::Rooms(vec![10, 11]);
        assert_eq!(helper.narrow(None), Ok(Some(vec![10, 11])));
        assert_eq!(helper.narrow(Some(vec![11])), Ok(Some(vec![11])));
        assert_eq!(helper.narrow(Some(vec![12])), Err(OutOfScope));
        assert_eq!(Scope::Rooms(vec![]).narrow(None), Ok(Some(vec![])), "no rooms: nothing");
        assert_eq!(Scope::All.narrow(None), Ok(None));
        assert_eq!(Scope::All.narrow(Some(vec![12])), Ok(Some(vec![12])));
        assert!(helper.covers(Some(10)) && !helper.covers(Some(12)) && !helper.covers(None));
        assert!(Scope::All.covers(None));
    }

    // Tokens are found by their hash, never once revoked, and only with their prefix.
    #[test]
    fn tokens_are_found_by_hash() {
        let token = new_token([7; 24]);
        assert!(token.starts_with("ht_") && token.len() == 51, "{token}");
        let mut stored = vec![HelperToken {
            id: 1,
            name: "Alex".into(),
            role: HelperRole::Assistant,
            token_hash: hash_token(&token),
            rooms: vec![10],
            created_at: "2026-12-07T10:00:00.000Z".into(),
            revoked_at: None,
            last_used_at: None,
        }];
        assert_eq!(find(&stored, &token).map(|t| t.id), Some(1));
        assert_eq!(find(&stored, &new_token([8; 24])), None);
        assert_eq!(find(&stored, &token[3..]), None);
        stored[0].revoked_at = Some("2026-12-07T11:00:00.000Z".into());
        assert_eq!(find(&stored, &token), None, "revoked");
        assert_eq!(hash_token("x").len(), 64);
        assert_eq!(HelperRole::parse("assistant"), Some(HelperRole::Assistant));
        assert_eq!(HelperRole::parse("admin"), None);
    }
}
