//! Opaque cursors: where a page of events or sessions ends, as the string a client passes back
//! (`nextCursor` → `cursor`, an SSE `id` → `Last-Event-ID`).
//!
//! Clients must treat a cursor as opaque: its wire form is URL-safe base64 (RFC 4648 §5, no
//! padding) of a versioned text, so the server may change what a position is (for example, a
//! commit-order position when several servers share one database) without breaking a client.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Why a cursor string was refused: not one this server made.
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

    /// The wire form.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("e1:{}", self.0))
    }

    /// Reads the wire form. Errors: [`CursorError`] for anything [`EventCursor::encode`] did not make.
    pub fn decode(text: &str) -> Result<EventCursor, CursorError> {
        let refuse = || CursorError(text.to_owned());
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| refuse())?;
        let raw = std::str::from_utf8(&raw).map_err(|_| refuse())?;
        let position = raw.strip_prefix("e1:").and_then(|n| n.parse::<i64>().ok()).filter(|n| *n >= 0);
        position.map(EventCursor).ok_or_else(refuse)
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
    /// The wire form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("s1:{}\n{}", self.last_seen, self.session_token))
    }

    /// Reads the wire form. Errors: [`CursorError`] for anything [`SessionCursor::encode`] did not make.
    pub fn decode(text: &str) -> Result<SessionCursor, CursorError> {
        let refuse = || CursorError(text.to_owned());
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| refuse())?;
        let raw = String::from_utf8(raw).map_err(|_| refuse())?;
        let (last_seen, session_token) = raw.strip_prefix("s1:").and_then(|r| r.split_once('\n')).ok_or_else(refuse)?;
        Ok(SessionCursor { last_seen: last_seen.to_owned(), session_token: session_token.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A cursor reads back as the position it was made from, and anything else is refused.
    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        for id in [0, 1, 99, i64::MAX] {
            assert_eq!(EventCursor::decode(&EventCursor::at(id).encode()), Ok(EventCursor::at(id)));
        }
        let session = SessionCursor { last_seen: "2026-12-02T06:00:00.000Z".into(), session_token: "ws_a b".into() };
        assert_eq!(SessionCursor::decode(&session.encode()), Ok(session.clone()));
        for bad in ["", "7", "abc", "!!", &session.encode(), &URL_SAFE_NO_PAD.encode("e1:-3")] {
            assert!(EventCursor::decode(bad).is_err(), "{bad:?}");
        }
        assert!(SessionCursor::decode(&EventCursor::at(5).encode()).is_err());
        assert!(EventCursor::at(4) < EventCursor::at(5), "cursors order as positions");
    }
}
