//! The edges a hostile client reaches first, against a real server: security headers on every
//! response, a POST from an origin `--allowed-origin` does not list, a body that trickles in, and
//! origin settings checked before the server serves.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{event, TestServer, TOKEN};
use serde_json::json;

/// `GET path` with the instructor token: the status and the response headers.
fn headers_of(server: &TestServer, path: &str) -> (u16, ureq::http::HeaderMap) {
    let response = server
        .agent
        .get(&format!("{}{path}", server.url))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

fn header<'a>(headers: &'a ureq::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// The dashboard cannot be framed and runs only its own scripts; the API's answers are never a
// document to run; every answer has nosniff and no-referrer.
#[test]
fn every_response_carries_security_headers() {
    let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    let server = TestServer::start_with(|c| c.www_dir = Some(www));
    let (status, dashboard) = headers_of(&server, "/dashboard/");
    assert_eq!(status, 200);
    let csp = header(&dashboard, "content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&dashboard, "x-frame-options"), Some("DENY"));
    let (status, api) = headers_of(&server, "/api/session-log?sessionToken=ws_x");
    assert_eq!(status, 200);
    assert_eq!(header(&api, "content-security-policy"), Some("default-src 'none'; frame-ancestors 'none'"));
    for path in ["/dashboard/", "/api/session-log?sessionToken=ws_x", "/healthz", "/"] {
        let (_, headers) = headers_of(&server, path);
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(header(&headers, "strict-transport-security"), None, "plain HTTP: {path}");
    }
}

// With --allowed-origin set, a browser POST from another origin is refused with 403 and a JSON
// error naming the origin, and nothing is stored; the listed origin and origin-less clients (curl)
// are stored.
#[test]
fn a_post_from_an_origin_not_allowed_stores_nothing() {
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["https://Workshop.example".into()]);
    let body = serde_json::to_vec(&event("ws_origin", "action", json!({"actionName": "a"}))).unwrap();
    let post = |origin: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        server.request("POST", "/api/session-log", &headers, &body)
    };
    let refused = post(Some("https://evil.example"));
    assert_eq!(refused.status, 403);
    assert!(refused.json()["error"].as_str().unwrap().contains("https://evil.example"), "{}", refused.text);
    assert_eq!(server.stored_rows(), 0);
    assert_eq!(post(Some("https://workshop.example")).status, 200);
    assert_eq!(post(None).status, 200);
    assert_eq!(server.stored_rows(), 2);
}

// A body that stops arriving is answered 408 at the deadline, with a JSON error, and the server
// keeps serving.
#[test]
fn a_trickled_body_times_out() {
    let server = TestServer::start_with(|c| c.body_timeout = Duration::from_secs(1));
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        stream,
        "POST /api/session-log HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{"
    )
    .unwrap();
    let mut answer = String::new();
    let mut buffer = [0u8; 4096];
    while !answer.contains("\r\n\r\n{") {
        let n = stream.read(&mut buffer).expect("the server answers before the read timeout");
        assert!(n > 0, "the connection closed without an answer: {answer:?}");
        answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert_eq!(server.stored_rows(), 0);
    assert_eq!(server.post(&event("ws_after", "action", json!({}))).0, 200, "still serving");
}

// An origin setting that is not an origin stops `run` before it serves, naming the value; `*`
// allows every origin.
#[test]
fn origin_settings_are_checked_before_serving() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = session_log_server::Config {
        instructor_tokens: vec![TOKEN.into()],
        allowed_origins: vec!["https://workshop.example/path".into()],
        ..session_log_server::Config::default()
    };
    let outcome = actix_web::rt::System::new().block_on(session_log_server::run(listener, config, async {}));
    let error = outcome.expect_err("an invalid origin is refused").to_string();
    assert!(error.contains("https://workshop.example/path"), "{error}");
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["*".into()]);
    let answer = server.request(
        "POST",
        "/api/session-log",
        &[("Content-Type", "application/json"), ("Origin", "https://any.example")],
        &serde_json::to_vec(&event("ws_star", "action", json!({}))).unwrap(),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.allow_origin.as_deref(), Some("https://any.example"));
}

// An address that keeps presenting wrong tokens is refused with 429 and Retry-After for the rest
// of the minute, before its token is compared (the right token too); /healthz and ingest are not
// affected.
#[test]
fn wrong_tokens_are_slowed_per_address() {
    let server = TestServer::start_with(|c| c.auth_failure_limit = 5);
    let wrong = [("Authorization", "Bearer not-the-token")];
    for _ in 0..5 {
        assert_eq!(server.request("GET", "/api/sessions", &wrong, b"").status, 401);
    }
    let slowed = server.request("GET", "/api/sessions", &wrong, b"");
    assert_eq!(slowed.status, 429, "{}", slowed.text);
    let wait: u64 = slowed.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(slowed.json()["error"].as_str().unwrap().contains("failed authentications"), "{}", slowed.text);
    assert_eq!(server.as_instructor("GET", "/api/sessions").status, 429, "the right token waits too");
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    assert_eq!(server.post(&event("ws_still", "action", json!({}))).0, 200);
}

// Webhooks go over HTTPS to public addresses only: an http:// or loopback target stops `run`
// before it serves, naming the URL, unless private targets are allowed.
#[test]
fn webhook_targets_are_checked_before_serving() {
    for url in ["http://hooks.example.com/x", "https://127.0.0.1:9/hook", "https://[::1]/hook"] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = session_log_server::Config {
            instructor_tokens: vec![TOKEN.into()],
            alert_webhooks: vec![url.into()],
            ..session_log_server::Config::default()
        };
        let outcome = actix_web::rt::System::new().block_on(session_log_server::run(listener, config, async {}));
        let error = outcome.expect_err("refused").to_string();
        assert!(error.contains(url), "{error}");
    }
    let server = TestServer::start_with(|c| {
        c.alert_webhooks = vec!["http://127.0.0.1:9/hook".into()];
        c.alert_webhook_allow_private = true;
    });
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
}
