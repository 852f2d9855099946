//! The ingest benchmark (`cargo xtask bench`): drives the real server binary over loopback with
//! concurrent clients and measures the ceiling (the same rows stored through `Storage::insert`, the
//! server's writer without HTTP) in the same run. It does so in `--rounds` rounds (default
//! 3); each round runs one batched phase per client count in `--batch-clients` (default `16,48`),
//! each followed by its ceiling, then the single-event phase (`--single-clients`, default 32). It
//! prints each round, the medians, and how much CPU the host stole in each phase (shared machines
//! vary from minute to minute).
//! With `--database-url postgres://…/db` (a maintenance database: the benchmark creates a fresh
//! database beside it and drops it after), every round also runs the same batched and
//! single-event phases against a second server on PostgreSQL, and the medians of both backends
//! are printed side by side, CPU per event including PostgreSQL's own processes.
//! With `--compare-wal-shim`, every round also runs the single-event phase against a second
//! SQLite server started with `SESSION_LOG_WAL_SHIM=off` (the writer on SQLite's default VFS),
//! right after the first's, and prints both servers' events/s and CPU per event side by side.
//! With `--with-room`, every batched phase (SQLite and PostgreSQL) is run twice in turn, without
//! and with a workshop's write key and a room's join code on every batch (what a page with
//! `configure({writeKey, room})` sends), and both are printed with their ratio.
//! Bounded: each phase runs for `--seconds` (default 10) and a fixed request budget.

use std::time::{Duration, Instant};

use session_log_e2e::load::{realistic_event, Load, LoadConfig, LoadReport};
use session_log_e2e::{Server, UNLIMITED};
use session_log_server::config::Config;
use session_log_server::domain::validate::validate_event;
use session_log_server::storage::sqlite::{WAL_CHECKPOINT_IDLE, WRITER_IDLE_AFTER};
use session_log_server::storage::Storage;

/// What a load phase is sent to and measured on: a session-log server or the Node.js peer.
trait Target {
    /// `http://127.0.0.1:<port>`.
    fn url(&self) -> &str;
    /// Its process id (for its CPU time).
    fn pid(&self) -> u32;
}

impl Target for Server {
    fn url(&self) -> &str {
        &self.url
    }
    fn pid(&self) -> u32 {
        Server::pid(self)
    }
}

/// The plain Node.js service of `tests/bench/node-peer/peer.mjs` (`node:http` and a `pg` Pool of
/// 16, the reference's DDL, one transaction per request), on its own fresh database; killed on
/// drop. Its npm packages are installed (`npm ci`, pinned by its lock file) when missing.
struct NodePeer {
    url: String,
    child: std::process::Child,
    _database: session_log_e2e::pg::FreshDatabase,
}

impl NodePeer {
    fn start(admin_url: &str) -> anyhow::Result<NodePeer> {
        use std::io::BufRead;
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/node-peer");
        if !folder.join("node_modules/pg").exists() {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&folder)
                .status()?;
            anyhow::ensure!(status.success(), "npm ci in {} failed", folder.display());
        }
        let database = session_log_e2e::pg::FreshDatabase::on(admin_url);
        let mut child = std::process::Command::new("node")
            .arg("peer.mjs")
            .current_dir(&folder)
            .env("DATABASE_URL", &database.url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start node (Node.js is needed for the peer): {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let url = receiver
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("the Node.js peer did not print its address within 30 s"))?;
        Ok(NodePeer { url, child, _database: database })
    }
}

