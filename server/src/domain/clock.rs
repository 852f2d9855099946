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
