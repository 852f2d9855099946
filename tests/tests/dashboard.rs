//! The instructor dashboard in headless Chromium against the real server: sessions, a timeline,
//! live updates, and hostile event data rendered inert.

use fantoccini::Locator;
use serde_json::{json, Value};
use session_log_e2e::{save_artifact_png, Browser, Server, INSTRUCTOR_TOKEN};

fn event(token: &str, email: Option<&str>, event_type: &str, data: Value) -> Value {
    let mut e = json!({"sessionToken": token, "eventType": event_type, "eventData": data});
    if let Some(email) = email {
        e["studentEmail"] = json!(email);
    }
    e
}

const HOSTILE: &str = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>";

// An instructor enters the token and sees the sessions posted by the test; a click shows the
// session's timeline (saved as test-artifacts/dashboard-timeline.png) with its events listed;
// a student's hostile eventData shows as text; new events appear live, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_sessions_timeline_and_live_updates() {
    let server = Server::start();
    let ada = Some("ada@example.com");
    let t = |s: u32| format!("2026-11-21T09:{:02}:{:02}.000Z", s / 60, s % 60);
    let (status, _) = server.post(&json!({"events": [
        event("ws_dash_ada", ada, "action", json!({"actionName": "start", "currentStep": 0, "stepName": "Connect Accounts", "timestamp": t(0)})),
        event("ws_dash_ada", ada, "error", json!({"errorType": "openai_validation_failed", "errorMessage": HOSTILE, "currentStep": 0, "timestamp": t(30)})),
        event("ws_dash_ada", ada, "navigation", json!({"from": 0, "to": 1, "toStepName": "Choose Use Case", "timestamp": t(90)})),
        event("ws_dash_ada", ada, "api_call", json!({"endpoint": "/deploy", "status": 500, "success": false, "currentStep": 1, "timestamp": t(150)})),
        event("ws_dash_ada", ada, "navigation", json!({"from": 1, "to": 2, "toStepName": "Provision Services", "timestamp": t(200)})),
        event("ws_dash_ada", ada, "action", json!({"actionName": HOSTILE, HOSTILE: HOSTILE, "currentStep": 2, "timestamp": t(240)})),
        event("ws_dash_bob", Some("bob@example.com"), "action", json!({"currentStep": 0})),
    ]}));
    assert_eq!(status, 200);

    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/dashboard", server.url)).await.expect("open the dashboard");
    browser.type_into("#token", INSTRUCTOR_TOKEN).await;
    browser.click("#token-form button[type=submit]").await;
    browser.wait_for_text("#live", |t| t == "live").await;
    browser.wait_until("return document.querySelectorAll('#sessions tbody tr').length === 2").await;
    let row = browser.wait_for_text("tr[data-session=ws_dash_ada]", |t| t.contains("ada@example.com")).await;
    assert!(row.contains("2 · Provision Services"), "current step shown: {row}");
    let flagged = browser
        .run("return document.querySelector('tr[data-session=ws_dash_ada]').classList.contains('has-errors')", vec![])
        .await;
    assert_eq!(flagged, true, "a session with errors is highlighted");
    browser.wait_for_text("#errors tbody", |t| t.contains("openai_validation_failed")).await;
    browser.wait_for_text("#funnel", |t| t.contains("Choose Use Case")).await;

    // The timeline: the step line, an error marker and a failed-API marker, and the events below.
    browser.click("tr[data-session=ws_dash_ada]").await;
    browser.wait_until("return document.querySelectorAll('#events tbody tr').length === 6").await;
    let markers = browser
        .run(
            "const s = document.querySelector('#timeline');
             return [s.querySelectorAll('polyline.steps').length, s.querySelectorAll('circle.error').length,
                     s.querySelectorAll('path.api').length];",
            vec![],
        )
        .await;
    assert_eq!(markers, json!([1, 1, 1]));
    let listed = browser.wait_for_text("#events tbody", |t| t.contains("window.__xss")).await;
    assert!(listed.contains("<img src=x onerror="), "hostile data is shown as text: {listed}");
    let inert = browser
        .run(
            "return [document.querySelectorAll('#board img, #board script').length, window.__xss === undefined];",
            vec![],
        )
        .await;
    assert_eq!(inert, json!([0, true]), "no element was made from event data and no script ran");

    save_artifact("dashboard-timeline.png", &browser, "#detail").await;

    // Live: a new session and a new event of the open session appear without a reload.
    let (status, _) = server.post(&json!({"events": [
        event("ws_dash_cy", Some("cy@example.com"), "action", json!({"currentStep": 0})),
        event("ws_dash_ada", ada, "error", json!({"errorType": "late_failure", "currentStep": 2})),
    ]}));
    assert_eq!(status, 200);
    browser.wait_for_text("tr[data-session=ws_dash_cy]", |t| t.contains("cy@example.com")).await;
    browser.wait_for_text("#events tbody", |t| t.contains("late_failure")).await;
    browser.wait_until("return document.querySelectorAll('#timeline circle.error').length === 2").await;
    browser.close().await;
}

