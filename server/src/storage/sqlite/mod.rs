//! The SQLite backend: the schema and its migrations, the writer thread, the readers.
//!
//! Invariants:
//! - One thread (the writer) owns the only write connection. Requests hand it their events over a
//!   bounded channel; it takes everything waiting (up to `max_rows_per_commit` rows) and commits it
//!   in one transaction (group commit), then answers each request. A request is answered only after
//!   the commit, so an acknowledged event is on disk (WAL, `synchronous=NORMAL`: it survives a
//!   crash of the process).
//! - Events are unique by `event_uuid`; storing one again is a no-op (`ON CONFLICT DO NOTHING`),
//!   counted as a duplicate, so a retried batch never creates copies.
//! - Queries use a pool of read-only connections: in WAL mode they never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use tokio::sync::{oneshot, watch};

use super::backend::Backend;
use super::feed::CommitFeed;
use super::maintenance::{Deleted, Maintenance};
use super::{Inserted, Removed, StoreError};
use crate::config::Config;
use crate::domain::event::{CommittedEvent, ValidEvent};
use crate::domain::summary::FoldEvent;
use crate::metrics::Metrics;

mod alerts;
pub mod backup;
mod cache;
mod read;
#[cfg(unix)]
pub mod wal_vfs;
use super::{now_iso, EventQuery, EventRow, SessionQuery, SessionRow};
use cache::parse_summary;
pub use cache::{catch_up_summaries, fold_session, load_summary, refresh_summary, WriterCache, SUMMARY_FLUSH_EVERY};
pub use read::{query_events, query_sessions, session_losses};

/// How long a connection waits for a lock before failing (ms).
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The schema, one migration per version (`PRAGMA user_version`), from `migrations/sqlite/` (as
/// PostgreSQL's are from `migrations/postgres/`): each file says what it adds and why.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/sqlite/V1__schema.sql")),
    M::up(include_str!("../../../migrations/sqlite/V2__sessions.sql")),
    M::up(include_str!("../../../migrations/sqlite/V3__summary_watermark.sql")),
    M::up(include_str!("../../../migrations/sqlite/V4__session_paging.sql")),
    M::up(include_str!("../../../migrations/sqlite/V5__alerts.sql")),
];

/// A failure of the SQLite backend (mapped to a [`StoreError`] at its boundary).
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// No read connection could be had.
    #[error("read pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The database folder could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The writer's transaction failed; none of the request's events is stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A storage thread (writer, checkpointer) could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A stored row does not hold what it should.
    #[error(transparent)]
    Corrupt(#[from] crate::storage::CorruptRow),
    /// The writer thread has stopped (shutdown).
    #[error("the writer has stopped")]
    WriterGone,
    /// There is no database file at this path (the command line does not create one).
    #[error("no database file at {0}")]
    NoDatabase(String),
    /// The writer's queue is full: the server is overloaded.
    #[error("the write queue is full")]
    Busy,
    /// The WAL shim could not be registered with SQLite (its result code).
    #[error("cannot register the WAL VFS shim: SQLite error {0}")]
    Vfs(std::ffi::c_int),
}

/// One request to the writer.
enum WriteJob {
    /// Store these events; send the outcome once committed.
    Insert { events: Vec<ValidEvent>, ack: oneshot::Sender<Result<Inserted, String>> },
    /// Check that the database takes a write lock (`/healthz`).
    Ping { ack: oneshot::Sender<Result<Inserted, String>> },
    /// Write the session summaries changed so far, in this group's transaction.
    FlushSummaries { ack: oneshot::Sender<Result<Inserted, String>> },
    /// Delete (retention, deletion on request); send what was removed once committed.
    Maintain { task: Maintenance, ack: oneshot::Sender<Result<Removed, String>> },
    /// Record or acknowledge alerts, in a transaction of its own.
    Alerts { work: AlertWork, ack: oneshot::Sender<Result<AlertOutcome, String>> },
}

/// Alert writes (see `alerts.rs`).
enum AlertWork {
    Record(Vec<crate::domain::alerts::AlertChange>),
    Acknowledge { id: String, action: crate::domain::alerts::AlertAction, at: String },
}

/// What an alert write did.
enum AlertOutcome {
    Recorded(Vec<crate::storage::LoggedChange>),
    Acknowledged(Option<Box<crate::storage::Acknowledged>>),
}

/// A job that runs alone, after the group it ended.
enum Exclusive {
    Maintain(Maintenance, oneshot::Sender<Result<Removed, String>>),
    Alerts(AlertWork, oneshot::Sender<Result<AlertOutcome, String>>),
}

impl WriteJob {
    fn rows(&self) -> usize {
        match self {
            WriteJob::Insert { events, .. } => events.len(),
            WriteJob::Ping { .. }
            | WriteJob::FlushSummaries { .. }
            | WriteJob::Maintain { .. }
            | WriteJob::Alerts { .. } => 0,
        }
    }

