//! The client benchmark (`cargo xtask bench-client`): in headless Chromium, the median and p99
//! time of one `logAction` call over 100,000 calls, and of a plain JavaScript function doing the
//! equivalent work (build the event object, push it to an array), measured in the same page and
//! run, with their ratio. Events go to a real server on loopback, which must receive them all.

use std::time::Duration;

use session_log_e2e::{test_site, Browser, Server, INSTRUCTOR_TOKEN};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let calls: u64 =
        std::env::args().skip_while(|a| a != "--calls").nth(1).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let per_sample = 500;
    let site = test_site();
    let dir = tempfile::tempdir()?;
    let www = site.path().to_str().unwrap_or_default();
    let server =
        Server::start_with(&dir.path().join("bench.db"), &["--instructor-token", INSTRUCTOR_TOKEN, "--www", www]);
    let browser = Browser::start().await;
    let mut timeouts = fantoccini::wd::TimeoutConfiguration::default();
    timeouts.set_script(Some(Duration::from_secs(600)));
    browser.client.update_timeouts(timeouts).await?;
    browser.client.goto(&format!("{}/bench.html", server.url)).await?;
    browser.wait_until("return window.ready === true").await;
    let result =
        browser.run("return window.runBench(arguments[0], arguments[1])", vec![calls.into(), per_sample.into()]).await;
    browser.close().await;

    let figure = |side: &str, key: &str| result[side][key].as_f64().unwrap_or(f64::NAN);
    let (wasm_median, wasm_p99) = (figure("wasm", "median_us"), figure("wasm", "p99_us"));
    let (js_median, js_p99) = (figure("js", "median_us"), figure("js", "p99_us"));
    println!("session-log client benchmark: headless Chromium, {calls} calls each, timed per {per_sample} calls");
    println!("logAction (wasm: enrich, serialise, queue, persist): median {wasm_median:.2} µs, p99 {wasm_p99:.2} µs per call");
    println!(
        "plain JavaScript (build the object, push):          median {js_median:.2} µs, p99 {js_p99:.2} µs per call"
    );
    println!(
        "ratio logAction / plain JavaScript: median {:.1}×, p99 {:.1}×",
        wasm_median / js_median,
        wasm_p99 / js_p99
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.metric("session_log_events_accepted_total") < calls as f64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "delivered: {} of {calls} events accepted by the server; client stats {}",
        server.metric("session_log_events_accepted_total"),
        result["stats"]
    );
    Ok(())
}
