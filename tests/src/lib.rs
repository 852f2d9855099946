//! Harness of session-log's end-to-end tests: the real server binary on 127.0.0.1 port 0 with a
//! temporary database, and a real headless Chromium driven over WebDriver (ChromeDriver).
//!
//! Nothing is skipped: when the server binary, the client package or Chromium is missing, the
//! harness panics saying how to get it (`cargo xtask test` builds and installs everything).

pub mod load;
pub mod nginx;
pub mod pg;
pub mod proxy;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The event types the demo workshop logs when a student goes through it with
/// [`demo_first_steps`] then [`demo_last_steps`], in order.
pub const DEMO_EVENT_TYPES: [&str; 13] = [
    "error",
    "action",
    "state_change",
    "navigation",
    "action",
    "navigation",
    "api_call",
    "navigation",
    "api_call",
    "error",
    "navigation",
    "state_change",
    "workshop_completed",
];

/// On the open demo workshop: steps 0 and 1 (a refused API key, an accepted one, a use case),
/// ending on step 2. Logs the first five of [`DEMO_EVENT_TYPES`] and the step-2 navigation.
pub async fn demo_first_steps(browser: &Browser) {
    // Step 0: a refused key, then an accepted one.
    browser.type_into("#api-key", "not-a-key").await;
    browser.click("#validate-key").await;
    browser.wait_for_text("#key-status", |t| t.contains("refused")).await;
    browser.type_into("#api-key", "sk-abcdefghijklmnopqrstuvwxyz").await;
    browser.click("#validate-key").await;
    browser.wait_for_text("#key-status", |t| t.contains("accepted")).await;
    browser.click("#next").await;
    // Step 1: a choice.
    browser.click("input[value=support]").await;
    browser.wait_for_text("#use-case-status", |t| t.contains("support")).await;
    browser.click("#next").await;
}

/// On the demo workshop at step 2: an API call that works, one that fails, a state toggle and
/// the end, which waits until the client says every event was delivered.
pub async fn demo_last_steps(browser: &Browser) {
    // Step 2: an API call that works.
    browser.click("#check-health").await;
    browser.wait_for_text("#health-status", |t| t.contains("up")).await;
    browser.click("#next").await;
    // Step 3: an API call that fails.
    browser.click("#deploy").await;
    browser.wait_for_text("#deploy-status", |t| t.contains("HTTP 404")).await;
    browser.click("#next").await;
    // Step 4: a state toggle, and the end (which awaits flush()).
    browser.click("#voice-enabled").await;
    browser.click("#finish").await;
    browser.wait_for_text("#finish-status", |t| t.contains("all events delivered")).await;
}

/// A web root holding `delivery.html`: a bare page that imports the client from `/pkg/` and
/// exposes it to tests as `window.sessionLog`, with `window.logMany(from, n, extra)`, and the
/// console warnings in `window.warnings`. Query parameters: `endpoint`, `interval` (flushIntervalMs),
/// `batch` (maxBatchEvents).
pub fn test_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("delivery.html"), DELIVERY_PAGE).expect("write the test page");
    std::fs::write(dir.path().join("bench.html"), BENCH_PAGE).expect("write the bench page");
    dir
}

