//! Failed instructor authentications, throttled per client address: after `limit` (default
//! [`MAX_FAILURES`], `--auth-failure-limit`) wrong or missing tokens within [`WINDOW`] an address is refused (429 with `Retry-After`)
//! without its token being compared, until the window that began with its first failure ends.
//! Guessing a weak token from one address then takes minutes per few dozen tries. The price, as
//! with Grafana's and Gitea's login limits: an instructor behind the same address as the guesser
//! (a classroom NAT) waits out the window too.
//!
//! Memory is bounded: at most [`MAX_ADDRESSES`] addresses are kept; past it the windows that
//! began first are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures an address may have within [`WINDOW`] before it is refused, by default.
pub const MAX_FAILURES: u32 = 20;
/// The window of [`MAX_FAILURES`], from an address's first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses kept.
pub const MAX_ADDRESSES: usize = 10_000;

/// The failures per address (see the module docs).
#[derive(Debug)]
pub struct AuthThrottle {
    /// Failures allowed per window; 0 turns the throttle off.
    limit: u32,
    /// Per address: failures in its window and when the window began.
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl AuthThrottle {
    /// A throttle that refuses an address after `limit` failures within [`WINDOW`] (0: never).
    pub fn new(limit: u32) -> AuthThrottle {
        AuthThrottle { limit, failures: HashMap::new() }
    }

    /// Whether `address` may present a token at `now`: `Err(seconds to wait)` when it has
    /// failed `limit` times within its window.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), u64> {
        match self.failures.get(&address) {
            Some(&(count, since)) if self.limit > 0 && count >= self.limit && now < since + WINDOW => {
                let wait = (since + WINDOW).saturating_duration_since(now);
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure of `address` at `now`.
    pub fn failed(&mut self, address: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if !self.failures.contains_key(&address) && self.failures.len() >= MAX_ADDRESSES {
            self.failures.retain(|_, (_, since)| now < *since + WINDOW);
            if self.failures.len() >= MAX_ADDRESSES {
                let mut begun: Vec<Instant> = self.failures.values().map(|(_, since)| *since).collect();
                begun.sort_unstable();
                let cutoff = begun[MAX_ADDRESSES / 10];
                self.failures.retain(|_, (_, since)| *since > cutoff);
            }
        }
        let entry = self.failures.entry(address).or_insert((0, now));
        if now >= entry.1 + WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Twenty failures within a minute refuse the address until the minute from its first failure
    // ends; another address is not affected; then it may try again.
    #[test]
    fn an_address_that_keeps_failing_waits_out_its_window() {
        let mut throttle = AuthThrottle::new(MAX_FAILURES);
        let (guesser, other) = ("198.51.100.9".parse().unwrap(), "203.0.113.7".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(throttle.check(guesser, t0 + Duration::from_secs(u64::from(i))), Ok(()));
            throttle.failed(guesser, t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(throttle.check(guesser, t0 + Duration::from_secs(20)), Err(40));
        assert_eq!(throttle.check(other, t0 + Duration::from_secs(20)), Ok(()));
        assert_eq!(throttle.check(guesser, t0 + WINDOW), Ok(()));
        throttle.failed(guesser, t0 + WINDOW);
        assert_eq!(throttle.check(guesser, t0 + WINDOW), Ok(()), "a new window");
    }

    // Memory stays bounded however many addresses fail.
    #[test]
    fn addresses_kept_are_bounded() {
        let mut throttle = AuthThrottle::new(MAX_FAILURES);
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 * 3) {
            throttle.failed(IpAddr::from(i.to_be_bytes()), t0 + Duration::from_micros(u64::from(i)));
            assert!(throttle.failures.len() <= MAX_ADDRESSES);
        }
    }
}
