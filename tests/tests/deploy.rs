//! The deployment recipe in `deploy/`, checked as an operator would use it: the systemd unit
//! passes `systemd-analyze verify` and its sandbox rates "OK" or better; nginx run with
//! `deploy/nginx.conf` (only its CHANGE lines changed) terminates TLS, passes events to the
//! server, streams the live tail unbuffered, and redirects plain HTTP to HTTPS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use session_log_e2e::nginx::Nginx;
use session_log_e2e::tls::{agent, Pki};
use session_log_e2e::{server_bin, Server, INSTRUCTOR_TOKEN, UNLIMITED};

fn systemd_analyze() -> PathBuf {
    let tool =
        std::env::var_os("SYSTEMD_ANALYZE").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/systemd-analyze".into());
    assert!(tool.is_file(), "{} is missing: run `cargo xtask test` (it installs Debian's systemd)", tool.display());
    tool
}

/// `deploy/session-log.service` with `ExecStart` pointing at the built binary (systemd-analyze
/// checks that it exists), in a temporary folder.
fn unit_with_built_binary(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/session-log.service"))
        .expect("read deploy/session-log.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/session-log-server\n"), "the unit runs the installed binary");
    let unit = unit.replace("/usr/local/bin/session-log-server", server_bin().to_str().unwrap());
    let path = dir.join("session-log.service");
    std::fs::write(&path, unit).unwrap();
    path
}

// The systemd unit verifies without a warning, and `systemd-analyze security` rates its
// sandbox at most 2.0 ("OK" or better) with the hardening the recipe promises.
#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_built_binary(dir.path());
    let verify = std::process::Command::new(systemd_analyze()).arg("verify").arg(&unit).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success(), "systemd-analyze verify failed:\n{said}");
    assert!(said.trim().is_empty(), "systemd-analyze verify warned:\n{said}");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=session-log",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "EnvironmentFile=/etc/session-log/session-log.env",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.lines().any(|l| l == line), "the unit has {line}");
    }
    let security = std::process::Command::new(systemd_analyze())
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let level = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for session-log.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}{}", String::from_utf8_lossy(&security.stderr)));
    assert!(level <= 2.0, "exposure {level} (lower is safer; 2.0 is the top of OK):\n{report}");
}

// nginx with the recipe: HTTPS at the proxy, an event posted through it is stored, the live
// tail through it delivers a new event at once (nothing buffered), and plain HTTP redirects.
#[test]
fn nginx_with_the_recipe_terminates_tls_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("proxy");
    let (cert, key) = pki.install(dir.path());
    let args = [&UNLIMITED[..], &["--trusted-proxy", "127.0.0.1"]].concat();
    let server = Server::start_with(&dir.path().join("events.db"), &args);
    let (_nginx, https, http) = Nginx::start_recipe(&[&server.url], &cert, &key);
    let client = agent(&[&pki.ca_der]);

    // The live tail through the proxy, read on a thread.
    let tail = client
        .get(&format!("{https}/api/session-log/stream"))
        .header("Authorization", &format!("Bearer {INSTRUCTOR_TOKEN}"))
        .call()
        .expect("the live tail through nginx");
    assert_eq!(tail.status().as_u16(), 200);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(tail.into_body().into_reader()).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });

    let event =
        json!({"sessionToken": "ws_proxy_1", "eventType": "action", "eventData": {"actionName": "through_nginx"}});
    let posted = client
        .post(&format!("{https}/api/session-log"))
        .header("Content-Type", "application/json")
        .send(event.to_string().as_bytes())
        .expect("POST through nginx");
    assert_eq!(posted.status().as_u16(), 200);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received.recv_timeout(left).expect("the event on the live tail within 5 s: nginx buffered it");
        if line.starts_with("data: ") && line.contains("through_nginx") {
            break;
        }
    }
    let stored = server.events("sessionToken=ws_proxy_1");
    assert_eq!(stored["count"], 1);

    let plain = ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().new_agent();
    let redirect = plain.get(&format!("{http}/dashboard/")).call().expect("plain HTTP answers");
    assert_eq!(redirect.status().as_u16(), 301, "plain HTTP redirects");
    let location = redirect.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.starts_with("https://"), "to HTTPS: {location}");
}
