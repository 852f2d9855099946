//! Workshops and rooms: the rules of who may write and where a session lands. A **workshop** is
//! one deployed page (a slug, a name, a public write key `wk_…`, the origins allowed to send
//! with it); a **room** is one run of it (a cohort: a name, a join code a person can type,
//! optional opening and closing times). Events without a key belong to the built-in `default`
//! workshop ([`DEFAULT_SLUG`]), so pages written before keys keep working.
//!
//! Pure: the storage layer keeps the rows, the ingest handler asks [`check_write_key`] and
//! [`assign_room`].

use crate::domain::origin::origin_allowed;

/// The slug of the built-in workshop of keyless events and of everything stored before
/// workshops existed.
pub const DEFAULT_SLUG: &str = "default";
/// The row id of the `default` workshop (made by the migration that made the table).
pub const DEFAULT_WORKSHOP_ID: i64 = 1;
/// How a write key starts (a public key: it sits in the page's source, like Sentry's DSN key or
/// Segment's `writeKey`).
pub const WRITE_KEY_PREFIX: &str = "wk_";
/// The letters and digits of a join code: no `0`/`O`, `1`/`I`/`L` (look-alikes on a projector).
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// A join code's length (31^6, about 887 million codes).
pub const CODE_LEN: usize = 6;
/// Longest slug (bytes).
pub const MAX_SLUG: usize = 40;

/// A workshop as the ingest path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workshop {
    /// Its row id.
    pub id: i64,
    /// `[a-z0-9-]`, at most [`MAX_SLUG`] bytes.
    pub slug: String,
    /// Its name, for people.
    pub name: String,
    /// Its write key (`None` for `default`, which takes keyless events only).
    pub write_key: Option<String>,
    /// Origins allowed to send with its key (`scheme://host[:port]`, lowercase); empty: any.
    pub allowed_origins: Vec<String>,
    /// When its key was revoked (ISO 8601 UTC), if it was.
    pub revoked_at: Option<String>,
}

/// A room as assignment needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its row id.
    pub id: i64,
    /// Its workshop's row id.
    pub workshop_id: i64,
    /// Its name ("London, 7 Dec").
    pub name: String,
    /// Its join code ([`CODE_LEN`] characters of [`CODE_ALPHABET`]).
    pub code: String,
    /// When it opens (ISO 8601 UTC), if set.
    pub opens_at: Option<String>,
    /// When it closes (ISO 8601 UTC), if set.
    pub closes_at: Option<String>,
}

impl Room {
    /// Whether it is open at `now` (ISO 8601 UTC with ms; ISO texts of one format compare as
    /// times): after its opening, if any, and before its closing, if any.
    pub fn open_at(&self, now: &str) -> bool {
        self.opens_at.as_deref().is_none_or(|t| t <= now) && self.closes_at.as_deref().is_none_or(|t| now < t)
    }
}

/// The room id a read names for a lobby (`room=lobby`): the sessions placed in no room. Room
/// ids start at 1 on both backends (`INTEGER PRIMARY KEY`, `BIGSERIAL`), so no room has it,
/// and no helper token covers it (helper tokens never see a lobby).
pub const LOBBY_ROOM_ID: i64 = 0;

/// The join code a read names for the lobby, in any case (join codes have 6 characters, so
/// no room's code is this one).
pub const LOBBY_CODE: &str = "lobby";

/// Where a session belongs: its workshop and its room (`None`: the workshop's lobby). Decided
/// by [`assign_room`] for a session's first stored event and kept from then on (the first
/// writer wins, on both backends and across servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The workshop's row id.
    pub workshop_id: i64,
    /// The room's row id; `None` for the lobby.
    pub room_id: Option<i64>,
}

impl Default for Placement {
    /// The `default` workshop's lobby: keyless events, and everything stored before rooms.
    fn default() -> Self {
        Placement { workshop_id: DEFAULT_WORKSHOP_ID, room_id: None }
    }
}

/// Longest room name (characters).
pub const MAX_ROOM_NAME: usize = 200;

/// Why a write key may not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// 401: no workshop has this key.
    #[error("unknown write key {0:?}: check the writeKey the page is configured with")]
    Unknown(String),
    /// 401: the key was revoked.
    #[error("the write key of workshop {0:?} was revoked")]
    Revoked(String),
    /// 403: the request's `Origin` is not among the workshop's allowed origins.
    #[error("origin {origin:?} may not send with the write key of workshop {slug:?}")]
    OriginNotAllowed {
        /// The workshop.
        slug: String,
        /// The request's origin.
        origin: String,
    },
    /// 401: a keyless event while the server requires keys (`--require-write-key`).
    #[error("a write key is required: configure the client with {{ writeKey }}")]
    Missing,
}