impl Target for NodePeer {
    fn url(&self) -> &str {
        &self.url
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a workshop and a room on `server` (through its API, with the instructor token, which may
/// manage workshops when no admin token is set) and returns the batch fields a page with that
/// key and room sends: `,"writeKey":"wk_…","room":"CODE"`.
fn keyed_envelope(server: &dyn Target) -> anyhow::Result<String> {
    let post = |path: &str, body: serde_json::Value| -> anyhow::Result<serde_json::Value> {
        let mut response = ureq::post(&format!("{}{path}", server.url()))
            .header("Authorization", &format!("Bearer {}", session_log_e2e::INSTRUCTOR_TOKEN))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())?;
        Ok(serde_json::from_str(&response.body_mut().read_to_string()?)?)
    };
    let workshop = post("/api/workshops", serde_json::json!({"slug": "bench", "name": "Bench"}))?;
    let room = post("/api/workshops/bench/rooms", serde_json::json!({"name": "Bench room"}))?;
    let (key, code) = (workshop["writeKey"].as_str(), room["code"].as_str());
    let (Some(key), Some(code)) = (key, code) else { anyhow::bail!("no key or room: {workshop} {room}") };
    Ok(format!(r#","writeKey":"{key}","room":"{code}""#))
}

/// Rows per transaction of the ceiling (as many as the server's largest group commit).
const CEILING_ROWS_PER_TX: usize = 5000;
/// Turns each batched phase and its ceiling take (each gets `--seconds` / SLICES per turn).
const SLICES: u32 = 5;

/// One batched phase and its ceiling.
struct Batched {
    clients: usize,
    rate: f64,
    ceiling_rate: f64,
    /// With `--with-room`: events/s of the same phase with a write key and a room on every batch.
    keyed_rate: Option<f64>,
}

impl Batched {
    /// The phase's events/s as a percentage of its ceiling's rows/s.
    fn ratio(&self) -> f64 {
        100.0 * self.rate / self.ceiling_rate
    }
}

/// What one round measured.
struct Round {
    batched: Vec<Batched>,
    single_rate: f64,
    single_p99_ms: f64,
    /// The same phases on PostgreSQL (with `--database-url`): batched events/s per client
    /// count, then single events/s and p99 (ms), and CPU per event (µs, server + PostgreSQL).
    postgres: Option<PostgresRound>,
    /// The same on two servers sharing one PostgreSQL database, the load split between them.
    postgres_pair: Option<PostgresRound>,
    /// The plain Node.js service on PostgreSQL (with `--database-url`), same figures.
    node: Option<PostgresRound>,
    /// With `--with-room`: the PostgreSQL server's batched phases with a write key and a room.
    postgres_keyed: Option<PostgresRound>,
    /// With `--compare-wal-shim`: single events/s and server CPU per event (µs) with the shim,
    /// then without it.
    wal_shim: Option<[(f64, f64); 2]>,
}

/// Batched events/s per client count, single events/s, single p99 (ms), and CPU per batched
/// event (µs, the servers' and PostgreSQL's processes).
type PostgresRound = (Vec<f64>, f64, f64, f64);

/// The batched phases and the single-event phase against each group of `groups` (one server,
/// several on one PostgreSQL database each taking an equal share of the clients, or the Node.js
/// peer), printed under the group's name. The groups take turns phase by phase, so that figures
/// compared with each other were taken seconds apart.
fn postgres_phases(
    groups: &[(&str, Vec<&dyn Target>, String)],
    batch_clients: &[usize],
    single_clients: usize,
    phase: Duration,
) -> Vec<PostgresRound> {
    let mut rates = vec![Vec::new(); groups.len()];
    let mut cpu = vec![Vec::new(); groups.len()];
    for &clients in batch_clients {
        // The groups take turns in slices, so that each sees the same host and the same
        // database sizes (a group run after another writes into bigger tables).
        let mut measured: Vec<Measured> = groups.iter().map(|_| Measured::default()).collect();
        for _ in 0..SLICES {
            for (i, (_, targets, envelope)) in groups.iter().enumerate() {
                let load = LoadConfig {
                    url: String::new(),
                    clients,
                    batch_size: 50,
                    duration: phase / SLICES,
                    max_requests: 400_000 / SLICES as usize,
                    envelope: envelope.clone(),
                };
                measured[i].add(Measured::load_spread(targets, load));
            }
        }
        for (i, (name, _, _)) in groups.iter().enumerate() {
            measured[i].print(&format!("{name} batched ({clients} clients × 50 events/POST, {SLICES} slices)"));
            rates[i].push(measured[i].rate());
            cpu[i].push(measured[i].cpu_per_event_us());
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (i, (name, targets, envelope)) in groups.iter().enumerate() {
        if !envelope.is_empty() {
            // Single events carry no batch fields: the keyed groups measure batches only.
            out.push((std::mem::take(&mut rates[i]), 0.0, 0.0, median(std::mem::take(&mut cpu[i]).into_iter())));
            continue;
        }
        let load = LoadConfig {
            url: String::new(),
            clients: single_clients,
            batch_size: 0,
            duration: phase,
            max_requests: 1_000_000,
            envelope: String::new(),
        };
        let single = Measured::load_spread(targets, load);
        single.print(&format!("{name} single events ({single_clients} clients × 1 event/POST)"));
        out.push((
            std::mem::take(&mut rates[i]),
            single.rate(),
            ms(single.report.percentile_us(99.0)),
            median(std::mem::take(&mut cpu[i]).into_iter()),
        ));
    }
    out
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = arg("--seconds").unwrap_or(10);
    let rounds: usize = arg("--rounds").unwrap_or(3).max(1);
    // Group commit needs requests waiting: with 16 clients about half of them are in the HTTP
    // layer at any moment (groups of ~350 rows); 48 clients, a workshop room, give groups of ~1000.
    let batch_clients: Vec<usize> = list_arg("--batch-clients").unwrap_or_else(|| vec![16, 48]);
    let single_clients: usize = arg("--single-clients").unwrap_or(32);
    let phase = Duration::from_secs(seconds);

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let server = Server::start_with(&db, &UNLIMITED);
    println!("session-log ingest benchmark: {} cores, loopback, server {}, {rounds} rounds", cores(), server.url);

    // The same SQLite server without the WAL write shim, for `--compare-wal-shim`.
    let no_shim_db = dir.path().join("bench-no-shim.db");
    let no_shim = std::env::args().any(|a| a == "--compare-wal-shim").then(|| {
        let server = Server::start_with_env(&no_shim_db, &UNLIMITED, &[("SESSION_LOG_WAL_SHIM", "off")]);
        warm_up(&server.url);
        println!("and a SQLite server without the WAL shim, {}", server.url);
        server
    });

    let postgres_url: Option<String> = arg("--database-url");
    // What to measure: `--backends sqlite,postgres,pair,node` (SQLite; one server on PostgreSQL;
    // two servers on one PostgreSQL database; the Node.js peer). Every one of them by default (the
    // last three need `--database-url`).
    let backends: Vec<String> = arg::<String>("--backends")
        .map(|list| list.split(',').map(|b| b.trim().to_owned()).collect())
        .unwrap_or_else(|| ["sqlite", "postgres", "pair", "node"].map(String::from).to_vec());
    let wants = |name: &str| backends.iter().any(|b| b == name);
    let on_sqlite = wants("sqlite");
    let postgres_url = postgres_url.filter(|_| wants("postgres") || wants("pair") || wants("node"));
    let on_postgres = |database: &session_log_e2e::pg::FreshDatabase| {
        let args = [&UNLIMITED[..], &["--database-url", database.url.as_str()]].concat();
        let server = Server::start_with(&dir.path().join("unused.db"), &args);
        warm_up(&server.url);
        server
    };
    let node_peer = match postgres_url.as_ref().filter(|_| wants("node")) {
        Some(url) => {
            let peer = NodePeer::start(url)?;
            warm_up(&peer.url);
            println!("and the plain Node.js peer on PostgreSQL, {}", peer.url);
            Some(peer)
        }
        None => None,
    };
    let postgres = postgres_url.as_ref().filter(|_| wants("postgres")).map(|url| {
        let database = session_log_e2e::pg::FreshDatabase::on(url);
        let server = on_postgres(&database);
        println!("and a server on PostgreSQL, {}", server.url);
        (database, server)
    });
    // Two servers on one more database: what a second instance costs on the same machine.
    let postgres_pair = postgres_url.as_ref().filter(|_| wants("pair")).map(|url| {
        let database = session_log_e2e::pg::FreshDatabase::on(url);
        let (a, b) = (on_postgres(&database), on_postgres(&database));
        println!("and two servers on one PostgreSQL database, {} and {}", a.url, b.url);
        (database, a, b)
    });

    let server_wal = dir.path().join("bench.db-wal");
    let wal_peak = WalPeak::watch(server_wal.clone());
    warm_up(&server.url);
    // `--with-room`: the batch fields of a workshop and room made on each server.
    let with_room = std::env::args().any(|a| a == "--with-room");
    let sqlite_envelope = if with_room && on_sqlite { Some(keyed_envelope(&server)?) } else { None };
    let postgres_envelope = match (&postgres, with_room) {
        (Some((_, pg)), true) => Some(keyed_envelope(pg)?),
        _ => None,
    };

    // Each round measures every batched phase, each followed by its ceiling, then single events,
    // so that each ratio compares two figures taken a few seconds apart: the host's load changes
    // over minutes.
    let mut results = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        println!("round {round}:");
        let mut batched = Vec::with_capacity(batch_clients.len());
        for &clients in batch_clients.iter().filter(|_| on_sqlite) {
            // The phase and its ceiling take turns in slices, so that both see the same host:
            // its load changes within seconds, and a ratio of figures taken 10 s apart varied
            // from 55% to 100% between identical runs.
            let slice = phase / SLICES;
            let mut ceiling = Ceiling::open(dir.path(), clients)?;
            let mut measured = Measured::default();
            let mut keyed = Measured::default();
            for _ in 0..SLICES {
                let load = LoadConfig {
                    url: server.url.clone(),
                    clients,
                    batch_size: 50,
                    duration: slice,
                    max_requests: 400_000,
                    envelope: String::new(),
                };
                if let Some(envelope) = &sqlite_envelope {
                    keyed.add(Measured::load(&server, LoadConfig { envelope: envelope.clone(), ..load.clone() }));
                    wait_until_idle(&server_wal);
                }
                measured.add(Measured::load(&server, load));
                wait_until_idle(&server_wal);
                ceiling.run_for(slice)?;
                ceiling.settle();
            }
            measured.print(&format!("batched ({clients} clients × 50 events/POST, {SLICES} slices)"));
            let keyed_rate = sqlite_envelope.as_ref().map(|_| {
                keyed.print(&format!("batched with a write key and a room ({clients} clients, {SLICES} slices)"));
                keyed.rate()
            });
            ceiling.print();
            batched.push(Batched { clients, rate: measured.rate(), ceiling_rate: ceiling.rate(), keyed_rate });
        }

        let load = LoadConfig {
            url: server.url.clone(),
            clients: single_clients,
            batch_size: 0,
            duration: phase,
            max_requests: 1_000_000,
            envelope: String::new(),
        };
        let single = if on_sqlite {
            let single = Measured::load(&server, load.clone());
            single.print(&format!("single events ({single_clients} clients × 1 event/POST)"));
            single
        } else {
            Measured::default()
        };
        let wal_shim = no_shim.as_ref().map(|other| {
            let load = LoadConfig { url: other.url.clone(), ..load.clone() };
            let without = Measured::load(other, load);
            without.print(&format!("single events without the WAL shim ({single_clients} clients × 1 event/POST)"));
            [(single.rate(), single.cpu_per_event_us()), (without.rate(), without.cpu_per_event_us())]
        });
        let mut groups: Vec<(&str, Vec<&dyn Target>, String)> = Vec::new();
        if let Some(peer) = &node_peer {
            groups.push(("Node.js peer (node:http + pg)", vec![peer], String::new()));
        }
        if let Some((_, pg)) = &postgres {
            groups.push(("PostgreSQL", vec![pg], String::new()));
            if let Some(envelope) = &postgres_envelope {
                groups.push(("PostgreSQL with a write key and a room", vec![pg], envelope.clone()));
            }
        }
        if let Some((_, a, b)) = &postgres_pair {
            groups.push(("PostgreSQL, two servers,", vec![a, b], String::new()));
        }
        let mut measured = postgres_phases(&groups, &batch_clients, single_clients, phase).into_iter();
        let node = node_peer.as_ref().and_then(|_| measured.next());
        let postgres_keyed_round = postgres.as_ref().map(|_| {
            let plain = measured.next();
            let keyed = postgres_envelope.as_ref().and_then(|_| measured.next());
            (plain, keyed)
        });
        let (postgres, postgres_keyed) = postgres_keyed_round.unwrap_or((None, None));
        let postgres_pair = postgres_pair.as_ref().and_then(|_| measured.next());
        results.push(Round {
            batched,
            single_rate: single.rate(),
            single_p99_ms: ms(single.report.percentile_us(99.0)),
            postgres,
            postgres_pair,
            node,
            postgres_keyed,
            wal_shim,
        });
    }

    let peak_mb = peak_memory_mb(server.pid());
    let wal_peak_mb = wal_peak.stop();
    drop(server);

    println!();
    for (n, r) in results.iter().enumerate() {
        let batched: Vec<String> = r
            .batched
            .iter()
            .map(|b| {
                format!(
                    "{} clients {:.0} events/s = {:.0}% of {:.0} rows/s",
                    b.clients,
                    b.rate,
                    b.ratio(),
                    b.ceiling_rate
                )
            })
            .collect();
        println!(
            "round {}: batched {}; single {:.0}/s, p99 {:.1} ms",
            n + 1,
            batched.join(", "),
            r.single_rate,
            r.single_p99_ms
        );
    }
    let single_rate = median(results.iter().map(|r| r.single_rate));
    let single_p99 = median(results.iter().map(|r| r.single_p99_ms));
    if on_sqlite {
        println!("medians over the rounds:");
        for (i, clients) in batch_clients.iter().enumerate() {
            let ratio = median(results.iter().map(|r| r.batched[i].ratio()));
            let rate = median(results.iter().map(|r| r.batched[i].rate));
            println!("batched / ceiling, {clients:>3} clients: {ratio:.0}% ({rate:.0} events/s; target ≥ 75% with the alert rules running)");
            if sqlite_envelope.is_some() {
                let keyed = median(results.iter().filter_map(|r| r.batched[i].keyed_rate));
                println!(
                    "  with a write key and a room: {keyed:.0} events/s = {:.1}% of the same phase without (target ≥ 95%)",
                    100.0 * keyed / rate.max(1e-9)
                );
            }
        }
        println!(
            "single-event POSTs:            {single_rate:.0}/s (target ≥ 15000/s), p99 {single_p99:.1} ms (target < 10 ms)"
        );
        match peak_mb {
            Some(mb) => println!("server peak memory:            {mb:.1} MB (VmHWM; target < 100 MB)"),
            None => println!("server peak memory:            unavailable (no /proc)"),
        }
        println!("WAL file, largest seen:        {wal_peak_mb:.1} MB (sampled every 50 ms under load)");
    }
    let shim: Vec<[(f64, f64); 2]> = results.iter().filter_map(|r| r.wal_shim).collect();
    if !shim.is_empty() {
        let at = |i: usize, part: fn(&(f64, f64)) -> f64| median(shim.iter().map(|r| part(&r[i])));
        let (rate, cpu) = (at(0, |m| m.0), at(0, |m| m.1));
        let (rate_off, cpu_off) = (at(1, |m| m.0), at(1, |m| m.1));
        println!(
            "WAL shim, single events:       with it {rate:.0}/s, {cpu:.1} µs server CPU per event; without it {rate_off:.0}/s, {cpu_off:.1} µs ({:.0}% of the CPU, {:.0}% of the rate)",
            100.0 * cpu / cpu_off.max(1e-9),
            100.0 * rate / rate_off.max(1e-9)
        );
    }
    if postgres_url.is_some() {
        // Each figure beside the one it is compared with: SQLite, one server on PostgreSQL, two
        // servers on PostgreSQL, and the Node.js peer, with the ratio of one server to the peer.
        let of = |pick: fn(&Round) -> Option<&PostgresRound>| -> Vec<&PostgresRound> {
            results.iter().filter_map(pick).collect()
        };
        let (rounds, pairs, peers) =
            (of(|r| r.postgres.as_ref()), of(|r| r.postgres_pair.as_ref()), of(|r| r.node.as_ref()));
        let describe = |name: &str, figures: &[&PostgresRound], at: &dyn Fn(&PostgresRound) -> f64| {
            (!figures.is_empty()).then(|| (name.to_owned(), median(figures.iter().map(|r| at(r)))))
        };
        println!("PostgreSQL, same load, same run (medians over the rounds; two servers share the load):");
        for (i, clients) in batch_clients.iter().enumerate() {
            let sqlite = on_sqlite.then(|| ("SQLite".to_owned(), median(results.iter().map(|r| r.batched[i].rate))));
            let parts: Vec<(String, f64)> = [
                sqlite,
                describe("PostgreSQL", &rounds, &|r| r.0[i]),
                describe("two servers on PostgreSQL", &pairs, &|r| r.0[i]),
                describe("Node.js peer", &peers, &|r| r.0[i]),
            ]
            .into_iter()
            .flatten()
            .collect();
            let text: Vec<String> = parts.iter().map(|(name, rate)| format!("{name} {rate:.0} events/s")).collect();
            println!("batched, {clients:>3} clients: {}", text.join(", "));
            let keyed: Vec<&PostgresRound> = results.iter().filter_map(|r| r.postgres_keyed.as_ref()).collect();
            if let (Some(plain), Some(with)) = (describe("", &rounds, &|r| r.0[i]), describe("", &keyed, &|r| r.0[i])) {
                let peer = describe("", &peers, &|r| r.0[i]).map(|p| p.1);
                println!(
                    "  PostgreSQL with a write key and a room: {:.0} events/s = {:.1}% of without (target ≥ 95%){}",
                    with.1,
                    100.0 * with.1 / plain.1.max(1e-9),
                    peer.map_or(String::new(), |p| format!("; {:.2}× the Node.js peer", with.1 / p.max(1e-9)))
                );
            }
            if let (Some(ours), Some(peer)) = (describe("", &rounds, &|r| r.0[i]), describe("", &peers, &|r| r.0[i])) {
                println!(
                    "  PostgreSQL / Node.js peer, batched, {clients} clients: {:.2}× (target ≥ 1.5×)",
                    ours.1 / peer.1.max(1e-9)
                );
            }
        }
        let singles: Vec<String> = [
            on_sqlite.then(|| format!("SQLite {single_rate:.0}/s p99 {single_p99:.1} ms")),
            describe("PostgreSQL", &rounds, &|r| r.1)
                .map(|(n, rate)| format!("{n} {rate:.0}/s p99 {:.1} ms", median(rounds.iter().map(|r| r.2)))),
            describe("two servers", &pairs, &|r| r.1)
                .map(|(n, rate)| format!("{n} {rate:.0}/s p99 {:.1} ms", median(pairs.iter().map(|r| r.2)))),
            describe("Node.js peer", &peers, &|r| r.1)
                .map(|(n, rate)| format!("{n} {rate:.0}/s p99 {:.1} ms", median(peers.iter().map(|r| r.2)))),
        ]
        .into_iter()
        .flatten()
        .collect();
        println!("single-event POSTs: {}", singles.join(", "));
        if let (Some(ours), Some(peer)) = (describe("", &rounds, &|r| r.1), describe("", &peers, &|r| r.1)) {
            println!(
                "  PostgreSQL / Node.js peer, single events: {:.2}× (target ≥ 2×, with p99 < 20 ms: {:.1} ms)",
                ours.1 / peer.1.max(1e-9),
                median(rounds.iter().map(|r| r.2))
            );
        }
        let cpu: Vec<String> = [
            describe("one server", &rounds, &|r| r.3),
            describe("two servers", &pairs, &|r| r.3),
            describe("Node.js peer", &peers, &|r| r.3),
        ]
        .into_iter()
        .flatten()
        .map(|(n, us)| format!("{n} {us:.1} µs"))
        .collect();
        println!("CPU per batched event (the service's process(es) + PostgreSQL's): {}", cpu.join(", "));
        if let Some(mb) = postgres.as_ref().and_then(|(_, pg)| peak_memory_mb(pg.pid())) {
            println!("PostgreSQL server peak memory: {mb:.1} MB (VmHWM of session-log-server)");
        }
    }
    Ok(())
}

/// What load slices measured, added up: the load generator's report, the server's and the load
/// generator's CPU time (s; stolen time is not counted, so CPU per event varies less than
/// throughput on a shared host), the server's group commits and the machine's CPU ticks.
#[derive(Default)]
struct Measured {
    report: LoadReport,
    server_cpu: f64,
    generator_cpu: f64,
    /// CPU of the machine's PostgreSQL processes (0 with SQLite, where they idle).
    database_cpu: f64,
    commits: CommitStats,
    machine: Ticks,
}

impl Measured {
    /// Runs `load` against `server` to its end and measures it.
    fn load(server: &dyn Target, load: LoadConfig) -> Measured {
        let machine = Ticks::read();
        let commits = CommitStats::read(server.url());
        // Zero where /proc cannot be read.
        let cpu = |pid| cpu_seconds(pid).unwrap_or(0.0);
        let (server_before, generator_before) = (cpu(server.pid()), cpu(std::process::id()));
        let database_before = postgres_cpu_seconds();
        let report = Load::run(load);
        let (server_after, generator_after) = (cpu(server.pid()), cpu(std::process::id()));
        Measured {
            report,
            server_cpu: server_after - server_before,
            generator_cpu: generator_after - generator_before,
            database_cpu: postgres_cpu_seconds() - database_before,
            commits: CommitStats::read(server.url()).since(&commits),
            machine: Ticks::read().since(&machine),
        }
    }

    /// Runs `load` against `servers` at once, each taking an equal share of its clients and
    /// requests (its `url` is ignored), and measures them together: reports merged, CPU summed.
    fn load_spread(servers: &[&dyn Target], load: LoadConfig) -> Measured {
        if let [server] = servers {
            return Measured::load(*server, LoadConfig { url: server.url().to_owned(), ..load });
        }
        let n = servers.len();
        let machine = Ticks::read();
        let cpu = |pid| cpu_seconds(pid).unwrap_or(0.0);
        let servers_cpu = || servers.iter().map(|s| cpu(s.pid())).sum::<f64>();
        let commits: Vec<CommitStats> = servers.iter().map(|s| CommitStats::read(s.url())).collect();
        let (servers_before, generator_before) = (servers_cpu(), cpu(std::process::id()));
        let database_before = postgres_cpu_seconds();
        let loads: Vec<Load> = servers
            .iter()
            .map(|s| {
                Load::start(LoadConfig {
                    url: s.url().to_owned(),
                    clients: load.clients.div_ceil(n),
                    max_requests: load.max_requests.div_ceil(n),
                    ..load.clone()
                })
            })
            .collect();
        let mut report = LoadReport::default();
        for part in loads.into_iter().map(Load::join) {
            report.acked.extend(part.acked);
            report.latencies_us.extend(part.latencies_us);
            report.failures += part.failures;
            report.elapsed = report.elapsed.max(part.elapsed);
        }
        let mut measured = Measured {
            report,
            server_cpu: servers_cpu() - servers_before,
            generator_cpu: cpu(std::process::id()) - generator_before,
            database_cpu: postgres_cpu_seconds() - database_before,
            commits: CommitStats::default(),
            machine: Ticks::read().since(&machine),
        };
        for (server, before) in servers.iter().zip(&commits) {
            measured.commits.add(&CommitStats::read(server.url()).since(before));
        }
        measured
    }

    fn add(&mut self, other: Measured) {
        self.report.acked.extend(other.report.acked);
        self.report.latencies_us.extend(other.report.latencies_us);
        self.report.failures += other.report.failures;
        self.report.elapsed += other.report.elapsed;
        self.server_cpu += other.server_cpu;
        self.generator_cpu += other.generator_cpu;
        self.database_cpu += other.database_cpu;
        self.commits.add(&other.commits);
        self.machine.add(&other.machine);
    }

    /// Server and database CPU per acknowledged event (µs).
    fn cpu_per_event_us(&self) -> f64 {
        1e6 * (self.server_cpu + self.database_cpu) / self.report.acked.len().max(1) as f64
    }

    /// Acknowledged events per second of load.
    fn rate(&self) -> f64 {
        self.report.acked.len() as f64 / self.report.elapsed.as_secs_f64().max(1e-9)
    }

    /// Prints throughput and latency, the group commits, the CPU per event and the machine's CPU.
    fn print(&self, name: &str) {
        print_phase(name, &self.report, self.rate());
        self.commits.print();
        let events = self.report.acked.len().max(1) as f64;
        let seconds = self.report.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  CPU per event: server {:.1} µs, load generator {:.1} µs ({:.0}% and {:.0}% of the {} cores)",
            1e6 * self.server_cpu / events,
            1e6 * self.generator_cpu / events,
            100.0 * self.server_cpu / seconds / cores() as f64,
            100.0 * self.generator_cpu / seconds / cores() as f64,
            cores()
        );
        if self.database_cpu > 0.01 {
            println!("  PostgreSQL's processes: {:.1} µs per event", 1e6 * self.database_cpu / events);
        }
        self.machine.print();
    }
}

/// Waits (at most 3 s) until the server's writer has gone idle after a load slice: after
/// [`WRITER_IDLE_AFTER`] it flushes its summaries and truncates a WAL over
/// [`WAL_CHECKPOINT_IDLE`], work that would otherwise fall into the ceiling's slice.
fn wait_until_idle(wal: &std::path::Path) {
    let started = Instant::now();
    std::thread::sleep(WRITER_IDLE_AFTER + Duration::from_millis(200));
    while started.elapsed() < Duration::from_secs(3)
        && std::fs::metadata(wal).map_or(0, |m| m.len()) > WAL_CHECKPOINT_IDLE
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// One second of light load: connections, page cache, statement caches, as on a server that
/// has been running.
fn warm_up(url: &str) {
    Load::run(LoadConfig {
        url: url.to_owned(),
        clients: 4,
        batch_size: 50,
        duration: Duration::from_secs(1),
        max_requests: 2_000,
        envelope: String::new(),
    });
}

/// The median of some figures (the upper one of the middle two for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Samples the size of a WAL file every 50 ms on a thread until stopped.
struct WalPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl WalPeak {
    fn watch(path: std::path::PathBuf) -> WalPeak {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(std::fs::metadata(&path).map_or(0, |m| m.len()));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        WalPeak { stop, thread }
    }

    /// The largest size seen (MB).
    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0) as f64 / 1e6
    }
}

/// The writer's group-commit counters from `/metrics` (or the difference of two readings).
#[derive(Default)]
struct CommitStats {
    commits: f64,
    seconds: f64,
    rows: f64,
    /// Events the alert rules took from the writer's commit feed, and read back from storage.
    alert_feed: f64,
    alert_read_back: f64,
}

impl CommitStats {
    fn read(url: &str) -> CommitStats {
        let text = ureq::get(&format!("{url}/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        CommitStats {
            commits: value("session_log_commit_seconds_count"),
            seconds: value("session_log_commit_seconds_sum"),
            rows: value("session_log_commit_rows_sum"),
            alert_feed: value("session_log_alert_events_total{source=\"feed\"}"),
            alert_read_back: value("session_log_alert_events_total{source=\"read_back\"}"),
        }
    }

    /// The commits made since the reading `before`.
    fn since(&self, before: &CommitStats) -> CommitStats {
        CommitStats {
            commits: self.commits - before.commits,
            seconds: self.seconds - before.seconds,
            rows: self.rows - before.rows,
            alert_feed: self.alert_feed - before.alert_feed,
            alert_read_back: self.alert_read_back - before.alert_read_back,
        }
    }

    fn add(&mut self, other: &CommitStats) {
        self.commits += other.commits;
        self.seconds += other.seconds;
        self.rows += other.rows;
        self.alert_feed += other.alert_feed;
        self.alert_read_back += other.alert_read_back;
    }

    fn print(&self) {
        if self.commits > 0.0 {
            println!(
                "  group commits in that phase: {:.0}, {:.1} rows and {:.2} ms each on average",
                self.commits,
                self.rows / self.commits,
                1000.0 * self.seconds / self.commits
            );
            println!(
                "  alert rules took {:.0} events from the commit feed and read {:.0} back from storage",
                self.alert_feed, self.alert_read_back
            );
        }
    }
}

/// A comma-separated list after `name` (`--batch-clients 16,48`); `None` when absent or not a list
/// of numbers.
fn list_arg(name: &str) -> Option<Vec<usize>> {
    let text: String = arg(name)?;
    text.split(',').map(|n| n.trim().parse().ok().filter(|&n: &usize| n > 0)).collect()
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn print_phase(name: &str, report: &LoadReport, events_per_sec: f64) {
    println!(
        "{name}: {events_per_sec:.0} events/s over {:.1} s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} requests, {} failed",
        report.elapsed.as_secs_f64(),
        ms(report.percentile_us(50.0)),
        ms(report.percentile_us(99.0)),
        ms(report.percentile_us(100.0)),
        report.latencies_us.len(),
        report.failures,
    );
}

/// The whole machine's CPU ticks from /proc/stat (or the difference of two readings): busy,
/// stolen by the hypervisor, and total. Stolen time is CPU this virtual machine wanted and the
/// host gave to others: it makes figures vary from run to run, so the benchmark prints it.
#[derive(Default)]
struct Ticks {
    busy: f64,
    stolen: f64,
    total: f64,
}

impl Ticks {
    /// The counters since boot; zeros where /proc/stat cannot be read.
    fn read() -> Ticks {
        let read = || -> Option<Ticks> {
            let stat = std::fs::read_to_string("/proc/stat").ok()?;
            let ticks: Vec<f64> =
                stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
            let total: f64 = ticks.iter().take(8).sum();
            let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0.0);
            let stolen = *ticks.get(7).unwrap_or(&0.0);
            Some(Ticks { busy: total - idle - stolen, stolen, total })
        };
        read().unwrap_or_default()
    }

    fn since(&self, before: &Ticks) -> Ticks {
        Ticks { busy: self.busy - before.busy, stolen: self.stolen - before.stolen, total: self.total - before.total }
    }

    fn add(&mut self, other: &Ticks) {
        self.busy += other.busy;
        self.stolen += other.stolen;
        self.total += other.total;
    }

    fn print(&self) {
        if self.total > 0.0 {
            println!(
                "  machine CPU in that phase: {:.0}% busy, {:.0}% stolen by the host",
                100.0 * self.busy / self.total,
                100.0 * self.stolen / self.total
            );
        }
    }
}

/// CPU time (user + system) a process has used, from /proc (s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU time (s) of every `postgres` process (the server, its backends, and through the
/// postmaster's children counters those that exited), from /proc; 0 where none runs.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    let mut total = 0.0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        if !head.ends_with("(postgres") {
            continue;
        }
        // utime, stime, cutime, cstime: fields 14–17 of stat, 11–14 after the state.
        let ticks: f64 = rest.split_whitespace().skip(11).take(4).filter_map(|f| f.parse::<f64>().ok()).sum();
        total += ticks / 100.0;
    }
    total
}

/// The server's peak resident memory, from /proc (MB).
fn peak_memory_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The ceiling: realistic events of as many sessions as the batched phase has clients (so the
/// indexes see the same spread) stored in a fresh SQLite database through the storage API the
/// server uses (`Storage::insert`: the same writer, group commit, checkpointer, WAL shim and
/// summary work) in requests of [`CEILING_ROWS_PER_TX`] rows, without HTTP. Filled in timed
/// slices; its folder is deleted on drop.
struct Ceiling {
    // Dropped in this order: the storage (its writer and checkpointer), then the folder.
    storage: Option<Storage>,
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    config: Config,
    rng: fastrand::Rng,
    sessions: usize,
    rows: u64,
    /// Time spent in the inserts (events are made before each one's clock starts).
    busy: Duration,
    machine: Ticks,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        // Commits what is queued and stops the writer and checkpointer before the folder goes.
        if let Some(storage) = self.storage.take() {
            storage.close();
        }
    }
}

impl Ceiling {
    /// A fresh database in a new folder under `parent`.
    fn open(parent: &std::path::Path, sessions: usize) -> anyhow::Result<Ceiling> {
        let dir = tempfile::tempdir_in(parent)?;
        let config = Config { db_path: dir.path().join("ceiling.db"), ..Config::default() };
        let storage = Storage::open(&config, Default::default())?;
        Ok(Ceiling {
            storage: Some(storage),
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build()?,
            dir,
            config,
            rng: fastrand::Rng::with_seed(7),
            sessions: sessions.max(1),
            rows: 0,
            busy: Duration::ZERO,
            machine: Ticks::default(),
        })
    }

