//! A simulated room in the instructor dashboard, as an instructor sees it in headless Chromium
//! against the real server (SQLite, and PostgreSQL): 25 students, 6 finished, the others spread
//! over steps 1–3, two error patterns, an error burst, four students stuck on one step and one
//! help request. The help request comes first in the API and on screen, stuck students are one
//! alert, the page reads on a phone (390 × 844) without sideways scrolling, axe-core finds no
//! serious violation, alerts can be acknowledged from the keyboard, and a burst of alerts makes
//! at most three toasts. Screenshots go to test-artifacts/.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use serde_json::{json, Value};
use session_log_e2e::pg::FreshDatabase;
use session_log_e2e::{save_artifact_png, Browser, Server, INSTRUCTOR_TOKEN, UNLIMITED};

const STEPS: [&str; 5] = ["Connect Accounts", "Choose Use Case", "Provision Services", "Deploy", "Test"];

fn event(token: &str, event_type: &str, data: Value) -> Value {
    let n = token.rsplit('_').next().unwrap_or("0");
    json!({"sessionToken": token, "studentEmail": format!("{}@example.com", token.replace("ws_", "")),
           "studentName": format!("Student {n}"), "eventType": event_type, "eventData": data})
}

fn navigation(token: &str, from: usize, to: usize) -> Value {
    event(
        token,
        "navigation",
        json!({"from": from, "to": to, "fromStepName": STEPS[from], "toStepName": STEPS[to], "currentStep": to, "stepName": STEPS[to]}),
    )
}

