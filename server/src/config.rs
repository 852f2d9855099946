//! The server's settings, with their defaults. `main.rs` fills them from flags and environment.

use std::path::PathBuf;

/// Everything `run` needs to know. `Config::default()` is what the binary runs with when no flag
/// or environment variable is given (apart from the instructor tokens, which it generates).
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file; its folder is created. Default `./data/session-log.db`.
    pub db_path: PathBuf,
    /// Tokens that may read events (`Authorization: Bearer <token>`); any one of them matches.
    /// Several allow rotating a token without downtime.
    pub instructor_tokens: Vec<String>,
    /// Static files served at `/` (the demo workshop). `None` serves none. Default `./www`.
    pub www_dir: Option<PathBuf>,
    /// The built npm package, served at `/pkg/`. `None` serves none. Default `./client-wasm/pkg`.
    pub pkg_dir: Option<PathBuf>,
    /// Largest request body (bytes). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most events in one batch. Default 500.
    pub max_batch_events: usize,
    /// Largest `eventData` of one event, as JSON text (bytes). Default 32 KiB.
    pub max_event_data_bytes: usize,
    /// Deepest nesting of `eventData` (objects and arrays). Default 32.
    pub max_event_data_depth: usize,
    /// Read-only SQLite connections for queries. Default 4.
    pub read_connections: u32,
    /// Write requests that may wait for the writer thread before POSTs are refused. Default 1024.
    pub write_queue_requests: usize,
    /// Most rows the writer commits in one transaction (group commit). Default 5000.
    pub max_rows_per_commit: usize,
    /// Origins allowed to call the API from a browser (CORS); empty allows any origin. Default empty.
    pub allowed_origins: Vec<String>,
    /// POSTs per second allowed from one client address (token bucket); 0 turns the limit off.
    /// Default 1000: a whole room of students may share one address behind a NAT.
    pub rate_limit_ip_per_sec: u32,
    /// Burst of POSTs allowed from one client address above the rate. Default 2000.
    pub rate_limit_ip_burst: u32,
    /// POSTs per second allowed for one session token; 0 turns the limit off. Default 20 (a page
    /// sends about one batch a second).
    pub rate_limit_session_per_sec: u32,
    /// Burst of POSTs allowed for one session token above the rate. Default 100.
    pub rate_limit_session_burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db_path: PathBuf::from("./data/session-log.db"),
            instructor_tokens: Vec::new(),
            www_dir: Some(PathBuf::from("./www")),
            pkg_dir: Some(PathBuf::from("./client-wasm/pkg")),
            max_body_bytes: 1024 * 1024,
            max_batch_events: 500,
            max_event_data_bytes: 32 * 1024,
            max_event_data_depth: 32,
            read_connections: 4,
            write_queue_requests: 1024,
            max_rows_per_commit: 5000,
            allowed_origins: Vec::new(),
            rate_limit_ip_per_sec: 1000,
            rate_limit_ip_burst: 2000,
            rate_limit_session_per_sec: 20,
            rate_limit_session_burst: 100,
        }
    }
}
