//! The server binary as an operator runs it: signals, generated tokens, restarts.

use serde_json::json;
use session_log_e2e::{Server, INSTRUCTOR_TOKEN, UNLIMITED};

// SIGTERM stops the server cleanly (exit 0), and what it acknowledged is there after a restart.
#[test]
fn sigterm_exits_cleanly_and_keeps_acknowledged_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/events.db");
    let args = ["--instructor-token", INSTRUCTOR_TOKEN];
    let server = Server::start_with(&db, &args);
    let events: Vec<_> =
        (0..20).map(|n| json!({"sessionToken": "ws_term", "eventType": "action", "eventData": {"n": n}})).collect();
    let (status, answer) = server.post(&json!({"events": events}));
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(20)));
    let exit = server.terminate();
    assert!(exit.success(), "exit status after SIGTERM: {exit}");

    let server = Server::start_with(&db, &args);
    assert_eq!(server.events("sessionToken=ws_term&limit=1000")["count"], 20);
}

// Without --instructor-token the server prints a generated token once, and that token reads events.
#[test]
fn generated_instructor_token_is_printed_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &[]);
    let token = server.generated_token.clone().expect("a generated token on stdout");
    assert_eq!(token.len(), 64, "256 bits in hex: {token}");
    assert_eq!(server.events_as(&token, "")["success"], true);
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Downloads the whole NDJSON export, checking every event arrives once, oldest first; returns
/// the lines and bytes read.
fn export_all(server: &Server) -> (u64, u64) {
    use std::io::BufRead;
    let response = ureq::get(&format!("{}/api/session-log/export?format=ndjson", server.url))
        .header("Authorization", &format!("Bearer {INSTRUCTOR_TOKEN}"))
        .call()
        .unwrap();
    assert!(response.headers().get("content-length").is_none(), "streamed, not buffered");
    let (mut lines, mut bytes, mut next) = (0u64, 0u64, 0u64);
    for line in std::io::BufReader::new(response.into_body().into_reader()).lines() {
        let line = line.unwrap();
        bytes += line.len() as u64 + 1;
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["event_data"]["n"].as_u64(), Some(next), "oldest first, each once");
        next += 1;
        lines += 1;
    }
    (lines, bytes)
}

// Exporting 100,000 events (about 65 MB of NDJSON) streams them: an export raises the server's
// peak memory by far less than its size, and every event arrives once.
#[test]
fn export_of_100k_events_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("events.db"), &UNLIMITED);
    let pad = "x".repeat(400);
    for batch in 0..200 {
        let events: Vec<_> = (0..500)
            .map(|i| {
                json!({"sessionToken": format!("ws_export_{}", batch % 40), "eventType": "action",
                       "eventData": {"n": batch * 500 + i, "pad": pad}})
            })
            .collect();
        let (status, answer) = server.post(&json!({ "events": events }));
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(500)), "{answer}");
    }
    // One export first: what the server allocates once (the read connections' page caches, the
    // blocking threads' heaps, about 15 MB here) is not what a second export adds.
    export_all(&server);
    let before = vm_hwm_kib(server.pid());
    let (lines, bytes) = export_all(&server);
    let after = vm_hwm_kib(server.pid());
    assert_eq!(lines, 100_000);
    assert!(bytes > 40_000_000, "{bytes} bytes exported");
    let growth_kib = after.saturating_sub(before);
    eprintln!("export: {bytes} bytes; server peak memory {before} → {after} KiB");
    assert!(growth_kib * 1024 < bytes / 4, "peak memory grew {growth_kib} KiB for a {bytes}-byte export");
}

// `session-log-server delete-student EMAIL` deletes the student's events beside a running
// server, prints the counts, and fails with a message for an unknown email.
#[test]
fn delete_student_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let server = Server::start_with(&db, &["--instructor-token", INSTRUCTOR_TOKEN]);
    let events: Vec<_> = ["ada@example.com", "ada@example.com", "bob@example.com"]
        .iter()
        .enumerate()
        .map(|(n, email)| {
            json!({"sessionToken": format!("ws_{}", &email[..3]), "studentEmail": email,
                                 "eventType": "action", "eventData": {"n": n}})
        })
        .collect();
    assert_eq!(server.post(&json!({ "events": events })).0, 200);
    let bin = session_log_e2e::server_bin();
    let run = |email: &str| {
        std::process::Command::new(&bin).arg("delete-student").arg(email).arg("--db").arg(&db).output().unwrap()
    };
    let deleted = run("Ada@Example.com");
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert_eq!(
        String::from_utf8_lossy(&deleted.stdout).trim(),
        "deleted Ada@Example.com: 2 events, 1 sessions, 1 student"
    );
    assert_eq!(server.events("studentEmail=ada@example.com")["count"], 0);
    assert_eq!(server.events("")["count"], 1, "bob's event stays");
    let unknown = run("nobody@example.com");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no student with email"));
}