fn post(url: &str, body: &Value) -> u16 {
    ureq::post(&format!("{url}/api/session-log"))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Students who keep moving (steps 1 → 2 → 3 → 1 …, one step a second) on a thread until
/// stopped, for at most two minutes.
struct Movers {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Movers {
    fn start(url: &str, tokens: Vec<String>) -> Movers {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let url = url.to_owned();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut step = 1;
            while !flag.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let next = step % 3 + 1;
                let events: Vec<Value> = tokens.iter().map(|t| navigation(t, step, next)).collect();
                assert_eq!(post(&url, &json!({"events": events})), 200);
                step = next;
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Movers { stop, thread: Some(thread) }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the movers' thread");
        }
    }
}

impl Drop for Movers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Posts the room: 6 finished, 4 on step 2 from now on, 15 movers (started), two error
/// patterns, a 7-error burst and a help request.
fn fill_room(server: &Server) -> Movers {
    let mut events = Vec::new();
    for n in 1..=6 {
        let token = format!("ws_done_{n}");
        for step in 0..4 {
            events.push(navigation(&token, step, step + 1));
        }
        events.push(event(&token, "workshop_completed", json!({"currentStep": 4})));
    }
    for n in 1..=4 {
        events.push(navigation(&format!("ws_stuck_{n}"), 1, 2));
    }
    let movers: Vec<String> = (1..=15).map(|n| format!("ws_room_{n}")).collect();
    for token in &movers {
        events.push(navigation(token, 0, 1));
    }
    for token in &movers[..3] {
        events.push(event(
            token,
            "error",
            json!({"errorType": "twilio_auth_failed", "errorMessage": "Authenticate", "statusCode": 401}),
        ));
    }
    for token in &movers[3..7] {
        events.push(event(
            token,
            "error",
            json!({"errorType": "deploy_timeout", "errorMessage": "Function deployment timeout", "statusCode": 504}),
        ));
    }
    for _ in 0..7 {
        events.push(event(
            "ws_room_8",
            "error",
            json!({"errorType": "quota_exceeded", "errorMessage": "Too many requests", "statusCode": 429}),
        ));
    }
    events.push(event(
        "ws_room_8",
        "api_call",
        json!({"endpoint": "/v1/models", "method": "GET", "status": 429, "duration": 184}),
    ));
    events.push(event("ws_room_8", "action", json!({"actionName": "phone_number_selected", "provider": "twilio"})));
    let mut help =
        event("ws_stuck_1", "help_request", json!({"message": "Provisioning fails with 403, what do I do?"}));
    help["studentName"] = json!("Grace Hopper");
    help["studentEmail"] = json!("grace@example.com");
    events.push(help);
    assert_eq!(post(&server.url, &json!({"events": events})), 200);
    Movers::start(&server.url, movers)
}

/// Waits (at most 30 s) until the open alerts satisfy `done`; returns them.
fn wait_for_alerts(server: &Server, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = server.get_as(INSTRUCTOR_TOKEN, "/api/alerts")["alerts"].as_array().unwrap().clone();
        if done(&alerts) {
            return alerts;
        }
        assert!(Instant::now() < deadline, "not within 30 s: {what}; alerts: {alerts:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn of_rule<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

/// Saves a screenshot of the window as `name` in the test artifacts folder.
async fn save_screenshot(browser: &Browser, name: &str) {
    save_artifact_png(name, &browser.client.screenshot().await.expect("screenshot"));
}

/// Presses and releases `key` (a WebDriver key code) wherever the focus is.
async fn press(browser: &Browser, key: char) {
    let keys =
        KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    browser.client.perform_actions(keys).await.expect("a key press");
}

async fn open_dashboard(browser: &Browser, server: &Server) {
    browser.client.goto(&format!("{}/dashboard", server.url)).await.expect("open the dashboard");
    browser.type_into("#token", INSTRUCTOR_TOKEN).await;
    browser.click("#token-form button[type=submit]").await;
    browser.wait_for_text("#live", |t| t == "live").await;
}

async fn the_room(server: Server) {
    let mut movers = fill_room(&server);
    // The API: the help request first; one stuck alert for the four on step 2; true counts.
    let alerts = wait_for_alerts(&server, "the room's alerts", |a| {
        // A growing count is published at most every 10 s (--alert-update-every): wait for the last.
        of_rule(a, "stuck").iter().any(|s| s["sessions"] == 4)
            && of_rule(a, "error_pattern").len() == 2
            && of_rule(a, "error_pattern").iter().all(|p| p["count"] == p["sessions"])
            && of_rule(a, "error_burst").iter().any(|b| b["count"] == 7)
    });
    let rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(rules[0], "help_request", "the help request first: {rules:?}");
    assert_eq!(&rules[1..3], ["error_pattern", "error_pattern"], "then the critical patterns: {rules:?}");
    let stuck = of_rule(&alerts, "stuck");
    assert_eq!(stuck.len(), 1, "one alert for the step: {alerts:#?}");
    assert_eq!(stuck[0]["step"], 2);
    let message = stuck[0]["message"].as_str().unwrap();
    assert!(message.starts_with("4 students stuck on step 2 · Provision Services"), "{message}");
    let burst = of_rule(&alerts, "error_burst");
    assert_eq!(burst.len(), 1, "{alerts:#?}");
    assert_eq!(burst[0]["count"], 7, "the burst counts its 7 errors");
    assert!(burst[0]["message"].as_str().unwrap().starts_with("7 errors within 2m"), "{}", burst[0]["message"]);
    let deploy = of_rule(&alerts, "error_pattern").into_iter().find(|p| p["errorType"] == "deploy_timeout").unwrap();
    assert_eq!((deploy["count"].as_u64(), deploy["sessions"].as_u64()), (Some(4), Some(4)));

    // Desktop: the help request pinned on top with the student's name and words.
    let browser = Browser::start().await;
    open_dashboard(&browser, &server).await;
    let help = browser.wait_for_text("#help-list", |t| t.contains("Grace Hopper")).await;
    assert!(help.contains("Provisioning fails with 403"), "{help}");
    browser.wait_for_text("#alert-list", |t| t.contains("4 students stuck on step 2")).await;
    browser.wait_until("return document.querySelectorAll('#sessions tbody tr').length === 25").await;
    browser.wait_for_text("#funnel", |t| t.contains("on this step")).await;
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core at 1280 × 900:\n{}", violations.join("\n"));
    save_screenshot(&browser, "room-desktop.png").await;

    // The timeline reads as sentences, the raw JSON one click away.
    browser.click("tr[data-session=ws_room_8]").await;
    let listed = browser.wait_for_text("#events tbody", |t| t.contains("quota_exceeded")).await;
    assert!(listed.contains("quota_exceeded: Too many requests (status 429)"), "{listed}");
    assert!(listed.contains("GET /v1/models → 429 · 184 ms"), "{listed}");
    assert!(listed.contains("phone_number_selected · provider: twilio"), "{listed}");
    assert!(listed.contains("0 → 1 · Choose Use Case"), "{listed}");
    let raw = browser.run("return document.querySelector('#events tbody details pre').textContent", vec![]).await;
    assert!(raw.as_str().unwrap().contains("\"toStepName\""), "the raw JSON behind the disclosure: {raw}");

    // Keyboard alone: Tab to the help request's Acknowledge and press Enter.
    browser.run("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)", vec![]).await;
    let mut reached = false;
    for _ in 0..80 {
        press(&browser, '\u{E004}').await; // Tab
        let on_ack = browser.run("return document.activeElement.matches('#help-list button.ack')", vec![]).await;
        if on_ack == true {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the help request's Acknowledge button");
    press(&browser, '\u{E007}').await; // Enter
    browser.wait_until("return document.querySelectorAll('#help-list li').length === 0").await;
    let open = server.get_as(INSTRUCTOR_TOKEN, "/api/alerts")["alerts"].as_array().unwrap().clone();
    assert!(of_rule(&open, "help_request").is_empty(), "acknowledged from the keyboard");

    // A phone: panels stack, sessions are cards, nothing scrolls sideways, Acknowledge is on screen.
    browser.client.set_window_size(390, 844).await.expect("phone size");
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    let width = browser.run("return window.innerWidth", vec![]).await.as_i64().unwrap();
    assert!(width <= 400, "a phone-sized viewport: {width}");
    browser.wait_until("return getComputedStyle(document.querySelector('#sessions thead')).display === 'none'").await;
    let layout = browser
        .run(
            "const w = window.innerWidth;
             const acks = [...document.querySelectorAll('#alerts button.ack')].map((b) => b.getBoundingClientRect());
             const row = document.querySelector('#sessions tbody tr');
             return { overflow: document.documentElement.scrollWidth - w, acks: acks.length,
                      outside: acks.filter((r) => r.left < 0 || r.right > w).length,
                      card: getComputedStyle(row).display,
                      shown: [...row.children].filter((td) => getComputedStyle(td).display !== 'none').map((td) => td.dataset.label) };",
            vec![],
        )
        .await;
    assert!(layout["overflow"].as_i64().unwrap() <= 0, "nothing scrolls sideways: {layout}");
    assert!(layout["acks"].as_u64().unwrap() >= 3, "{layout}");
    assert_eq!(layout["outside"], 0, "every Acknowledge inside the screen: {layout}");
    assert_eq!(layout["card"], "grid", "a session is a card: {layout}");
    assert_eq!(
        layout["shown"],
        json!(["Student", "Status", "Step", "Errors", "No progress for"]),
        "the card's fields: {layout}"
    );
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core at 390 × 844:\n{}", violations.join("\n"));
    save_screenshot(&browser, "room-phone.png").await;
    browser.run("document.querySelector('#detail').scrollIntoView()", vec![]).await;
    save_screenshot(&browser, "room-phone-timeline.png").await;

    // The room stops (the instructor talks): one quiet notice, no new stuck alert.
    movers.stop();
    browser.wait_until("return !document.querySelector('#room-paused').hidden").await;
    let notice = browser.run("return document.querySelector('#room-paused').textContent", vec![]).await;
    assert!(notice.as_str().unwrap().starts_with("Room paused"), "{notice}");
    let open = server.get_as(INSTRUCTOR_TOKEN, "/api/alerts")["alerts"].as_array().unwrap().clone();
    let stuck = of_rule(&open, "stuck");
    assert!(
        stuck.len() <= 1 && stuck.iter().all(|s| s["sessions"].as_u64() <= Some(4)),
        "no stuck alert for the pause: {open:#?}"
    );
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    save_screenshot(&browser, "room-phone-paused.png").await;
    browser.close().await;
}

// The room on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_on_sqlite_reads_on_desktop_and_phone() {
    let dir = tempfile::tempdir().unwrap();
    let args = [&UNLIMITED[..], &["--alert-stuck-after", "4s"]].concat();
    the_room(Server::start_with(&dir.path().join("events.db"), &args)).await;
}

// The same room on PostgreSQL.
#[test]
fn a_room_on_postgres_reads_on_desktop_and_phone() {
    // The database is made and dropped outside the async part (its client blocks).
    let db = FreshDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let args = [&UNLIMITED[..], &["--alert-stuck-after", "4s", "--database-url", db.url.as_str()]].concat();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(the_room(Server::start_with(&dir.path().join("unused.db"), &args)));
}

// 19 alerts opened at once make at most 3 toasts on screen (one "19 new alerts"); a help
// request always gets its own toast, which stays until dismissed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_alerts_makes_few_toasts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &UNLIMITED);
    let browser = Browser::start().await;
    open_dashboard(&browser, &server).await;
    browser.wait_for_text("#alert-count", |t| t.contains("none open")).await;
    assert_eq!(post(&server.url, &event("ws_burst_1", "help_request", json!({"message": "help me"}))), 200);
    let toast = browser.wait_for_text("#toasts .toast.help", |t| t.contains("help me")).await;
    assert!(toast.contains("Help request from"), "{toast}");

    let events: Vec<Value> = (1..=19)
        .flat_map(|n| {
            let token = format!("ws_burst_{n}");
            (0..3).map(move |i| event(&token, "error", json!({"errorType": format!("failure_{n}_{i}")})))
        })
        .collect();
    assert_eq!(post(&server.url, &json!({"events": events})), 200);
    browser.wait_for_text("#alert-count", |t| t.contains("20 open")).await;
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut texts = String::new();
    while Instant::now() < deadline {
        let seen = browser
            .run("return [...document.querySelectorAll('#toasts .toast')].map((t) => t.textContent)", vec![])
            .await;
        let seen = seen.as_array().unwrap();
        texts = format!("{seen:?}");
        assert!(seen.len() <= 3, "at most 3 toasts on screen: {texts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(texts.contains("19 new alerts"), "one toast for the 19: {texts}");
    save_screenshot(&browser, "dashboard-toasts.png").await;

    // The other toasts go after 10 s; the help request's, older than them, stays.
    browser.wait_until("return document.querySelectorAll('#toasts .toast:not(.help)').length === 0").await;
    assert_eq!(
        browser.run("return document.querySelectorAll('#toasts .toast.help').length", vec![]).await,
        1,
        "the help request's toast stays"
    );
    browser.click("#toasts .toast.help .dismiss").await;
    browser.wait_until("return document.querySelectorAll('#toasts .toast').length === 0").await;
    browser.close().await;
}
