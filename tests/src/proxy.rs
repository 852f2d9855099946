//! A fault-injecting HTTP proxy on loopback, in front of the real server: it forwards every
//! request, except that `POST /api/session-log` can be answered 503 with `Retry-After` for a
//! while, or forwarded and then have its response lost (the connection closes unanswered). It
//! records when each such POST arrived and what it got.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the proxy does to event POSTs.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer 503 with `Retry-After: <secs>` until this long after the first event POST (not
    /// after the proxy started: a browser that is slow to start still meets the outage).
    Unavailable {
        /// The `Retry-After` value (s).
        retry_after_secs: u64,
        /// How long the outage lasts.
        for_: Duration,
    },
    /// Forward the first `count` POSTs (the server commits them) and lose their responses.
    LoseResponses {
        /// How many responses to lose.
        count: usize,
    },
}

/// One `POST /api/session-log` the proxy saw: when (since the proxy started) and the status it
/// answered (0: the response was lost).
#[derive(Debug, Clone, Copy)]
pub struct SeenPost {
    /// Arrival time since the proxy started.
    pub at: Duration,
    /// The status answered (0 for a lost response).
    pub status: u16,
}

struct State {
    upstream: String,
    fault: Fault,
    started: Instant,
    /// When the first event POST arrived.
    first_post: std::sync::OnceLock<Instant>,
    lost: AtomicUsize,
    seen: Mutex<Vec<SeenPost>>,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A running proxy; it stops with the test's runtime.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<State>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:<port>`) on a free loopback port.
    pub async fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            fault,
            started: Instant::now(),
            first_post: std::sync::OnceLock::new(),
            lost: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { url, state }
    }

    /// The event POSTs seen so far.
    pub fn seen(&self) -> Vec<SeenPost> {
        self.state.seen.lock().expect("lock").clone()
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, BoxError> {
    let is_event_post = req.method() == hyper::Method::POST && req.uri().path() == "/api/session-log";
    let at = state.started.elapsed();
    let record = |status: u16| state.seen.lock().expect("lock").push(SeenPost { at, status });
    if is_event_post {
        if let Fault::Unavailable { retry_after_secs, for_ } = state.fault {
            if state.first_post.get_or_init(Instant::now).elapsed() < for_ {
                record(503);
                return Ok(Response::builder()
                    .status(503)
                    .header("Retry-After", retry_after_secs.to_string())
                    .header("Content-Type", "application/json")
                    .body(Full::new(Bytes::from_static(br#"{"success":false,"error":"maintenance"}"#)))?);
            }
        }
    }
    let response = forward(req, &state).await?;
    if is_event_post {
        if let Fault::LoseResponses { count } = state.fault {
            if state.lost.fetch_add(1, Ordering::SeqCst) < count {
                record(0);
                return Err("response lost on purpose".into());
            }
        }
        record(response.status().as_u16());
    }
    Ok(response)
}

async fn forward(req: Request<Incoming>, state: &State) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = Request::builder().method(parts.method.clone()).uri(format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let body = body.collect().await?.to_bytes();
    let response = state.client.request(upstream.body(Full::new(body))?).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