/// The workshop `key` writes to, for a request from `origin` (its `Origin` header, absent for
/// non-browsers): the keyed workshop when the key is known, not revoked and the origin allowed;
/// the `default` workshop for no key unless `require_key`. Errors: [`KeyError`].
pub fn check_write_key<'w>(
    workshops: &'w [Workshop],
    key: Option<&str>,
    origin: Option<&str>,
    require_key: bool,
) -> Result<&'w Workshop, KeyError> {
    let Some(key) = key else {
        if require_key {
            return Err(KeyError::Missing);
        }
        return workshops.iter().find(|w| w.slug == DEFAULT_SLUG).ok_or(KeyError::Missing);
    };
    let workshop =
        workshops.iter().find(|w| w.write_key.as_deref() == Some(key)).ok_or_else(|| KeyError::Unknown(short(key)))?;
    if workshop.revoked_at.is_some() {
        return Err(KeyError::Revoked(workshop.slug.clone()));
    }
    if let Some(origin) = origin {
        if !origin_allowed(&workshop.allowed_origins, origin) {
            return Err(KeyError::OriginNotAllowed { slug: workshop.slug.clone(), origin: short(origin) });
        }
    }
    Ok(workshop)
}

/// At most 64 characters of a client's string, for an error message.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// How many of a workshop's earlier rooms a room's pace is compared with (the newest first).
pub const EARLIER_ROOMS: usize = 10;
/// How far back those rooms' sessions count.
pub const EARLIER_WITHIN: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// The rooms that ran the same workshop before `room` (made before it), newest first, at most
/// [`EARLIER_ROOMS`]: the "earlier runs" a new room's pace is judged against while it has too
/// few visits of a step itself, and the funnel's second median.
pub fn earlier_rooms(rooms: &[Room], room: &Room) -> Vec<i64> {
    let mut earlier: Vec<i64> =
        rooms.iter().filter(|r| r.workshop_id == room.workshop_id && r.id < room.id).map(|r| r.id).collect();
    earlier.sort_unstable_by(|a, b| b.cmp(a));
    earlier.truncate(EARLIER_ROOMS);
    earlier
}

/// The room a new session of `workshop_id` joins at `now` (ISO 8601 UTC with ms): the room whose
/// join `code` it sent (in this workshop, read with [`normalize_code`]); else the workshop's room
/// that is open now, when exactly one is; else `None`, the workshop's lobby. A mistyped or
/// foreign code is not an error: the session still lands.
pub fn assign_room(rooms: &[Room], workshop_id: i64, code: Option<&str>, now: &str) -> Option<i64> {
    let ours = || rooms.iter().filter(|r| r.workshop_id == workshop_id);
    if let Some(code) = code.and_then(normalize_code) {
        if let Some(room) = ours().find(|r| r.code == code) {
            return Some(room.id);
        }
    }
    let mut open = ours().filter(|r| r.open_at(now));
    match (open.next(), open.next()) {
        (Some(room), None) => Some(room.id),
        _ => None,
    }
}

/// A join code as typed (`" abc-23x "`): uppercase, without spaces and dashes, when it is
/// [`CODE_LEN`] characters of [`CODE_ALPHABET`]; else `None`.
pub fn normalize_code(typed: &str) -> Option<String> {
    let code: String =
        typed.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// A join code from `random` bytes (one per character, reduced modulo the alphabet; the bias of
/// 256 mod 31 is irrelevant for codes, which are not secrets).
pub fn join_code(random: [u8; CODE_LEN]) -> String {
    random.iter().map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char).collect()
}

