//! The SQLite backend. Here: the store (`SqliteStore`, its `Backend` methods), the schema and its
//! migrations, opening connections. Beside it, one concern a file: `writer.rs` (the writer thread
//! and its group commits), `checkpointer.rs`, `maintenance.rs` (purge, deletion), `read.rs`,
//! `cache.rs` (summaries written behind the events), `alerts.rs`, `backup.rs`, `wal_vfs.rs`.
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
use std::time::Duration;

use async_trait::async_trait;
use crossbeam_channel::{Sender, TrySendError};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use tokio::sync::{oneshot, watch};

use super::backend::Backend;
use super::feed::CommitFeed;
use super::maintenance::Maintenance;
use super::{Inserted, Removed, StoreError};
use crate::config::Config;
use crate::domain::event::ValidEvent;
use crate::metrics::Metrics;

mod alerts;
pub mod backup;
mod cache;
mod checkpointer;
mod maintenance;
mod notices;
mod read;
#[cfg(unix)]
pub mod wal_vfs;
mod workshops;
mod writer;
use super::{EventQuery, EventRow, SessionQuery, SessionRow};
use cache::parse_summary;
pub use cache::{catch_up_summaries, fold_session, load_summary, refresh_summary, WriterCache, SUMMARY_FLUSH_EVERY};
use checkpointer::Checkpointer;
pub use maintenance::{delete_student, delete_student_in_file};
pub use read::{query_events, query_sessions, session_losses};
pub use workshops::directory_in_file;
pub use workshops::in_file as workshops_in_file;
use writer::{AlertOutcome, AlertWork, WriteJob, Writer};
pub use writer::{EventWriter, WAL_CHECKPOINT_IDLE, WRITER_IDLE_AFTER};

/// How long a connection waits for a lock before failing (ms).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The schema, one migration per version (`PRAGMA user_version`), from `migrations/sqlite/` (as
/// PostgreSQL's are from `migrations/postgres/`): each file says what it adds and why.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/sqlite/V1__schema.sql")),
    M::up(include_str!("../../../migrations/sqlite/V2__sessions.sql")),
    M::up(include_str!("../../../migrations/sqlite/V3__summary_watermark.sql")),
    M::up(include_str!("../../../migrations/sqlite/V4__session_paging.sql")),
    M::up(include_str!("../../../migrations/sqlite/V5__alerts.sql")),
    M::up(include_str!("../../../migrations/sqlite/V6__workshops.sql")),
    M::up(include_str!("../../../migrations/sqlite/V7__rooms_and_helper_tokens.sql")),
    M::up(include_str!("../../../migrations/sqlite/V8__alert_places.sql")),
    M::up(include_str!("../../../migrations/sqlite/V9__helper_token_use.sql")),
    M::up(include_str!("../../../migrations/sqlite/V10__help_queue.sql")),
    M::up(include_str!("../../../migrations/sqlite/V11__event_rooms.sql")),
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

/// When SQLite starts the WAL over, it truncates a larger file back to this size
/// (`journal_size_limit`, bytes). It is above the WAL's usual peak under sustained load (about
/// 130 MB), so the next cycle rewrites blocks the file already has. With 64 MiB, growing the file
/// again (page-cache and block allocation, and the truncation itself) cost the benchmark's
/// ceiling 21% of its rows/s at 10 rows per transaction and 10% at 300 (medians of nine runs
/// each). An idle writer truncates the WAL to nothing (see [`WAL_CHECKPOINT_IDLE`]).
const WAL_SIZE_LIMIT: i64 = 256 * 1024 * 1024;

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
    /// The database file (admin writes open a connection of their own).
    path: PathBuf,
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
            path: path.to_owned(),
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

    /// `Storage::workshops`.
    async fn workshops(&self) -> Result<Vec<crate::domain::workshop::Workshop>, StoreError> {
        self.read(workshops::workshops).await
    }

    /// `Storage::create_workshop`.
    async fn create_workshop(&self, new: super::NewWorkshop) -> Result<crate::domain::workshop::Workshop, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::create(&path, &new, &super::now_iso()))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::revoke_write_key`.
    async fn revoke_write_key(&self, slug: String) -> Result<Option<crate::domain::workshop::Workshop>, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::revoke(&path, &slug, &super::now_iso()))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::rooms`.
    async fn rooms(&self) -> Result<Vec<crate::domain::workshop::Room>, StoreError> {
        self.read(workshops::rooms).await
    }

    /// `Storage::move_sessions`.
    async fn move_sessions(
        &self,
        tokens: Vec<String>,
        workshop_id: i64,
        room_id: i64,
    ) -> Result<Vec<String>, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::move_sessions(&path, &tokens, workshop_id, room_id))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::session_places`.
    async fn session_places(&self, tokens: Vec<String>) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        self.read(move |conn| workshops::session_places(conn, &tokens)).await
    }

    /// `Storage::create_room`.
    async fn create_room(&self, new: super::NewRoom) -> Result<crate::domain::workshop::Room, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::create_room(&path, &new, &super::now_iso()))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::post_notice`.
    async fn post_notice(&self, new: super::NewNotice) -> Result<crate::domain::notice::Notice, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || notices::post(&path, &new)).await.map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::notices`.
    async fn notices(
        &self,
        room: String,
        now: String,
        limit: u32,
    ) -> Result<Vec<crate::domain::notice::Notice>, StoreError> {
        self.read(move |conn| notices::current(conn, &room, &now, limit)).await
    }

    /// `Storage::record_token_use`.
    async fn record_token_use(&self, id: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::record_token_use(&path, id, &super::now_iso()))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::helper_tokens`.
    async fn helper_tokens(&self) -> Result<Vec<crate::domain::helper::HelperToken>, StoreError> {
        self.read(workshops::helper_tokens).await
    }

    /// `Storage::create_helper_token`.
    async fn create_helper_token(
        &self,
        new: super::NewHelperToken,
    ) -> Result<crate::domain::helper::HelperToken, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::create_helper_token(&path, &new, &super::now_iso()))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::revoke_helper_token`.
    async fn revoke_helper_token(&self, id: i64) -> Result<Option<crate::domain::helper::HelperToken>, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || workshops::revoke_helper_token(&path, id, &super::now_iso()))
            .await
            .map_err(|_| StoreError::Stopped)?
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

    // A database written before rooms opens with every session in the `default` workshop's
    // lobby: those with a stored summary and those whose events are past the watermark.
    #[test]
    fn sessions_stored_before_rooms_go_to_the_default_workshop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v6.db");
        let types = Config::default().completion_event_types;
        {
            let mut conn = Connection::open(&path).unwrap();
            Migrations::from_slice(&MIGRATIONS[..6]).to_latest(&mut conn).unwrap();
            conn.execute_batch(
                "INSERT INTO events (event_uuid, seq, student_id, session_token, event_type, event_data, created_at) VALUES
                     (x'01', 0, NULL, 'ws_summarized', 'action', '{}', '2026-11-21T10:00:00.000Z'),
                     (x'02', 0, NULL, 'ws_behind', 'action', '{}', '2026-11-21T10:00:01.000Z');",
            )
            .unwrap();
            assert!(refresh_summary(&conn, "ws_summarized", &types).unwrap());
            conn.execute("UPDATE summary_watermark SET event_id = 1", []).unwrap();
        }
        let conn = open_writer_connection(&path, &types).unwrap();
        let placed: Vec<(String, i64, Option<i64>)> = conn
            .prepare("SELECT session_token, workshop_id, room_id FROM session_rooms ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(placed, [("ws_behind".into(), 1, None), ("ws_summarized".into(), 1, None)]);
    }
}
