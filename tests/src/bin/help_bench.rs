//! The help channel's benchmark (`cargo xtask bench-help`): 30 student pages of one room in
//! headless Chromium (frames of one page, each its own session), a real server on loopback.
//! Each page asks for help; a helper claims, then resolves, every request through the API, and
//! a notice goes to the room. It prints how long a change took to reach the page (from the
//! API's answer to the page's callback, p50/p95/max over every page and change) and how many
//! requests the channel made per page per minute while a request was open and while only the
//! callbacks were registered.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_log_e2e::{site, Browser, Server, INSTRUCTOR_TOKEN, UNLIMITED};

/// Pages in the room.
const PAGES: usize = 30;
/// How long the request rate is counted in each phase.
const COUNT_FOR: Duration = Duration::from_secs(30);

/// One page: counts the help channel's requests (its fetch is the page's, wrapped here before
/// the channel loads) and records when each change and notice arrived (`Date.now()`).
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>student</title>
<script type="module">
  window.polls = 0;
  const fetch0 = window.fetch;
  window.fetch = (url, init) => { if (String(url).includes("/help")) window.polls++; return fetch0(url, init); };
  const { configure, requestHelp, onHelp, onNotice, logNavigation, flush } = await import("/pkg/session_log.js");
  const p = new URLSearchParams(location.search);
  configure({ sessionToken: p.get("t"), room: p.get("room"), writeKey: p.get("key"), flushIntervalMs: 200 });
  logNavigation(0, 1);
  window.heard = []; window.notices = [];
  onHelp((h) => window.heard.push({ status: h.status, at: Date.now() }));
  onNotice((n) => window.notices.push({ id: n.id, at: Date.now() }));
  window.ask = (message) => { requestHelp(message); return flush(); };
  window.ready = true;
</script>
"#;

fn call(method: &str, url: &str, path: &str, token: &str, body: &Value) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let full = format!("{url}{path}");
    let mut response = if method == "GET" {
        agent.get(&full).header("Authorization", &format!("Bearer {token}")).call()
    } else {
        agent
            .post(&full)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
    }
    .expect("request");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap_or_default()).unwrap_or(Value::Null)
}

/// Milliseconds since the Unix epoch (the pages' `Date.now()` clock).
fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn in_frame(browser: &Browser, i: usize, script: &str) -> Value {
    browser.client.enter_frame(i as u16).await.expect("enter the frame");
    let result = browser.client.execute(&format!("const f = window; {script}"), vec![]).await;
    browser.client.enter_parent_frame().await.expect("leave the frame");
    result.expect("a frame's script")
}