/// The client benchmark's page: `window.runBench(calls, perSample)` times `logAction` and a plain
/// JavaScript function doing the same work (build the event object, push it to an array), in
/// chunks of 500 calls (under the queue's bound), letting the client deliver between chunks as a
/// page that is not in a tight loop would.
const BENCH_PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>session-log client benchmark</title>
<script type="module">
  import init, * as sessionLog from "/pkg/session_log.js";
  await init();
  const steps = ["Connect Accounts", "Choose Use Case", "Provision Services", "Deploy", "Test"];
  sessionLog.configure({ steps, maxBatchEvents: 500, maxBatchBytes: 256 * 1024 });
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function measure(call, calls, perSample) {
    const samples = [];
    for (let done = 0; done < calls; done += 500) {
      for (let s = 0; s < 500; s += perSample) {
        const t0 = performance.now();
        for (let i = 0; i < perSample; i++) call(done + s + i);
        samples.push((performance.now() - t0) / perSample);
      }
      await pause(0);
      while (sessionLog.stats().queued > 0) await pause(2);
    }
    samples.sort((a, b) => a - b);
    const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
    return { median_us: at(0.5) * 1000, p99_us: at(0.99) * 1000, samples: samples.length };
  }
  window.runBench = async (calls, perSample) => {
    const details = { phoneNumber: "+15555551234", provider: "twilio" };
    const wasm = await measure(() => sessionLog.logAction("phone_number_selected", details), calls, perSample);
    await sessionLog.flush();
    const plain = [];
    const token = "ws_" + crypto.randomUUID().replaceAll("-", "");
    let seq = 0;
    const js = await measure(() => {
      plain.push({
        sessionToken: token, eventType: "action", eventId: crypto.randomUUID(), seq: seq++,
        eventData: { actionName: "phone_number_selected", ...details, currentStep: 0, stepName: steps[0],
                     demoMode: false, userAgent: navigator.userAgent, timestamp: new Date().toISOString() },
      });
      if (plain.length >= 500) plain.length = 0;
    }, calls, perSample);
    return { wasm, js, stats: sessionLog.stats(), token: sessionLog.getSessionToken() };
  };
  window.ready = true;
</script>
"#;

const DELIVERY_PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>session-log delivery test</title>
<script type="module">
  window.warnings = [];
  const warn = console.warn;
  console.warn = (...args) => { window.warnings.push(args.join(" ")); warn.apply(console, args); };
  import init, * as sessionLog from "/pkg/session_log.js";
  await init();
  const params = new URLSearchParams(location.search);
  sessionLog.configure({
    endpoint: params.get("endpoint") || "/api/session-log",
    flushIntervalMs: Number(params.get("interval") || 1000),
    maxBatchEvents: Number(params.get("batch") || 50),
    retryBaseMs: 200,
    retryMaxMs: 1000,
    flushTimeoutMs: 30000,
  });
  window.sessionLog = sessionLog;
  window.logMany = (from, n, extra) => {
    for (let i = from; i < from + n; i++) sessionLog.logAction(`load_${i}`, { i, ...(extra || {}) });
  };
  window.ready = true;
</script>
"#;

/// Writes a PNG screenshot as `name` in the test artifacts folder (`SESSION_LOG_ARTIFACTS`, which
/// `cargo xtask test` sets to `test-artifacts/` in the workspace).
pub fn save_artifact_png(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let artifacts = std::env::var_os("SESSION_LOG_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("test-artifacts"));
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join(name), png).unwrap();
}

/// Writes `files` (name, text) into a new temporary web root.
pub fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a test page");
    }
    dir
}

/// Page script that records console warnings and uncaught errors in `window.warnings` and
/// `window.errors` (paste it at the top of a test page's module).
pub const RECORDER_JS: &str = r#"
window.warnings = []; window.errors = [];
const warn = console.warn;
console.warn = (...args) => { window.warnings.push(args.join(" ")); warn.apply(console, args); };
window.addEventListener("error", (e) => window.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.errors.push(String(e.reason)));
"#;

/// The instructor token the test servers run with.
pub const INSTRUCTOR_TOKEN: &str = "e2e-instructor-token";