    /// Stores requests until `slice` of insert time has passed.
    fn run_for(&mut self, slice: Duration) -> anyhow::Result<()> {
        let storage = self.storage.as_ref().expect("open until dropped");
        let mut spent = Duration::ZERO;
        while spent < slice {
            let events: Vec<_> = (self.rows..self.rows + CEILING_ROWS_PER_TX as u64)
                .map(|n| {
                    let session = format!("ws_ceiling_{:04}", n % self.sessions as u64);
                    let json = realistic_event(&mut self.rng, &session, uuid::Uuid::now_v7(), n).to_string();
                    validate_event(&json, &self.config.ingest_limits()).map_err(|e| anyhow::anyhow!(e))
                })
                .collect::<Result<_, _>>()?;
            let machine = Ticks::read();
            let started = Instant::now();
            let inserted = self.runtime.block_on(storage.insert(events))?;
            spent += started.elapsed();
            self.machine.add(&Ticks::read().since(&machine));
            self.rows += inserted.new as u64;
        }
        self.busy += spent;
        Ok(())
    }

    /// Between slices, untimed: waits until the ceiling's writer is idle (summaries flushed, WAL
    /// truncated), so neither side's leftovers run in the other's slice.
    fn settle(&mut self) {
        wait_until_idle(&self.dir.path().join("ceiling.db-wal"));
    }

    /// Rows per second of insert time.
    fn rate(&self) -> f64 {
        self.rows as f64 / self.busy.as_secs_f64().max(1e-9)
    }

    fn print(&self) {
        println!(
            "ceiling (Storage::insert without HTTP, {CEILING_ROWS_PER_TX} rows/request, the server's writer, {} rows in the same slices): {:.0} rows/s",
            self.rows,
            self.rate()
        );
        self.machine.print();
    }
}
