//! Opaque cursors: where a page of events or sessions ends, as the string a client passes back
//! (`nextCursor` → `cursor`, an SSE `id` → `Last-Event-ID`).
//!
//! Clients must treat a cursor as opaque and pass it back as they got it. Its text is versioned
//! (`e1.`, `s1.`), so the server may change what a position is (for example, a commit-order
//! position) without breaking a client, and every string of the documented shape
//! ([`EVENT_CURSOR_PATTERN`], [`SESSION_CURSOR_PATTERN`]) is a position: paging from one a
//! client made up is not an error, it starts there.

/// The shape of an event cursor (the OpenAPI document's `pattern`).
pub const EVENT_CURSOR_PATTERN: &str = r"^e1\.[0-9]{1,18}$";
/// The shape of a session cursor: `last_seen` in ms since the epoch, and the token in hex.
pub const SESSION_CURSOR_PATTERN: &str = r"^s1\.[0-9]{1,14}\.([0-9a-f]{2}){1,512}$";

/// Why a cursor string was refused: not of the shape this server makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a cursor this server returned, got {0:?}")]
pub struct CursorError(pub String);

/// A position in the stored events (their storage order): a query continues with the events after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCursor(i64);

impl EventCursor {
    /// The start: every stored event is after it.
    pub const START: EventCursor = EventCursor(0);

    /// The position of the event with this `event_id` (its storage position).
    pub fn at(event_id: i64) -> EventCursor {
        EventCursor(event_id)
    }

    /// The `event_id` a backend compares with (`event_id > position` is after the cursor).
    pub fn position(self) -> i64 {
        self.0
    }

    /// The wire form: `e1.<position>`.
    pub fn encode(self) -> String {
        format!("e1.{}", self.0)
    }

    /// Reads the wire form. Errors: [`CursorError`] for a string not of [`EVENT_CURSOR_PATTERN`]'s shape.
    pub fn decode(text: &str) -> Result<EventCursor, CursorError> {
        let digits = text.trim().strip_prefix("e1.").filter(|d| (1..=18).contains(&d.len()));
        let position = digits.filter(|d| d.bytes().all(|b| b.is_ascii_digit())).and_then(|d| d.parse::<i64>().ok());
        position.map(EventCursor).ok_or_else(|| CursorError(text.to_owned()))
    }
}

/// A position in the sessions listed most recently seen first: the last one of a page, by
/// `(last_seen, session_token)`; the next page holds the sessions before it in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    /// The `last_seen` (ISO 8601 UTC with ms) of the page's last session.
    pub last_seen: String,
    /// Its token (the tie-break among sessions seen at the same millisecond).
    pub session_token: String,
}

impl SessionCursor {
    /// The wire form: `s1.<last_seen ms>.<token as hex>`.
    pub fn encode(&self) -> String {
        let ms = crate::domain::clock::iso_ms(&self.last_seen);
        let hex: String = self.session_token.bytes().map(|b| format!("{b:02x}")).collect();
        format!("s1.{ms}.{hex}")
    }

    /// Reads the wire form. Errors: [`CursorError`] for a string not of
    /// [`SESSION_CURSOR_PATTERN`]'s shape (token bytes that are not UTF-8 are read lossily: the
    /// position is still well defined).
    pub fn decode(text: &str) -> Result<SessionCursor, CursorError> {
        let refuse = || CursorError(text.to_owned());
        let (ms, hex) = text.trim().strip_prefix("s1.").and_then(|r| r.split_once('.')).ok_or_else(refuse)?;
        let digits = (1..=14).contains(&ms.len()) && ms.bytes().all(|b| b.is_ascii_digit());
        let ms: i64 = ms.parse().ok().filter(|_| digits).ok_or_else(refuse)?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 1024 || !hex.bytes().all(lower_hex) {
            return Err(refuse());
        }
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
        Ok(SessionCursor {
            last_seen: crate::domain::alerts::iso(ms),
            session_token: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A cursor reads back as the position it was made from, and anything else is refused.
    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        for id in [0, 1, 99, 999_999_999_999_999_999] {
            assert_eq!(EventCursor::decode(&EventCursor::at(id).encode()), Ok(EventCursor::at(id)));
        }
        let session = SessionCursor { last_seen: "2026-12-02T06:00:00.000Z".into(), session_token: "ws_a b".into() };
        assert_eq!(SessionCursor::decode(&session.encode()), Ok(session.clone()));
        for bad in ["", "7", "abc", "e1.", "e1.-3", "e1.1234567890123456789", &session.encode()] {
            assert!(EventCursor::decode(bad).is_err(), "{bad:?}");
        }
        for bad in ["s1.", "s1.5", "s1.5.", "s1.5.abc", "s1.5.AB", "s1.x.ab", "s1.123456789012345.ab"] {
            assert!(SessionCursor::decode(bad).is_err(), "{bad:?}");
        }
        // Any string of the documented shape is a position.
        assert_eq!(SessionCursor::decode("s1.0.ff").unwrap().session_token, "\u{FFFD}");
        assert_eq!(EventCursor::decode("e1.999999999999999999"), Ok(EventCursor::at(999_999_999_999_999_999)));
        assert!(SessionCursor::decode(&EventCursor::at(5).encode()).is_err());
        assert!(EventCursor::at(4) < EventCursor::at(5), "cursors order as positions");
    }
}