    fn fail(self, error: String) {
        match self {
            WriteJob::Insert { ack, .. } | WriteJob::Ping { ack } | WriteJob::FlushSummaries { ack } => {
                let _ = ack.send(Err(error));
            }
            WriteJob::Maintain { ack, .. } => {
                let _ = ack.send(Err(error));
            }
            WriteJob::Alerts { ack, .. } => {
                let _ = ack.send(Err(error));
            }
        }
    }
}

/// When SQLite starts the WAL over, it truncates a larger file back to this size
/// (`journal_size_limit`, bytes). It is above the WAL's usual peak under sustained load (about
/// 130 MB), so the next cycle rewrites blocks the file already has. With 64 MiB, growing the file
/// again (page-cache and block allocation, and the truncation itself) cost the benchmark's
/// ceiling 21% of its rows/s at 10 rows per transaction and 10% at 300 (medians of nine runs
/// each). An idle writer truncates the WAL to nothing (see [`WAL_CHECKPOINT_IDLE`]).
const WAL_SIZE_LIMIT: i64 = 256 * 1024 * 1024;
/// When the WAL is larger than this (bytes), the writer truncates it once it is idle.
pub const WAL_CHECKPOINT_IDLE: u64 = 16 * 1024 * 1024;
/// The writer counts as idle after this long without a job. A momentarily empty queue is not
/// idleness: under steady load it empties between most group commits, and a TRUNCATE checkpoint
/// there (an fsync while every request waits) was the single-event benchmark's tail latency.
pub const WRITER_IDLE_AFTER: Duration = Duration::from_millis(500);
/// Past this many WAL frames (pages, 4 KiB each) the checkpointer asks the writer to finish the
/// WAL's cycle (see [`Checkpointer`]).
const WAL_RESTART_FRAMES: i64 = 16_384;

/// The SQLite database: a handle to the writer thread and a pool of readers.
pub struct SqliteStore {
    metrics: Arc<Metrics>,
    writer: Mutex<Option<Sender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    committed: watch::Receiver<i64>,
    /// The summary watermark of the writer's last committed flush.
    flushed: Arc<AtomicI64>,
    /// The event types that complete a session (for `summary_drift`'s fold).
    completion_types: Vec<String>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, brings its schema up to date, starts the
    /// writer thread and opens the read pool.
    ///
    /// Errors: [`StoreError::Internal`] when the folder cannot be created or the file cannot be
    /// opened or migrated.
    pub fn open(
        path: &Path,
        config: &Config,
        metrics: Arc<Metrics>,
        feed: Arc<CommitFeed>,
    ) -> Result<SqliteStore, StoreError> {
        Ok(Self::open_file(path, config, metrics, feed)?)
    }