// `session-log-server workshop create|list|revoke` beside a running server: the key it prints
// writes once the server has read the workshops again (within 5 s), and is refused after the
// revocation; `--json` prints one object per workshop.
#[test]
fn workshop_command_manages_write_keys_beside_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let server = Server::start_with(&db, &["--instructor-token", INSTRUCTOR_TOKEN]);
    // The address is printed before the database is opened: a first answer says it is.
    let keyless = json!({"events": [{"sessionToken": "ws_cli_first", "eventType": "action", "eventData": {}}]});
    assert_eq!(server.post(&keyless).0, 200);
    let bin = session_log_e2e::server_bin();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin).arg("workshop").args(args).arg("--db").arg(&db).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["create", "--slug", "pipelines", "--name", "Data Pipelines", "--json"]);
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let key = created["writeKey"].as_str().unwrap().to_owned();
    assert_eq!(created["slug"], "pipelines");
    let (ok, _, err) = run(&["create", "--slug", "pipelines", "--name", "again"]);
    assert!(!ok && err.contains("exists"), "{err}");
    let body = |token: &str| json!({"writeKey": key, "events": [{"sessionToken": token, "eventType": "action", "eventData": {"n": 1}}]});
    let wait_for = |token: &str, want: u16| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (status, answer) = server.post(&body(token));
            if status == want {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "still {status} {answer}, want {want}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for("ws_cli_key", 200);
    let (ok, out, err) = run(&["list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("default (Default workshop)")
            && out.contains(&format!("pipelines (Data Pipelines): write key {key}")),
        "{out}"
    );
    let (ok, out, err) = run(&["revoke", "pipelines"]);
    assert!(ok && out.starts_with("revoked pipelines"), "{out} {err}");
    wait_for("ws_cli_revoked", 401);
    let (ok, _, err) = run(&["revoke", "nope"]);
    assert!(!ok && err.contains("no workshop with slug"), "{err}");
}

// `session-log-server room create` and `token create|list|revoke` beside a running server: a
// session sending the printed code lands in that room, the printed token reads that room once
// the server has read the tokens again (within 5 s), and is refused after its revocation.
#[test]
fn room_and_token_commands_beside_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    // Polling with the token until the server has read it fails authentication meanwhile: no
    // throttle, so the polls are not locked out.
    let server = Server::start_with(&db, &["--instructor-token", INSTRUCTOR_TOKEN, "--auth-failure-limit", "0"]);
    let keyless = json!({"events": [{"sessionToken": "ws_lobby", "eventType": "action", "eventData": {}}]});
    assert_eq!(server.post(&keyless).0, 200);
    let bin = session_log_e2e::server_bin();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin).args(args).arg("--db").arg(&db).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, _, err) = run(&["workshop", "create", "--slug", "voice-ai", "--name", "Voice AI"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["room", "create", "--workshop", "voice-ai", "--name", "London", "--json"]);
    assert!(ok, "{err}");
    let room: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let code = room["code"].as_str().unwrap().to_owned();
    assert_eq!((room["name"].as_str(), room["open"].as_bool()), (Some("London"), Some(true)), "{room}");
    let (ok, _, err) = run(&["room", "create", "--workshop", "nope", "--name", "x"]);
    assert!(!ok && err.contains("no workshop with slug"), "{err}");
    let (ok, out, err) = run(&["token", "create", "--name", "Alex", "--role", "assistant", "--room", &code]);
    assert!(ok && out.contains("(shown once)"), "{out} {err}");
    let token = out.split_whitespace().find(|w| w.starts_with("ht_")).unwrap().to_owned();
    let (ok, _, err) = run(&["token", "create", "--name", "Alex", "--role", "boss", "--room", &code]);
    assert!(!ok && err.contains("--role"), "{err}");

    // The server reads the new workshop, room and token within 5 s: then a keyed session with
    // the code joins the room, and the token sees it and nothing else.
    let key_line = run(&["workshop", "list", "--json"]).1;
    let key = key_line.lines().find(|l| l.contains("voice-ai")).unwrap();
    let key = serde_json::from_str::<serde_json::Value>(key).unwrap()["writeKey"].as_str().unwrap().to_owned();
    let read = |path: &str| {
        let answer = ureq::get(&format!("{}{path}", server.url))
            .header("Authorization", &format!("Bearer {token}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.into_body().read_to_string().unwrap())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let body = json!({"writeKey": key, "room": code, "events": [{"sessionToken": "ws_room", "eventType": "action", "eventData": {}}]});
        let (status, answer) = read("/api/sessions");
        if server.post(&body).0 == 200 && status == 200 && answer.contains("ws_room") {
            assert!(!answer.contains("ws_lobby"), "{answer}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the token still reads {status} {answer}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, out, err) = run(&["token", "list"]);
    assert!(ok && out.starts_with("1 Alex (assistant, rooms ") && !out.contains("ht_"), "{out} {err}");
    let (ok, out, err) = run(&["token", "revoke", "1"]);
    assert!(ok && out.contains("revoked at"), "{out} {err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while read("/api/sessions").0 != 401 {
        assert!(std::time::Instant::now() < deadline, "the revoked token still reads");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, _, err) = run(&["token", "revoke", "99"]);
    assert!(!ok && err.contains("no helper token with id 99"), "{err}");
}

// With SESSION_LOG_WAL_SHIM=off the writer runs on SQLite's default VFS: events are stored and
// read back, and are still there after a restart on the same file.
#[test]
fn wal_shim_off_still_stores() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let off = [("SESSION_LOG_WAL_SHIM", "off")];
    let server = Server::start_with_env(&db, &UNLIMITED, &off);
    let events: Vec<_> =
        (0..20).map(|n| json!({"sessionToken": "ws_noshim", "eventType": "action", "eventData": {"n": n}})).collect();
    assert_eq!(server.post(&json!({ "events": events })).0, 200);
    assert_eq!(server.events("sessionToken=ws_noshim")["count"], 20);
    drop(server);
    let again = Server::start_with_env(&db, &UNLIMITED, &off);
    assert_eq!(again.events("sessionToken=ws_noshim")["count"], 20);
}
