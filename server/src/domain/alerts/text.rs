//! Times and words of alert messages: ISO 8601 text of ms since the epoch and back, durations as
//! people read them, plurals.

use std::time::Duration;

/// ms since the epoch of an ISO 8601 time this module wrote (0 when it cannot be read).
pub(super) fn iso_ms_of(text: &str) -> i64 {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// ISO 8601 UTC with ms of `ms` since the epoch.
pub fn iso(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// `d` in ms.
pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// `d` ms as people read it, to the second: `3m 10s`, `45s`.
pub(super) fn human(d: i64) -> String {
    humantime::format_duration(Duration::from_secs((d.max(0) / 1000) as u64)).to_string()
}

/// `n` and the noun, in the plural unless `n` is 1: `1 student`, `4 students`.
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