    fn open_file(
        path: &Path,
        config: &Config,
        metrics: Arc<Metrics>,
        feed: Arc<CommitFeed>,
    ) -> Result<SqliteStore, SqliteError> {
        let conn = open_writer_connection(path, &config.completion_event_types)?;
        let newest: i64 = conn.query_row("SELECT coalesce(max(event_id), 0) FROM events", [], |r| r.get(0))?;
        let (committed_tx, committed) = watch::channel(newest);
        // Opening caught the summaries up with every stored event.
        let flushed = Arc::new(AtomicI64::new(newest));
        let readers = open_readers(path, config.read_connections)?;
        let (sender, receiver) = crossbeam_channel::bounded(config.write_queue_requests.max(1));
        let checkpointer = Checkpointer::start(path)?;
        let writer = Writer {
            conn,
            wal_restart: checkpointer.restart_handle(),
            wal_path: wal_path(path),
            max_rows: config.max_rows_per_commit.max(1),
            metrics: metrics.clone(),
            cache: WriterCache::new(&config.completion_event_types),
            committed: committed_tx,
            flushed: flushed.clone(),
            feed,
        };
        let writer_thread = std::thread::Builder::new()
            .name("session-log-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| SqliteError::Spawn { what: "writer", source })?;
        Ok(SqliteStore {
            metrics,
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers,
            committed,
            flushed,
            completion_types: config.completion_event_types.clone(),
        })
    }

    /// Hands a job to the writer and waits for its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, String>>) -> WriteJob,
    ) -> Result<T, StoreError> {
        let writer = lock(&self.writer).clone().ok_or(StoreError::Stopped)?;
        let (ack, done) = oneshot::channel();
        writer.try_send(job(ack)).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Stopped,
        })?;
        match done.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(StoreError::Unavailable(message)),
            Err(_) => Err(StoreError::Stopped),
        }
    }

    /// Runs `work` on a read-only connection in a blocking task. Errors: `work`'s, a read pool
    /// failure, or [`StoreError::Stopped`] when the task cannot run (shutdown).
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        Ok(tokio::task::spawn_blocking(move || work(&*pool.get()?)).await.map_err(|_| StoreError::Stopped)??)
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn is_leader(&self) -> bool {
        true
    }

    /// `Storage::insert` on this backend: the summaries are written behind the events (within
    /// [`SUMMARY_FLUSH_EVERY`], or at a flush).
    async fn insert(&self, events: Vec<ValidEvent>) -> Result<Inserted, StoreError> {
        self.submit(|ack| WriteJob::Insert { events, ack }).await
    }

    /// `Storage::ping`: an empty immediate transaction through the writer (takes the write lock).
    async fn ping(&self) -> Result<(), StoreError> {
        self.submit(|ack| WriteJob::Ping { ack }).await.map(|_| ())
    }

    /// `Storage::flush_summaries`: returns at once when the summaries reflect every committed
    /// event, else has the writer flush them and waits for that commit. When the write queue is
    /// full it does not wait.
    async fn flush_summaries(&self) -> Result<(), StoreError> {
        if self.flushed.load(Ordering::Acquire) >= *self.committed.borrow() {
            return Ok(());
        }
        match self.submit(|ack| WriteJob::FlushSummaries { ack }).await {
            Ok(_) | Err(StoreError::Overloaded) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `Storage::purge` (all of them, `ids: None`) and `Storage::purge_ids`.
    async fn purge(&self, before: String, limit: usize, ids: Option<Vec<i64>>) -> Result<Removed, StoreError> {
        self.submit(|ack| WriteJob::Maintain { task: Maintenance::Purge { before, limit, ids }, ack }).await
    }

    /// `Storage::delete_student`.
    async fn delete_student(&self, email: String) -> Result<Removed, StoreError> {
        self.submit(|ack| WriteJob::Maintain { task: Maintenance::DeleteStudent { email }, ack }).await
    }

    /// `Storage::record_alert_changes`.
    async fn record_alert_changes(
        &self,
        changes: Vec<crate::domain::alerts::AlertChange>,
    ) -> Result<Vec<crate::storage::LoggedChange>, StoreError> {
        match self.submit(|ack| WriteJob::Alerts { work: AlertWork::Record(changes), ack }).await? {
            AlertOutcome::Recorded(logged) => Ok(logged),
            AlertOutcome::Acknowledged(_) => Err(StoreError::Internal("unexpected alert outcome".into())),
        }
    }

    /// `Storage::acknowledge_alert`.
    async fn acknowledge_alert(
        &self,
        id: String,
        action: crate::domain::alerts::AlertAction,
        at: String,
    ) -> Result<Option<crate::storage::Acknowledged>, StoreError> {
        match self.submit(|ack| WriteJob::Alerts { work: AlertWork::Acknowledge { id, action, at }, ack }).await? {
            AlertOutcome::Acknowledged(done) => Ok(done.map(|d| *d)),
            AlertOutcome::Recorded(_) => Err(StoreError::Internal("unexpected alert outcome".into())),
        }
    }

    /// `Storage::alerts`.
    async fn alerts(&self, query: crate::storage::AlertQuery) -> Result<Vec<crate::domain::alerts::Alert>, StoreError> {
        self.read(move |conn| alerts::query(conn, &query)).await
    }

    /// `Storage::alert_changes`.
    async fn alert_changes(&self, after: i64, limit: u32) -> Result<Vec<crate::storage::LoggedChange>, StoreError> {
        self.read(move |conn| alerts::changes(conn, after, limit)).await
    }

    /// `Storage::newest_alert_change`.
    async fn newest_alert_change(&self) -> Result<i64, StoreError> {
        self.read(alerts::newest_change).await
    }

    /// `Storage::committed`.
    fn committed(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    /// `Storage::observe_queue_depth`.
    fn observe_queue_depth(&self) -> usize {
        let depth = lock(&self.writer).as_ref().map_or(0, Sender::len);
        self.metrics.queue_depth.set(depth as i64);
        depth
    }

    /// `Storage::events`.
    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |conn| query_events(conn, &query)).await
    }

    /// `Storage::count_events`.
    async fn count_events(&self, after: i64, upto: i64) -> Result<u64, StoreError> {
        self.read(move |conn| {
            let count: i64 = conn
                .prepare_cached("SELECT count(*) FROM events WHERE event_id > ?1 AND event_id <= ?2")?
                .query_row((after, upto), |r| r.get(0))?;
            Ok(count as u64)
        })
        .await
    }

    /// `Storage::events_and_losses` (the caller has flushed the summaries).
    async fn events_and_losses(&self, query: EventQuery) -> Result<(Vec<EventRow>, Option<(u64, u64)>), StoreError> {
        self.read(move |conn| {
            let events = query_events(conn, &query)?;
            let losses = match &query.session_token {
                Some(token) => Some(session_losses(conn, token)?),
                None => None,
            };
            Ok((events, losses))
        })
        .await
    }

    /// `Storage::sessions` (the caller has flushed the summaries).
    async fn sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StoreError> {
        self.read(move |conn| query_sessions(conn, &query)).await
    }

    /// `Storage::summary_drift` (the caller has flushed the summaries).
    async fn summary_drift(&self) -> Result<Vec<String>, StoreError> {
        let completion_types = self.completion_types.clone();
        self.read(move |conn| {
            let stored: std::collections::HashMap<String, String> = conn
                .prepare("SELECT session_token, summary FROM sessions")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut tokens: Vec<String> = conn
                .prepare("SELECT DISTINCT session_token FROM events")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            tokens.extend(stored.keys().cloned());
            tokens.sort();
            tokens.dedup();
            let mut drifted = Vec::new();
            for token in tokens {
                let summary = stored.get(&token).map(|text| parse_summary(text)).transpose()?;
                if summary != fold_session(conn, &token, &completion_types)? {
                    drifted.push(token);
                }
            }
            Ok(drifted)
        })
        .await
    }

    /// `Storage::close`: stops taking writes, lets the writer commit everything already handed
    /// to it, and waits for it.
    fn close(&self) {
        let checkpointer = lock(&self.checkpointer).take();
        drop(checkpointer);
        lock(&self.writer).take();
        let thread = lock(&self.writer_thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

/// A SQLite failure by what the caller can do: a failed commit or an unreachable file is
/// unavailable (503, retry), a missing file for the command line is invalid input, the rest internal.
impl From<SqliteError> for StoreError {
    fn from(error: SqliteError) -> Self {
        match error {
            SqliteError::Busy => StoreError::Overloaded,
            SqliteError::WriterGone => StoreError::Stopped,
            SqliteError::Commit(message) => StoreError::Unavailable(message),
            SqliteError::NoDatabase(_) => StoreError::Invalid(error.to_string()),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Locks a mutex, recovering it if a panicking thread poisoned it (the data stays consistent:
/// each critical section is a single `take` or `clone`).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_readers(path: &Path, size: u32) -> Result<r2d2::Pool<SqliteConnectionManager>, SqliteError> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI)
        .with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.pragma_update(None, "query_only", "ON")
        });
    Ok(r2d2::Pool::builder().max_size(size.max(1)).build(manager)?)
}

/// Opens `path` on the WAL shim (see `wal_vfs`: each transaction's frames in one write at its
/// commit) when the linked SQLite is the release it was validated against, else (or off unix) on
/// the default VFS, with a warning once. `SESSION_LOG_WAL_SHIM=off` in the environment opens it
/// on the default VFS too (an escape hatch, and what `session-log-bench --compare-wal-shim`
/// measures the shim against).
fn open_with_wal_shim(path: &Path) -> Result<Connection, SqliteError> {
    if std::env::var("SESSION_LOG_WAL_SHIM").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        tracing::info!("SESSION_LOG_WAL_SHIM=off: the writer uses SQLite's default VFS");
        return Ok(Connection::open(path)?);
    }
    #[cfg(unix)]
    if wal_vfs::supported() {
        wal_vfs::register().map_err(SqliteError::Vfs)?;
        return Ok(Connection::open_with_flags_and_vfs(path, OpenFlags::default(), wal_vfs::NAME)?);
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            sqlite = rusqlite::version(),
            "the WAL write shim is validated for SQLite 3.53.2 on unix only; the writer uses the default VFS"
        );
    });
    Ok(Connection::open(path)?)
}

/// Opens the write connection: creates the folder and the file, sets WAL mode and the pragmas,
/// and brings the schema up to date. The server's writer and the ingest benchmark's ceiling both
/// use it, so they write to identical databases.
///
/// A database at schema version 1 (before session summaries) gets its summaries rebuilt from its
/// events, folding with `completion_types`; any other gets the events stored past its summary
/// watermark folded in (after a crash: see `cache`).
///
/// Errors: the WAL shim cannot be registered, the folder cannot be created, the file cannot be
/// opened, a pragma or migration fails.
pub fn open_writer_connection(path: &Path, completion_types: &[String]) -> Result<Connection, SqliteError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| SqliteError::CreateDir { path: dir.display().to_string(), source })?;
    }
    let mut conn = open_with_wal_shim(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives a crash of the process (not of the OS), without an
    // fsync per transaction.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // A 16 MiB page cache keeps the indexes' hot pages in memory.
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    // Checkpoints are the checkpointer thread's job (see `checkpointer`), never a commit's.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
    if version == 1 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tokens: Vec<String> = tx
            .prepare("SELECT DISTINCT session_token FROM events")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for token in &tokens {
            refresh_summary(&tx, token, completion_types)?;
        }
        tx.commit()?;
        tracing::info!(sessions = tokens.len(), "rebuilt the session summaries");
    }
    catch_up_summaries(&mut conn, completion_types)?;
    Ok(conn)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    /// The checkpointer's requests to finish a WAL cycle, run between group commits.
    wal_restart: WalRestart,
    /// The WAL file, whose size decides when an idle writer truncates it.
    wal_path: PathBuf,
    max_rows: usize,
    metrics: Arc<Metrics>,
    /// The session summaries (written behind the events) and the students already stored.
    cache: WriterCache,
    /// The newest committed `event_id`.
    committed: watch::Sender<i64>,
    /// The summary watermark of the last committed flush (read by `Storage::flush_summaries`).
    flushed: Arc<AtomicI64>,
    /// Where committed events go for the alert rules (when they listen).
    feed: Arc<CommitFeed>,
}

