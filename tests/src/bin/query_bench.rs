//! `cargo xtask bench-query`: latency of the instructors' queries on a database of 1,000,000
//! events in 2,000 sessions (`--events 10000000 --sessions 20000` for 90 days of a busy
//! platform), through the real release server over loopback.
//!
//! The database is filled through the storage API the server uses (`Storage::insert`, which also
//! maintains the session summaries), in requests of 5,000 events. Then the server is started on
//! it and each query is sent one at a time over a keep-alive connection; p50/p99/max latencies
//! are printed beside the targets. Arguments: `--events N` (default 1,000,000), `--sessions N`
//! (default 2,000), and `--database-url postgres://…/db` (a maintenance database) to measure a
//! fresh PostgreSQL database beside SQLite, on the same events, in the same run (`--backends
//! postgres` for PostgreSQL alone). `--samples N` times each event query N times (default 1,000,
//! so that p99 is the 10th slowest, not one outlier). For looking into a plan: `--keep` leaves the
//! filled PostgreSQL database in place and prints its URL, and `--filled URL` measures such a
//! database again without filling it (`--events`/`--sessions` must match its fill).
//! `--rooms N` spreads the sessions over N rooms of one workshop (placed as ingest places them)
//! and adds one room's sessions page, events page, report (its funnel) and export's first page
//! (its first 64 KB of NDJSON) to the queries.

use std::time::Instant;

use session_log_e2e::load::realistic_event;
use session_log_e2e::Server;
use session_log_server::config::Config;
use session_log_server::domain::validate::validate_event;
use session_log_server::storage::Storage;

const ROWS_PER_TX: usize = 5000;

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

