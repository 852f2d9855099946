//! PostgreSQL for the end-to-end tests: a fresh database on the machine's server for each test
//! ([`FreshDatabase`]), and a private cluster a test may stop and start ([`Cluster`]).
//!
//! Nothing is skipped: when no server answers, or the PostgreSQL binaries are missing, these
//! panic saying how to get them (`cargo xtask test` starts or installs a server).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The maintenance-database URL of the server the tests use: `SESSION_LOG_TEST_POSTGRES`, else
/// the machine's server on 127.0.0.1:5432.
pub fn admin_url() -> String {
    std::env::var("SESSION_LOG_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("PostgreSQL does not answer at {url} ({e}): run `cargo xtask test`, or set SESSION_LOG_TEST_POSTGRES")
    })
}

/// A database created for one test on the server at `admin` and dropped with the value.
pub struct FreshDatabase {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

impl FreshDatabase {
    /// A new empty database on the server of [`admin_url`].
    pub fn new() -> FreshDatabase {
        FreshDatabase::on(&admin_url())
    }

    /// A new empty database on the server whose maintenance database is at `admin`.
    pub fn on(admin: &str) -> FreshDatabase {
        let name = format!("session_log_e2e_{}", uuid::Uuid::now_v7().simple());
        connect(admin).batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        FreshDatabase { url: format!("{base}/{name}"), admin: admin.to_owned(), name }
    }

    /// A connection to it.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url)
    }

    /// The integer `sql` selects (one row, one column).
    pub fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }
}

impl Default for FreshDatabase {
    fn default() -> Self {
        FreshDatabase::new()
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// A PostgreSQL cluster of the test's own (initdb in a temporary folder, trust authentication,
/// 127.0.0.1 on a free port), which it may stop and start; stopped on drop. Run as root, the
/// server runs as the `postgres` user (PostgreSQL refuses root).
pub struct Cluster {
    /// The maintenance-database URL.
    pub admin_url: String,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    settings: Vec<String>,
    _dir: tempfile::TempDir,
}

fn postgres_bin() -> PathBuf {
    let dirs = std::fs::read_dir("/usr/lib/postgresql").ok().into_iter().flatten().flatten();
    let mut versions: Vec<PathBuf> =
        dirs.map(|d| d.path().join("bin")).filter(|b| b.join("pg_ctl").is_file()).collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL binaries under /usr/lib/postgresql: install Debian's postgresql")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// Creates and starts the cluster (a few seconds).
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Creates and starts the cluster with server settings (`"autovacuum=off"`: `-c` options).
    pub fn start_with(settings: &[&str]) -> Cluster {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let chowned = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(chowned.success(), "chown the cluster folder to postgres");
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Cluster {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            port,
            settings: settings.iter().map(|s| format!(" -c {s}")).collect(),
            _dir: dir,
        };
        let init = cluster.run("initdb", &["-D", path(&cluster.data), "-U", "postgres", "-A", "trust", "--no-sync"]);
        assert!(init, "initdb failed");
        cluster.start_again();
        cluster
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).stdout(std::process::Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// Starts the stopped cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}{}",
            self.port,
            path(self.data.parent().unwrap()),
            self.settings.concat()
        );
        let log = self.data.parent().unwrap().join("postgres.log");
        let started = self.run("pg_ctl", &["-D", path(&self.data), "-l", path(&log), "-o", &options, "-w", "start"]);
        assert!(started, "pg_ctl start failed: {}", std::fs::read_to_string(&log).unwrap_or_default());
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&self.admin_url, postgres::NoTls).is_err() {
            assert!(Instant::now() < deadline, "the cluster does not accept connections");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the cluster (fast shutdown: open transactions are rolled back, clients disconnected)
    /// and waits until it has.
    pub fn stop(&self) {
        assert!(self.run("pg_ctl", &["-D", path(&self.data), "-m", "fast", "-w", "stop"]), "pg_ctl stop failed");
    }

    /// Crashes the cluster: an immediate shutdown (every server process quits at once, with no
    /// checkpoint and no write of the WAL still in shared memory; the next start replays the
    /// WAL, as after a power cut of the database alone), and waits until it has.
    pub fn crash(&self) {
        let stopped = self.run("pg_ctl", &["-D", path(&self.data), "-m", "immediate", "-w", "stop"]);
        assert!(stopped, "pg_ctl stop -m immediate failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", path(&self.data), "-m", "immediate", "-w", "stop"]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
