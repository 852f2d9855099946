//! Prometheus metrics of one server (`GET /metrics`, text exposition format 0.0.4).
//!
//! Each server has its own registry, so several servers in one process (the tests) do not share
//! counters.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The server's counters, gauges and histograms.
pub struct Metrics {
    registry: Registry,
    /// Events stored (new or duplicate), `session_log_events_accepted_total`.
    pub events_accepted: IntCounter,
    /// Events already stored, `session_log_events_duplicate_total`.
    pub events_duplicate: IntCounter,
    /// Events refused, by reason, `session_log_events_rejected_total{reason}`.
    pub events_rejected: IntCounterVec,
    /// Requests refused whole, by reason, `session_log_requests_refused_total{reason}`.
    pub requests_refused: IntCounterVec,
    /// Values redacted from `eventData` at ingest, `session_log_redacted_values_total`.
    pub redacted_values: IntCounter,
    /// Events written to the archive before a purge, `session_log_events_archived_total`.
    pub events_archived: IntCounter,
    /// Retention runs that stopped because the archive could not be written (nothing purged),
    /// `session_log_archive_failures_total`.
    pub archive_failures: IntCounter,
    /// Batches (and single events) committed, `session_log_batches_total`.
    pub batches: IntCounter,
    /// Requests refused by a rate limit, by key, `session_log_rate_limited_total{key}`.
    pub rate_limited: IntCounterVec,
    /// Write requests waiting for the writer, `session_log_write_queue_depth`.
    pub queue_depth: IntGauge,
    /// Background passes this server ran, by task (`retention`, `report`), as the one server of
    /// a database that does background work, `session_log_background_runs_total{task}`.
    pub background_runs: IntCounterVec,
    /// 1 while this server is the one that runs background work on its database (always on
    /// SQLite), else 0, `session_log_background_leader`.
    pub background_leader: IntGauge,
    /// Alert webhook POSTs by outcome (`delivered`, `retried`, `failed`, `dropped`),
    /// `session_log_webhook_deliveries_total{outcome}`.
    pub webhook_deliveries: IntCounterVec,
    /// Alert changes by kind (`alert.opened`, `alert.updated`, `alert.resolved`),
    /// `session_log_alert_changes_total{kind}`.
    pub alert_changes: IntCounterVec,
    /// Events the alert rules took, by where from (`feed`: handed over by this server's writer at
    /// its commit; `read_back`: read from storage: another server's, or what the feed dropped),
    /// `session_log_alert_keys_evicted_total`: keys the alert rules forgot to stay bounded.
    pub alert_keys_evicted: IntCounter,
    /// `session_log_alert_events_total{source}`.
    pub alert_events: IntCounterVec,
    /// Reloads of the TLS certificate on `SIGHUP`, by outcome (`ok`, `failed`: the certificate in
    /// force stays), `session_log_tls_reloads_total{outcome}`.
    pub tls_reloads: IntCounterVec,
    /// Time of one group commit, `session_log_commit_seconds`.
    pub commit_seconds: Histogram,
    /// Rows in one group commit, `session_log_commit_rows`.
    pub commit_rows: Histogram,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric name");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("metric name");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("metric name");
            registry.register(Box::new(h.clone())).expect("register");
            h
        };
        let queue_depth =
            IntGauge::new("session_log_write_queue_depth", "Write requests waiting for the writer thread.")
                .expect("metric name");
        registry.register(Box::new(queue_depth.clone())).expect("register");
        let background_leader = IntGauge::new(
            "session_log_background_leader",
            "1 while this server runs the background work (retention, reports) for its database.",
        )
        .expect("metric name");
        registry.register(Box::new(background_leader.clone())).expect("register");
        Metrics {
            background_runs: counter_vec(
                "session_log_background_runs_total",
                "Background passes run by this server, by task.",
                "task",
            ),
            background_leader,
            webhook_deliveries: counter_vec(
                "session_log_webhook_deliveries_total",
                "Alert webhook POSTs, by outcome (delivered, retried, failed, dropped).",
                "outcome",
            ),
            alert_changes: counter_vec("session_log_alert_changes_total", "Alert changes, by kind.", "kind"),
            alert_events: counter_vec(
                "session_log_alert_events_total",
                "Events the alert rules took, by source (feed: from this server's writer; read_back: from storage).",
                "source",
            ),
            tls_reloads: counter_vec(
                "session_log_tls_reloads_total",
                "TLS certificate reloads on SIGHUP, by outcome (ok, failed: the certificate in force stays).",
                "outcome",
            ),
            alert_keys_evicted: counter(
                "session_log_alert_keys_evicted_total",
                "Error types, endpoints, addresses and sessions the alert rules forgot to keep their memory bounded.",
            ),
            events_accepted: counter("session_log_events_accepted_total", "Events stored (new or already present)."),
            events_duplicate: counter(
                "session_log_events_duplicate_total",
                "Events that were already stored (same eventId).",
            ),
            redacted_values: counter(
                "session_log_redacted_values_total",
                "Values of eventData redacted at ingest (secret keys and patterns).",
            ),
            events_archived: counter(
                "session_log_events_archived_total",
                "Events written to the archive (--archive-dir) before retention purged them.",
            ),
            archive_failures: counter(
                "session_log_archive_failures_total",
                "Retention runs stopped because the archive could not be written; nothing was purged.",
            ),
            events_rejected: counter_vec("session_log_events_rejected_total", "Events refused, by reason.", "reason"),
            requests_refused: counter_vec(
                "session_log_requests_refused_total",
                "Requests refused whole, by reason.",
                "reason",
            ),
            batches: counter("session_log_batches_total", "POST bodies (batches or single events) committed."),
            rate_limited: counter_vec(
                "session_log_rate_limited_total",
                "Requests refused by a rate limit, by key.",
                "key",
            ),
            queue_depth,
            commit_seconds: histogram(
                "session_log_commit_seconds",
                "Duration of one group commit.",
                vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
            ),
            commit_rows: histogram(
                "session_log_commit_rows",
                "Rows written by one group commit.",
                vec![1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0],
            ),
            registry,
        }
    }

    /// The exposition text of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