/// A query to time: its name, how many samples, its p99 target (ms), and what makes each path.
type Case = (&'static str, usize, f64, Box<dyn FnMut() -> String>);

/// Bytes of an export's answer timed as its first page: the export streams its events a page
/// (1,000 events) at a time, and a first page of realistic events is more than this.
const EXPORT_FIRST_PAGE_BYTES: usize = 64 * 1024;

fn main() -> anyhow::Result<()> {
    let events: usize = arg("--events").unwrap_or(1_000_000);
    let sessions: usize = arg("--sessions").unwrap_or(2_000);
    let postgres: Option<String> = arg("--database-url");
    // `--backends postgres` measures PostgreSQL alone (the 10,000,000-event SQLite fill takes
    // about 8 minutes); the default is both, SQLite first.
    let backends: String = arg("--backends").unwrap_or_else(|| "sqlite,postgres".to_owned());
    let samples: usize = arg("--samples").unwrap_or(1000);
    let rooms: usize = arg("--rooms").unwrap_or(0);
    let keep = std::env::args().any(|a| a == "--keep");
    let filled: Option<String> = arg("--filled");
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("query-bench.db");
    println!("session-log query benchmark: {events} events in {sessions} sessions, {rooms} rooms");
    let mut results = Vec::new();
    let shape = Shape { events, sessions, samples, rooms };
    if let Some(url) = filled {
        results.push(("PostgreSQL", measure(&db, Some(&url), shape, false)?));
    } else {
        if backends.contains("sqlite") {
            results.push(("SQLite", measure(&db, None, shape, true)?));
        }
        if let Some(admin) = postgres.filter(|_| backends.contains("postgres")) {
            let database = session_log_e2e::pg::FreshDatabase::on(&admin);
            results.push(("PostgreSQL", measure(&db, Some(&database.url), shape, true)?));
            if keep {
                println!("kept the filled database: --filled {}", database.url);
                std::mem::forget(database);
            }
        }
    }
    if results.len() > 1 {
        println!("p99 (ms) side by side:");
        for (i, (name, _, target)) in results[0].1.iter().enumerate() {
            let figures: Vec<String> = results.iter().map(|(backend, r)| format!("{backend} {:.2}", r[i].1)).collect();
            println!("  {name:<42} {}  (target {target:.0} ms)", figures.join(", "));
        }
    }
    Ok(())
}

/// What is measured: the fill's events, sessions and rooms, and the samples per event query.
#[derive(Clone, Copy)]
struct Shape {
    events: usize,
    sessions: usize,
    samples: usize,
    rooms: usize,
}

/// Fills a database (the SQLite file `db`, or the PostgreSQL database at `url`) unless `fill_it`
/// is false, and times the queries on a server started on it; returns each query's name, p99
/// (ms) and target (ms).
fn measure(
    db: &std::path::Path,
    url: Option<&str>,
    Shape { events, sessions, samples, rooms }: Shape,
    fill_it: bool,
) -> anyhow::Result<Vec<(&'static str, f64, f64)>> {
    let backend = if url.is_some() { "PostgreSQL" } else { "SQLite" };
    let config = Config { db_path: db.to_owned(), database_url: url.map(str::to_owned), ..Config::default() };
    let started = Instant::now();
    let codes = if fill_it { fill(&config, events, sessions, rooms)? } else { filled_rooms(&config, rooms)? };
    if let Some(url) = url.filter(|_| fill_it) {
        // What autovacuum does on a running server within a minute of a bulk load: the planner's
        // statistics and the visibility map (index-only scans), so that the plans measured are the
        // plans a deployment runs.
        // And a checkpoint: the bulk load leaves gigabytes of dirty buffers, whose writing would
        // otherwise fall into the measurement.
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        client.batch_execute("VACUUM ANALYZE")?;
        client.batch_execute("CHECKPOINT")?;
    }
    if fill_it {
        println!("{backend}: filled in {:.1} s", started.elapsed().as_secs_f64());
    }
    let mut args = vec!["--instructor-token", "bench", "--report-interval", "0", "--retention-days", "0"];
    if let Some(url) = url {
        args.extend(["--database-url", url]);
    }
    let server = Server::start_with(db, &args);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut rng = fastrand::Rng::with_seed(11);
    let types = ["navigation", "error", "action", "api_call", "state_change"];
    let mut cases: Vec<Case> = vec![
        ("one session's events (limit 100)", samples, 5.0, {
            let mut rng = rng.clone();
            Box::new(move || format!("/api/session-log?sessionToken=ws_q_{:05}&limit=100", rng.usize(..sessions)))
        }),
        ("one student's events (limit 100)", samples, 5.0, {
            let mut rng = rng.fork();
            Box::new(move || {
                format!("/api/session-log?studentEmail=ws_q_{:05}@example.com&limit=100", rng.usize(..sessions))
            })
        }),
        ("one event type, all sessions (limit 200)", samples, 5.0, {
            let mut rng = rng.fork();
            Box::new(move || format!("/api/session-log?eventType={}&limit=200", types[rng.usize(..types.len())]))
        }),
        ("/api/sessions (first page, 500 sessions)", 50, 50.0, Box::new(|| "/api/sessions".to_owned())),
        ("/api/report", 30, 500.0, Box::new(|| "/api/report".to_owned())),
    ];
    if !codes.is_empty() {
        let pick = |mut rng: fastrand::Rng, codes: Vec<String>| move || codes[rng.usize(..codes.len())].clone();
        let mut room = pick(rng.fork(), codes.clone());
        cases.push((
            "one room's sessions (first page)",
            50,
            50.0,
            Box::new(move || format!("/api/sessions?room={}", room())),
        ));
        let mut room = pick(rng.fork(), codes.clone());
        cases.push((
            "one room's events (limit 100)",
            samples,
            5.0,
            Box::new(move || format!("/api/session-log?room={}&limit=100", room())),
        ));
        let mut room = pick(rng.fork(), codes.clone());
        cases.push(("one room's report (funnel)", 30, 50.0, Box::new(move || format!("/api/report?room={}", room()))));
        let mut room = pick(rng.fork(), codes.clone());
        cases.push((
            "one room's export (first page, NDJSON)",
            50,
            50.0,
            Box::new(move || format!("/api/session-log/export?room={}&format=ndjson", room())),
        ));
    }
    rng.u8(..);
    let mut measured = Vec::new();
    println!("  {:<42} {:>9} {:>9} {:>9} {:>9}  {:>8}", "query", "p50 ms", "p99 ms", "max ms", "target", "");
    for (name, samples, target_ms, mut path) in cases {
        // Warm-up: statement cache and page cache, as on a server that has been running.
        for _ in 0..5 {
            get(&agent, &server.url, &path())?;
        }
        let mut latencies: Vec<f64> = (0..samples)
            .map(|_| {
                let url = path();
                let t0 = Instant::now();
                get(&agent, &server.url, &url).map(|_| t0.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<anyhow::Result<_>>()?;
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
        let p99 = at(0.99);
        println!(
            "  {name:<42} {:>9.2} {:>9.2} {:>9.2} {:>7.0} ms  {}",
            at(0.5),
            p99,
            latencies[latencies.len() - 1],
            target_ms,
            if p99 < target_ms { format!("met ({:.0}% of it)", 100.0 * p99 / target_ms) } else { "MISSED".into() }
        );
        measured.push((name, p99, target_ms));
    }
    Ok(measured)
}

/// GETs `path` and reads its answer: an export's first [`EXPORT_FIRST_PAGE_BYTES`] (or all
/// of it when shorter; the connection is then dropped), anything else whole. Returns the bytes read.
fn get(agent: &ureq::Agent, base: &str, path: &str) -> anyhow::Result<usize> {
    let mut response = agent.get(&format!("{base}{path}")).header("Authorization", "Bearer bench").call()?;
    anyhow::ensure!(response.status() == 200, "{path}: HTTP {}", response.status());
    if path.contains("/export") {
        use std::io::Read;
        let mut first = vec![0u8; EXPORT_FIRST_PAGE_BYTES];
        let mut reader = response.body_mut().as_reader();
        let mut read = 0;
        while read < first.len() {
            match reader.read(&mut first[read..])? {
                0 => break,
                n => read += n,
            }
        }
        return Ok(read);
    }
    Ok(response.body_mut().with_config().limit(256 * 1024 * 1024).read_to_vec()?.len())
}

/// The join codes of the rooms of a database filled before (`--filled`), when `rooms` > 0.
fn filled_rooms(config: &Config, rooms: usize) -> anyhow::Result<Vec<String>> {
    if rooms == 0 {
        return Ok(Vec::new());
    }
    let storage = Storage::open(config, Default::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let codes = runtime.block_on(storage.rooms())?.into_iter().map(|r| r.code).collect();
    storage.close();
    Ok(codes)
}

/// Stores `events` realistic events, round-robin over `sessions` sessions (so every session's
/// events are spread through the table, as in a live workshop), through `Storage::insert` in
/// requests of [`ROWS_PER_TX`] (generated on another thread meanwhile); with `rooms` > 0, the
/// sessions are spread over that many rooms of the `default` workshop. Returns the rooms' codes.
fn fill(config: &Config, events: usize, sessions: usize, rooms: usize) -> anyhow::Result<Vec<String>> {
    let storage = Storage::open(config, Default::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let workshop_id = runtime
        .block_on(storage.workshops())?
        .iter()
        .find(|w| w.slug == "default")
        .map(|w| w.id)
        .ok_or_else(|| anyhow::anyhow!("no default workshop"))?;
    let mut made = Vec::with_capacity(rooms);
    for n in 0..rooms {
        let new = session_log_server::storage::NewRoom {
            workshop_id,
            name: format!("Room {n}"),
            code: String::new(),
            opens_at: None,
            closes_at: None,
        };
        made.push(runtime.block_on(storage.create_room(new))?);
    }
    let places: Vec<session_log_server::domain::workshop::Placement> = made
        .iter()
        .map(|r| session_log_server::domain::workshop::Placement { workshop_id, room_id: Some(r.id) })
        .collect();
    let (batches, received) = std::sync::mpsc::sync_channel(4);
    let generator_config = config.clone();
    let generator = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut rng = fastrand::Rng::with_seed(7);
        for from in (0..events).step_by(ROWS_PER_TX) {
            let batch: Vec<_> = (from..(from + ROWS_PER_TX).min(events))
                .map(|n| {
                    let session = format!("ws_q_{:05}", n % sessions);
                    let json =
                        realistic_event(&mut rng, &session, uuid::Uuid::now_v7(), (n / sessions) as u64).to_string();
                    let mut event =
                        validate_event(&json, &generator_config.ingest_limits()).map_err(|e| anyhow::anyhow!(e))?;
                    if !places.is_empty() {
                        event.placement = places[(n % sessions) % places.len()];
                    }
                    Ok(event)
                })
                .collect::<anyhow::Result<_>>()?;
            if batches.send(batch).is_err() {
                break;
            }
        }
        Ok(())
    });
    for batch in received {
        runtime.block_on(storage.insert(batch))?;
    }
    generator.join().map_err(|_| anyhow::anyhow!("the generator panicked"))??;
    runtime.block_on(storage.flush_summaries())?;
    storage.close();
    Ok(made.into_iter().map(|r| r.code).collect())
}
