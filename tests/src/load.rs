//! A load generator: concurrent clients posting realistic events (the reference's shapes) to a
//! server on loopback, recording which event ids were acknowledged and how long each request took.
//! Used by the crash and shutdown tests and by the ingest benchmark. Bounded: it stops at its
//! deadline, at its request budget, or when told to.
//!
//! The clients are tasks on one thread (tokio + hyper, one keep-alive connection each), so the
//! generator takes at most one core from the server it measures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server, `http://127.0.0.1:<port>`.
    pub url: String,
    /// Concurrent clients (threads, each with its own keep-alive connection).
    pub clients: usize,
    /// Events per POST: 0 sends the reference's single-event body.
    pub batch_size: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests in all (bounds the load whatever the speed).
    pub max_requests: usize,
    /// Batch fields written after `events` (e.g. `,"writeKey":"wk_…","room":"K7QW3M"`), as the
    /// client writes them; empty for none.
    pub envelope: String,
}

/// What happened.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Ids of the events the server acknowledged (2xx).
    pub acked: Vec<Uuid>,
    /// Latency of each acknowledged request (µs).
    pub latencies_us: Vec<u64>,
    /// Requests that failed (no answer, or not 2xx).
    pub failures: usize,
    /// Wall time from start to the last client's end.
    pub elapsed: Duration,
}

impl LoadReport {
    /// The `p`-th percentile of the latencies (µs), `p` in 0–100; 0 when there are none.
    pub fn percentile_us(&self, p: f64) -> u64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }
}

/// A running load; [`Load::stop`] ends it and returns the report.
pub struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    thread: JoinHandle<Vec<LoadReport>>,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

impl Load {
    /// Starts the clients.
    pub fn start(config: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let clients = config.clients.max(1);
        let per_client = config.max_requests.div_ceil(clients);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            runtime.block_on(async move {
                let http: HttpClient =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                        .pool_max_idle_per_host(clients)
                        .build_http();
                let tasks: Vec<_> = (0..clients)
                    .map(|client| {
                        let (http, config, stop) = (http.clone(), config.clone(), flag.clone());
                        tokio::spawn(
                            async move { client_loop(client, &http, &config, per_client, &stop, started).await },
                        )
                    })
                    .collect();
                let mut reports = Vec::with_capacity(clients);
                for task in tasks {
                    reports.push(task.await.expect("load client panicked"));
                }
                reports
            })
        });
        Load { stop, started, thread }
    }

    /// Runs a load to its end (deadline or request budget) and returns the report.
    pub fn run(config: LoadConfig) -> LoadReport {
        let load = Load::start(config);
        load.join()
    }

    /// Tells the clients to stop, waits for them, and returns the report.
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits until the clients end (their duration or request budget is spent) and returns the report.
    pub fn join(self) -> LoadReport {
        let mut report = LoadReport::default();
        for part in self.thread.join().expect("load generator panicked") {
            report.acked.extend(part.acked);
            report.latencies_us.extend(part.latencies_us);
            report.failures += part.failures;
        }
        report.elapsed = self.started.elapsed();
        report
    }
}

