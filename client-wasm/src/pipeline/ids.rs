//! Session tokens, event ids and sampling: what identifies a session and an event, and whether a
//! session is kept (a hash of its token, so every page of a session decides alike).

use session_log_protocol::Uuid;

use super::text::hex_digit;

/// Prefix of generated session tokens, as in the reference's `ws_1234567890`.
pub const TOKEN_PREFIX: &str = "ws_";

/// Whether session `token` is among the sampled ones at `rate` (0 to 1): a hash of the token
/// (FNV-1a, 64 bits) read as a number in [0, 1) is below the rate. The same token always gets
/// the same answer, across reloads and tabs, with nothing stored; raising the rate only adds
/// sessions.
pub fn sampled(token: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in token.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// A session token from 16 random bytes (128 bits): `ws_` and 32 lowercase hex digits.
pub fn session_token(random: [u8; 16]) -> String {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 32);
    token.push_str(TOKEN_PREFIX);
    for byte in random {
        token.push(hex_digit(byte >> 4));
        token.push(hex_digit(byte));
    }
    token
}

/// An event id: a UUIDv7 (RFC 9562) from the time it was logged and 10 random bytes.
/// Time-ordered ids keep the server's unique index writes local.
pub fn event_id(epoch_ms: f64, random: [u8; 10]) -> Uuid {
    let ms = if epoch_ms.is_finite() && epoch_ms > 0.0 { epoch_ms as u64 } else { 0 };
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}
