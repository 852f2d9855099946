//! Alert webhooks (`--alert-webhook URL`, repeatable): each alert change is POSTed as JSON
//! `{"type": "alert.opened" | "alert.updated" | "alert.resolved", "alert": {...}}` to every URL,
//! on a thread of its own, so a slow or dead receiver never slows ingest or the rules.
//!
//! Headers: `X-Session-Log-Timestamp` (Unix seconds) and, with `--alert-webhook-secret`,
//! `X-Session-Log-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` (the scheme
//! Stripe-style receivers verify; signing the timestamp lets them refuse replays). A network
//! error or a 5xx answer is retried with exponential backoff (1 s, 2 s, 4 s … at most 60 s
//! apart) for at most [`GIVE_UP_AFTER`]; a 4xx is final. Outcomes are counted in
//! `session_log_webhook_deliveries_total{outcome}` (`delivered`, `retried`, `failed`, `dropped`).
//!
//! Targets are checked at start ([`check_targets`]: HTTPS to public addresses unless
//! `--alert-webhook-allow-private`). What waits is bounded ([`QUEUE`] attempts, urgent and others
//! each), and a help request's change or a critical opening goes ahead of everything else
//! ([`is_urgent`]), so a flood never delays it behind hundreds of others.

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::alerts::AlertChange;
use crate::metrics::Metrics;

/// How long a delivery is retried before it counts as failed.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// Attempts waiting, urgent and others each, before new changes are dropped (and counted as
/// `dropped`).
const QUEUE: usize = 10_000;
/// Timeout of one POST (connect and answer).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Checks every webhook URL before the server starts: HTTPS and public addresses only, unless
/// `allow_private` (see `domain::webhook_target`); a name is resolved here, once. Errors: a
/// message naming the first URL refused and why.
pub fn check_targets(urls: &[String], allow_private: bool) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    for url in urls {
        let (https, host, port) = crate::domain::webhook_target::parse(url)?;
        if allow_private {
            continue;
        }
        let addresses: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host.as_str(), port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default(),
        };
        crate::domain::webhook_target::check(url, https, &addresses, allow_private)?;
    }
    Ok(())
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"` keyed by `secret`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The sending side: hands changes to the delivery thread without waiting.
#[derive(Clone)]
pub struct Webhooks {
    sender: Option<crossbeam_channel::Sender<AlertChange>>,
    metrics: Arc<Metrics>,
}

impl Webhooks {
    /// Starts the delivery thread for `urls` (none: nothing is sent, no thread starts).
    pub fn start(urls: Vec<String>, secret: Option<String>, metrics: Arc<Metrics>) -> Webhooks {
        if urls.is_empty() {
            return Webhooks { sender: None, metrics };
        }
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE);
        let thread_metrics = metrics.clone();
        let started = std::thread::Builder::new()
            .name("session-log-webhooks".into())
            .spawn(move || deliver(receiver, urls, secret, thread_metrics));
        if let Err(error) = started {
            tracing::error!(%error, "cannot start the webhook thread: alert webhooks are off");
            return Webhooks { sender: None, metrics };
        }
        Webhooks { sender: Some(sender), metrics }
    }

    /// Queues `changes` for every URL; a full queue drops them (counted).
    pub fn send(&self, changes: &[AlertChange]) {
        let Some(sender) = &self.sender else { return };
        for change in changes {
            if sender.try_send(change.clone()).is_err() {
                self.metrics.webhook_deliveries.with_label_values(&["dropped"]).inc();
            }
        }
    }
}

/// One POST to make: when, to where, what, since when it is tried, and whether it goes first.
struct Attempt {
    due: Instant,
    url: usize,
    body: Arc<Vec<u8>>,
    first: Instant,
    tries: u32,
    urgent: bool,
}

impl PartialEq for Attempt {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Attempt {}
impl PartialOrd for Attempt {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Attempt {
    /// Soonest first in a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.due.cmp(&self.due)
    }
}

/// Whether a change goes ahead of the others: a help request's, or a critical alert opening. A
/// flood of other changes (hundreds of updates, a dead receiver's retries) never delays it by
/// more than one POST.
pub fn is_urgent(change: &AlertChange) -> bool {
    change.alert.rule == crate::domain::alerts::Rule::HelpRequest
        || (change.kind == crate::domain::alerts::ChangeKind::Opened
            && change.alert.severity == crate::domain::alerts::Severity::Critical)
}

/// The attempts waiting, urgent ones apart; each heap holds at most [`QUEUE`] (past it a new
/// change is dropped and counted), so memory stays bounded while a receiver is down.
struct Pending {
    urgent: BinaryHeap<Attempt>,
    normal: BinaryHeap<Attempt>,
}

impl Pending {
    fn add(&mut self, change: &AlertChange, urls: usize, metrics: &Metrics) {
        let urgent = is_urgent(change);
        let heap = if urgent { &mut self.urgent } else { &mut self.normal };
        if heap.len() + urls > QUEUE {
            metrics.webhook_deliveries.with_label_values(&["dropped"]).inc_by(urls as u64);
            return;
        }
        let body = Arc::new(serde_json::to_vec(change).unwrap_or_default());
        let now = Instant::now();
        for url in 0..urls {
            heap.push(Attempt { due: now, url, body: body.clone(), first: now, tries: 0, urgent });
        }
    }

    /// The soonest due time of any attempt.
    fn next_due(&self) -> Option<Instant> {
        [self.urgent.peek(), self.normal.peek()].into_iter().flatten().map(|a| a.due).min()
    }

