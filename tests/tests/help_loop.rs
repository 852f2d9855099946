//! The help loop in headless Chromium through the client package: three students of one room
//! ask for help (each page an iframe with its own session), a helper claims the first through
//! the API and the pages show the helper's name and the others' places; a resolve with a note
//! reaches its page; a cancel leaves the queue; a room notice reaches that room's pages only;
//! two requests with the same error are one group and each request lists its errors. Then the
//! dashboard's queue at desktop and phone size (one-tap claim, nothing sideways, axe-core).
//! On SQLite, and on PostgreSQL with two servers: the claim is made on one and the pages poll
//! the other. Screenshots go to test-artifacts/help-*.png.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_log_e2e::pg::FreshDatabase;
use session_log_e2e::{save_artifact_png, site, Browser, Server, INSTRUCTOR_TOKEN, UNLIMITED};

const ADMIN: &str = "e2e-admin-token";

/// One student's page: joins `room` with `key` under session `t`, and records what the help
/// channel tells it in `window.helps` and `window.notices`.
const STUDENT_PAGE: &str = r##"<!doctype html>
<meta charset="utf-8">
<title>student</title>
<p id="line" role="status">–</p>
<script type="module">
  import { configure, requestHelp, cancelHelp, onHelp, onNotice, logError, logNavigation, flush } from "/pkg/session_log.js";
  const p = new URLSearchParams(location.search);
  configure({ sessionToken: p.get("t"), room: p.get("room"), writeKey: p.get("key"), flushIntervalMs: 200 });
  // A page's first event places its session in its room (the notices it hears are its room's).
  logNavigation(0, 1);
  window.helps = []; window.notices = [];
  onHelp((h) => { window.helps.push(h); document.querySelector("#line").textContent = JSON.stringify(h); });
  onNotice((n) => window.notices.push(n));
  window.fail = (type) => { logError(type, "HTTP 401 from the provider", { step: 2 }); return flush(); };
  window.ask = (message) => { requestHelp(message); return flush(); };
  window.cancel = () => cancelHelp();
  window.ready = true;
</script>
"##;