/// Waits (up to 60 s) until every page has heard `status`; answers when each heard it (ms).
async fn heard_all(browser: &Browser, status: &str) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut times = Vec::new();
        for i in 0..PAGES {
            let at = in_frame(
                browser,
                i,
                &format!("return (f.heard.find((h) => h.status === '{status}') || {{}}).at ?? null;"),
            )
            .await;
            if let Some(at) = at.as_f64() {
                times.push(at);
            }
        }
        if times.len() == PAGES {
            return times;
        }
        assert!(Instant::now() < deadline, "{} of {PAGES} pages heard {status}", times.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The channel's requests so far, per page.
async fn polls(browser: &Browser) -> Vec<f64> {
    let mut counts = Vec::new();
    for i in 0..PAGES {
        counts.push(in_frame(browser, i, "return f.polls;").await.as_f64().unwrap_or(0.0));
    }
    counts
}

/// Requests per page per minute over `COUNT_FOR`.
async fn rate(browser: &Browser) -> f64 {
    let before = polls(browser).await;
    let started = Instant::now();
    tokio::time::sleep(COUNT_FOR).await;
    let after = polls(browser).await;
    let made: f64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    made / PAGES as f64 / (started.elapsed().as_secs_f64() / 60.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let www = site(&[("student.html", PAGE), ("room.html", "<!doctype html><title>room</title>")]);
    let dir = tempfile::tempdir()?;
    let args = [&UNLIMITED[..], &["--admin-token", INSTRUCTOR_TOKEN, "--www", www.path().to_str().unwrap_or_default()]]
        .concat();
    let server = Server::start_with(&dir.path().join("bench.db"), &args);
    let workshop =
        call("POST", &server.url, "/api/workshops", INSTRUCTOR_TOKEN, &json!({"slug": "bench", "name": "Bench"}));
    let key = workshop["writeKey"].as_str().unwrap_or_default().to_owned();
    let room =
        call("POST", &server.url, "/api/workshops/bench/rooms", INSTRUCTOR_TOKEN, &json!({"name": "Bench room"}));
    let code = room["code"].as_str().unwrap_or_default().to_owned();

    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/room.html", server.url)).await?;
    let frames: String = (0..PAGES)
        .map(|i| {
            format!(r#"<iframe title="page {i}" src="/student.html?t=ws_bench_{i}&room={code}&key={key}"></iframe>"#)
        })
        .collect();
    browser.run("document.body.innerHTML = arguments[0];", vec![json!(frames)]).await;
    for i in 0..PAGES {
        let deadline = Instant::now() + Duration::from_secs(30);
        while in_frame(&browser, i, "return f.ready === true;").await != json!(true) {
            assert!(Instant::now() < deadline, "page {i} did not load");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let idle_rate = rate(&browser).await;
    // One request every 1.1 s: faster, one address's requests are a `help_flood` (more than 10
    // within 10 s), which a room behind one address never reaches.
    for i in 0..PAGES {
        in_frame(&browser, i, &format!("await f.ask('page {i} is stuck');")).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    heard_all(&browser, "waiting").await;
    let open_rate = rate(&browser).await;

    // Claims, then resolves, one every 100 ms: the page's callback against the API's answer.
    let alerts = call("GET", &server.url, &format!("/api/alerts?room={code}"), INSTRUCTOR_TOKEN, &Value::Null);
    let requests: Vec<(String, String)> = alerts["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["rule"] == "help_request")
                .map(|a| {
                    (
                        a["id"].as_str().unwrap_or_default().to_owned(),
                        a["sessionTokens"][0].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(requests.len(), PAGES, "every page's request is open");
    let mut latencies = Vec::new();
    for action in ["claim", "resolve"] {
        let mut done = vec![0.0; PAGES];
        for (id, token) in &requests {
            call(
                "POST",
                &server.url,
                &format!("/api/alerts/{id}/{action}"),
                INSTRUCTOR_TOKEN,
                &json!({"name": "Alex"}),
            );
            let page: usize = token.trim_start_matches("ws_bench_").parse().unwrap_or(0);
            done[page] = now_ms();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = if action == "claim" { "claimed" } else { "resolved" };
        let heard = heard_all(&browser, status).await;
        latencies.extend(heard.iter().zip(&done).map(|(h, d)| h - d));
    }
    let posted = now_ms();
    call("POST", &server.url, &format!("/api/rooms/{code}/notices"), INSTRUCTOR_TOKEN, &json!({"message": "bench"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut notice_latencies = Vec::new();
    while notice_latencies.len() < PAGES && Instant::now() < deadline {
        notice_latencies.clear();
        for i in 0..PAGES {
            if let Some(at) = in_frame(&browser, i, "return (f.notices[0] || {}).at ?? null;").await.as_f64() {
                notice_latencies.push(at - posted);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    browser.close().await;

    latencies.sort_by(f64::total_cmp);
    notice_latencies.sort_by(f64::total_cmp);
    println!(
        "session-log help channel benchmark: {PAGES} pages of one room in headless Chromium, polling a loopback server"
    );
    println!(
        "a claim or resolve reaches its page ({} changes): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        latencies.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.95),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "a room notice reaches its pages ({} pages): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        notice_latencies.len(),
        quantile(&notice_latencies, 0.5),
        quantile(&notice_latencies, 0.95),
        notice_latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!("requests per page per minute: {open_rate:.1} while a request is open, {idle_rate:.1} with only the callbacks registered");
    Ok(())
}