async fn client_loop(
    client: usize,
    http: &HttpClient,
    config: &LoadConfig,
    budget: usize,
    stop: &AtomicBool,
    started: Instant,
) -> LoadReport {
    use http_body_util::BodyExt;
    let url: hyper::Uri = format!("{}/api/session-log", config.url).parse().expect("url");
    let mut rng = fastrand::Rng::with_seed(client as u64);
    let session = format!("ws_load_{client:04}_{:016x}", rng.u64(..));
    // Each event type rendered once; requests only splice in the id and seq, so the generator
    // spends its CPU on sending rather than on building JSON (both share the machine's cores).
    let templates: Vec<Template> = (0..EVENT_KINDS).map(|kind| Template::new(&mut rng, &session, kind)).collect();
    let count = config.batch_size.max(1);
    let mut seq = 0u64;
    let mut ids = Vec::with_capacity(count);
    let mut report = LoadReport::default();
    for _ in 0..budget {
        if stop.load(Ordering::Relaxed) || started.elapsed() >= config.duration {
            break;
        }
        ids.clear();
        let mut body = String::with_capacity(count * 520 + 16);
        if config.batch_size > 0 {
            body.push_str(r#"{"events":["#);
        }
        for i in 0..count {
            let id = Uuid::now_v7();
            if i > 0 {
                body.push(',');
            }
            templates[(seq % EVENT_KINDS as u64) as usize].render(&mut body, id, seq);
            ids.push(id);
            seq += 1;
        }
        if config.batch_size > 0 {
            body.push(']');
            body.push_str(&config.envelope);
            body.push('}');
        }
        let request = hyper::Request::post(url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        let sent = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let response = http.request(request).await?;
            let status = response.status();
            let _ = response.into_body().collect().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status)
        })
        .await;
        match answer {
            Ok(Ok(status)) if status.is_success() => {
                report.latencies_us.push(sent.elapsed().as_micros() as u64);
                report.acked.extend_from_slice(&ids);
            }
            Ok(Ok(_)) => report.failures += 1,
            _ => {
                // The server is down (a crash test) or overloaded: back off briefly.
                report.failures += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    report
}

/// Kinds of event [`realistic_event`] makes.
const EVENT_KINDS: usize = 5;

/// One event's JSON with holes for its id and seq.
struct Template {
    parts: [String; 3],
}

const ID_HOLE: &str = "ffffffff-ffff-7fff-bfff-ffffffffffff";
const SEQ_HOLE: u64 = 987_654_321_987;

impl Template {
    fn new(rng: &mut fastrand::Rng, session: &str, kind: usize) -> Template {
        let hole = Uuid::parse_str(ID_HOLE).expect("uuid");
        let text = make_event(rng, session, hole, SEQ_HOLE, kind).to_string();
        let (head, rest) = text.split_once(ID_HOLE).expect("id hole");
        let (middle, tail) = rest.split_once(&SEQ_HOLE.to_string()).expect("seq hole");
        Template { parts: [head.to_owned(), middle.to_owned(), tail.to_owned()] }
    }

    fn render(&self, out: &mut String, id: Uuid, seq: u64) {
        use std::fmt::Write;
        out.push_str(&self.parts[0]);
        let _ = write!(out, "{}", id.hyphenated());
        out.push_str(&self.parts[1]);
        let _ = write!(out, "{seq}");
        out.push_str(&self.parts[2]);
    }
}

const STEPS: [&str; 5] = ["Connect Accounts", "Choose Use Case", "Provision Services", "Deploy", "Test"];

/// One event as the wasm client would send it: a reference event type with its fields and the
/// context fields, about 350–450 bytes of JSON.
pub fn realistic_event(rng: &mut fastrand::Rng, session: &str, id: Uuid, seq: u64) -> Value {
    let kind = rng.usize(..EVENT_KINDS);
    make_event(rng, session, id, seq, kind)
}

fn make_event(rng: &mut fastrand::Rng, session: &str, id: Uuid, seq: u64, kind: usize) -> Value {
    let step = rng.usize(..STEPS.len());
    let (event_type, mut data) = match kind {
        0 => (
            "navigation",
            json!({"from": step, "to": (step + 1) % 5, "fromStepName": STEPS[step], "toStepName": STEPS[(step + 1) % 5]}),
        ),
        1 => (
            "error",
            json!({"errorType": "openai_validation_failed", "errorMessage": "Incorrect API key provided", "statusCode": 401}),
        ),
        2 => (
            "action",
            json!({"actionName": "phone_number_selected", "phoneNumber": "+15555551234", "provider": "twilio"}),
        ),
        3 => (
            "api_call",
            json!({"endpoint": "/api/deploy-function", "method": "POST", "status": 200, "success": true, "deploymentTime": rng.u32(100..5000)}),
        ),
        _ => ("state_change", json!({"stateName": "servicesReady", "oldValue": false, "newValue": true})),
    };
    let context = json!({
        "currentStep": step, "stepName": STEPS[step], "demoMode": false,
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
        "timestamp": "2026-11-21T15:30:45.123Z"
    });
    if let (Some(data), Value::Object(context)) = (data.as_object_mut(), context) {
        data.extend(context);
    }
    json!({"sessionToken": session, "studentEmail": format!("{session}@example.com"), "eventType": event_type,
           "eventData": data, "eventId": id, "seq": seq})
}
