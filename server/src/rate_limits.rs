//! Token-bucket rate limits on POSTs, per client address and per session token, and on events
//! per workshop write key (governor's GCRA).
//! Shared by the HTTP layer (which checks them) and the background work (which forgets idle
//! keys); a refusal is a [`Limited`], which `http::error` turns into 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};

use crate::config::Config;

/// A refused request: which limit (`client address` or `session token`) and how long until it
/// would be taken (whole seconds, at least 1, rounded up: a client that waits that long is not
/// refused again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The limit's key: `client address` or `session token`.
    pub key: &'static str,
    /// Seconds to wait (`Retry-After`).
    pub retry_after_secs: u64,
}

type KeyedLimiter<K> = governor::DefaultKeyedRateLimiter<K>;

/// Token-bucket rate limits on POSTs, per client address and per session token (governor's GCRA),
/// and the throttle of failed instructor authentications per client address.
pub struct RateLimits {
    per_ip: Option<KeyedLimiter<IpAddr>>,
    per_session: Option<KeyedLimiter<String>>,
    /// Per workshop (row id): its keys are made by an admin, so the keys are bounded.
    per_key: Option<KeyedLimiter<i64>>,
    failed_auth: std::sync::Mutex<crate::domain::auth_throttle::AuthThrottle>,
}

impl RateLimits {
    /// The limits of `config`; a rate of 0 turns that limit off.
    pub fn new(config: &Config) -> RateLimits {
        let quota = |per_sec: u32, burst: u32| {
            let per_sec = NonZeroU32::new(per_sec)?;
            let burst = NonZeroU32::new(burst.max(1)).unwrap_or(per_sec);
            Some(Quota::per_second(per_sec).allow_burst(burst))
        };
        RateLimits {
            per_ip: quota(config.rate_limit_ip_per_sec, config.rate_limit_ip_burst).map(RateLimiter::keyed),
            per_session: quota(config.rate_limit_session_per_sec, config.rate_limit_session_burst)
                .map(RateLimiter::keyed),
            per_key: quota(config.rate_limit_key_per_sec, config.rate_limit_key_burst).map(RateLimiter::keyed),
            failed_auth: std::sync::Mutex::new(crate::domain::auth_throttle::AuthThrottle::new(
                config.auth_failure_limit,
            )),
        }
    }

    /// Whether `ip` may present an instructor token now (see `domain::auth_throttle`). Errors:
    /// [`Limited`] (`failed authentications`) with the wait.
    pub fn check_auth(&self, ip: IpAddr) -> Result<(), Limited> {
        let throttle = self.failed_auth.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        throttle
            .check(ip, std::time::Instant::now())
            .map_err(|secs| Limited { key: "client address (failed authentications)", retry_after_secs: secs.max(1) })
    }

    /// Counts a failed instructor authentication of `ip`.
    pub fn auth_failed(&self, ip: IpAddr) {
        let mut throttle = self.failed_auth.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        throttle.failed(ip, std::time::Instant::now());
    }

    /// Takes one token for `ip`. Errors: [`Limited`] with the wait.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        match &self.per_ip {
            Some(limiter) => limiter.check_key(&ip).map_err(|wait| limited("client address", &wait)),
            None => Ok(()),
        }
    }

    /// Takes one token for `session_token`. Errors: [`Limited`] with the wait.
    pub fn check_session(&self, session_token: &str) -> Result<(), Limited> {
        match &self.per_session {
            Some(limiter) => {
                limiter.check_key(&session_token.to_owned()).map_err(|wait| limited("session token", &wait))
            }
            None => Ok(()),
        }
    }

    /// Takes `events` tokens for the write key of workshop `workshop` (its row id). Errors:
    /// [`Limited`] (`write key`) with the wait; a batch larger than the whole burst waits as
    /// long as the burst takes to refill.
    pub fn check_key(&self, workshop: i64, events: usize) -> Result<(), Limited> {
        let Some(limiter) = &self.per_key else { return Ok(()) };
        let Some(n) = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)) else { return Ok(()) };
        match limiter.check_key_n(&workshop, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(limited("write key", &wait)),
            Err(_) => Err(Limited { key: "write key", retry_after_secs: 1 }),
        }
    }

    /// Forgets keys whose buckets are full again, so memory follows the active clients only.
    pub fn forget_idle_keys(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_session {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_key {
            limiter.retain_recent();
        }
    }
}

fn limited(key: &'static str, wait: &governor::NotUntil<governor::clock::QuantaInstant>) -> Limited {
    let wait = wait.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
    // Retry-After takes whole seconds: round up, so a client that honours it is not refused again.
    let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Limited { key, retry_after_secs: retry_after_secs.max(1) }
}
