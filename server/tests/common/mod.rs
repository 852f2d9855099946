//! What the integration tests share: a real server on 127.0.0.1 port 0 with its own SQLite
//! file, stopped gracefully on drop; and, for the storage tests, a real `Storage` on a
//! temporary file, validated events, and the summaries-are-folds check.
#![allow(dead_code)] // each test file uses a different part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::thread::JoinHandle;

use serde_json::{json, Value};
use session_log_server::ingest::{validate_event, ValidEvent};
use session_log_server::metrics::Metrics;
use session_log_server::storage::{fold_session, query_sessions, SessionQuery, Storage};
use session_log_server::{run, Config};

pub const TOKEN: &str = "test-instructor-token";

/// A server running in its own thread with its own database, stopped (gracefully) on drop.
pub struct TestServer {
    pub url: String,
    pub db: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub agent: ureq::Agent,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nested/dir/events.db");
        let mut config = Config {
            db_path: db.clone(),
            instructor_tokens: vec!["old-token".into(), TOKEN.into()],
            www_dir: None,
            pkg_dir: None,
            ..Config::default()
        };
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new()
                .block_on(run(listener, config, async move {
                    let _ = stopped.await;
                }))
                .unwrap();
        });
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let server = TestServer { url, db, _dir: dir, stop: Some(stop), thread: Some(thread), agent };
        // Wait until it answers.
        for _ in 0..200 {
            if server.agent.get(&format!("{}/healthz", server.url)).call().is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the server did not start");
    }

    pub fn post_raw(&self, content_type: Option<&str>, body: impl AsRef<[u8]>) -> (u16, Value) {
        let mut request = self.agent.post(&format!("{}/api/session-log", self.url));
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        let mut response = request.send(body.as_ref()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")))
    }

    pub fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(Some("application/json"), body.to_string())
    }

    pub fn get_with(&self, query: &str, authorization: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.get(&format!("{}/api/session-log?{query}", self.url));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.call().unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    pub fn get(&self, query: &str) -> Value {
        let (status, body) = self.get_with(query, Some(&format!("Bearer {TOKEN}")));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Rows in the events table, read straight from the SQLite file.
    pub fn stored_rows(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap()
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One event of the reference's shape.
pub fn event(token: &str, event_type: &str, data: Value) -> Value {
    json!({"sessionToken": token, "eventType": event_type, "eventData": data})
}

/// Events of session `token` with the given `seq`s, validated as the server does; `make(seq)`
/// gives each one's `eventType` and `eventData`, and `email` its `studentEmail`.
pub fn valid_events(
    token: &str,
    seqs: std::ops::Range<u64>,
    email: Option<&str>,
    make: impl Fn(u64) -> (&'static str, Value),
) -> Vec<ValidEvent> {
    seqs.map(|seq| {
        let (event_type, data) = make(seq);
        let mut e = json!({"sessionToken": token, "eventType": event_type, "seq": seq, "eventData": data});
        if let Some(email) = email {
            e["studentEmail"] = json!(email);
        }
        validate_event(&e.to_string(), &Config::default()).unwrap()
    })
    .collect()
}

/// A [`Storage`] (the real writer thread) on a fresh SQLite file in a temporary folder, with
/// the runtime to await it on; the folder lives as long as the returned `TempDir`.
pub fn temp_storage() -> (tempfile::TempDir, Config, Storage, tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { db_path: dir.path().join("events.db"), ..Config::default() };
    let storage = Storage::open(&config, std::sync::Arc::new(Metrics::new())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    (dir, config, storage, runtime)
}

/// Asserts that every stored session summary is the fold of its session's stored events;
/// returns the sessions' tokens, sorted.
pub fn assert_summaries_are_folds(conn: &rusqlite::Connection) -> Vec<String> {
    let rows = query_sessions(conn, &SessionQuery { limit: 1000, ..SessionQuery::default() }).unwrap();
    for row in &rows {
        let folded = fold_session(conn, &row.session_token, &Config::default().completion_event_types).unwrap();
        assert_eq!(Some(&row.summary), folded.as_ref(), "{}: the summary is the fold of its events", row.session_token);
    }
    let mut tokens: Vec<String> = rows.into_iter().map(|r| r.session_token).collect();
    tokens.sort();
    tokens
}

/// An HTTP answer: status, `Retry-After` (if any) and the body as text.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub allow_origin: Option<String>,
    pub text: String,
}

impl Answer {
    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {:?}", self.text))
    }
}

impl TestServer {
    /// Sends `method path` with the given headers and body and returns the whole answer.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let uri = format!("{}{path}", self.url);
        let mut builder = ureq::http::Request::builder().method(method).uri(&uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.to_vec()).unwrap();
        let mut response = self.agent.run(request).unwrap();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let retry_after = header("retry-after");
        let allow_origin = header("access-control-allow-origin");
        Answer {
            status: response.status().as_u16(),
            retry_after,
            allow_origin,
            text: response.body_mut().read_to_string().unwrap(),
        }
    }

    /// The value of one sample in `/metrics`, by its full name with labels; 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.request("GET", "/metrics", &[], b"").text;
        text.lines()
            .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }
}

impl TestServer {
    /// `GET path` (with its query) as an instructor; asserts 200 and returns the JSON body.
    pub fn read(&self, path: &str) -> Value {
        let answer = self.request("GET", path, &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        answer.json()
    }

    /// `method path` as an instructor: the whole answer.
    pub fn as_instructor(&self, method: &str, path: &str) -> Answer {
        self.request(method, path, &[("Authorization", &format!("Bearer {TOKEN}"))], b"")
    }

    /// Posts a batch and asserts that every event was accepted.
    pub fn post_all(&self, events: Vec<Value>) {
        let n = events.len();
        let (status, answer) = self.post(&json!({ "events": events }));
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(n as u64)), "{answer}");
    }
}
