//! The ingest benchmark (`cargo xtask bench`): drives the real server binary over loopback with
//! concurrent clients and measures the ceiling (the same rows inserted straight through rusqlite
//! with the same schema and pragmas) in the same run. It does so in `--rounds` rounds (default
//! 3) of batched phase, its ceiling, single-event phase, and prints each round, the medians, and
//! how much CPU the host stole in each phase (shared machines vary from minute to minute).
//! Bounded: each phase runs for `--seconds` (default 10) and a fixed request budget.

use std::time::{Duration, Instant};

use session_log_e2e::load::{realistic_event, Load, LoadConfig, LoadReport};
use session_log_e2e::Server;
use session_log_server::config::Config;
use session_log_server::ingest::validate_event;
use session_log_server::storage::{now_iso, open_writer_connection, Checkpointer, EventWriter, WriterCache};

/// Rows per transaction of the ceiling (as many as the server's largest group commit).
const CEILING_ROWS_PER_TX: usize = 5000;

/// What one round measured.
struct Round {
    batched_rate: f64,
    ceiling_rate: f64,
    single_rate: f64,
    single_p99_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = arg("--seconds").unwrap_or(10);
    let rounds: usize = arg("--rounds").unwrap_or(3).max(1);
    let batch_clients: usize = arg("--batch-clients").unwrap_or(16);
    let single_clients: usize = arg("--single-clients").unwrap_or(32);
    let phase = Duration::from_secs(seconds);

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let server =
        Server::start_with(&db, &["--instructor-token", "bench", "--rate-limit-ip", "0", "--rate-limit-session", "0"]);
    println!("session-log ingest benchmark: {} cores, loopback, server {}, {rounds} rounds", cores(), server.url);

    let wal_peak = WalPeak::watch(dir.path().join("bench.db-wal"));
    // Warm-up: connections, page cache, statement cache.
    Load::run(LoadConfig { url: server.url.clone(), clients: 4, batch_size: 50, duration: Duration::from_secs(1), max_requests: 2_000 });

    // Each round measures the batched phase, then its ceiling, then single events, so that each
    // ratio compares two figures taken a few seconds apart: the host's load changes over minutes.
    let mut results = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        println!("round {round}:");
        let load = LoadConfig { url: server.url.clone(), clients: batch_clients, batch_size: 50, duration: phase, max_requests: 400_000 };
        let (batched, batched_rate) = run_phase(&format!("batched ({batch_clients} clients × 50 events/POST)"), &server, load);

        let rows = batched.acked.len().clamp(50_000, 1_000_000);
        let ceiling_rate = ceiling(&dir.path().join(format!("ceiling-{round}.db")), rows, batch_clients)?;

        let load = LoadConfig { url: server.url.clone(), clients: single_clients, batch_size: 0, duration: phase, max_requests: 1_000_000 };
        let (single, single_rate) = run_phase(&format!("single events ({single_clients} clients × 1 event/POST)"), &server, load);
        results.push(Round { batched_rate, ceiling_rate, single_rate, single_p99_ms: ms(single.percentile_us(99.0)) });
    }

    let peak_mb = peak_memory_mb(server.pid());
    let wal_peak_mb = wal_peak.stop();
    drop(server);

    println!();
    for (n, r) in results.iter().enumerate() {
        println!(
            "round {}: batched {:.0} events/s = {:.0}% of the ceiling ({:.0} rows/s); single {:.0}/s, p99 {:.1} ms",
            n + 1,
            r.batched_rate,
            100.0 * r.batched_rate / r.ceiling_rate,
            r.ceiling_rate,
            r.single_rate,
            r.single_p99_ms
        );
    }
    let ratio = median(results.iter().map(|r| 100.0 * r.batched_rate / r.ceiling_rate));
    let single_rate = median(results.iter().map(|r| r.single_rate));
    let single_p99 = median(results.iter().map(|r| r.single_p99_ms));
    println!("medians over the rounds:");
    println!("batched / ceiling:        {ratio:.0}% (target ≥ 70%)");
    println!("single-event POSTs:       {single_rate:.0}/s (target ≥ 15000/s), p99 {single_p99:.1} ms (target < 10 ms)");
    match peak_mb {
        Some(mb) => println!("server peak memory:       {mb:.1} MB (VmHWM; target < 100 MB)"),
        None => println!("server peak memory:       unavailable (no /proc)"),
    }
    println!("WAL file, largest seen:   {wal_peak_mb:.1} MB (sampled every 50 ms under load)");
    Ok(())
}

