//! `session-log-server`: parses flags (each with an environment variable) and runs the server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use session_log_protocol::redact::Rules;
use session_log_server::Config;

/// Stores workshop events sent by session-log's browser client and serves them to instructors.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "SESSION_LOG_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. Read again on
    /// SIGHUP, so a renewed certificate needs no restart.
    #[arg(long, env = "SESSION_LOG_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(long, env = "SESSION_LOG_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// SQLite database file (created with its folder).
    #[arg(long, env = "SESSION_LOG_DB", default_value = "./data/session-log.db", global = true)]
    db: PathBuf,
    /// The database as a URL instead of --db: postgres://user@host:port/db (PostgreSQL) or
    /// sqlite://path (a SQLite file).
    #[arg(long, env = "SESSION_LOG_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Instructor token for the read API; repeat the flag, or separate with commas, for several.
    /// When absent, a random one is generated and printed once.
    #[arg(
        long = "instructor-token",
        env = "SESSION_LOG_INSTRUCTOR_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    instructor_tokens: Vec<String>,
    /// Admin token: may also delete students; repeat or separate with commas. When set,
    /// instructor tokens can read and acknowledge but no longer delete.
    #[arg(long = "admin-token", env = "SESSION_LOG_ADMIN_TOKENS", value_delimiter = ',', hide_env_values = true)]
    admin_tokens: Vec<String>,
    /// Folder of static files served at / (the demo workshop).
    #[arg(long, env = "SESSION_LOG_WWW", default_value = "./www")]
    www: PathBuf,
    /// Folder of the built npm package, served at /pkg/.
    #[arg(long, env = "SESSION_LOG_PKG", default_value = "./client-wasm/pkg")]
    pkg: PathBuf,
    /// Largest request body, in bytes.
    #[arg(long, env = "SESSION_LOG_MAX_BODY_BYTES", default_value_t = Config::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Longest time (seconds) a request body may take to arrive; past it the answer is 408.
    #[arg(long, env = "SESSION_LOG_BODY_TIMEOUT_SECS", default_value_t = Config::default().body_timeout.as_secs())]
    body_timeout_secs: u64,
    /// Most events in one batch.
    #[arg(long, env = "SESSION_LOG_MAX_BATCH_EVENTS", default_value_t = Config::default().max_batch_events)]
    max_batch_events: usize,
    /// Origin allowed to call the API from a browser (CORS); repeat, or separate with commas.
    /// When absent, any origin may.
    #[arg(long = "allowed-origin", env = "SESSION_LOG_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Refuse events that carry no workshop write key (401) instead of storing them in the
    /// `default` workshop.
    #[arg(long, env = "SESSION_LOG_REQUIRE_WRITE_KEY")]
    require_write_key: bool,
    /// POSTs per second from one client address (0: no limit).
    #[arg(long, env = "SESSION_LOG_RATE_LIMIT_IP", default_value_t = Config::default().rate_limit_ip_per_sec)]
    rate_limit_ip: u32,
    /// Burst of POSTs from one client address above the rate.
    #[arg(long, env = "SESSION_LOG_RATE_LIMIT_IP_BURST", default_value_t = Config::default().rate_limit_ip_burst)]
    rate_limit_ip_burst: u32,
    /// A trusted reverse proxy or load balancer, as a network (`10.0.0.0/8`, `127.0.0.1/32`;
    /// repeatable): requests from it take their client address from `X-Forwarded-For` (the
    /// right-most hop that is not a trusted proxy) or `Forwarded`. Without it those headers are ignored.
    #[arg(long = "trusted-proxy", env = "SESSION_LOG_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    trusted_proxies: Vec<session_log_server::domain::client_addr::IpNet>,
    /// Failed instructor authentications per client address per minute before it is refused
    /// with 429 for the rest of the minute (0: no limit).
    #[arg(long, env = "SESSION_LOG_AUTH_FAILURE_LIMIT", default_value_t = Config::default().auth_failure_limit)]
    auth_failure_limit: u32,
    /// POSTs per second for one session token (0: no limit).
    #[arg(long, env = "SESSION_LOG_RATE_LIMIT_SESSION", default_value_t = Config::default().rate_limit_session_per_sec)]
    rate_limit_session: u32,
    /// Burst of POSTs for one session token above the rate.
    #[arg(long, env = "SESSION_LOG_RATE_LIMIT_SESSION_BURST", default_value_t = Config::default().rate_limit_session_burst)]
    rate_limit_session_burst: u32,
    /// Events per second for one workshop's write key (0: no limit).
    #[arg(long, env = "SESSION_LOG_RATE_LIMIT_KEY", default_value_t = Config::default().rate_limit_key_per_sec)]
    rate_limit_key: u32,
    /// Burst of events for one write key above the rate.
    #[arg(long, env = "SESSION_LOG_RATE_LIMIT_KEY_BURST", default_value_t = Config::default().rate_limit_key_burst)]
    rate_limit_key_burst: u32,
    /// Event type that marks a session completed; repeat, or separate with commas.
    #[arg(
        long = "completion-event",
        env = "SESSION_LOG_COMPLETION_EVENTS",
        value_delimiter = ',',
        default_value = "workshop_completed"
    )]
    completion_events: Vec<String>,
    /// A session that reaches this step (numbered from 0) is completed too.
    #[arg(long, env = "SESSION_LOG_FINAL_STEP")]
    final_step: Option<i64>,
    /// A session with an event in the last this many minutes is active, else idle.
    #[arg(long, env = "SESSION_LOG_ACTIVE_MINUTES", default_value_t = 5)]
    active_minutes: u64,
    /// Delete events older than this many days (0: keep forever).
    #[arg(long, env = "SESSION_LOG_RETENTION_DAYS", default_value_t = 90)]
    retention_days: u64,
    /// Seconds between report rows appended to report.csv (0: none).
    #[arg(long, env = "SESSION_LOG_REPORT_INTERVAL", default_value_t = 300)]
    report_interval: u64,
    /// Folder of the periodic report's report.csv (default: reports/ beside the database).
    #[arg(long, env = "SESSION_LOG_REPORTS_DIR")]
    reports_dir: Option<PathBuf>,
    /// Before retention deletes events, write them to this folder as gzipped NDJSON, one file per
    /// UTC day (events-YYYY-MM-DD.ndjson.gz); without it they are deleted unarchived.
    #[arg(long, env = "SESSION_LOG_ARCHIVE_DIR")]
    archive_dir: Option<PathBuf>,
    /// HTTP worker threads (0: one per CPU core but one, at least one; the writer thread keeps a
    /// core busy under load). The writer and checkpointer threads come on top.
    #[arg(long, env = "SESSION_LOG_WORKERS", default_value_t = 0)]
    workers: usize,
    /// A key name whose values are redacted from eventData at ingest, on top of the defaults
    /// (password, secret, token, apikey, …); repeat, or separate with commas. Any case.
    #[arg(long = "redact-key", env = "SESSION_LOG_REDACT_KEYS", value_delimiter = ',')]
    redact_keys: Vec<String>,
    /// Turn off the default redaction (the default key names and the secret patterns in text);
    /// keys given with --redact-key are still redacted.
    #[arg(long, env = "SESSION_LOG_NO_REDACT")]
    no_redact: bool,
    /// `stuck` alert: an active session with no step change for this long (`10m`, `90s`, `3s`).
    #[arg(long, env = "SESSION_LOG_ALERT_STUCK_AFTER", default_value = "10m", value_parser = humantime::parse_duration)]
    alert_stuck_after: Duration,
    /// `stuck` alert: … and longer than this many times the room's median time on that step …
    #[arg(long, env = "SESSION_LOG_ALERT_STUCK_FACTOR", default_value_t = 2.0)]
    alert_stuck_factor: f64,
    /// … the room being the visits of the step that ended within this window …
    #[arg(long, env = "SESSION_LOG_ALERT_ROOM_WINDOW", default_value = "2h", value_parser = humantime::parse_duration)]
    alert_room_window: Duration,
    /// … when at least this many did (else --alert-stuck-after alone); also the fewest stuck
    /// sessions that make a room pause (half the active sessions stuck at once: no stuck alerts).
    #[arg(long, env = "SESSION_LOG_ALERT_ROOM_MIN", default_value_t = 3)]
    alert_room_min: usize,
    /// `error_burst` alert: this many errors in one session …
    #[arg(long, env = "SESSION_LOG_ALERT_ERROR_BURST", default_value_t = 3)]
    alert_error_burst: usize,
    /// … within this window.
    #[arg(long, env = "SESSION_LOG_ALERT_ERROR_BURST_WINDOW", default_value = "2m", value_parser = humantime::parse_duration)]
    alert_error_burst_window: Duration,
    /// `error_pattern` alert: the same errorType in this many sessions …
    #[arg(long, env = "SESSION_LOG_ALERT_ERROR_PATTERN_SESSIONS", default_value_t = 3)]
    alert_error_pattern_sessions: usize,
    /// … within this window.
    #[arg(long, env = "SESSION_LOG_ALERT_ERROR_PATTERN_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    alert_error_pattern_window: Duration,
    /// An open error_burst, error_pattern, api_failures or help_flood alert that only grows is
    /// published again at most this often (its opening and resolution at once).
    #[arg(long, env = "SESSION_LOG_ALERT_UPDATE_EVERY", default_value = "10s", value_parser = humantime::parse_duration)]
    alert_update_every: Duration,
    /// `api_failures` alert: at least this share of an endpoint's calls failed (0–1) …
    #[arg(long, env = "SESSION_LOG_ALERT_API_FAILURE_RATE", default_value_t = 0.5)]
    alert_api_failure_rate: f64,
    /// … over at least this many calls …
    #[arg(long, env = "SESSION_LOG_ALERT_API_FAILURE_CALLS", default_value_t = 5)]
    alert_api_failure_calls: usize,
    /// … within this window.
    #[arg(long, env = "SESSION_LOG_ALERT_API_FAILURE_WINDOW", default_value = "5m", value_parser = humantime::parse_duration)]
    alert_api_failure_window: Duration,
    /// A URL that receives every alert change as a JSON POST; repeat, or separate with commas.
    #[arg(long = "alert-webhook", env = "SESSION_LOG_ALERT_WEBHOOKS", value_delimiter = ',')]
    alert_webhooks: Vec<String>,
    /// The key of the webhooks' X-Session-Log-Signature (HMAC-SHA256 of "<timestamp>.<body>").
    #[arg(long, env = "SESSION_LOG_ALERT_WEBHOOK_SECRET", hide_env_values = true)]
    alert_webhook_secret: Option<String>,
    /// Let webhooks go to http:// and to loopback, private or link-local addresses (a receiver on
    /// this machine or network); without it they go over HTTPS to public addresses only.
    #[arg(long, env = "SESSION_LOG_ALERT_WEBHOOK_ALLOW_PRIVATE")]
    alert_webhook_allow_private: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Delete a student (by email, case-insensitive), every event of every session they appear
    /// in, and those sessions' summaries; prints the counts. Works on the database (--db or
    /// --database-url), also while a server is running on it.
    DeleteStudent {
        /// The student's email.
        email: String,
    },
    /// Copy the SQLite database (--db) to DEST, consistent while a server writes to it
    /// (SQLite's online backup API), written beside DEST, synced and renamed over it; prints what
    /// it copied. Restore by starting a server on the copy. With --database-url (PostgreSQL) it
    /// says to use pg_dump and exits non-zero.
    Backup {
        /// The copy's file (replaced atomically when it exists).
        dest: PathBuf,
    },
    /// Manage workshops and their write keys on the database (--db or --database-url), also
    /// while servers run on it (they see a change within 5 s). Prints what it did, or one JSON
    /// object per workshop with --json.
    Workshop {
        #[command(subcommand)]
        action: WorkshopAction,
        /// Print JSON (one object per line) instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Manage the rooms of workshops (one run each, with a join code) on the database, also
    /// while servers run on it (they see a change within 5 s).
    Room {
        #[command(subcommand)]
        action: RoomAction,
        /// Print JSON (one object per line) instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Manage helper tokens (personal, scoped to rooms) on the database, also while servers run
    /// on it (they see a change within 5 s).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        /// Print JSON (one object per line) instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum RoomAction {
    /// Create a room of a workshop with a new join code.
    Create {
        /// The workshop's slug.
        #[arg(long)]
        workshop: String,
        /// Its name, for people ("London, 7 Dec").
        #[arg(long)]
        name: String,
        /// When it opens (RFC 3339); none: open from now on.
        #[arg(long)]
        opens_at: Option<String>,
        /// When it closes (RFC 3339); none: it does not close.
        #[arg(long)]
        closes_at: Option<String>,
    },
    /// List the rooms.
    List,
}

#[derive(Debug, clap::Subcommand)]
enum TokenAction {
    /// Make a helper token (printed once: only its hash is stored).
    Create {
        /// Whose it is ("Alex").
        #[arg(long)]
        name: String,
        /// `instructor` (everything in its rooms but deleting) or `assistant` (reads, no export).
        #[arg(long)]
        role: String,
        /// The join code of a room it covers; repeat for several.
        #[arg(long = "room", required = true)]
        rooms: Vec<String>,
    },
    /// Revoke a helper token by its id.
    Revoke {
        /// The token's id (`token list`).
        id: i64,
    },
    /// List the helper tokens (without the tokens).
    List,
}

#[derive(Debug, clap::Subcommand)]
enum WorkshopAction {
    /// Create a workshop with a new write key.
    Create {
        /// `a-z`, `0-9` and `-`, up to 40 characters.
        #[arg(long)]
        slug: String,
        /// Its name, for people.
        #[arg(long)]
        name: String,
        /// An origin (`https://host[:port]`) allowed to send with its key; repeat for several.
        /// None: any origin.
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// Revoke a workshop's write key: its events are refused with 401 from then on.
    Revoke {
        /// The workshop's slug.
        slug: String,
    },
    /// List the workshops and their keys.
    List,
}

/// `session-log-server workshop …`: does `action` and prints what it did. Errors: an invalid
/// slug, name or origin; an unknown slug to revoke; those of `storage::workshops_offline`.
fn workshop_command(target: &Config, action: &WorkshopAction, json: bool) -> anyhow::Result<()> {
    use session_log_server::domain::workshop::{check_slug, write_key};
    use session_log_server::storage::{workshops_offline, NewWorkshop, WorkshopOp};
    let database = session_log_server::storage::Database::of(target)?.describe();
    let op = match action {
        WorkshopAction::Create { slug, name, origins } => {
            check_slug(slug).map_err(|reason| anyhow::anyhow!("--slug: {reason}"))?;
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let allowed_origins =
                session_log_server::domain::origin::parse_allowed_origins(origins).map_err(anyhow::Error::msg)?;
            let mut random = [0u8; 16];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness for the key: {e}"))?;
            WorkshopOp::Create(NewWorkshop {
                slug: slug.clone(),
                name: name.trim().to_owned(),
                allowed_origins,
                write_key: write_key(random),
            })
        }
        WorkshopAction::Revoke { slug } => WorkshopOp::Revoke(slug.clone()),
        WorkshopAction::List => WorkshopOp::List,
    };
    let workshops =
        workshops_offline(target, op).with_context(|| format!("cannot change the workshops of {database}"))?;
    if let WorkshopAction::Revoke { slug } = action {
        anyhow::ensure!(!workshops.is_empty(), "no workshop with slug {slug:?} in {database}");
    }
    for workshop in workshops {
        let view = session_log_server::http::workshops::WorkshopView::from(workshop);
        if json {
            println!("{}", serde_json::to_string(&view)?);
            continue;
        }
        let key = view.write_key.as_deref().unwrap_or("(none: keyless events)");
        let origins =
            if view.allowed_origins.is_empty() { "any origin".to_owned() } else { view.allowed_origins.join(", ") };
        let state = view.revoked_at.as_deref().map_or(String::new(), |at| format!(", revoked at {at}"));
        let verb = match action {
            WorkshopAction::Create { .. } => "created ",
            WorkshopAction::Revoke { .. } => "revoked ",
            WorkshopAction::List => "",
        };
        println!("{verb}{} ({}): write key {key}, {origins}{state}", view.slug, view.name);
    }
    Ok(())
}

/// `session-log-server room …` and `token …`: does `op` and prints the room or token it made or
/// revoked, or all of them. Errors: an unknown workshop, room or token; an invalid name, time or
/// role; those of `storage::directory_offline`.
fn directory_command(target: &Config, command: &Command) -> anyhow::Result<()> {
    use session_log_server::domain::helper::{hash_token, new_token, HelperRole, MAX_NAME};
    use session_log_server::domain::workshop::{normalize_code, MAX_ROOM_NAME};
    use session_log_server::http::rooms::RoomView;
    use session_log_server::http::tokens::TokenView;
    use session_log_server::state::Directory;
    use session_log_server::storage::{directory_offline, DirectoryOp, NewHelperToken, NewRoom};
    let database = session_log_server::storage::Database::of(target)?.describe();
    let read = || directory_offline(target, DirectoryOp::Read).with_context(|| format!("cannot read {database}"));
    let named = |name: &str, max: usize| -> anyhow::Result<String> {
        let name = name.trim();
        anyhow::ensure!((1..=max).contains(&name.chars().count()), "--name must be 1 to {max} characters");
        Ok(name.to_owned())
    };
    let time = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<String>> {
        value
            .as_deref()
            .map(|v| session_log_server::http::params::parse_time("time", v))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    let (rows, json, made_token) = match command {
        Command::Room { action: RoomAction::Create { workshop, name, opens_at, closes_at }, json } => {
            let before = read()?;
            let found = before.workshops.iter().find(|w| &w.slug == workshop);
            let found = found.ok_or_else(|| anyhow::anyhow!("no workshop with slug {workshop:?} in {database}"))?;
            let new = NewRoom {
                workshop_id: found.id,
                name: named(name, MAX_ROOM_NAME)?,
                code: String::new(),
                opens_at: time("opens-at", opens_at)?,
                closes_at: time("closes-at", closes_at)?,
            };
            let rows = directory_offline(target, DirectoryOp::CreateRoom(new))
                .with_context(|| format!("cannot create the room in {database}"))?;
            (rows, *json, None)
        }
        Command::Token { action: TokenAction::Create { name, role, rooms }, json } => {
            let role = HelperRole::parse(role)
                .ok_or_else(|| anyhow::anyhow!("--role must be instructor or assistant, got {role:?}"))?;
            let before = read()?;
            let mut ids = Vec::new();
            for code in rooms {
                let room = normalize_code(code).and_then(|c| before.rooms.iter().find(|r| r.code == c));
                let room = room.ok_or_else(|| anyhow::anyhow!("no room with code {code:?} in {database}"))?;
                ids.push(room.id);
            }
            let mut random = [0u8; 24];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness for the token: {e}"))?;
            let token = new_token(random);
            let new = NewHelperToken { name: named(name, MAX_NAME)?, role, token_hash: hash_token(&token), rooms: ids };
            let rows = directory_offline(target, DirectoryOp::CreateToken(new))
                .with_context(|| format!("cannot create the token in {database}"))?;
            (rows, *json, Some(token))
        }
        Command::Token { action: TokenAction::Revoke { id }, json } => {
            let rows = directory_offline(target, DirectoryOp::RevokeToken(*id))
                .with_context(|| format!("cannot revoke in {database}"))?;
            anyhow::ensure!(rows.token.is_some(), "no helper token with id {id} in {database}");
            (rows, *json, None)
        }
        Command::Room { json, .. } | Command::Token { json, .. } => (read()?, *json, None),
        _ => anyhow::bail!("not a room or token command"),
    };
    let directory = Directory { workshops: rows.workshops, rooms: rows.rooms, helpers: Vec::new() };
    let now = session_log_server::storage::now_iso();
    let print_room = |room: RoomView| -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(&room)?);
        } else {
            let open = if room.open { "open now" } else { "not open now" };
            println!("{} {:?} of {} ({open})", room.code, room.name, room.workshop);
        }
        Ok(())
    };
    let print_token = |mut view: TokenView, token: Option<String>| -> anyhow::Result<()> {
        view.token = token;
        if json {
            println!("{}", serde_json::to_string(&view)?);
        } else {
            let state = view.revoked_at.as_deref().map_or(String::new(), |at| format!(", revoked at {at}"));
            let shown = view.token.as_deref().map_or(String::new(), |t| format!(": {t} (shown once)"));
            let rooms = view.rooms.join(", ");
            println!("{} {} ({}, rooms {rooms}{state}){shown}", view.id, view.name, view.role.name());
        }
        Ok(())
    };
    match (rows.room, rows.token) {
        (Some(room), _) => print_room(RoomView::of(room, &directory, &now))?,
        (None, Some(token)) => print_token(TokenView::of(token, &directory), made_token)?,
        (None, None) if matches!(command, Command::Room { .. }) => {
            for room in directory.rooms.clone() {
                print_room(RoomView::of(room, &directory, &now))?;
            }
        }
        (None, None) => {
            for token in rows.tokens {
                print_token(TokenView::of(token, &directory), None)?;
            }
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SESSION_LOG_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Backup { dest }) = &args.command {
        let target = Config { db_path: args.db.clone(), database_url: args.database_url.clone(), ..Config::default() };
        let database = session_log_server::storage::Database::of(&target)?.describe();
        let started = std::time::Instant::now();
        let copied = session_log_server::storage::backup_offline(&target, dest)
            .with_context(|| format!("cannot back up {database}"))?;
        println!(
            "backed up {database} to {} in {} ms: {} pages ({} bytes), {} events (newest event_id {}), {} session summaries",
            dest.display(),
            started.elapsed().as_millis(),
            copied.pages,
            copied.bytes,
            copied.events,
            copied.newest_event_id,
            copied.sessions
        );
        return Ok(());
    }
    if let Some(Command::Workshop { action, json }) = &args.command {
        let target = Config { db_path: args.db.clone(), database_url: args.database_url.clone(), ..Config::default() };
        return workshop_command(&target, action, *json);
    }
    if let Some(command @ (Command::Room { .. } | Command::Token { .. })) = &args.command {
        let target = Config { db_path: args.db.clone(), database_url: args.database_url.clone(), ..Config::default() };
        return directory_command(&target, command);
    }
    if let Some(Command::DeleteStudent { email }) = &args.command {
        let target = Config { db_path: args.db.clone(), database_url: args.database_url.clone(), ..Config::default() };
        let database = session_log_server::storage::Database::of(&target)?.describe();
        let removed = session_log_server::storage::delete_student_offline(&target, email)
            .with_context(|| format!("cannot delete from {database}"))?;
        if removed.students == 0 {
            anyhow::bail!("no student with email {email:?} in {database}");
        }
        println!(
            "deleted {email}: {} events, {} sessions, {} student",
            removed.events, removed.sessions, removed.students
        );
        return Ok(());
    }
    let mut tokens: Vec<String> = args.instructor_tokens.into_iter().filter(|t| !t.trim().is_empty()).collect();
    if tokens.is_empty() {
        let token = generate_token()?;
        println!("instructor token (generated; set --instructor-token to keep one): {token}");
        tokens.push(token);
    }
    if !args.pkg.join("session_log.js").is_file() {
        tracing::warn!(pkg = %args.pkg.display(), "the client package is not built; run `cargo xtask build`");
    }
    let config = Config {
        db_path: args.db,
        database_url: args.database_url,
        instructor_tokens: tokens,
        admin_tokens: args.admin_tokens.into_iter().filter(|t| !t.trim().is_empty()).collect(),
        www_dir: Some(args.www),
        pkg_dir: Some(args.pkg),
        max_body_bytes: args.max_body_bytes,
        body_timeout: std::time::Duration::from_secs(args.body_timeout_secs.max(1)),
        max_batch_events: args.max_batch_events,
        // Checked before binding: a bad origin stops here, with its name.
        require_write_key: args.require_write_key,
        allowed_origins: session_log_server::domain::origin::parse_allowed_origins(&args.allowed_origins)
            .map_err(anyhow::Error::msg)?,
        rate_limit_ip_per_sec: args.rate_limit_ip,
        rate_limit_ip_burst: args.rate_limit_ip_burst,
        auth_failure_limit: args.auth_failure_limit,
        trusted_proxies: args.trusted_proxies,
        rate_limit_session_per_sec: args.rate_limit_session,
        rate_limit_session_burst: args.rate_limit_session_burst,
        rate_limit_key_per_sec: args.rate_limit_key,
        rate_limit_key_burst: args.rate_limit_key_burst,
        completion_event_types: args.completion_events.into_iter().filter(|t| !t.trim().is_empty()).collect(),
        final_step: args.final_step,
        active_window: Duration::from_secs(args.active_minutes * 60),
        retention: (args.retention_days > 0).then(|| Duration::from_secs(args.retention_days * 86_400)),
        report_interval: (args.report_interval > 0).then(|| Duration::from_secs(args.report_interval)),
        http_workers: (args.workers > 0).then_some(args.workers),
        redaction: Rules::new(!args.no_redact, &args.redact_keys),
        alert_rules: session_log_server::domain::alerts::AlertRules {
            error_burst_count: args.alert_error_burst.max(1),
            error_burst_window: args.alert_error_burst_window,
            error_pattern_sessions: args.alert_error_pattern_sessions.max(1),
            error_pattern_window: args.alert_error_pattern_window,
            stuck_after: args.alert_stuck_after,
            stuck_factor: if args.alert_stuck_factor.is_finite() { args.alert_stuck_factor.max(0.0) } else { 2.0 },
            room_window: args.alert_room_window,
            room_min: args.alert_room_min.max(1),
            active_window: Duration::from_secs(args.active_minutes * 60),
            api_failure_rate: args.alert_api_failure_rate.clamp(0.0, 1.0),
            api_failure_min_calls: args.alert_api_failure_calls.max(1),
            api_failure_window: args.alert_api_failure_window,
            count_update_every: args.alert_update_every,
        },
        alert_webhooks: args.alert_webhooks.into_iter().filter(|u| !u.trim().is_empty()).collect(),
        alert_webhook_secret: args.alert_webhook_secret.filter(|s| !s.is_empty()),
        alert_webhook_allow_private: args.alert_webhook_allow_private,
        reports_dir: args.reports_dir,
        archive_dir: args.archive_dir,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| session_log_server::tls::TlsFiles { cert, key }),
        ..Config::default()
    };
    let listener = TcpListener::bind(&args.bind).with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port when binding to port 0.
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    println!("session-log-server listening on {scheme}://{address}");
    tracing::info!(%address, "serving");
    actix_web::rt::System::new().block_on(session_log_server::run(listener, config, shutdown_signal()))?;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A random instructor token: 32 bytes from the OS, as 64 hex digits.
fn generate_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the instructor token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A network (`10.0.0.0/8`), or one address (`127.0.0.1`, `::1`) as its host network.
fn parse_network(text: &str) -> Result<session_log_server::domain::client_addr::IpNet, String> {
    let text = text.trim();
    text.parse()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(Into::into))
        .map_err(|_| format!("{text:?} is neither a network (10.0.0.0/8) nor an address"))
}
