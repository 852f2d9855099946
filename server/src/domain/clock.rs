//! The time as the server writes it: ISO 8601 UTC with milliseconds, the format of `created_at`
//! (it sorts as text in time order).

use std::time::SystemTime;

/// Now, as ISO 8601 UTC with ms.
pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `ago` before now, in the format of [`now_iso`] (the Unix epoch when `ago` reaches past it).
pub fn iso_ago(ago: std::time::Duration) -> String {
    let at = SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_millis(at).to_string()
}

/// `created_at` text as ms since the Unix epoch (0 when it does not parse, which our own
/// timestamps always do).
pub fn iso_ms(iso: &str) -> i64 {
    humantime::parse_rfc3339_weak(iso)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// `ms` since the Unix epoch in the format of [`now_iso`]; `None` before the epoch or past
/// year 9999 (a time a client sent: ISO 8601 has four-digit years).
pub fn iso_of_ms(ms: f64) -> Option<String> {
    if !(0.0..253_402_300_800_000.0).contains(&ms) {
        return None;
    }
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    Some(humantime::format_rfc3339_millis(at).to_string())
}
