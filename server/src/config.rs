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
        }
    }
}