    /// The attempt to make now: a due urgent one first.
    fn pop_due(&mut self, now: Instant) -> Option<Attempt> {
        if self.urgent.peek().is_some_and(|a| a.due <= now) {
            return self.urgent.pop();
        }
        if self.normal.peek().is_some_and(|a| a.due <= now) {
            return self.normal.pop();
        }
        None
    }

    fn retry(&mut self, attempt: Attempt) {
        if attempt.urgent {
            self.urgent.push(attempt);
        } else {
            self.normal.push(attempt);
        }
    }
}

/// The delivery thread: new changes and due retries, until the server stops.
fn deliver(
    receiver: crossbeam_channel::Receiver<AlertChange>,
    urls: Vec<String>,
    secret: Option<String>,
    metrics: Arc<Metrics>,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .user_agent("session-log-webhooks")
        .build()
        .into();
    let mut pending = Pending { urgent: BinaryHeap::new(), normal: BinaryHeap::new() };
    loop {
        let wait = pending.next_due().map(|due| due.saturating_duration_since(Instant::now()));
        let received = match wait {
            Some(wait) => receiver.recv_timeout(wait),
            None => receiver.recv().map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(change) => pending.add(&change, urls.len(), &metrics),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        loop {
            // Whatever arrived meanwhile is sorted in before each POST.
            while let Ok(change) = receiver.try_recv() {
                pending.add(&change, urls.len(), &metrics);
            }
            let Some(mut attempt) = pending.pop_due(Instant::now()) else { break };
            let outcome = post(&agent, &urls[attempt.url], &attempt.body, secret.as_deref());
            let label = match outcome {
                Ok(()) => "delivered",
                Err(Retry::Never(reason)) => {
                    tracing::warn!(url = %urls[attempt.url], %reason, "alert webhook refused");
                    "failed"
                }
                Err(Retry::Later(reason)) => {
                    attempt.tries += 1;
                    let backoff = Duration::from_secs(1u64 << attempt.tries.saturating_sub(1).min(6))
                        .min(Duration::from_secs(60));
                    if attempt.first.elapsed() + backoff > GIVE_UP_AFTER {
                        tracing::warn!(url = %urls[attempt.url], %reason, tries = attempt.tries, "alert webhook failed; giving up");
                        "failed"
                    } else {
                        tracing::debug!(url = %urls[attempt.url], %reason, ?backoff, "alert webhook failed; retrying");
                        attempt.due = Instant::now() + backoff;
                        pending.retry(attempt);
                        "retried"
                    }
                }
            };
            metrics.webhook_deliveries.with_label_values(&[label]).inc();
        }
    }
}

/// Why a POST did not deliver.
enum Retry {
    /// A network error or a 5xx: try again.
    Later(String),
    /// A 4xx: the receiver refuses this; do not.
    Never(String),
}

fn post(agent: &ureq::Agent, url: &str, body: &[u8], secret: Option<&str>) -> Result<(), Retry> {
    let timestamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut request = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Session-Log-Timestamp", &timestamp.to_string());
    if let Some(secret) = secret {
        request = request.header("X-Session-Log-Signature", &signature(secret, timestamp, body));
    }
    match request.send(body) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) if response.status().is_server_error() => Err(Retry::Later(format!("HTTP {}", response.status()))),
        Ok(response) => Err(Retry::Never(format!("HTTP {}", response.status()))),
        Err(error) => Err(Retry::Later(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(rule: crate::domain::alerts::Rule, kind: crate::domain::alerts::ChangeKind) -> AlertChange {
        let json = serde_json::json!({"type": kind, "alert": {
            "id": "a", "rule": rule, "severity": if rule == crate::domain::alerts::Rule::HelpRequest { "critical" } else { "warning" },
            "status": "open", "sessionTokens": [], "studentEmails": [], "message": "", "count": 1,
            "openedAt": "2027-01-01T00:00:00.000Z", "lastSeenAt": "2027-01-01T00:00:00.000Z"}});
        serde_json::from_value(json).unwrap()
    }

    // A help request's change queued behind 5,000 updates is posted first, and what waits is
    // bounded: past QUEUE attempts new changes are dropped and counted.
    #[test]
    fn help_requests_go_first_and_the_queue_is_bounded() {
        use crate::domain::alerts::{ChangeKind, Rule};
        let metrics = Metrics::new();
        let mut pending = Pending { urgent: BinaryHeap::new(), normal: BinaryHeap::new() };
        for _ in 0..(QUEUE + 5) {
            pending.add(&change(Rule::ErrorBurst, ChangeKind::Updated), 1, &metrics);
        }
        assert_eq!(pending.normal.len(), QUEUE);
        assert!(metrics.render().contains("session_log_webhook_deliveries_total{outcome=\"dropped\"} 5"));
        pending.add(&change(Rule::HelpRequest, ChangeKind::Opened), 1, &metrics);
        let first = pending.pop_due(Instant::now() + Duration::from_millis(1)).unwrap();
        assert!(first.urgent);
        assert!(String::from_utf8_lossy(&first.body).contains("help_request"));
        assert!(!pending.pop_due(Instant::now() + Duration::from_millis(1)).unwrap().urgent);
    }

    // The signature is HMAC-SHA256 of "<timestamp>.<body>" in hex (the digest computed
    // independently with Python's hmac module).
    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        assert_eq!(
            signature("Jefe", 1, b"what do ya want for nothing?"),
            "sha256=a9049465ce89cfb8e9aac62333abda66f80e3403f51f57f6bae3c3a4485eca38"
        );
    }
}