/// Sends `body` to `url` + `path` with `token`; answers (status, JSON).
fn call(method: &str, url: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let full = format!("{url}{path}");
    let mut response = match (method, body) {
        ("GET", _) => agent.get(&full).header("Authorization", &format!("Bearer {token}")).call(),
        (_, body) => agent
            .post(&full)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.map(Value::to_string).unwrap_or_default().as_bytes()),
    }
    .expect("request");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Runs `script` in frame `i` of the room page (a function body; `f` is the frame's window),
/// inside the frame (one of them is of another origin).
async fn in_frame(browser: &Browser, i: u16, script: &str) -> Value {
    browser.client.enter_frame(i).await.expect("enter the frame");
    let result = browser.client.execute(&format!("const f = window; {script}"), vec![]).await;
    browser.client.enter_parent_frame().await.expect("leave the frame");
    result.unwrap_or_else(|e| panic!("script failed in frame {i}: {e}\n{script}"))
}

/// Waits (up to 20 s) until `script` returns true in frame `i`.
async fn until_in_frame(browser: &Browser, i: u16, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while in_frame(browser, i, script).await != json!(true) {
        assert!(Instant::now() < deadline, "never true in frame {i}: {script}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 20 s) until frame `i`'s latest help status satisfies `done`; returns it.
async fn help_of(browser: &Browser, i: u16, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = in_frame(browser, i, "return (f.helps || []).at(-1) || null;").await;
        if done(&last) {
            return last;
        }
        assert!(Instant::now() < deadline, "page {i} never heard the expected help status; last: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The open help requests of `room`, as `GET /api/alerts` ranks them.
fn queue(url: &str, room: &str) -> Vec<Value> {
    let (status, answer) = call("GET", url, &format!("/api/alerts?room={room}"), INSTRUCTOR_TOKEN, None);
    assert_eq!(status, 200, "{answer}");
    answer["alerts"].as_array().unwrap().iter().filter(|a| a["rule"] == "help_request").cloned().collect()
}

/// Waits (up to 20 s) until `room` has `n` open help requests; answers them.
async fn queue_of(url: &str, room: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open = queue(url, room);
        if open.len() == n {
            return open;
        }
        if Instant::now() > deadline {
            let (_, all) = call("GET", url, "/api/alerts?status=all", INSTRUCTOR_TOKEN, None);
            let (_, events) = call("GET", url, "/api/session-log?limit=50", INSTRUCTOR_TOKEN, None);
            panic!("room {room} never had {n} open help requests: {open:?}\nall alerts: {all}\nevents: {events}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(browser: &Browser, name: &str) {
    save_artifact_png(name, &browser.client.screenshot().await.expect("screenshot"));
}

/// The loop, with the helpers' API on `api` and the pages served by (and polling) `pages`.
async fn the_help_loop(api: &Server, pages: &Server, label: &str) {
    let (status, workshop) =
        call("POST", &api.url, "/api/workshops", ADMIN, Some(&json!({"slug": "voice-ai", "name": "Voice AI"})));
    assert_eq!(status, 201, "{workshop}");
    let key = workshop["writeKey"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    for name in ["London", "Paris"] {
        let (status, room) =
            call("POST", &api.url, "/api/workshops/voice-ai/rooms", ADMIN, Some(&json!({"name": name})));
        assert_eq!(status, 201, "{room}");
        codes.push(room["code"].as_str().unwrap().to_owned());
    }
    let (room_a, room_b) = (codes[0].clone(), codes[1].clone());
    let (status, alex) = call(
        "POST",
        &api.url,
        "/api/tokens",
        ADMIN,
        Some(&json!({"name": "Alex", "role": "assistant", "rooms": [room_a]})),
    );
    assert_eq!(status, 201, "{alex}");
    let alex = alex["token"].as_str().unwrap().to_owned();
    // 20 more students in room A, on their steps, for the dashboard.
    let events: Vec<Value> = (0..20)
        .map(|n| {
            json!({"sessionToken": format!("ws_room_{n}"), "studentEmail": format!("student{n}@example.com"),
                   "eventType": "navigation", "eventData": {"from": 0, "to": n % 4, "currentStep": n % 4}})
        })
        .collect();
    let (status, answer) = pages.post(&json!({"writeKey": key, "room": room_a, "events": events}));
    assert_eq!(status, 200, "{answer}");

    // Three pages of room A and one of room B, side by side.
    // Frames of one origin share a tab's storage (and its durable queue), so room B's page
    // comes from the server's other name: a page of its own, as on another student's laptop.
    let other_origin = pages.url.replace("127.0.0.1", "localhost");
    let frames: Vec<String> = [
        ("ws_page_1", &room_a, ""),
        ("ws_page_2", &room_a, ""),
        ("ws_page_3", &room_a, ""),
        ("ws_page_4", &room_b, other_origin.as_str()),
    ]
    .iter()
    .map(|(t, room, origin)| {
        format!(r#"<iframe title="{t}" src="{origin}/student.html?t={t}&room={room}&key={key}"></iframe>"#)
    })
    .collect();
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/room.html#{}", pages.url, frames.join(""))).await.expect("open the room page");
    browser.run("document.body.innerHTML = decodeURIComponent(location.hash.slice(1));", vec![]).await;
    browser.wait_until("return document.querySelectorAll('iframe').length === 4").await;
    for i in 0..4 {
        until_in_frame(&browser, i, "return f.ready === true;").await;
    }
    // Page 1 fails on one thing, pages 2 and 3 on the same other thing; then they ask, in order.
    for (i, error) in [(0, "openai_key_rejected"), (1, "twilio_deploy_failed"), (2, "twilio_deploy_failed")] {
        in_frame(&browser, i, &format!("await f.fail('{error}');")).await;
    }
    for (i, message) in [(0, "my key is refused"), (1, "deploy fails"), (2, "deploy fails too")] {
        in_frame(&browser, i, &format!("await f.ask('{message}');")).await;
        queue_of(&api.url, &room_a, usize::from(i) + 1).await;
    }
    for (i, position) in [(0, 1), (1, 2), (2, 3)] {
        help_of(&browser, i, |h| h["status"] == "waiting" && h["position"] == position).await;
    }

    // The queue's evidence and groups: pages 2 and 3 share a cause; page 1's error is listed.
    let open = queue(&api.url, &room_a);
    let of = |token: &str| open.iter().find(|a| a["sessionTokens"][0] == token).cloned().unwrap();
    let first = of("ws_page_1");
    assert_eq!(first["evidence"]["recent"][0]["errorType"], "openai_key_rejected", "{first}");
    assert_eq!(of("ws_page_2")["help"]["group"], "error:twilio_deploy_failed", "{open:?}");
    assert_eq!(of("ws_page_3")["help"]["group"], of("ws_page_2")["help"]["group"]);
    assert!(first["help"]["group"].is_null(), "alone with its cause: {first}");

    // Alex claims the first on the helpers' server: page 1 names Alex; pages 2 and 3 move up.
    let id = first["id"].as_str().unwrap().to_owned();
    let (status, claimed) =
        call("POST", &api.url, &format!("/api/alerts/{id}/claim"), &alex, Some(&json!({"note": "on my way"})));
    assert_eq!(status, 200, "{claimed}");
    let heard = help_of(&browser, 0, |h| h["status"] == "claimed").await;
    assert_eq!((heard["helper"].as_str(), heard["note"].as_str()), (Some("Alex"), Some("on my way")), "{heard}");
    help_of(&browser, 1, |h| h["position"] == 1).await;
    help_of(&browser, 2, |h| h["position"] == 2).await;
    // A second helper cannot claim what is resolved; the same id resolved with a note reaches page 1.
    let note = "your API key has a space at the end";
    let (status, _) = call("POST", &api.url, &format!("/api/alerts/{id}/resolve"), &alex, Some(&json!({"note": note})));
    assert_eq!(status, 200);
    let resolved = help_of(&browser, 0, |h| h["status"] == "resolved").await;
    assert_eq!(resolved["note"], note, "{resolved}");
    let (status, refused) = call("POST", &api.url, &format!("/api/alerts/{id}/claim"), INSTRUCTOR_TOKEN, None);
    assert_eq!(status, 409, "{refused}");

    // Page 3 cancels: it leaves the queue, page 2 stays first.
    in_frame(&browser, 2, "f.cancel();").await;
    help_of(&browser, 2, |h| h["status"] == "cancelled").await;
    let left = queue_of(&api.url, &room_a, 1).await;
    assert_eq!(left[0]["sessionTokens"][0], "ws_page_2", "{left:?}");
    assert_eq!(left[0]["help"]["position"], 1, "{left:?}");

    // A notice to room A reaches its three pages, not room B's; room B's reaches room B's.
    let told = "Twilio is failing for many of you right now; it is not your setup";
    let (status, posted) = call(
        "POST",
        &api.url,
        &format!("/api/rooms/{room_a}/notices"),
        INSTRUCTOR_TOKEN,
        Some(&json!({"message": told})),
    );
    assert_eq!(status, 201, "{posted}");
    for i in 0..3 {
        until_in_frame(&browser, i, "return f.notices.some((n) => n.message.startsWith('Twilio'));").await;
    }
    let (status, _) = call(
        "POST",
        &api.url,
        &format!("/api/rooms/{room_b}/notices"),
        INSTRUCTOR_TOKEN,
        Some(&json!({"message": "Paris only"})),
    );
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    while in_frame(&browser, 3, "return f.notices.some((n) => n.message === 'Paris only');").await != json!(true) {
        if Instant::now() > deadline {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let answer = agent
                .get(&format!("{}/api/session-log/help?sessionToken=ws_page_4", pages.url))
                .call()
                .map(|mut r| r.body_mut().read_to_string().unwrap_or_default());
            let page = in_frame(&browser, 3, "return { notices: f.notices, warnings: f.warnings || null };").await;
            let (_, sessions) = call("GET", &api.url, &format!("/api/sessions?room={room_b}"), INSTRUCTOR_TOKEN, None);
            panic!("room B's page never heard its notice: {page}; the server answers {answer:?}; room B: {sessions}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b_heard = in_frame(&browser, 3, "return f.notices.map((n) => n.message);").await;
    assert_eq!(b_heard, json!(["Paris only"]), "room B's page heard only its room");
    // An assistant may not post a notice, nor read another room's.
    let (status, _) =
        call("POST", &api.url, &format!("/api/rooms/{room_a}/notices"), &alex, Some(&json!({"message": "x"})));
    assert_eq!(status, 403);
    let (status, _) = call("GET", &api.url, &format!("/api/rooms/{room_b}/notices"), &alex, None);
    assert_eq!(status, 403);

    // The dashboard on the pages' server, room A: the queue first, claimable with one tap.
    in_frame(&browser, 0, "await f.ask('still stuck');").await;
    queue_of(&api.url, &room_a, 2).await;
    browser.client.set_window_size(1280, 900).await.expect("desktop size");
    browser
        .client
        .goto(&format!("{}/dashboard/?room={room_a}#token={INSTRUCTOR_TOKEN}", pages.url))
        .await
        .expect("open the dashboard");
    browser.wait_for_text("#help-list", |t| t.contains("deploy fails") && t.contains("still stuck")).await;
    browser.wait_for_text("#help-list", |t| t.contains("#1 in line")).await;
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core at 1280 × 900 ({label}):\n{}", violations.join("\n"));
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    screenshot(&browser, &format!("help-queue-desktop-{label}.png")).await;

    browser.client.set_window_size(390, 844).await.expect("phone size");
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    let layout = browser
        .run(
            "const q = document.querySelector('#help-list').getBoundingClientRect();
             const s = document.querySelector('#sessions').getBoundingClientRect();
             const b = document.querySelector('#help-list li.help button:not(.link)').getBoundingClientRect();
             return { overflow: document.documentElement.scrollWidth - window.innerWidth,
                      queueFirst: q.top < s.top, tap: b.height >= 40 };",
            vec![],
        )
        .await;
    assert!(layout["overflow"].as_i64().unwrap() <= 0, "nothing scrolls sideways: {layout}");
    assert_eq!((layout["queueFirst"].clone(), layout["tap"].clone()), (json!(true), json!(true)), "{layout}");
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core at 390 × 844 ({label}):\n{}", violations.join("\n"));
    screenshot(&browser, &format!("help-queue-phone-{label}.png")).await;
    // One tap (and the keyboard: a focused button takes Enter) claims page 2's request.
    browser
        .run(
            "const card = [...document.querySelectorAll('#help-list li.help')].find((c) => c.textContent.includes('deploy fails'));
             const claim = [...card.querySelectorAll('button')].find((b) => b.textContent === 'Claim');
             claim.focus();",
            vec![],
        )
        .await;
    browser
        .client
        .active_element()
        .await
        .expect("the focused button")
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .expect("Enter");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open = queue(&api.url, &room_a);
        let second = open.iter().find(|a| a["sessionTokens"][0] == "ws_page_2").cloned().unwrap_or_default();
        if second["help"]["status"] == "claimed" {
            assert_eq!(second["help"]["claimedBy"], "instructor", "{second}");
            break;
        }
        assert!(Instant::now() < deadline, "the tap never claimed it: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.wait_for_text("#help-list", |t| t.contains("instructor is on it")).await;
    browser.close().await;
}

/// The test site: the demo's (its dashboard), the student page, and the room page that frames
/// several.
fn student_site() -> tempfile::TempDir {
    let dir = site(&[("student.html", STUDENT_PAGE), ("room.html", "<!doctype html><title>room</title><h1>room</h1>")]);
    let www = std::env::var_os("SESSION_LOG_WWW")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../www"));
    let dashboard = dir.path().join("dashboard");
    std::fs::create_dir_all(&dashboard).unwrap();
    for entry in std::fs::read_dir(www.join("dashboard")).expect("the dashboard's files") {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dashboard.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

// The loop on one server with SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_loop_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let www = student_site();
    let args = [&UNLIMITED[..], &["--admin-token", ADMIN, "--www", www.path().to_str().unwrap()]].concat();
    let server = Server::start_with(&dir.path().join("events.db"), &args);
    the_help_loop(&server, &server, "sqlite").await;
}

// The loop on PostgreSQL with two servers: helpers act on one, the pages poll the other.
#[test]
fn the_help_loop_across_two_servers_on_postgres() {
    // The database is made and dropped outside the async part (its client blocks).
    let db = FreshDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let www = student_site();
    let args = [
        &UNLIMITED[..],
        &["--admin-token", ADMIN, "--www", www.path().to_str().unwrap(), "--database-url", db.url.as_str()],
    ]
    .concat();
    let api = Server::start_with(&dir.path().join("unused-1.db"), &args);
    let pages = Server::start_with(&dir.path().join("unused-2.db"), &args);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(the_help_loop(&api, &pages, "postgres"));
}

// In the dashboard: two waiting requests whose sessions failed the same way are one group that
// one "Claim all" claims, and one of them is handed over to a named helper; a failing endpoint
// across half the room's active sessions offers "Tell the room", which posts the prefilled
// notice to that room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_claims_a_group_and_tells_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let args = [&UNLIMITED[..], &["--admin-token", ADMIN]].concat();
    let server = Server::start_with(&dir.path().join("events.db"), &args);
    let (status, workshop) =
        call("POST", &server.url, "/api/workshops", ADMIN, Some(&json!({"slug": "voice-ai", "name": "Voice AI"})));
    assert_eq!(status, 201, "{workshop}");
    let key = workshop["writeKey"].as_str().unwrap().to_owned();
    let (_, room) = call("POST", &server.url, "/api/workshops/voice-ai/rooms", ADMIN, Some(&json!({"name": "London"})));
    let code = room["code"].as_str().unwrap().to_owned();
    // Six students on their steps; three of them see /provision fail twice (the api_failures
    // rule: at least 5 calls, at least half failed), then two of those hit the same error and ask.
    let mut events: Vec<Value> = (0..6)
        .map(|n| {
            json!({"sessionToken": format!("ws_s{n}"), "eventType": "navigation",
                        "eventData": {"from": 0, "to": 2, "currentStep": 2, "toStepName": "Provision Services"}})
        })
        .collect();
    for n in 0..3 {
        for _ in 0..2 {
            events.push(json!({"sessionToken": format!("ws_s{n}"), "eventType": "api_call",
                "eventData": {"endpoint": "/provision", "method": "POST", "status": 502, "success": false}}));
        }
    }
    let (status, answer) = server.post(&json!({"writeKey": key, "room": code, "events": events}));
    assert_eq!(status, 200, "{answer}");
    for n in 0..2 {
        let events = json!([
            {"sessionToken": format!("ws_s{n}"), "eventType": "error",
             "eventData": {"errorType": "twilio_deploy_failed", "errorMessage": "HTTP 401"}},
            {"sessionToken": format!("ws_s{n}"), "eventType": "help_request", "eventData": {"message": format!("stuck {n}")}},
        ]);
        let (status, answer) = server.post(&json!({"writeKey": key, "room": code, "events": events}));
        assert_eq!(status, 200, "{answer}");
        queue_of(&server.url, &code, n + 1).await;
    }

    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("{}/dashboard/?room={code}#token={INSTRUCTOR_TOKEN}", server.url))
        .await
        .expect("open the dashboard");
    browser.wait_for_text("#help-list", |t| t.contains("2 students: twilio_deploy_failed")).await;
    browser.wait_for_text("#alert-list", |t| t.contains("/provision")).await;
    browser.run("window.scrollTo(0, 0)", vec![]).await;
    screenshot(&browser, "help-group-desktop.png").await;
    let violations = browser.axe_violations().await;
    assert!(violations.is_empty(), "axe-core:\n{}", violations.join("\n"));
    browser.type_into("#help-list li.group .head input", "Twilio is down, not you").await;
    browser.click("#help-list li.group .head button").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open = queue(&server.url, &code);
        let claimed: Vec<&Value> = open.iter().filter(|a| a["help"]["status"] == "claimed").collect();
        if claimed.len() == 2 {
            assert!(claimed.iter().all(|a| a["help"]["note"] == "Twilio is down, not you"), "{open:?}");
            break;
        }
        assert!(Instant::now() < deadline, "Claim all never claimed both: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A claimed request is handed over to a named helper, from its card.
    browser.wait_for_text("#help-list", |t| t.contains("instructor is on it")).await;
    browser.click("#help-list li.help.claimed .hand-over summary").await;
    browser.type_into("#help-list li.help.claimed .hand-over input", "Sam").await;
    browser.click("#help-list li.help.claimed .hand-over button").await;
    browser.wait_for_text("#help-list", |t| t.contains("Sam is on it")).await;
    let open = queue(&server.url, &code);
    let by: Vec<&str> = open.iter().filter_map(|a| a["help"]["claimedBy"].as_str()).collect();
    assert!(by.contains(&"Sam") && by.contains(&"instructor"), "one handed over, one kept: {open:?}");
    screenshot(&browser, "help-hand-over-desktop.png").await;
    // "Tell the room": its text is prefilled; one click posts it.
    let prefilled = browser.run("return document.querySelector('#alert-list .tell textarea').value", vec![]).await;
    assert!(prefilled.as_str().unwrap().starts_with("/provision: the provider is failing"), "{prefilled}");
    browser.click("#alert-list .tell button").await;
    browser.wait_for_text("#alert-list .tell button", |t| t == "Sent").await;
    let (status, notices) = call("GET", &server.url, &format!("/api/rooms/{code}/notices"), INSTRUCTOR_TOKEN, None);
    assert_eq!(status, 200);
    assert_eq!(notices["notices"][0]["message"], prefilled, "{notices}");
    browser.close().await;
}

// The demo workshop's "Ask for help": its status line follows the request (its place, then the
// helper on the way with the note), and "Cancel my request" is offered only while it is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_where_a_help_request_stands() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &UNLIMITED);
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/", server.url)).await.expect("open the demo");
    let token = browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    browser.type_into("#help-message", "my phone number purchase fails").await;
    browser.click("#ask-help").await;
    browser.wait_for_text("#help-status", |t| t == "You are next in line.").await;
    let cancel_shown = browser.run("return !document.querySelector('#cancel-help').hidden", vec![]).await;
    assert_eq!(cancel_shown, json!(true));
    let (status, alerts) = call("GET", &server.url, "/api/alerts", INSTRUCTOR_TOKEN, None);
    assert_eq!(status, 200);
    let request =
        alerts["alerts"].as_array().unwrap().iter().find(|a| a["sessionTokens"][0] == token.as_str()).cloned();
    let id = request.expect("the demo's request")["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        "POST",
        &server.url,
        &format!("/api/alerts/{id}/claim"),
        INSTRUCTOR_TOKEN,
        Some(&json!({"name": "Alex", "note": "coming"})),
    );
    assert_eq!(status, 200);
    let line = browser.wait_for_text("#help-status", |t| t.starts_with("Alex is on the way")).await;
    assert!(line.contains("coming"), "{line}");
    let (status, _) = call("POST", &server.url, &format!("/api/alerts/{id}/resolve"), INSTRUCTOR_TOKEN, None);
    assert_eq!(status, 200);
    browser.wait_for_text("#help-status", |t| t.starts_with("Resolved")).await;
    browser.wait_until("return document.querySelector('#cancel-help').hidden").await;
    browser.close().await;
}