/// A write key from 16 random bytes: `wk_` and 32 lowercase hex digits.
pub fn write_key(random: [u8; 16]) -> String {
    let mut key = String::with_capacity(WRITE_KEY_PREFIX.len() + 32);
    key.push_str(WRITE_KEY_PREFIX);
    for b in random {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// Checks a workshop slug: 1 to [`MAX_SLUG`] bytes of `a-z`, `0-9` and `-`, not starting with
/// `-`. Errors: a message naming the rule broken.
pub fn check_slug(slug: &str) -> Result<(), String> {
    if slug.is_empty() || slug.len() > MAX_SLUG {
        return Err(format!("1 to {MAX_SLUG} characters"));
    }
    if !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') || slug.starts_with('-') {
        return Err("lowercase letters, digits and dashes, not starting with a dash".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workshop(id: i64, slug: &str, key: Option<&str>, origins: &[&str]) -> Workshop {
        Workshop {
            id,
            slug: slug.into(),
            name: slug.into(),
            write_key: key.map(Into::into),
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            revoked_at: None,
        }
    }

    fn room(id: i64, workshop_id: i64, code: &str, opens: Option<&str>, closes: Option<&str>) -> Room {
        Room {
            id,
            workshop_id,
            name: format!("room {id}"),
            code: code.into(),
            opens_at: opens.map(Into::into),
            closes_at: closes.map(Into::into),
        }
    }

    // A known key writes to its workshop; an unknown, revoked or foreign-origin key is refused
    // with the reason; no key goes to `default` unless keys are required.
    #[test]
    fn write_keys_decide_the_workshop() {
        let mut all = vec![
            workshop(1, DEFAULT_SLUG, None, &[]),
            workshop(2, "voice-ai", Some("wk_voice"), &["https://voice.example"]),
            workshop(3, "pipelines", Some("wk_pipe"), &[]),
        ];
        assert_eq!(check_write_key(&all, None, None, false).unwrap().id, 1);
        assert_eq!(check_write_key(&all, None, None, true), Err(KeyError::Missing));
        assert_eq!(check_write_key(&all, Some("wk_voice"), Some("https://voice.example"), true).unwrap().id, 2);
        assert_eq!(check_write_key(&all, Some("wk_voice"), None, true).unwrap().id, 2, "curl sends no Origin");
        assert!(matches!(
            check_write_key(&all, Some("wk_voice"), Some("https://copy.example"), false),
            Err(KeyError::OriginNotAllowed { .. })
        ));
        assert_eq!(check_write_key(&all, Some("wk_pipe"), Some("https://any.example"), false).unwrap().id, 3);
        assert!(matches!(check_write_key(&all, Some("wk_nope"), None, false), Err(KeyError::Unknown(_))));
        all[2].revoked_at = Some("2026-12-07T10:00:00.000Z".into());
        assert_eq!(check_write_key(&all, Some("wk_pipe"), None, false), Err(KeyError::Revoked("pipelines".into())));
    }

    // The code a session sent wins; else the one open room; else the lobby. Codes of other
    // workshops and mistyped codes do not lose the session.
    #[test]
    fn sessions_join_the_room_of_their_code_or_the_open_one() {
        let now = "2026-12-07T10:00:00.000Z";
        let rooms = vec![
            room(10, 2, "ABC234", Some("2026-12-07T09:00:00.000Z"), Some("2026-12-07T12:00:00.000Z")),
            room(11, 2, "XYZ789", Some("2026-12-07T13:00:00.000Z"), None),
            room(12, 3, "PQR456", None, None),
        ];
        assert_eq!(assign_room(&rooms, 2, Some("xyz-789"), now), Some(11), "a typed code, before it opens");
        assert_eq!(assign_room(&rooms, 2, None, now), Some(10), "the one open room");
        assert_eq!(assign_room(&rooms, 2, Some("PQR456"), now), Some(10), "another workshop's code");
        assert_eq!(assign_room(&rooms, 2, Some("nonsense"), now), Some(10));
        assert_eq!(assign_room(&rooms, 2, None, "2026-12-07T12:30:00.000Z"), None, "none open: the lobby");
        let two_open = [rooms.clone(), vec![room(13, 2, "MNP345", None, None)]].concat();
        assert_eq!(assign_room(&two_open, 2, None, now), None, "two open: the lobby");
        assert_eq!(assign_room(&rooms, 3, None, now), Some(12));
    }

    // Join codes avoid look-alikes and read back whatever the case and dashes.
    #[test]
    fn join_codes_are_typeable() {
        let code = join_code([0, 30, 31, 200, 255, 7]);
        assert_eq!(code.len(), CODE_LEN);
        assert!(!code.contains(['0', 'O', '1', 'I', 'L']));
        assert_eq!(normalize_code(&code.to_lowercase()), Some(code.clone()));
        assert_eq!(normalize_code("ab-c 234"), Some("ABC234".into()));
        assert_eq!(normalize_code("ABC23O"), None, "O is not in the alphabet");
        assert_eq!(normalize_code("ABC23"), None);
        assert!(write_key([0xab; 16]).starts_with("wk_abab"));
        assert_eq!(write_key([0; 16]).len(), 35);
        assert!(check_slug("voice-ai-2").is_ok());
        assert!(check_slug("Voice").is_err() && check_slug("-x").is_err() && check_slug("").is_err());
    }

    // Earlier runs are the same workshop's rooms made before, newest first, at most ten.
    #[test]
    fn earlier_rooms_are_the_workshops_previous_runs() {
        let room = |id: i64, workshop_id: i64| Room {
            id,
            workshop_id,
            name: format!("r{id}"),
            code: format!("C{id}"),
            opens_at: None,
            closes_at: None,
        };
        let mut rooms: Vec<Room> = (1..=14).map(|id| room(id, 1)).collect();
        rooms.push(room(15, 2));
        rooms.push(room(16, 1));
        assert_eq!(earlier_rooms(&rooms, &rooms[13]), [13, 12, 11, 10, 9, 8, 7, 6, 5, 4], "room 14");
        assert!(earlier_rooms(&rooms, &rooms[0]).is_empty(), "the first run has none");
        assert!(earlier_rooms(&rooms, &rooms[14]).is_empty(), "another workshop's rooms do not count");
    }
}