impl Writer {
    /// Commit what is waiting, answer, repeat; returns when every sender is gone and the channel
    /// is drained (that is the graceful shutdown: nothing handed over is lost, and the summaries
    /// are flushed). Inserts, pings and flushes share one transaction (group commit); a
    /// maintenance job runs alone, after the group it ended. After [`WRITER_IDLE_AFTER`] without
    /// a job the writer flushes the summaries and truncates a large WAL.
    fn run(mut self, receiver: Receiver<WriteJob>) {
        loop {
            let first = match receiver.recv_timeout(WRITER_IDLE_AFTER) {
                Ok(job) => job,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.flush_if_dirty();
                    if wal_bytes(&self.wal_path) > WAL_CHECKPOINT_IDLE {
                        // Idle: fold the WAL back into the database and truncate it, while nobody waits.
                        let _ = checkpoint(&self.conn, "TRUNCATE");
                    }
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            let mut rows = first.rows();
            let (mut jobs, mut maintenance) = (Vec::new(), None);
            match first {
                WriteJob::Maintain { task, ack } => maintenance = Some(Exclusive::Maintain(task, ack)),
                WriteJob::Alerts { work, ack } => maintenance = Some(Exclusive::Alerts(work, ack)),
                job => jobs.push(job),
            }
            while maintenance.is_none() && rows < self.max_rows {
                match receiver.try_recv() {
                    Ok(WriteJob::Maintain { task, ack }) => maintenance = Some(Exclusive::Maintain(task, ack)),
                    Ok(WriteJob::Alerts { work, ack }) => maintenance = Some(Exclusive::Alerts(work, ack)),
                    Ok(job) => {
                        rows += job.rows();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            if !jobs.is_empty() {
                self.commit_group(jobs, rows);
            }
            self.wal_restart.run_if_asked(&self.conn);
            if let Some(Exclusive::Alerts(work, ack)) = maintenance {
                let _ = ack.send(write_alerts(&mut self.conn, work).map_err(|e| e.to_string()));
            } else if let Some(Exclusive::Maintain(task, ack)) = maintenance {
                let outcome = maintain(&mut self.conn, &task, &mut self.cache);
                match &outcome {
                    Ok(_) => self.flushed.store(self.cache.flushed_through(), Ordering::Release),
                    Err(error) => tracing::error!(%error, ?task, "maintenance failed"),
                }
                // The job rewrote summaries behind the cache (or rolled back its flush).
                self.cache.reset();
                let _ = ack.send(outcome.map_err(|e| e.to_string()));
            }
        }
        self.flush_if_dirty();
        let _ = checkpoint(&self.conn, "TRUNCATE");
        tracing::debug!("writer stopped: every accepted event is committed");
    }

    /// Writes the summaries still in memory, in a transaction of their own (idle, shutdown).
    fn flush_if_dirty(&mut self) {
        if self.cache.is_dirty() {
            self.commit_group(Vec::new(), 0);
        }
    }

    /// Commits `jobs` (holding `rows` events) in one transaction and answers them; the
    /// summaries are flushed in it when a job asks, when a flush is due, or when there is no job
    /// (the idle and shutdown flushes).
    fn commit_group(&mut self, mut jobs: Vec<WriteJob>, rows: usize) {
        let started = Instant::now();
        let flush = jobs.is_empty()
            || self.cache.flush_due()
            || jobs.iter().any(|job| matches!(job, WriteJob::FlushSummaries { .. }));
        match commit(&mut self.conn, &jobs, &mut self.cache, flush) {
            Ok(Committed { outcomes, newest, ids, created_at }) => {
                if !jobs.is_empty() {
                    self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.commit_rows.observe(rows as f64);
                }
                if flush {
                    self.flushed.store(self.cache.flushed_through(), Ordering::Release);
                }
                if newest.is_some() && self.feed.is_active() {
                    let at_ms = crate::domain::clock::iso_ms(&created_at);
                    let mut fed = Vec::new();
                    let mut ids = ids.into_iter();
                    for job in &mut jobs {
                        if let WriteJob::Insert { events, .. } = job {
                            for (event, id) in std::mem::take(events).into_iter().zip(ids.by_ref()) {
                                if let Some(id) = id {
                                    fed.push(CommittedEvent::of(event, id, at_ms));
                                }
                            }
                        }
                    }
                    // Fed before the watch is raised (see `CommitFeed::publish`).
                    self.feed.publish(fed);
                }
                // Raised before any answer: a client that reads after its answer finds the
                // summaries behind the watch and has them flushed.
                if let Some(newest) = newest {
                    self.committed.send_replace(newest);
                }
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    if let WriteJob::Insert { ack, .. } | WriteJob::Ping { ack } | WriteJob::FlushSummaries { ack } =
                        job
                    {
                        let _ = ack.send(Ok(outcome));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, rows, "commit failed");
                // The cache holds the rolled-back events' folds: start over from the database.
                self.cache.reset();
                for job in jobs {
                    job.fail(error.to_string());
                }
            }
        }
    }
}

/// How often the checkpointer runs a passive checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

fn wal_bytes(wal: &Path) -> u64 {
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Runs `PRAGMA wal_checkpoint(<mode>)`, logs the outcome and returns the WAL's length in frames
/// (pages) as the checkpoint saw it, or `None` when it failed.
fn checkpoint(conn: &Connection, mode: &str) -> Option<i64> {
    let started = Instant::now();
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((busy, log, done)) => {
            tracing::debug!(mode, busy, log, done, elapsed = ?started.elapsed(), "checkpoint");
            Some(log)
        }
        Err(error) => {
            tracing::warn!(%error, mode, "checkpoint failed");
            None
        }
    }
}

/// The checkpointer thread: copies committed WAL frames into the database with PASSIVE
/// checkpoints on its own connection every 250 ms, so the writer never stalls on the bulk of a
/// checkpoint (the writer's automatic checkpoints are off).
///
/// Under sustained load the WAL never gets fully copied at the moment a commit starts, which is
/// when SQLite starts it over, so it would grow without bound. Past [`WAL_RESTART_FRAMES`] the
/// checkpointer therefore runs a second pass (copying what arrived during the first) and asks
/// the writer, through [`WalRestart`], to copy the few frames left between two of its commits:
/// the next commit then starts the WAL over. A RESTART checkpoint from this thread instead had to
/// win the write lock from a busy writer, by polling, and then held it while it copied everything
/// committed meanwhile: seconds under load. Stopped (and joined) on drop.
pub struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    restart: WalRestart,
}

/// The checkpointer's request to the write connection's owner to finish a WAL cycle.
#[derive(Clone, Default)]
pub struct WalRestart(Arc<std::sync::atomic::AtomicBool>);

impl WalRestart {
    /// Call between transactions on the write connection `conn`: when the checkpointer asked,
    /// runs a passive checkpoint there, which copies the frames the checkpointer's passes left
    /// (no commit can add more meanwhile), so that the next transaction starts the WAL over.
    /// Readers still using older frames can make it copy less; the WAL then starts over at a
    /// later request.
    pub fn run_if_asked(&self, conn: &Connection) {
        if self.0.swap(false, Ordering::AcqRel) {
            let _ = checkpoint(conn, "PASSIVE");
        }
    }
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already in WAL mode) every 250 ms.
    ///
    /// Errors: the connection cannot be opened, or the thread cannot be started.
    pub fn start(path: &Path) -> Result<Checkpointer, SqliteError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let restart = WalRestart::default();
        let asks = restart.clone();
        let thread = std::thread::Builder::new()
            .name("session-log-checkpointer".into())
            .spawn(move || checkpoint_loop(conn, stopped, asks))
            .map_err(|source| SqliteError::Spawn { what: "checkpointer", source })?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread), restart })
    }

    /// The handle through which this checkpointer asks the write connection's owner to finish a
    /// WAL cycle ([`WalRestart::run_if_asked`]).
    pub fn restart_handle(&self) -> WalRestart {
        self.restart.clone()
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoint_loop(conn: Connection, stop: Receiver<()>, restart: WalRestart) {
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let frames = checkpoint(&conn, "PASSIVE");
        if frames.is_some_and(|f| f > WAL_RESTART_FRAMES) && !restart.0.load(Ordering::Acquire) {
            // The first pass took a while; this one copies what arrived meanwhile, which leaves
            // the writer little to copy.
            let _ = checkpoint(&conn, "PASSIVE");
            restart.0.store(true, Ordering::Release);
        }
    }
}

