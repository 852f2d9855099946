//! HTTPS from the binary (`--tls-cert`, `--tls-key`) with certificates made in the test: the demo
//! workshop over HTTPS in headless Chromium posts to the HTTPS endpoint and its events read
//! back; a renewed certificate is served after SIGHUP without a failed request; a bad file at
//! a reload keeps the certificate in force, and at start is an error naming the file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use session_log_e2e::tls::{agent, Pki};
use session_log_e2e::{
    demo_first_steps, demo_last_steps, Browser, Server, DEMO_EVENT_TYPES, INSTRUCTOR_TOKEN, UNLIMITED,
};

fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, Value), String> {
    let mut response = agent
        .get(url)
        .header("Authorization", &format!("Bearer {INSTRUCTOR_TOKEN}"))
        .call()
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn start_https(dir: &Path, cert: &Path, key: &Path) -> Server {
    let args = [&UNLIMITED[..], &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]].concat();
    let server = Server::start_with(&dir.join("events.db"), &args);
    assert!(server.url.starts_with("https://"), "it says it serves HTTPS: {}", server.url);
    server
}

// The demo workshop over HTTPS in Chromium (trusting the test's certificate) posts its events to
// the HTTPS endpoint, and an instructor reads them back over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_over_https_logs_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("demo");
    let (cert, key) = pki.install(dir.path());
    let server = start_https(dir.path(), &cert, &key);
    let browser =
        Browser::start_with_args(&[format!("--ignore-certificate-errors-spki-list={}", pki.spki_sha256)]).await;
    browser.client.goto(&format!("{}/?email=ada@example.com", server.url)).await.expect("open the demo over HTTPS");
    let secure = browser.run("return [location.protocol, window.isSecureContext]", vec![]).await;
    assert_eq!(secure, serde_json::json!(["https:", true]));
    let token = browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    demo_first_steps(&browser).await;
    demo_last_steps(&browser).await;
    let client = agent(&[&pki.ca_der]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let (status, answer) =
            get(&client, &format!("{}/api/session-log?sessionToken={token}&order=asc&limit=100", server.url)).unwrap();
        assert_eq!(status, 200);
        if answer["count"].as_u64() >= Some(DEMO_EVENT_TYPES.len() as u64) || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let types: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, DEMO_EVENT_TYPES, "every event of the demo, posted over HTTPS");
    browser.close().await;
}

// After the certificate files are replaced and the server gets SIGHUP, new connections get the
// renewed certificate, while a client requesting all along sees no failure; a reload from bad
// files keeps the certificate in force.
#[test]
fn sighup_serves_a_renewed_certificate_without_dropping_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let (old, renewed) = (Pki::new("old"), Pki::new("renewed"));
    let (cert, key) = old.install(dir.path());
    let server = start_https(dir.path(), &cert, &key);
    let healthz = format!("{}/healthz", server.url);
    assert!(get(&agent(&[&renewed.ca_der]), &healthz).is_err(), "the renewed authority is not trusted yet");

    // A client trusting both requests without pause (on kept-alive and new connections).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let both = agent(&[&old.ca_der, &renewed.ca_der]);
    let worker = {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), healthz.clone());
        let (old_ca, renewed_ca) = (old.ca_der.clone(), renewed.ca_der.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut errors = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                // Every fifth request on a new connection, the others kept alive.
                let fresh;
                let client = if n % 5 == 0 {
                    fresh = agent(&[&old_ca, &renewed_ca]);
                    &fresh
                } else {
                    &both
                };
                match get(client, &url) {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
            }
            errors
        })
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "not within 20 s: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("requests before the renewal", &|| ok.load(Ordering::Relaxed) >= 20);

    renewed.install(dir.path());
    let hangup = |server: &Server| {
        let status = std::process::Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
        assert!(status.success());
    };
    hangup(&server);
    wait_for("the renewed certificate on a new connection", &|| get(&agent(&[&renewed.ca_der]), &healthz).is_ok());
    let served_after = ok.load(Ordering::Relaxed);
    wait_for("requests after the renewal", &|| ok.load(Ordering::Relaxed) >= served_after + 20);

    // A reload from a broken key keeps the renewed certificate.
    std::fs::write(&key, "not a key").unwrap();
    hangup(&server);
    wait_for("the failed reload counted", &|| {
        server.metric_through(&agent(&[&renewed.ca_der]), "session_log_tls_reloads_total{outcome=\"failed\"}") >= 1.0
    });
    assert!(get(&agent(&[&renewed.ca_der]), &healthz).is_ok(), "the certificate in force stays");
    assert_eq!(server.metric_through(&agent(&[&renewed.ca_der]), "session_log_tls_reloads_total{outcome=\"ok\"}"), 1.0);

    stop.store(true, Ordering::Relaxed);
    let errors = worker.join().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed across the reloads: {errors:?}");
    assert!(ok.load(Ordering::Relaxed) >= 40);
}

// A missing key file at start is an error that names it, and the server exits non-zero.
#[test]
fn a_missing_key_at_start_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = Pki::new("start").install(dir.path());
    let missing = dir.path().join("no-such-key.pem");
    let output = std::process::Command::new(session_log_e2e::server_bin())
        .args(["--bind", "127.0.0.1:0", "--instructor-token", INSTRUCTOR_TOKEN, "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&missing)
        .arg("--db")
        .arg(dir.path().join("events.db"))
        .env_remove("SESSION_LOG_INSTRUCTOR_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-key.pem"), "the error names the file: {stderr}");
}

// Over HTTPS every answer tells browsers to keep to HTTPS (Strict-Transport-Security, one year).
#[test]
fn https_answers_carry_strict_transport_security() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("hsts");
    let (cert, key) = pki.install(dir.path());
    let server = start_https(dir.path(), &cert, &key);
    let client = agent(&[&pki.ca_der]);
    for path in ["/healthz", "/dashboard/", "/api/session-log?sessionToken=ws_x"] {
        let response = client
            .get(&format!("{}{path}", server.url))
            .header("Authorization", &format!("Bearer {INSTRUCTOR_TOKEN}"))
            .call()
            .unwrap();
        let hsts = response.headers().get("strict-transport-security").and_then(|v| v.to_str().ok());
        assert_eq!(hsts, Some("max-age=31536000"), "{path}");
    }
}