/// Saves a PNG screenshot of `selector` as `name` in the test artifacts folder.
async fn save_artifact(name: &str, browser: &Browser, selector: &str) {
    let element = browser.client.find(Locator::Css(selector)).await.unwrap();
    save_artifact_png(name, &element.screenshot().await.expect("screenshot"));
}

// An error burst with a hostile errorType shows as a toast within a few seconds and in the
// alerts panel (with the tab title's count), inert; a help request is pinned above it, and
// acknowledging it resolves it; clicking the burst opens its session. Saved as test-artifacts/dashboard-alerts.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_alerts_toast_acknowledge_and_stay_inert() {
    let server = Server::start();
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/dashboard", server.url)).await.expect("open the dashboard");
    browser.type_into("#token", INSTRUCTOR_TOKEN).await;
    browser.click("#token-form button[type=submit]").await;
    browser.wait_for_text("#live", |t| t == "live").await;
    browser.wait_for_text("#alert-count", |t| t.contains("none open")).await;

    let ada = Some("ada@example.com");
    let error = || event("ws_alert_ada", ada, "error", json!({"errorType": HOSTILE, "currentStep": 1}));
    let (status, _) = server.post(&json!({"events": [error(), error(), error()]}));
    assert_eq!(status, 200);
    let started = std::time::Instant::now();
    let toast = browser.wait_for_text("#toasts", |t| t.contains("Error burst")).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the toast came within a few seconds");
    assert!(toast.contains("ws_alert_ada"), "{toast}");
    browser.wait_for_text("#alert-count", |t| t.contains("1 open")).await;
    let title = browser.run("return document.title", vec![]).await;
    assert!(title.as_str().unwrap().starts_with("(1) "), "the tab title counts open alerts: {title}");
    let panel = browser.wait_for_text("#alert-list", |t| t.contains("ada@example.com")).await;
    assert!(panel.contains("Error burst"), "{panel}");

    // A help request with a hostile message: text in the panel, no element made, no script run.
    let (status, _) = server.post(&event("ws_alert_ada", ada, "help_request", json!({"message": HOSTILE})));
    assert_eq!(status, 200);
    browser.wait_for_text("#help-list", |t| t.contains("window.__xss")).await;
    let inert = browser
        .run("return [document.querySelectorAll('#alerts img, #alerts script, #toasts img, #toasts script').length, window.__xss === undefined];", vec![])
        .await;
    assert_eq!(inert, json!([0, true]), "alert text stays text");
    save_artifact("dashboard-alerts.png", &browser, "#alerts").await;

    // Acknowledge the help request, pinned above the other alerts: it resolves.
    browser.click("#help-list li button.ack").await;
    browser
        .wait_until("return [...document.querySelectorAll('#alert-list li.resolved')].some((li) => li.textContent.includes('Help request') && li.textContent.includes('acknowledged'))")
        .await;
    // Clicking the burst opens the session's timeline.
    browser.run("[...document.querySelectorAll('#alert-list li')].find((li) => li.textContent.includes('Error burst')).querySelector('button.message').click()", vec![]).await;
    browser.wait_for_text("#detail-token", |t| t == "ws_alert_ada").await;
    browser.close().await;
}

// A wrong token is refused with a message, and the token form stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_refuses_a_wrong_token() {
    let server = Server::start();
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/dashboard/", server.url)).await.expect("open the dashboard");
    browser.type_into("#token", "not-the-token").await;
    browser.click("#token-form button[type=submit]").await;
    browser.wait_for_text("#token-error", |t| t.contains("refused")).await;
    let stored = browser.run("return sessionStorage.getItem('session-log:instructor-token')", vec![]).await;
    assert_eq!(stored, Value::Null, "a refused token is not kept");
    browser.close().await;
}