/// Runs one load phase to its end and prints its figures: throughput and latency, the server's
/// group commits, the CPU time the server and the load generator spent per event (stolen time
/// is not counted, so this varies less than throughput on a shared host), and the machine's CPU
/// meanwhile; returns the report and its acknowledged events per second.
fn run_phase(name: &str, server: &Server, load: LoadConfig) -> (LoadReport, f64) {
    let machine_before = machine_ticks();
    let commits_before = CommitStats::read(&server.url);
    let (server_before, generator_before) = (cpu_seconds(server.pid()), cpu_seconds(std::process::id()));
    let report = Load::run(load);
    let (server_after, generator_after) = (cpu_seconds(server.pid()), cpu_seconds(std::process::id()));
    let events_per_sec = rate(&report);
    print_phase(name, &report, events_per_sec);
    CommitStats::read(&server.url).report_since(&commits_before);
    let events = report.acked.len().max(1) as f64;
    if let (Some(s0), Some(s1), Some(g0), Some(g1)) = (server_before, server_after, generator_before, generator_after) {
        println!(
            "  CPU per event: server {:.1} µs, load generator {:.1} µs ({:.0}% and {:.0}% of the {} cores)",
            1e6 * (s1 - s0) / events,
            1e6 * (g1 - g0) / events,
            100.0 * (s1 - s0) / report.elapsed.as_secs_f64() / cores() as f64,
            100.0 * (g1 - g0) / report.elapsed.as_secs_f64() / cores() as f64,
            cores()
        );
    }
    print_machine(machine_before, machine_ticks());
    (report, events_per_sec)
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

/// The writer's group-commit counters from `/metrics`.
struct CommitStats {
    commits: f64,
    seconds: f64,
    rows: f64,
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
        }
    }

    /// Prints the commits made since `before`.
    fn report_since(&self, before: &CommitStats) {
        let commits = self.commits - before.commits;
        if commits > 0.0 {
            println!(
                "  group commits in that phase: {commits:.0}, {:.1} rows and {:.2} ms each on average",
                (self.rows - before.rows) / commits,
                1000.0 * (self.seconds - before.seconds) / commits
            );
        }
    }
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn rate(report: &LoadReport) -> f64 {
    report.acked.len() as f64 / report.elapsed.as_secs_f64()
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

/// The whole machine's CPU ticks from /proc/stat: (busy, stolen by the hypervisor, total).
/// Stolen time is CPU this virtual machine wanted and the host gave to others: it makes
/// figures vary from run to run, so the benchmark prints it beside them.
fn machine_ticks() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0.0);
    let steal = *ticks.get(7).unwrap_or(&0.0);
    Some((total - idle - steal, steal, total))
}

/// Prints the machine's busy and stolen CPU between two [`machine_ticks`] readings.
fn print_machine(before: Option<(f64, f64, f64)>, after: Option<(f64, f64, f64)>) {
    if let (Some((busy0, steal0, total0)), Some((busy1, steal1, total1))) = (before, after) {
        let total = (total1 - total0).max(1.0);
        println!(
            "  machine CPU in that phase: {:.0}% busy, {:.0}% stolen by the host",
            100.0 * (busy1 - busy0) / total,
            100.0 * (steal1 - steal0) / total
        );
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

/// The server's peak resident memory, from /proc (MB).
fn peak_memory_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Inserts `rows` realistic events of `sessions` sessions (as many as the batched phase's
/// clients, so the indexes see the same spread) into a fresh database at `path` the way the
/// writer does, in large transactions; prints and returns rows/s (insert time only), then
/// deletes the file.
fn ceiling(path: &std::path::Path, rows: usize, sessions: usize) -> anyhow::Result<f64> {
    let config = Config::default();
    let mut rng = fastrand::Rng::with_seed(7);
    let events: Vec<_> = (0..rows)
        .map(|n| {
            let session = format!("ws_ceiling_{:04}", n % sessions.max(1));
            let json = realistic_event(&mut rng, &session, uuid::Uuid::now_v7(), n as u64).to_string();
            validate_event(&json, &config).map_err(|e| anyhow::anyhow!(e))
        })
        .collect::<Result<_, _>>()?;
    let mut conn = open_writer_connection(path, &config.completion_event_types)?;
    // The server's checkpointer runs beside its writer; it runs beside the ceiling's inserts too.
    let checkpointer = Checkpointer::start(path)?;
    let wal_restart = checkpointer.restart_handle();
    let mut cache = WriterCache::new(&config.completion_event_types);
    let machine_before = machine_ticks();
    let started = Instant::now();
    for chunk in events.chunks(CEILING_ROWS_PER_TX) {
        let created_at = now_iso();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The same work as the writer: the events and their sessions' summaries (flushed with
        // every transaction, which is more often than the server's once a second).
        EventWriter::new(&tx, &created_at, &mut cache)?.write(chunk)?;
        cache.flush(&tx)?;
        tx.commit()?;
        wal_restart.run_if_asked(&conn);
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    println!("ceiling (rusqlite direct, {CEILING_ROWS_PER_TX} rows/transaction, same schema, pragmas and checkpointer, {rows} rows): {rate:.0} rows/s");
    print_machine(machine_before, machine_ticks());
    drop(checkpointer);
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate)
}
