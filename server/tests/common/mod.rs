//! What the integration tests share: the storage contract's two backends ([`Backend`], and
//! [`on_both_backends!`] to run a test on each), a fresh database per test ([`TestDb`]: a SQLite
//! file in a temporary folder, or a new database on the PostgreSQL server), a real server on
//! 127.0.0.1 port 0 stopped gracefully on drop, and, for the storage tests, a real `Storage`,
//! validated events, and the summaries-are-folds check.
#![allow(dead_code)] // each test file uses a different part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Value};
use session_log_server::domain::validate::{validate_event, ValidEvent};
use session_log_server::metrics::Metrics;
use session_log_server::storage::{SessionQuery, Storage};
use session_log_server::{run, Config};

pub const TOKEN: &str = "test-instructor-token";

/// The PostgreSQL server the tests create their databases on (a maintenance database URL).
/// `SESSION_LOG_TEST_POSTGRES` overrides it; the test command starts a server when none answers.
pub fn postgres_admin_url() -> String {
    std::env::var("SESSION_LOG_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The storage backends the contract suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test given once per backend: `mod sqlite { #[test] fn name() }` and
/// `mod postgres { #[test] fn name() }`, with `$backend` bound to the backend.
#[macro_export]
macro_rules! on_both_backends {
    ($( $(#[$meta:meta])* fn $name:ident($backend:ident) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $( $(#[$meta])* #[test] fn $name() { let $backend = $crate::common::Backend::Sqlite; $body } )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $( $(#[$meta])* #[test] fn $name() { let $backend = $crate::common::Backend::Postgres; $body } )*
        }
    };
}

/// A fresh, empty database of one backend: a SQLite file in a temporary folder, or a database
/// created on the PostgreSQL server for this test alone (dropped with the value).
pub struct TestDb {
    pub backend: Backend,
    /// The SQLite file (unused on PostgreSQL).
    pub path: PathBuf,
    /// The PostgreSQL URL of this database (unused on SQLite).
    pub url: String,
    name: String,
    _dir: tempfile::TempDir,
}

fn admin_client() -> postgres::Client {
    let url = postgres_admin_url();
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL does not answer at {url} ({e}): start it (`cargo xtask test` does) \
             or set SESSION_LOG_TEST_POSTGRES"
        )
    })
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/events.db");
        let (name, url) = match backend {
            Backend::Sqlite => (String::new(), String::new()),
            Backend::Postgres => {
                let name = format!("session_log_test_{}", uuid::Uuid::now_v7().simple());
                admin_client().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                let admin = postgres_admin_url();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                let url = format!("{base}/{name}");
                (name, url)
            }
        };
        TestDb { backend, path, url, name, _dir: dir }
    }

    /// Points `config` at this database.
    pub fn configure(&self, config: &mut Config) {
        config.db_path = self.path.clone();
        config.database_url = (self.backend == Backend::Postgres).then(|| self.url.clone());
    }

    /// A config for this database, otherwise the defaults.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        self.configure(&mut config);
        config
    }

    /// The first column of every row `sql` returns, as text (`sql` must select text; write
    /// `CAST(x AS TEXT)`, which both backends read).
    pub fn texts(&self, sql: &str) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&self.path).unwrap();
                let mut statement = conn.prepare(sql).unwrap();
                statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
            }
            Backend::Postgres => {
                let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
                client.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
            }
        }
    }

    /// The integer `sql` selects (one row, one column; a `count(*)`, say).
    pub fn count(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                rusqlite::Connection::open(&self.path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Backend::Postgres => {
                let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
                client.query_one(sql, &[]).unwrap().get(0)
            }
        }
    }

    /// Runs `sql` (statements that change the database: test set-ups).
    pub fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.path).unwrap().execute_batch(sql).unwrap(),
            Backend::Postgres => {
                postgres::Client::connect(&self.url, postgres::NoTls).unwrap().batch_execute(sql).unwrap()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend == Backend::Postgres {
            let dropped = admin_client().batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            if let Err(error) = dropped {
                eprintln!("could not drop the test database {}: {error}", self.name);
            }
        }
    }
}

/// A server running in its own thread with its own database, stopped (gracefully) on drop.
pub struct TestServer {
    pub url: String,
    pub db: Arc<TestDb>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub agent: ureq::Agent,
}

impl TestServer {
    /// A server on a fresh SQLite database.
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// A server on a fresh SQLite database, `adjust`ed.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::on_with(Backend::Sqlite, adjust)
    }

    /// A server on a fresh database of `backend`.
    pub fn on(backend: Backend) -> TestServer {
        Self::on_with(backend, |_| {})
    }

    /// A server on a fresh database of `backend`, `adjust`ed.
    pub fn on_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::on_db(Arc::new(TestDb::new(backend)), adjust)
    }

    /// A server on `db` (which may have been used by a server before), `adjust`ed.
    pub fn on_db(db: Arc<TestDb>, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            instructor_tokens: vec!["old-token".into(), TOKEN.into()],
            www_dir: None,
            pkg_dir: None,
            ..Config::default()
        };
        db.configure(&mut config);
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
        let server = TestServer { url, db, stop: Some(stop), thread: Some(thread), agent };
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

    /// Rows in the events table, read straight from the database.
    pub fn stored_rows(&self) -> i64 {
        self.db.count("SELECT count(*) FROM events")
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
        validate_event(&e.to_string(), &Config::default().ingest_limits()).unwrap()
    })
    .collect()
}

/// A [`Storage`] (the real writer) on a fresh database of `backend`, with the runtime to await
/// it on; the database lives as long as the returned [`TestDb`].
pub fn temp_storage(backend: Backend) -> (TestDb, Config, Storage, tokio::runtime::Runtime) {
    let db = TestDb::new(backend);
    let config = db.config();
    let storage = Storage::open(&config, Arc::new(Metrics::new())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    (db, config, storage, runtime)
}

/// Asserts that every stored session summary is the fold of its session's stored events, and
/// that every session with events has one; returns the sessions' tokens, sorted.
pub fn assert_summaries_are_folds(storage: &Storage, runtime: &tokio::runtime::Runtime) -> Vec<String> {
    let drift = runtime.block_on(storage.summary_drift()).unwrap();
    assert_eq!(drift, Vec::<String>::new(), "these sessions' summaries are not the fold of their events");
    let rows = runtime.block_on(storage.sessions(SessionQuery { limit: 1000, ..SessionQuery::default() })).unwrap();
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
            text: response.body_mut().with_config().limit(256 * 1024 * 1024).read_to_string().unwrap(),
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

/// The admin token of the tests that manage workshops, rooms and helper tokens.
pub const ADMIN: &str = "test-admin-token";

/// `method path` with the admin token and `body` as JSON: the status and the JSON answer.
pub fn admin(server: &TestServer, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let answer = server.request(
        method,
        path,
        &[("Authorization", &format!("Bearer {ADMIN}")), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    (answer.status, answer.json())
}
