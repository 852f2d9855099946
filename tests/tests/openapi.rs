//! The OpenAPI document is true: schemathesis (from PyPI, every check) generates requests from
//! `GET /api/openapi.json` and the real server answers each as the document says, on loopback.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_log_e2e::{Server, INSTRUCTOR_TOKEN, UNLIMITED};

/// A room for the answers to have every shape: six students on steps 0–2 with names, errors
/// (an `error_burst` and an `error_pattern`), failed API calls, one finished, and a help request.
fn seed_room(server: &Server) {
    let mut events = Vec::new();
    for n in 0..6 {
        let token = format!("ws_openapi_{n}");
        let who = json!({"sessionToken": token, "studentEmail": format!("student{n}@example.com"), "studentName": format!("Student {n}")});
        let event = |event_type: &str, data: Value| {
            let mut e = who.clone();
            e["eventType"] = json!(event_type);
            e["eventData"] = data;
            e
        };
        events.push(event("navigation", json!({"from": 0, "to": 1, "toStepName": "Choose Use Case"})));
        events.push(event("navigation", json!({"from": 1, "to": 2, "toStepName": "Provision Services"})));
        for _ in 0..3 {
            events.push(event(
                "error",
                json!({"errorType": "deploy_timeout", "errorMessage": "timeout", "statusCode": 504, "currentStep": 2}),
            ));
        }
        events.push(event(
            "api_call",
            json!({"endpoint": "/v1/deploy", "method": "POST", "status": 500, "duration": 120, "currentStep": 2}),
        ));
        if n == 0 {
            events.push(event("workshop_completed", json!({"currentStep": 2})));
            events.push(event("help_request", json!({"message": "step 2 fails"})));
        }
    }
    let (status, body) = server.post(&json!({ "events": events }));
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = server.get_as(INSTRUCTOR_TOKEN, "/api/alerts");
        let rules: Vec<&str> = alerts["alerts"].as_array().unwrap().iter().filter_map(|a| a["rule"].as_str()).collect();
        if ["help_request", "error_pattern", "error_burst"].iter().all(|r| rules.contains(r)) {
            break;
        }
        assert!(Instant::now() < deadline, "the room's alerts did not open within 10 s: {rules:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The schemathesis CLI: `SCHEMATHESIS_BIN` (set by `cargo xtask test`, which installs the
/// pinned version), else `st` on the PATH.
fn schemathesis() -> String {
    let bin = std::env::var("SCHEMATHESIS_BIN").unwrap_or_else(|_| "st".to_owned());
    let found = Command::new(&bin).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "schemathesis ({bin}) is missing: run `cargo xtask test` (it installs it) or set SCHEMATHESIS_BIN");
    bin
}

// Every operation, with every check (status codes, schemas of answers and SSE events, 405s with
// Allow for undeclared methods, schema-valid requests accepted and schema-invalid ones refused),
// finds no failure against a server that already holds a room (sessions with steps, errors,
// alerts, students); bounded to 20 examples per operation and 5 minutes.
#[test]
fn schemathesis_finds_no_failure() {
    let bin = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("no-www");
    let www = www.to_str().unwrap();
    let args = [&UNLIMITED[..], &["--www", www, "--pkg", www]].concat();
    let server = Server::start_with(&dir.path().join("events.db"), &args);
    seed_room(&server);
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemathesis.toml");
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/api/openapi.json", server.url), "--url", &server.url])
        .args(["--checks", "all", "--max-examples", "20", "--seed", "20261202", "--request-timeout", "1"])
        .args(["-H", &format!("Authorization: Bearer {INSTRUCTOR_TOKEN}")])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("schemathesis did not finish within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains(" passed"), "no test case ran:\n{report}");
}