/// Commits all jobs' events in one immediate transaction, with the summaries when `flush`;
/// returns each job's counts and the newest new `event_id` (`None` when nothing new was stored).
/// What one group commit did: each job's counts, the newest new `event_id`, the `event_id` of
/// each inserted event in the jobs' order (`None` for a duplicate), and the commit's `created_at`.
struct Committed {
    outcomes: Vec<Inserted>,
    newest: Option<i64>,
    ids: Vec<Option<i64>>,
    created_at: String,
}

fn commit(
    conn: &mut Connection,
    jobs: &[WriteJob],
    cache: &mut WriterCache,
    flush: bool,
) -> Result<Committed, rusqlite::Error> {
    let created_at = now_iso();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let newest;
    let ids;
    {
        let mut writer = EventWriter::new(&tx, &created_at, cache)?;
        for job in jobs {
            outcomes.push(match job {
                WriteJob::Insert { events, .. } => writer.write(events)?,
                WriteJob::Ping { .. }
                | WriteJob::FlushSummaries { .. }
                | WriteJob::Maintain { .. }
                | WriteJob::Alerts { .. } => Inserted::default(),
            });
        }
        newest = writer.newest();
        ids = writer.take_ids();
    }
    if flush {
        cache.flush(&tx)?;
    }
    tx.commit()?;
    Ok(Committed { outcomes, newest, ids, created_at })
}

