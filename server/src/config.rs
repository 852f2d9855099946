//! The server's settings, with their defaults. `main.rs` fills them from flags and environment.

use std::path::PathBuf;
use std::time::Duration;

use session_log_protocol::redact::Rules;

/// Everything `run` needs to know. `Config::default()` is what the binary runs with when no flag
/// or environment variable is given (apart from the instructor tokens, which it generates).
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file; its folder is created. Default `./data/session-log.db`. Not used when
    /// `database_url` is set.
    pub db_path: PathBuf,
    /// The database as a URL: `postgres://user@host:port/db` (or `postgresql://…`, libpq's form)
    /// selects PostgreSQL, `sqlite://path` a SQLite file. `None` (the default) is the SQLite file
    /// at `db_path`.
    pub database_url: Option<String>,
    /// Tokens that may read events (`Authorization: Bearer <token>`); any one of them matches.
    /// Several allow rotating a token without downtime.
    pub instructor_tokens: Vec<String>,
    /// Tokens that may also delete (`DELETE /api/students/{email}`). When any is set, instructor
    /// tokens can no longer delete; when none is (the default), they can. Admin tokens read too.
    pub admin_tokens: Vec<String>,
    /// Static files served at `/` (the demo workshop). `None` serves none. Default `./www`.
    pub www_dir: Option<PathBuf>,
    /// The built npm package, served at `/pkg/`. `None` serves none. Default `./client-wasm/pkg`.
    pub pkg_dir: Option<PathBuf>,
    /// Largest request body (bytes). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Longest time a request body may take to arrive once its headers have (a client that
    /// trickles a body holds a connection); past it the answer is 408 and nothing is stored.
    /// Default 30 s (1 MiB over a slow mobile link).
    pub body_timeout: Duration,
    /// Most events in one batch. Default 500.
    pub max_batch_events: usize,
    /// Largest `eventData` of one event, as JSON text (bytes). Default 32 KiB.
    pub max_event_data_bytes: usize,
    /// Deepest nesting of `eventData` (objects and arrays). Default 32.
    pub max_event_data_depth: usize,
    /// Read connections for queries (SQLite's read-only pool; with PostgreSQL, the pool's
    /// connections besides the writer's). Default 4.
    pub read_connections: u32,
    /// Write requests that may wait for the writer thread before POSTs are refused. Default 1024.
    pub write_queue_requests: usize,
    /// Most rows the writer commits in one transaction (group commit). Default 5000.
    pub max_rows_per_commit: usize,
    /// Origins allowed to call the API from a browser (CORS); empty allows any origin. Default empty.
    pub allowed_origins: Vec<String>,
    /// Refuse events without a workshop's write key (401) instead of storing them in the
    /// `default` workshop. Default false, so pages written before write keys keep working.
    pub require_write_key: bool,
    /// POSTs per second allowed from one client address (token bucket); 0 turns the limit off.
    /// Default 1000: a whole room of students may share one address behind a NAT.
    pub rate_limit_ip_per_sec: u32,
    /// Burst of POSTs allowed from one client address above the rate. Default 2000.
    pub rate_limit_ip_burst: u32,
    /// Networks of trusted reverse proxies (load balancers): a request whose peer is in one has
    /// its client address read from `X-Forwarded-For` (or `Forwarded`), see
    /// `domain::client_addr`. Default none: the peer is the client and those headers are ignored.
    pub trusted_proxies: Vec<crate::domain::client_addr::IpNet>,
    /// Failed instructor authentications (wrong or missing token) one client address may make
    /// within a minute before it is refused with 429 for the rest of that minute; 0 turns the
    /// throttle off. Default 20.
    pub auth_failure_limit: u32,
    /// POSTs per second allowed for one session token; 0 turns the limit off. Default 20 (a page
    /// sends about one batch a second).
    pub rate_limit_session_per_sec: u32,
    /// Burst of POSTs allowed for one session token above the rate. Default 100.
    pub rate_limit_session_burst: u32,
    /// Events per second allowed for one workshop's write key (token bucket, counted in events:
    /// a batch of 50 takes 50); 0 turns the limit off. Keyless events (the `default` workshop)
    /// are left to the per-address and per-session limits. Default 2000: a room of 200 students
    /// logging 10 events a second each.
    pub rate_limit_key_per_sec: u32,
    /// Burst of events allowed for one write key above the rate. Default 20000 (a room's pages
    /// sending what they queued while the network was down).
    pub rate_limit_key_burst: u32,
    /// Event types that mark a session completed. Default `["workshop_completed"]` (what
    /// `logSessionEvent("workshop_completed", …)` sends).
    pub completion_event_types: Vec<String>,
    /// A session that reaches this step (or a higher one) is completed too. Default none.
    pub final_step: Option<i64>,
    /// A session with an event within this window is `active`, else `idle`. Default 5 minutes.
    pub active_window: Duration,
    /// Events older than this are deleted by the retention task; `None` keeps them forever.
    /// Default 90 days.
    pub retention: Option<Duration>,
    /// Folder where retention first writes what it purges, as gzipped NDJSON per UTC day
    /// (`events-YYYY-MM-DD.ndjson.gz`); `None` purges without archiving. Default none.
    pub archive_dir: Option<PathBuf>,
    /// Folder of the periodic report's `report.csv`; `None` is `reports/` beside the database.
    pub reports_dir: Option<PathBuf>,
    /// How often the retention task runs. Default 1 hour.
    pub retention_every: Duration,
    /// How often a report row is appended to `reports/report.csv` beside the database; `None`
    /// writes none. Default 300 s.
    pub report_interval: Option<Duration>,
    /// How often a live tail (SSE) sends a heartbeat comment when no event arrives. Default 15 s.
    pub sse_heartbeat: Duration,
    /// HTTP worker threads; `None` is [`default_http_workers`]: one per CPU core but one, at least one.
    pub http_workers: Option<usize>,
    /// The alert rules' thresholds (see `domain::alerts`). Default: the rules' defaults, with
    /// `active_window` taken from this config's.
    pub alert_rules: crate::domain::alerts::AlertRules,
    /// URLs that receive every alert change as a JSON POST. Default none.
    pub alert_webhooks: Vec<String>,
    /// The key of the webhooks' `X-Session-Log-Signature` (HMAC-SHA256). Default none: unsigned
    /// (the server warns at start).
    pub alert_webhook_secret: Option<String>,
    /// Whether webhooks may go to `http://` and to loopback, private or link-local addresses
    /// (`domain::webhook_target`). Default false: HTTPS to public addresses only.
    pub alert_webhook_allow_private: bool,
    /// How often the alert rules are evaluated on the clock (`stuck`, windows ageing). Default 1 s.
    pub alert_tick: Duration,
    /// What is redacted from `eventData` at ingest, before anything is stored (see
    /// `session_log_protocol::redact`). Default: the default key names and patterns.
    pub redaction: Rules,
    /// Serve HTTPS with this certificate and key (PEM), read again on `SIGHUP`; `None` serves
    /// plain HTTP. Default `None`.
    pub tls: Option<crate::tls::TlsFiles>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db_path: PathBuf::from("./data/session-log.db"),
            database_url: None,
            instructor_tokens: Vec::new(),
            admin_tokens: Vec::new(),
            www_dir: Some(PathBuf::from("./www")),
            pkg_dir: Some(PathBuf::from("./client-wasm/pkg")),
            max_body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            auth_failure_limit: crate::domain::auth_throttle::MAX_FAILURES,
            max_batch_events: 500,
            max_event_data_bytes: 32 * 1024,
            max_event_data_depth: 32,
            read_connections: 4,
            write_queue_requests: 1024,
            max_rows_per_commit: 5000,
            allowed_origins: Vec::new(),
            require_write_key: false,
            rate_limit_ip_per_sec: 1000,
            rate_limit_ip_burst: 2000,
            trusted_proxies: Vec::new(),
            rate_limit_session_per_sec: 20,
            rate_limit_session_burst: 100,
            rate_limit_key_per_sec: 2000,
            rate_limit_key_burst: 20_000,
            completion_event_types: vec!["workshop_completed".to_owned()],
            final_step: None,
            active_window: Duration::from_secs(300),
            retention: Some(Duration::from_secs(90 * 86_400)),
            retention_every: Duration::from_secs(3600),
            archive_dir: None,
            reports_dir: None,
            report_interval: Some(Duration::from_secs(300)),
            sse_heartbeat: Duration::from_secs(15),
            http_workers: None,
            redaction: Rules::default(),
            alert_rules: crate::domain::alerts::AlertRules::default(),
            alert_webhooks: Vec::new(),
            alert_webhook_secret: None,
            alert_webhook_allow_private: false,
            alert_tick: Duration::from_secs(1),
            tls: None,
        }
    }
}

impl Config {
    /// What ingest accepts under this configuration (`domain::validate`).
    pub fn ingest_limits(&self) -> crate::domain::validate::IngestLimits<'_> {
        crate::domain::validate::IngestLimits {
            max_batch_events: self.max_batch_events,
            max_event_data_bytes: self.max_event_data_bytes,
            max_event_data_depth: self.max_event_data_depth,
            redaction: &self.redaction,
        }
    }
}

/// HTTP worker threads when none are configured: one per CPU core but one (at least one), since
/// the writer thread keeps a core busy under load. On the 2-core benchmark machine one worker
/// spent 6–13% less server CPU per event than two in five of six phases compared (the sixth
/// had 14% of its CPU stolen by the host), and batched ingest went from 72–79k to 83–88k
/// events/s (three interleaved runs each of `session-log-bench --rounds 1`).
pub fn default_http_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1)
}
