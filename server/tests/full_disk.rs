//! A full disk under the SQLite file (a real 8 MiB tmpfs, mounted by the test: it needs root, as
//! `cargo xtask test` runs on these machines): writes are refused with 503 and `Retry-After`,
//! every instructor read still answers from what is stored, `/healthz` says why writes are
//! refused, and writes resume by themselves once space is freed.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, Backend, TestDb, TestServer};
use serde_json::json;

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (cargo xtask test runs as root here)");
        SmallDisk { dir, _parent: parent }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills what is left of the disk at `dir` with a file, but `keep` bytes.
fn fill(dir: &Path, keep: u64) -> PathBuf {
    let filler = dir.join("filler");
    let stat = free_bytes(dir);
    let size = stat.saturating_sub(keep);
    std::fs::write(&filler, vec![0u8; size as usize]).unwrap();
    filler
}

/// Free bytes on the file system of `dir` (df's answer).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

// Disk full: 503 for writes, reads answer, /healthz explains; space freed: writes resume.
#[test]
fn reads_survive_a_full_disk_and_writes_resume() {
    let disk = SmallDisk::mount("8m");
    let mut db = TestDb::new(Backend::Sqlite);
    db.path = disk.dir.join("events.db");
    let server = TestServer::on_db(Arc::new(db), |c| {
        c.rate_limit_ip_per_sec = 0;
        c.rate_limit_session_per_sec = 0;
    });
    server.post_all((0..20).map(|i| event(&format!("ws_disk{i}"), "action", json!({"actionName": "a"}))).collect());
    let filler = fill(&disk.dir, 256 * 1024);
    // Write small batches until the disk refuses (bounded: 2,000 batches of 10 KB would be
    // 20 MB), so the last commits' summaries are still waiting to be written behind them.
    let padding = "p".repeat(1000);
    let mut refused = None;
    for n in 0..2_000 {
        let events: Vec<_> =
            (0..10).map(|i| event(&format!("ws_fill{n}_{i}"), "action", json!({"pad": padding}))).collect();
        let (status, answer) = server.post(&json!({ "events": events }));
        if status != 200 {
            refused = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refused.expect("the disk filled up");
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("full"), "{answer}");
    // Every instructor read still answers from what is stored.
    let sessions = server.as_instructor("GET", "/api/sessions?limit=5");
    assert_eq!(sessions.status, 200, "{}", sessions.text);
    let events = server.as_instructor("GET", "/api/session-log?sessionToken=ws_disk3");
    assert_eq!((events.status, &events.json()["count"]), (200, &json!(1)), "{}", events.text);
    assert_eq!(server.as_instructor("GET", "/api/report").status, 200);
    assert_eq!(server.as_instructor("GET", "/api/alerts").status, 200);
    let health = server.request("GET", "/healthz", &[], b"");
    assert_eq!(health.status, 503);
    let why = health.json()["error"].as_str().unwrap().to_owned();
    assert!(why.contains("writes are refused") && why.contains("full") && why.contains("reads still answer"), "{why}");
    // Space comes back: writes resume by themselves.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = server.post(&event("ws_after_disk", "action", json!({})));
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume within 20 s: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    drop(server);
}
