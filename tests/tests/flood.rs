//! A help-request flood in a real room, as an instructor sees it in headless Chromium against the
//! real server (behind a trusted proxy, so students and the attacker have addresses of their
//! own): 24 students, errors, one real help request, then 300 help requests under made-up
//! sessions from one address, each phishing the instructor. The real request stays pinned, the
//! flood is one flagged line with a Mute button, at most a few toasts show and none of the
//! phishing text stays on screen, on desktop and on a phone (390 × 844). Screenshots go to
//! test-artifacts/.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_log_e2e::{save_artifact_png, Browser, Server, INSTRUCTOR_TOKEN, UNLIMITED};

const PHISHING: &str = "Instructor: your token expired, re-enter it at https://evil.example/login";

fn event(token: &str, event_type: &str, data: Value) -> Value {
    json!({"sessionToken": token, "studentEmail": format!("{}@example.com", token.replace("ws_", "")),
           "eventType": event_type, "eventData": data})
}

/// POSTs `events` as a batch from client address `from` (through the trusted proxy header).
fn post_from(url: &str, from: &str, events: Vec<Value>) -> u16 {
    ureq::post(&format!("{url}/api/session-log"))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .header("X-Forwarded-For", from)
        .send(json!({ "events": events }).to_string().as_bytes())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn open_alerts(server: &Server) -> Vec<Value> {
    server.get_as(INSTRUCTOR_TOKEN, "/api/alerts")["alerts"].as_array().unwrap().clone()
}

// The flood is one flagged line, the real request stays pinned, few toasts, no phishing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_help_request_flood_does_not_take_over_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let args = [&UNLIMITED[..], &["--trusted-proxy", "127.0.0.1/32"]].concat();
    let server = Server::start_with(&dir.path().join("events.db"), &args);
    // The room: 24 students on steps 0–2 (each from an address of the classroom's NAT range),
    // three with the same error, and one real help request.
    for n in 0..24 {
        let token = format!("ws_student_{n:02}");
        let mut events = vec![event(&token, "navigation", json!({"from": 0, "to": n % 3, "toStepName": "Step"}))];
        if n < 3 {
            events.push(event(
                &token,
                "error",
                json!({"errorType": "twilio_auth_failed", "errorMessage": "Authenticate"}),
            ));
        }
        assert_eq!(post_from(&server.url, &format!("203.0.113.{}", n + 10), events), 200);
    }
    let help = event("ws_student_05", "help_request", json!({"message": "Provisioning fails with 403, what do I do?"}));
    assert_eq!(post_from(&server.url, "203.0.113.15", vec![help]), 200);

    let browser = Browser::start().await;
    browser.client.set_window_size(1280, 900).await.expect("desktop size");
    browser.client.goto(&format!("{}/dashboard", server.url)).await.expect("open the dashboard");
    browser.type_into("#token", INSTRUCTOR_TOKEN).await;
    browser.click("#token-form button[type=submit]").await;
    browser.wait_for_text("#live", |t| t == "live").await;
    browser.wait_for_text("#help-list", |t| t.contains("Provisioning fails")).await;

    // The flood, in one POST from one address.
    let flood: Vec<Value> =
        (0..300).map(|i| event(&format!("ws_fake_{i:03}"), "help_request", json!({"message": PHISHING}))).collect();
    assert_eq!(post_from(&server.url, "198.51.100.9", flood), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !open_alerts(&server).iter().any(|a| a["rule"] == "help_flood" && a["count"] == 300) {
        assert!(Instant::now() < deadline, "no help_flood of 300 within 30 s: {:#?}", open_alerts(&server));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.wait_for_text("#alert-list", |t| t.contains("Help flood") && t.contains("300 help requests")).await;
    // Only the real request is pinned, and the phishing text is nowhere on screen (toasts, the
    // pinned list, the resolved requests folded into the flood).
    browser
        .wait_until(
            "return document.querySelectorAll('#help-list li').length === 1
                && !document.body.textContent.includes('evil.example')",
        )
        .await;
    let pinned = browser.run("return document.querySelector('#help-list').textContent", vec![]).await;
    assert!(pinned.as_str().unwrap().contains("Provisioning fails"), "{pinned}");
    let toasts = browser.run("return document.querySelectorAll('#toasts .toast').length", vec![]).await;
    assert!(toasts.as_u64().unwrap() <= 4, "{toasts} toasts");
    save_artifact_png("flood-desktop.png", &browser.client.screenshot().await.expect("screenshot"));

    browser.client.set_window_size(390, 844).await.expect("phone size");
    let sideways = browser.run("return document.documentElement.scrollWidth > window.innerWidth", vec![]).await;
    assert_eq!(sideways, false, "nothing scrolls sideways on a phone");
    save_artifact_png("flood-phone.png", &browser.client.screenshot().await.expect("screenshot"));

    // Mute the flood: it resolves, says muted, and the address's next requests raise nothing.
    browser.client.set_window_size(1280, 900).await.expect("desktop size");
    browser.click("#alert-list li.warning button.mute").await;
    browser.wait_for_text("#alert-list", |t| t.contains("muted")).await;
    assert!(!open_alerts(&server).iter().any(|a| a["rule"] == "help_flood"));
    browser.close().await;
}
