//! Retries: the exponential backoff with jitter ([`Backoff`]), `Retry-After` ([`retry_after_ms`])
//! and what an answer's status means ([`outcome`]).

/// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
/// after the n-th consecutive failure, wait a uniformly random time in `[0, min(max, base·2ⁿ⁻¹)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u32,
    max_ms: u32,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base_ms` and capped at `max_ms` (both ms).
    pub fn new(base_ms: u32, max_ms: u32) -> Self {
        Backoff { base_ms, max_ms: max_ms.max(base_ms), failures: 0 }
    }

    /// Records a failure and returns how long to wait before the next try (ms). `random` is a
    /// uniform number in `[0, 1)` (`Math.random()` in the browser).
    pub fn next_delay_ms(&mut self, random: f64) -> u32 {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(31);
        let ceiling = u64::from(self.base_ms).saturating_mul(1 << exp).min(u64::from(self.max_ms));
        (ceiling as f64 * random.clamp(0.0, 1.0)) as u32
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A send succeeded: the next failure starts from `base_ms` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The wait a `Retry-After` header asks for (RFC 9110 §10.2.3), in ms: `delay-seconds` (`"2"`) or
/// an HTTP-date (`"Sun, 06 Nov 1994 08:49:37 GMT"`) relative to `now_ms` (ms since the epoch).
/// `parse_date` turns an HTTP-date into ms since the epoch (the browser's `Date.parse`, which
/// keeps a date parser out of the wasm). `None` for a value that is neither; a past date means 0.
pub fn retry_after_ms(header: &str, now_ms: f64, parse_date: impl FnOnce(&str) -> Option<f64>) -> Option<u32> {
    let header = header.trim();
    if let Ok(seconds) = header.parse::<u32>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at_ms = parse_date(header).filter(|ms| ms.is_finite())?;
    Some((at_ms - now_ms).clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// What the client does with a batch after the server's answer, by HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the server has the batch's valid events; remove the batch from the queue.
    Delivered,
    /// Network error (status 0), 408, 429 or 5xx: keep the batch and try again after a backoff.
    Retry,
    /// Any other 4xx: the server refused the batch for good; remove it and warn.
    Refused,
}

/// Classifies a response status (0 for a network error).
pub fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        0 | 408 | 429 | 500..=599 => Outcome::Retry,
        400..=499 => Outcome::Refused,
        // 1xx and 3xx do not reach fetch's caller as final answers; treat them as transient.
        _ => Outcome::Retry,
    }
}