/// Inserts events within a caller's transaction, reusing a prepared statement and the students
/// a [`WriterCache`] knows, and folds each new event into its session's summary in that cache
/// (which the caller flushes). Used by the writer, the ingest benchmark's
/// ceiling and the query benchmark's fill.
pub struct EventWriter<'c> {
    conn: &'c Connection,
    created_at: &'c str,
    cache: &'c mut WriterCache,
    newest: Option<i64>,
    ids: Vec<Option<i64>>,
    insert: rusqlite::CachedStatement<'c>,
}

impl<'c> EventWriter<'c> {
    /// Prepares the statement on `conn` (in a write transaction) and brings `cache` in step
    /// with the database ([`WriterCache::begin`]); every event written gets `created_at`.
    /// Errors: any SQLite error.
    pub fn new(conn: &'c Connection, created_at: &'c str, cache: &'c mut WriterCache) -> Result<Self, rusqlite::Error> {
        cache.begin(conn)?;
        Ok(EventWriter {
            conn,
            created_at,
            cache,
            newest: None,
            ids: Vec::new(),
            insert: conn.prepare_cached(
                "INSERT INTO events (event_uuid, seq, student_id, session_token, event_type, event_data, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (event_uuid) DO NOTHING",
            )?,
        })
    }

    /// Inserts `events`; an event whose `uuid` is already stored is skipped and counted as a
    /// duplicate. Errors: any SQLite error (the caller's transaction should then be rolled back,
    /// and the summaries reset).
    pub fn write(&mut self, events: &[ValidEvent]) -> Result<Inserted, rusqlite::Error> {
        let mut outcome = Inserted::default();
        for event in events {
            let student_id = match event.student_email.as_deref() {
                Some(email) => Some(self.cache.student_id(self.conn, email, event.student_name.as_deref())?),
                None => None,
            };
            let changed = self.insert.execute((
                event.uuid.as_bytes().as_slice(),
                event.seq.map(|s| s as i64),
                student_id,
                &event.session_token,
                &event.event_type,
                &event.event_data,
                self.created_at,
            ))?;
            if changed == 1 {
                outcome.new += 1;
                let event_id = self.conn.last_insert_rowid();
                self.newest = Some(event_id);
                self.ids.push(Some(event_id));
                let fold = FoldEvent {
                    event_type: &event.event_type,
                    seq: event.seq,
                    student_id,
                    created_at: self.created_at,
                    facts: &event.facts,
                };
                self.cache.apply(self.conn, &event.session_token, &fold, event_id)?;
                if let Some(student_id) = student_id {
                    self.cache.record_student(self.conn, &event.session_token, student_id)?;
                }
            } else {
                outcome.duplicates += 1;
                self.ids.push(None);
            }
        }
        Ok(outcome)
    }

