//! Rooms in the instructor dashboard, in headless Chromium against the real server: two
//! workshops with a room each, 12 + 10 students; the demo page, opened with a room's join link
//! and its workshop's key, joins that room through the client package, and with an unknown key
//! is refused once, stores nothing and does not retry; an assistant signed in
//! with a sign-in link sees only their room (its sessions, its help request, its join code, the
//! projector view), at desktop and phone size, with no serious axe-core violation; a server-wide
//! token opened on `?room=` of the other room sees that room's workshop steps only. Screenshots
//! go to test-artifacts/rooms-*.png.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_log_e2e::{save_artifact_png, Browser, Server, INSTRUCTOR_TOKEN, UNLIMITED};

const ADMIN: &str = "e2e-admin-token";

/// `POST path` with the admin token and a JSON body; panics unless it answers 201.
fn create(server: &Server, path: &str, body: &Value) -> Value {
    let mut response = ureq::post(&format!("{}{path}", server.url))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("POST");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    assert_eq!(status, 201, "POST {path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// A workshop with `steps` and one room; `students` sessions placed in it, spread over the
/// steps, with an error each third; returns (write key, join code).
fn workshop(server: &Server, slug: &str, steps: &[&str], students: usize, help: Option<&str>) -> (String, String) {
    let made = create(server, "/api/workshops", &json!({"slug": slug, "name": slug}));
    let key = made["writeKey"].as_str().unwrap().to_owned();
    let room = create(server, &format!("/api/workshops/{slug}/rooms"), &json!({"name": format!("{slug} · 7 Dec")}));
    let code = room["code"].as_str().unwrap().to_owned();
    let mut events = Vec::new();
    for n in 0..students {
        let token = format!("ws_{slug}_{n}");
        let step = n % steps.len();
        events.push(json!({"sessionToken": token, "studentEmail": format!("{slug}{n}@example.com"),
            "eventType": "navigation",
            "eventData": {"from": 0, "to": step, "currentStep": step, "stepName": steps[step], "toStepName": steps[step]}}));
        if n % 3 == 0 {
            events.push(json!({"sessionToken": token, "eventType": "error",
                "eventData": {"errorType": format!("{slug}_failed"), "errorMessage": "boom", "currentStep": step}}));
        }
    }
    if let Some(message) = help {
        events.push(json!({"sessionToken": format!("ws_{slug}_1"), "studentName": "Grace Hopper",
            "eventType": "help_request", "eventData": {"message": message}}));
    }
    let (status, answer) = server.post(&json!({"writeKey": key, "room": code, "events": events}));
    assert_eq!(status, 200, "{answer}");
    (key, code)
}

async fn screenshot(browser: &Browser, name: &str) {
    save_artifact_png(name, &browser.client.screenshot().await.expect("screenshot"));
}

// Two rooms on one server, seen by an assistant of one room and by the server-wide token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_sees_their_room_and_its_join_code() {
    let dir = tempfile::tempdir().unwrap();
    let args = [&UNLIMITED[..], &["--admin-token", ADMIN]].concat();
    let server = Server::start_with(&dir.path().join("events.db"), &args);
    let voice = ["Connect Accounts", "Choose Use Case", "Provision Services", "Deploy", "Test"];
    let pipes = ["Ingest", "Clean", "Join", "Aggregate", "Schedule", "Monitor", "Ship"];
    let (voice_key, room_a) = workshop(&server, "voice-ai", &voice, 12, Some("Provisioning fails with 403"));
    let (_, room_b) = workshop(&server, "pipelines", &pipes, 10, None);
    let alex = create(&server, "/api/tokens", &json!({"name": "Alex", "role": "assistant", "rooms": [room_a]}));
    let alex = alex["token"].as_str().unwrap().to_owned();

    // A student opens the demo page with the join link and the workshop's key: the client sends
    // both, and the session joins room A.
    let browser = Browser::start().await;
    let join = format!("{}/?room={}&key={voice_key}", server.url, room_a.to_lowercase());
    browser.client.goto(&join).await.expect("open the demo page");
    let page_token = browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    // Validating an empty key logs an error: the page's first event.
    browser.click("#validate-key").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sessions = server.get_as(INSTRUCTOR_TOKEN, &format!("/api/sessions?room={room_a}&limit=100"));
        let listed: Vec<&str> =
            sessions["sessions"].as_array().unwrap().iter().filter_map(|s| s["sessionToken"].as_str()).collect();
        if listed.contains(&page_token.as_str()) {
            break;
        }
        if Instant::now() > deadline {
            let everywhere = server.get_as(INSTRUCTOR_TOKEN, &format!("/api/sessions?sessionToken={page_token}"));
            let warnings = browser.run("return document.body.innerText", vec![]).await;
            panic!("the page's session {page_token} is not in room {room_a}: {listed:?}; everywhere: {everywhere}; page: {warnings}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A copied page with a key the server does not know: its batch is refused once (401),
    // nothing of it is stored, the page says why, and it is not sent again.
    let bogus = format!("{}/?key=wk_{}", server.url, "0".repeat(32));
    browser.client.goto(&bogus).await.expect("open the page with an unknown key");
    // The same browser keeps its session token: count what that session already has.
    let bogus_token = browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    let count =
        || server.get_as(INSTRUCTOR_TOKEN, &format!("/api/session-log?sessionToken={bogus_token}"))["count"].clone();
    let before = count();
    browser.click("#validate-key").await;
    let shown = browser.wait_for_text("#delivery", |t| t.contains("0 queued") && t.contains("refused")).await;
    assert!(shown.contains("HTTP 401"), "{shown}");
    let refused = || server.metric("session_log_requests_refused_total{reason=\"write_key\"}");
    assert_eq!(refused(), 1.0, "one refused batch");
    let after = Instant::now();
    while after.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(refused(), 1.0, "not retried");
    }
    assert_eq!(count(), before, "nothing stored");
    let in_b = server.get_as(INSTRUCTOR_TOKEN, &format!("/api/sessions?room={room_b}&limit=100"));
    assert_eq!(in_b["sessions"].as_array().unwrap().len(), 10, "room B has its own 10: {in_b}");

    // Alex signs in with a sign-in link: the token rides in the fragment and leaves the address bar.
    browser.client.set_window_size(1280, 900).await.expect("desktop size");
    browser.client.goto(&format!("{}/dashboard/#token={alex}", server.url)).await.expect("open the dashboard");
    browser.wait_for_text("#live", |t| t == "live").await;
    let address = browser.run("return location.href", vec![]).await;
    assert!(!address.as_str().unwrap().contains("ht_"), "the token left the address bar: {address}");
    let options =
        browser.run("return [...document.querySelectorAll('#room option')].map((o) => o.value)", vec![]).await;
    assert_eq!(options, json!(["", room_a]), "only room A to choose (and no lobby)");
    // 12 posted sessions and the page's own.
    browser.wait_until("return document.querySelectorAll('#sessions tbody tr').length === 13").await;
    browser.wait_for_text("#help-list", |t| t.contains("Provisioning fails with 403")).await;
    let offered = browser
        .run(
            "return ['#export-csv', '#help-list button.mute'].map((s) => { const b = document.querySelector(s); return b !== null && getComputedStyle(b).display !== 'none'; })",
            vec![],
        )
        .await;
    assert_eq!(offered, json!([false, false]), "an assistant is not offered export or mute");
    let rows = browser.run("return document.querySelector('#sessions tbody').textContent", vec![]).await;
    assert!(!rows.as_str().unwrap().contains("pipelines"), "no session of room B: {rows}");

    // Alex opens room A: the address says so, the join code and link are on screen.
    browser
        .run(
            "const s = document.querySelector('#room'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
            vec![json!(room_a)],
        )
        .await;
    browser.wait_for_text("#join-code", |t| t == room_a).await;
    let address = browser.run("return location.search", vec![]).await;
    assert_eq!(address, json!(format!("?room={room_a}")));
    let link = browser.run("return document.querySelector('#join-link').textContent", vec![]).await;
    assert!(link.as_str().unwrap().ends_with(&format!("/?room={room_a}")), "{link}");
    browser.wait_until("return document.querySelectorAll('#sessions tbody tr').length === 13").await;
    browser.wait_for_text("#funnel", |t| t.contains("Provision Services")).await;
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core at 1280 × 900:\n{}", violations.join("\n"));
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    screenshot(&browser, "rooms-desktop.png").await;

    // The projector view: the code fills the screen; Escape closes it.
    browser.click("#show-join").await;
    browser.wait_until("return !document.querySelector('#projector').hidden").await;
    let size = browser
        .run("return parseFloat(getComputedStyle(document.querySelector('#projector-code')).fontSize)", vec![])
        .await;
    assert!(size.as_f64().unwrap() >= 100.0, "a code read across a room: {size}px");
    screenshot(&browser, "rooms-projector.png").await;
    browser.click("#hide-join").await;
    browser.wait_until("return document.querySelector('#projector').hidden").await;

    // A phone: nothing scrolls sideways, the join code is on screen.
    browser.client.set_window_size(390, 844).await.expect("phone size");
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    let layout = browser
        .run(
            "const r = document.querySelector('#join-code').getBoundingClientRect();
             return { overflow: document.documentElement.scrollWidth - window.innerWidth,
                      inside: r.left >= 0 && r.right <= window.innerWidth };",
            vec![],
        )
        .await;
    assert!(layout["overflow"].as_i64().unwrap() <= 0, "nothing scrolls sideways: {layout}");
    assert_eq!(layout["inside"], true, "{layout}");
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core at 390 × 844:\n{}", violations.join("\n"));
    screenshot(&browser, "rooms-phone.png").await;

    // A room Alex does not cover, bookmarked: the dashboard says so and shows Alex's rooms.
    browser.client.goto(&format!("{}/dashboard/?room={room_b}", server.url)).await.expect("open room B");
    browser.wait_for_text("#room-state", |t| t.contains(&format!("No room {room_b}"))).await;
    browser.wait_until("return document.querySelectorAll('#sessions tbody tr').length === 13").await;

    // The server-wide token's sign-in link on room B, opened in the same tab (only the fragment
    // changes): that workshop's steps only, none of room A's.
    browser.client.set_window_size(1280, 900).await.expect("desktop size");
    browser
        .client
        .goto(&format!("{}/dashboard/?room={room_b}#token={INSTRUCTOR_TOKEN}", server.url))
        .await
        .expect("open room B");
    browser.wait_for_text("#join-code", |t| t == room_b).await;
    browser.wait_until("return document.querySelectorAll('#sessions tbody tr').length === 10").await;
    let funnel = browser.wait_for_text("#funnel", |t| t.contains("Aggregate")).await;
    assert!(!funnel.contains("Provision Services"), "only room B's workshop steps: {funnel}");
    let alerts = browser.run("return document.querySelector('#help-list').textContent", vec![]).await;
    assert!(!alerts.as_str().unwrap().contains("Provisioning"), "room A's help request is not room B's: {alerts}");
    screenshot(&browser, "rooms-room-b.png").await;
    // The server-wide token also reads the lobby: a session that joined no room, and none of the rooms'.
    let (status, answer) = server.post(&json!({"sessionToken": "ws_in_the_lobby", "eventType": "action",
        "eventData": {"actionName": "opened the page"}}));
    assert_eq!(status, 200, "{answer}");
    browser
        .run(
            "const s = document.querySelector('#room'); s.value = 'lobby'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await;
    let lobby = browser.wait_for_text("#sessions tbody", |t| t.contains("ws_in_the_lobby")).await;
    assert!(!lobby.contains("ws_voice-ai_") && !lobby.contains("ws_pipelines_"), "no room's session: {lobby}");
    assert_eq!(browser.run("return location.search", vec![]).await, json!("?room=lobby"));
    assert_eq!(browser.run("return document.querySelector('#join').hidden", vec![]).await, json!(true), "no join code");
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    screenshot(&browser, "rooms-lobby.png").await;
    let hidden = browser.run("return document.querySelector('#admin').hidden", vec![]).await;
    assert_eq!(hidden, true, "the instructor token may not manage when an admin token is set");

    // The admin makes a room and an assistant's token in the panel; the sign-in link it shows
    // opens that room for the assistant.
    browser.client.goto(&format!("{}/dashboard/#token={ADMIN}", server.url)).await.expect("open as admin");
    browser.wait_until("return !document.querySelector('#admin').hidden").await;
    browser.click("#admin summary").await;
    browser.wait_for_text("#admin-workshops tbody", |t| t.contains("voice-ai") && t.contains("wk_")).await;
    browser.run("document.querySelector('#new-room-workshop').value = 'pipelines'", vec![]).await;
    browser.type_into("#new-room-name", "Berlin, 8 Dec").await;
    browser.click("#new-room button[type=submit]").await;
    let rooms = browser.wait_for_text("#admin-rooms tbody", |t| t.contains("Berlin, 8 Dec")).await;
    assert!(rooms.contains("pipelines"), "{rooms}");
    browser.type_into("#new-token-name", "Sam").await;
    browser.run(
        "[...document.querySelectorAll('#new-token-rooms input')].find((b) => b.value === arguments[0]).checked = true",
        vec![json!(room_b)],
    )
    .await;
    browser.click("#new-token button[type=submit]").await;
    browser.wait_for_text("#admin-tokens tbody", |t| t.contains("Sam")).await;
    let link = browser.run("return document.querySelector('#new-token-link').value", vec![]).await;
    let link = link.as_str().unwrap().to_owned();
    assert!(link.contains(&format!("?room={room_b}#token=ht_")), "{link}");
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    screenshot(&browser, "rooms-admin.png").await;
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core on the admin panel:\n{}", violations.join("\n"));
    browser.client.goto(&link).await.expect("open the sign-in link");
    browser.wait_for_text("#join-code", |t| t == room_b).await;
    let options =
        browser.run("return [...document.querySelectorAll('#room option')].map((o) => o.value)", vec![]).await;
    assert_eq!(options, json!(["", room_b]), "Sam's one room");
    browser.close().await;
}