/// Server arguments for a test that posts faster than a page would: the instructor token, and
/// the per-address, per-session and per-key rate limits off.
pub const UNLIMITED: [&str; 10] = [
    "--instructor-token",
    INSTRUCTOR_TOKEN,
    "--rate-limit-ip",
    "0",
    "--rate-limit-session",
    "0",
    "--rate-limit-key",
    "0",
    "--auth-failure-limit",
    "0",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A path from the environment (set by `cargo xtask test`), else `fallback`; panics when missing.
fn required_path(var: &str, fallback: PathBuf, what: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or(fallback);
    assert!(
        path.exists(),
        "{what} not found at {} (set {var}, or run `cargo xtask test`, which builds and installs it)",
        path.display()
    );
    path
}

/// The built npm package (`SESSION_LOG_PKG`, else `client-wasm/pkg`); panics when it is not built.
pub fn package_dir() -> PathBuf {
    let pkg = required_path("SESSION_LOG_PKG", workspace().join("client-wasm/pkg"), "the built client package");
    assert!(
        pkg.join("session_log.js").is_file(),
        "the client package in {} is not built: run `cargo xtask build`",
        pkg.display()
    );
    pkg
}

/// The pinned npm tools' `node_modules/.bin` (`cargo xtask` installs them in `xtask/js`).
pub fn node_tools() -> PathBuf {
    required_path("SESSION_LOG_NODE_TOOLS", workspace().join("xtask/js/node_modules/.bin"), "the npm tools (tsc)")
}

/// The `session-log-server` binary (`SESSION_LOG_SERVER_BIN`, else `target/debug`); panics when
/// it is not built.
pub fn server_bin() -> PathBuf {
    required_path(
        "SESSION_LOG_SERVER_BIN",
        workspace().join("target/debug/session-log-server"),
        "the session-log-server binary",
    )
}

/// The server binary, started with a temporary database; killed on drop.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The instructor token printed at start, when the server generated one.
    pub generated_token: Option<String>,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `session-log-server` serving the demo (`www/`) and the client package, with a
    /// temporary database and [`INSTRUCTOR_TOKEN`].
    pub fn start() -> Server {
        package_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("events.db");
        let mut server = Server::start_with(&db, &["--instructor-token", INSTRUCTOR_TOKEN]);
        server._dir = Some(dir);
        server
    }

    /// Starts the binary on port 0 (unless `extra_args` has `--bind`) with the database file `db`
    /// and extra arguments; it serves the demo and the client package when they exist.
    pub fn start_with(db: &Path, extra_args: &[&str]) -> Server {
        Server::start_with_env(db, extra_args, &[])
    }

    /// [`Server::start_with`], with environment variables set for the server.
    pub fn start_with_env(db: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let bin = server_bin();
        let www = std::env::var_os("SESSION_LOG_WWW").map(PathBuf::from).unwrap_or_else(|| workspace().join("www"));
        let pkg = std::env::var_os("SESSION_LOG_PKG")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("client-wasm/pkg"));
        let bind: &[&str] = if extra_args.contains(&"--bind") { &[] } else { &["--bind", "127.0.0.1:0"] };
        let mut command = Command::new(&bin);
        command.args(bind).args(extra_args).arg("--db").arg(db);
        if !extra_args.contains(&"--www") {
            command.arg("--www").arg(&www);
        }
        if !extra_args.contains(&"--pkg") {
            command.arg("--pkg").arg(&pkg);
        }
        let mut child = command
            .env("SESSION_LOG_LOG", "warn")
            .env_remove("SESSION_LOG_INSTRUCTOR_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut token = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, generated)) = line.split_once("instructor token (generated") {
                    token = generated.rsplit(' ').next().map(str::to_owned);
                }
                if let Some(url) = line.strip_prefix("session-log-server listening on ") {
                    let _ = sender.send((url.trim().to_owned(), token.take()));
                }
            }
        });
        let (url, generated_token) =
            receiver.recv_timeout(Duration::from_secs(30)).expect("the server did not print its address within 30 s");
        Server { url, generated_token, child, _dir: None }
    }

    /// Starts the binary serving `www` with a temporary database and [`INSTRUCTOR_TOKEN`], plus
    /// `extra` arguments.
    pub fn serving(www: &Path, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["--instructor-token", INSTRUCTOR_TOKEN, "--www", www.to_str().expect("UTF-8 path")];
        args.extend_from_slice(extra);
        let mut server = Server::start_with(&dir.path().join("events.db"), &args);
        server._dir = Some(dir);
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and waits (up to 20 s) for the process to exit; returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// POSTs one JSON body to `/api/session-log`; returns the status and the JSON answer.
    pub fn post(&self, body: &Value) -> (u16, Value) {
        let mut response = ureq::post(&format!("{}/api/session-log", self.url))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("POST /api/session-log");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).expect("JSON"))
    }

    /// Waits (up to `seconds`) until the session has `count` events stored; returns its events.
    pub async fn wait_for_events(&self, session_token: &str, count: u64, seconds: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let answer = self.events(&format!("sessionToken={session_token}&limit=1000"));
            if answer["count"].as_u64() >= Some(count) || Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one sample of `/metrics` (0 when absent).
    pub fn metric(&self, sample: &str) -> f64 {
        self.metric_through(&ureq::Agent::new_with_defaults(), sample)
    }

    /// [`Server::metric`] through `agent` (for example one that trusts a test certificate).
    pub fn metric_through(&self, agent: &ureq::Agent, sample: &str) -> f64 {
        let text = agent
            .get(&format!("{}/metrics", self.url))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// `GET /api/session-log?<query>` with [`INSTRUCTOR_TOKEN`]; panics unless it answers 200.
    pub fn events(&self, query: &str) -> Value {
        self.events_as(INSTRUCTOR_TOKEN, query)
    }

    /// `GET /api/session-log?<query>` with `token`; panics unless it answers 200.
    pub fn events_as(&self, token: &str, query: &str) -> Value {
        self.get_as(token, &format!("/api/session-log?{query}"))
    }

    /// `GET <path>` (with its query) with `token`; panics unless it answers 200 with JSON.
    pub fn get_as(&self, token: &str, path: &str) -> Value {
        let mut response = ureq::get(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let text = response.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).expect("JSON")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with its own empty profile; ChromeDriver is killed on drop.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// axe-core's serious and critical violations on the page, as "rule: target" lines.
    pub async fn axe_violations(&self) -> Vec<String> {
        let axe = node_tools().join("../axe-core/axe.min.js");
        let source =
            std::fs::read_to_string(&axe).unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask test`)", axe.display()));
        self.run(&source, vec![]).await;
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] }).then((r) => done(r.violations
                   .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                   .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(' ')}: ${n.failureSummary}`))));",
                vec![],
            )
            .await
            .expect("axe.run");
        found.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    /// Starts ChromeDriver on a free loopback port and opens a headless Chromium through it.
    pub async fn start() -> Browser {
        Browser::start_with_args(&[]).await
    }

    /// [`Browser::start`] with more Chromium flags (for example
    /// `--ignore-certificate-errors-spki-list=…`, to trust a test's certificate).
    pub async fn start_with_args(extra: &[String]) -> Browser {
        let driver_bin = required_path("CHROMEDRIVER", "/usr/bin/chromedriver".into(), "ChromeDriver");
        let chrome = required_path("CHROME_BIN", "/usr/bin/chromium".into(), "Chromium");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let profile = tempfile::tempdir().expect("profile dir");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chrome,
                // The flags this machine needs (see the env notes): no sandbox as root, and no
                // background networking, which the closed network refuses.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        });
        let mut capabilities = capabilities;
        capabilities["goog:chromeOptions"]["args"].as_array_mut().expect("args").extend(extra.iter().map(|a| json!(a)));
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connected = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match connected {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => panic!("cannot open Chromium through ChromeDriver: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Clicks the element matching a CSS selector. A page that re-renders between the find and
    /// the click (the dashboard redraws its lists when data arrives) leaves a stale element: the
    /// element is found again, at most 5 times.
    pub async fn click(&self, selector: &str) {
        for attempt in 1.. {
            let element = self.client.find(Locator::Css(selector)).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
            match element.click().await {
                Ok(_) => return,
                Err(e) if attempt < 5 && e.to_string().contains("stale element") => continue,
                Err(e) => panic!("click {selector}: {e}"),
            }
        }
    }

    /// Replaces the text of an input.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let input = self.client.find(Locator::Css(selector)).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its result.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Opens `url`, waits (up to 20 s) for `window.done`, and returns `window.result`.
    pub async fn result_of(&self, url: &str) -> Value {
        self.client.goto(url).await.expect("open the page");
        self.wait_until("return window.done === true").await;
        self.run("return window.result", vec![]).await
    }

    /// Waits (up to 20 s) until `script` returns true in the page.
    pub async fn wait_until(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Value::Bool(true)) = self.client.execute(script, vec![]).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never true in the page: {script}");
    }

    /// Waits (up to 20 s) until the element's text satisfies `done`, and returns it.
    pub async fn wait_for_text(&self, selector: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(selector)).await {
                if let Ok(text) = element.text().await {
                    if done(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{selector} never showed the expected text; last: {last:?}");
    }

    /// Ends the browser session.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