    /// The `event_id` of each event written so far, in order (`None` for a duplicate), and
    /// starts the list over.
    pub fn take_ids(&mut self) -> Vec<Option<i64>> {
        std::mem::take(&mut self.ids)
    }

    /// The newest `event_id` written so far, `None` when every event was a duplicate.
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }
}

/// Runs an alert write in one immediate transaction of its own.
fn write_alerts(conn: &mut Connection, work: AlertWork) -> Result<AlertOutcome, SqliteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = match work {
        AlertWork::Record(changes) => AlertOutcome::Recorded(alerts::record(&tx, changes)?),
        AlertWork::Acknowledge { id, action, at } => {
            AlertOutcome::Acknowledged(alerts::acknowledge(&tx, &id, action, &at)?.map(Box::new))
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Runs a maintenance task in one immediate transaction, after flushing the summaries in it (the
/// task then works on summaries that reflect every stored event; the caller resets the cache).
fn maintain(conn: &mut Connection, task: &Maintenance, cache: &mut WriterCache) -> Result<Removed, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    cache.begin(&tx)?;
    cache.flush(&tx)?;
    let removed = match task {
        Maintenance::Purge { before, limit, ids } => {
            purge(&tx, before, *limit, ids.as_deref(), cache.completion_types())?
        }
        Maintenance::DeleteStudent { email } => delete_student(&tx, email)?,
    };
    tx.commit()?;
    Ok(removed)
}

fn purge(
    conn: &Connection,
    before: &str,
    limit: usize,
    ids: Option<&[i64]>,
    completion_types: &[String],
) -> Result<Removed, rusqlite::Error> {
    // Oldest first by event_id. The bound on event_id (the newest event before the cutoff, one
    // seek in idx_events_created) makes the scan a rowid range that stops at `limit`, also when
    // nothing is old enough; ids grow with `created_at` (one writer per file).
    let rows: Vec<(String, Option<i64>)> = match ids {
        None => conn
            .prepare_cached(
                "DELETE FROM events WHERE event_id IN
                     (SELECT event_id FROM events WHERE created_at < ?1
                          AND event_id <= (SELECT event_id FROM events WHERE created_at < ?1
                                           ORDER BY created_at DESC, event_id DESC LIMIT 1)
                      ORDER BY event_id LIMIT ?2)
                 RETURNING session_token, student_id",
            )?
            .query_map((before, limit as i64), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
        Some(ids) => {
            let list = format!("[{}]", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
            conn.prepare_cached(
                "DELETE FROM events WHERE created_at < ?1
                     AND event_id IN (SELECT value FROM json_each(?2))
                 RETURNING session_token, student_id",
            )?
            .query_map((before, list), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
        }
    };
    let deleted = Deleted::from_rows(rows);
    let mut emptied = 0;
    for token in &deleted.sessions {
        if !refresh_summary(conn, token, completion_types)? {
            emptied += 1;
        }
    }
    // A student goes with the last session they appear in (`refresh_summary` deleted the
    // `session_students` rows of the sessions left without events).
    let mut students = 0;
    for student in &deleted.students {
        students += conn
            .prepare_cached(
                "DELETE FROM students WHERE student_id = ?1
                 AND NOT EXISTS (SELECT 1 FROM session_students WHERE student_id = ?1)",
            )?
            .execute([student])? as u64;
    }
    Ok(deleted.removed(emptied, students))
}

/// [`delete_student`] on the database file at `path`, for the command line: waits for the write
/// lock (busy timeout), so it works beside a running server, whose writer sees the change through
/// `PRAGMA data_version` and reloads its summaries. Errors: [`SqliteError::NoDatabase`], the
/// file cannot be opened or migrated, or SQLite fails.
pub fn delete_student_in_file(path: &Path, email: &str) -> Result<Removed, StoreError> {
    Ok(delete_student_in_file_inner(path, email)?)
}

fn delete_student_in_file_inner(path: &Path, email: &str) -> Result<Removed, SqliteError> {
    if !path.is_file() {
        return Err(SqliteError::NoDatabase(path.display().to_string()));
    }
    let mut conn = open_writer_connection(path, &Config::default().completion_event_types)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let removed = delete_student(&tx, email)?;
    tx.commit()?;
    Ok(removed)
}

/// Deletes a student and every trace: all events of the sessions in which they appear (found
/// through `session_students`, which is written with the events), those sessions' summaries and
/// `session_students` rows, and the student row.
pub fn delete_student(conn: &Connection, email: &str) -> Result<Removed, rusqlite::Error> {
    let mut removed = Removed::default();
    let student: Option<i64> = conn
        .prepare_cached("SELECT student_id FROM students WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    let Some(student) = student else { return Ok(removed) };
    let tokens: Vec<String> = conn
        .prepare_cached("SELECT session_token FROM session_students WHERE student_id = ?1")?
        .query_map([student], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for token in &tokens {
        removed.events += conn.prepare_cached("DELETE FROM events WHERE session_token = ?1")?.execute([token])? as u64;
        removed.sessions +=
            conn.prepare_cached("DELETE FROM sessions WHERE session_token = ?1")?.execute([token])? as u64;
        conn.prepare_cached("DELETE FROM session_students WHERE session_token = ?1")?.execute([token])?;
    }
    removed.students = conn.prepare_cached("DELETE FROM students WHERE student_id = ?1")?.execute([student])? as u64;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The migrations are valid SQL that SQLite accepts from an empty database.
    #[test]
    fn migrations_validate() {
        assert!(Migrations::from_slice(MIGRATIONS).validate().is_ok());
    }

    // A database written at schema 2 (summaries kept in the commit, no session_students) opens:
    // its summaries count as flushed, and deleting a student still finds their sessions.
    #[test]
    fn schema_2_database_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let types = Config::default().completion_event_types;
        {
            let mut conn = Connection::open(&path).unwrap();
            Migrations::from_slice(&MIGRATIONS[..2]).to_latest(&mut conn).unwrap();
            conn.execute_batch(
                "INSERT INTO students (student_id, email) VALUES (1, 'a@example.com');
                 INSERT INTO events (event_uuid, seq, student_id, session_token, event_type, event_data, created_at) VALUES
                     (x'01', 0, 1, 'ws_a', 'action', '{}', '2026-11-21T10:00:00.000Z'),
                     (x'02', 1, NULL, 'ws_a', 'action', '{}', '2026-11-21T10:00:01.000Z'),
                     (x'03', 0, NULL, 'ws_b', 'action', '{}', '2026-11-21T10:00:02.000Z');",
            )
            .unwrap();
            for token in ["ws_a", "ws_b"] {
                assert!(refresh_summary(&conn, token, &types).unwrap());
            }
        }
        let conn = open_writer_connection(&path, &types).unwrap();
        let watermark: i64 = conn.query_row("SELECT event_id FROM summary_watermark", [], |r| r.get(0)).unwrap();
        assert_eq!(watermark, 3, "schema 2 summaries reflect every event");
        let removed = delete_student(&conn, "a@example.com").unwrap();
        assert_eq!(removed, Removed { events: 2, sessions: 1, students: 1 });
        let left: Vec<String> = conn
            .prepare("SELECT session_token FROM sessions")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, ["ws_b"]);
    }
}
