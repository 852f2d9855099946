//! Everything that touches SQLite: the schema and its migrations, the writer thread, the readers.
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params_from_iter, Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use serde_json::value::RawValue;
use session_log_protocol::{StoredEvent, Uuid};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::ingest::ValidEvent;
use crate::metrics::Metrics;

/// How long a connection waits for a lock before failing (ms).
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The schema, one migration per version (PRAGMA user_version). The reference's PostgreSQL schema
/// translated to SQLite: `SERIAL` → `INTEGER PRIMARY KEY AUTOINCREMENT` (ids never reused, so they
/// can serve as cursors), `JSONB` → JSON text, `TIMESTAMP` → ISO 8601 text with ms (sorts as time).
/// Added: `event_uuid` (dedup) and `seq` (the client's per-session number).
const MIGRATIONS: &[M<'static>] = &[M::up(
    "CREATE TABLE students (
        student_id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT
    );
    CREATE TABLE events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_uuid BLOB NOT NULL,
        seq INTEGER,
        student_id INTEGER REFERENCES students(student_id),
        session_token TEXT NOT NULL,
        event_type TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 50),
        event_data TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX idx_events_uuid ON events(event_uuid);
    CREATE INDEX idx_events_session ON events(session_token);
    CREATE INDEX idx_events_type ON events(event_type);
    CREATE INDEX idx_events_created ON events(created_at DESC);
    CREATE INDEX idx_events_student ON events(student_id);",
)];

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
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
    /// The writer thread has stopped (shutdown).
    #[error("the writer has stopped")]
    WriterGone,
    /// The writer's queue is full: the server is overloaded.
    #[error("the write queue is full")]
    Busy,
}

/// What one insert request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inserted {
    /// New rows.
    pub new: usize,
    /// Events already stored (same `event_uuid`), left as they were.
    pub duplicates: usize,
}

/// One request to the writer.
enum WriteJob {
    /// Store these events; send the outcome once committed.
    Insert { events: Vec<ValidEvent>, ack: oneshot::Sender<Result<Inserted, String>> },
    /// Check that the database takes a write lock (`/healthz`).
    Ping { ack: oneshot::Sender<Result<Inserted, String>> },
}

impl WriteJob {
    fn rows(&self) -> usize {
        match self {
            WriteJob::Insert { events, .. } => events.len(),
            WriteJob::Ping { .. } => 0,
        }
    }

    fn answer(self, outcome: Result<Inserted, String>) {
        let ack = match self {
            WriteJob::Insert { ack, .. } | WriteJob::Ping { ack } => ack,
        };
        let _ = ack.send(outcome);
    }
}

/// The WAL file is truncated back to this size after a checkpoint (`journal_size_limit`, bytes).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// When the WAL grows past this (bytes), the writer truncates it as soon as it is idle.
const WAL_CHECKPOINT_IDLE: u64 = 16 * 1024 * 1024;
/// When the WAL grows past this (bytes), the checkpointer forces a RESTART checkpoint: readers
/// that never let a passive checkpoint finish cannot make it grow without bound.
const WAL_CHECKPOINT_FORCED: u64 = 128 * 1024 * 1024;

/// Filters of an event query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this session.
    pub session_token: Option<String>,
    /// Only this student (case-insensitive).
    pub student_email: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// At most this many events, newest first.
    pub limit: u32,
}

/// A stored event as queries return it, its data as the JSON text stored.
pub type EventRow = StoredEvent<Box<RawValue>>;

/// The database: a handle to the writer thread and a pool of readers.
pub struct Storage {
    metrics: Arc<Metrics>,
    writer: Mutex<Option<Sender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl Storage {
    /// Opens (or creates) the database at `config.db_path`, brings its schema up to date, starts
    /// the writer thread and opens the read pool.
    ///
    /// Errors: the folder cannot be created, the file cannot be opened or migrated.
    pub fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Storage, StorageError> {
        let path = &config.db_path;
        let conn = open_writer_connection(path)?;
        let readers = open_readers(path, config.read_connections)?;
        let (sender, receiver) = crossbeam_channel::bounded(config.write_queue_requests.max(1));
        let writer = Writer {
            conn,
            wal_path: wal_path(path),
            max_rows: config.max_rows_per_commit.max(1),
            metrics: metrics.clone(),
        };
        let writer_thread = std::thread::Builder::new()
            .name("session-log-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| StorageError::Spawn { what: "writer", source })?;
        let checkpointer = Checkpointer::start(path)?;
        Ok(Storage {
            metrics,
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers,
        })
    }

    /// Stores `events` (in order) and answers once they are committed.
    ///
    /// Errors: [`StorageError::Busy`] when the writer's queue is full (answer 503),
    /// [`StorageError::WriterGone`] during shutdown, [`StorageError::Sqlite`] when the commit failed
    /// (then none of the events is stored).
    pub async fn insert(&self, events: Vec<ValidEvent>) -> Result<Inserted, StorageError> {
        self.submit(|ack| WriteJob::Insert { events, ack }).await
    }

    /// Checks, through the writer, that the database takes a write lock (an empty immediate
    /// transaction). Errors as for [`Storage::insert`].
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.submit(|ack| WriteJob::Ping { ack }).await.map(|_| ())
    }

    async fn submit(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<Inserted, String>>) -> WriteJob,
    ) -> Result<Inserted, StorageError> {
        let writer = lock(&self.writer).clone().ok_or(StorageError::WriterGone)?;
        let (ack, done) = oneshot::channel();
        writer.try_send(job(ack)).map_err(|e| match e {
            TrySendError::Full(_) => StorageError::Busy,
            TrySendError::Disconnected(_) => StorageError::WriterGone,
        })?;
        match done.await {
            Ok(Ok(inserted)) => Ok(inserted),
            Ok(Err(message)) => Err(StorageError::Commit(message)),
            Err(_) => Err(StorageError::WriterGone),
        }
    }

    /// Updates the queue-depth gauge (write requests waiting for the writer) and returns it.
    pub fn observe_queue_depth(&self) -> usize {
        let depth = lock(&self.writer).as_ref().map_or(0, Sender::len);
        self.metrics.queue_depth.set(depth as i64);
        depth
    }

    /// A read-only connection from the pool (blocking: call it from a blocking task).
    pub fn reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StorageError> {
        Ok(self.readers.get()?)
    }

    /// Stops taking writes, lets the writer commit everything already handed to it, and waits for it.
    pub fn close(&self) {
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

impl Drop for Storage {
    fn drop(&mut self) {
        self.close();
    }
}

/// Locks a mutex, recovering it if a panicking thread poisoned it (the data stays consistent:
/// each critical section is a single `take` or `clone`).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_readers(path: &Path, size: u32) -> Result<r2d2::Pool<SqliteConnectionManager>, StorageError> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI)
        .with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.pragma_update(None, "query_only", "ON")
        });
    Ok(r2d2::Pool::builder().max_size(size.max(1)).build(manager)?)
}

/// Opens the write connection: creates the folder and the file, sets WAL mode and the pragmas,
/// and brings the schema up to date. The server's writer and the ingest benchmark's ceiling both
/// use it, so they write to identical databases.
///
/// Errors: the folder cannot be created, the file cannot be opened, a pragma or migration fails.
pub fn open_writer_connection(path: &Path) -> Result<Connection, StorageError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir { path: dir.display().to_string(), source })?;
    }
    let mut conn = Connection::open(path)?;
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
    Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
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
    /// The WAL file, whose size decides when an idle writer truncates it.
    wal_path: PathBuf,
    max_rows: usize,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Commit what is waiting, answer, repeat; returns when every sender is gone and the channel
    /// is drained (that is the graceful shutdown: nothing handed over is lost).
    fn run(mut self, receiver: Receiver<WriteJob>) {
        while let Ok(first) = receiver.recv() {
            let mut rows = first.rows();
            let mut jobs = vec![first];
            while rows < self.max_rows {
                match receiver.try_recv() {
                    Ok(job) => {
                        rows += job.rows();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            match commit(&mut self.conn, &jobs) {
                Ok(outcomes) => {
                    self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.commit_rows.observe(rows as f64);
                    for (job, outcome) in jobs.into_iter().zip(outcomes) {
                        job.answer(Ok(outcome));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, rows, "commit failed");
                    for job in jobs {
                        job.answer(Err(error.to_string()));
                    }
                }
            }
            if receiver.is_empty() && wal_bytes(&self.wal_path) > WAL_CHECKPOINT_IDLE {
                // Idle: fold the WAL back into the database and truncate it, while nobody waits.
                checkpoint(&self.conn, "TRUNCATE");
            }
        }
        checkpoint(&self.conn, "TRUNCATE");
        tracing::debug!("writer stopped: every accepted event is committed");
    }
}

/// How often the checkpointer runs a passive checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

fn wal_bytes(wal: &Path) -> u64 {
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Runs `PRAGMA wal_checkpoint(<mode>)` and logs the outcome.
fn checkpoint(conn: &Connection, mode: &str) {
    let started = Instant::now();
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((busy, log, done)) => tracing::debug!(mode, busy, log, done, elapsed = ?started.elapsed(), "checkpoint"),
        Err(error) => tracing::warn!(%error, mode, "checkpoint failed"),
    }
}

/// The checkpointer thread: copies committed WAL frames into the database with PASSIVE
/// checkpoints on its own connection, so the writer never stalls on a checkpoint (the writer's
/// automatic checkpoints are off). SQLite reuses the WAL from its start once it is fully
/// checkpointed, which keeps it bounded under sustained load; past WAL_CHECKPOINT_FORCED (readers
/// holding old snapshots), a RESTART checkpoint briefly holds the writer to force it.
/// Stopped (and joined) on drop.
pub struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already in WAL mode) every 250 ms.
    ///
    /// Errors: the connection cannot be opened, or the thread cannot be started.
    pub fn start(path: &Path) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let wal = wal_path(path);
        let thread = std::thread::Builder::new()
            .name("session-log-checkpointer".into())
            .spawn(move || checkpoint_loop(conn, wal, stopped))
            .map_err(|source| StorageError::Spawn { what: "checkpointer", source })?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread) })
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

fn checkpoint_loop(conn: Connection, wal: PathBuf, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if wal_bytes(&wal) > WAL_CHECKPOINT_FORCED {
            checkpoint(&conn, "RESTART");
        } else {
            checkpoint(&conn, "PASSIVE");
        }
    }
}

/// Commits all jobs' events in one immediate transaction; returns each job's counts.
fn commit(conn: &mut Connection, jobs: &[WriteJob]) -> Result<Vec<Inserted>, rusqlite::Error> {
    let created_at = now_iso();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    {
        let mut writer = EventWriter::new(&tx, &created_at)?;
        for job in jobs {
            outcomes.push(match job {
                WriteJob::Insert { events, .. } => writer.write(events)?,
                WriteJob::Ping { .. } => Inserted::default(),
            });
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Inserts events within a caller's transaction, reusing prepared statements and the students
/// already looked up. Used by the writer and by the ingest benchmark's ceiling.
pub struct EventWriter<'c> {
    created_at: &'c str,
    students: HashMap<String, i64>,
    upsert_student: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
}

impl<'c> EventWriter<'c> {
    /// Prepares the statements on `conn`; every event written gets `created_at`.
    pub fn new(conn: &'c Connection, created_at: &'c str) -> Result<Self, rusqlite::Error> {
        Ok(EventWriter {
            created_at,
            students: HashMap::new(),
            upsert_student: conn.prepare_cached(
                "INSERT INTO students (email, name) VALUES (?1, ?2)
                 ON CONFLICT (email) DO UPDATE SET name = coalesce(excluded.name, students.name)
                 RETURNING student_id",
            )?,
            insert: conn.prepare_cached(
                "INSERT INTO events (event_uuid, seq, student_id, session_token, event_type, event_data, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (event_uuid) DO NOTHING",
            )?,
        })
    }

    /// Inserts `events`; an event whose `uuid` is already stored is skipped and counted as a
    /// duplicate. Errors: any SQLite error (the caller's transaction should then be rolled back).
    pub fn write(&mut self, events: &[ValidEvent]) -> Result<Inserted, rusqlite::Error> {
        let mut outcome = Inserted::default();
        for event in events {
            let student_id = match event.student_email.as_deref() {
                Some(email) => Some(self.student_id(email, event.student_name.as_deref())?),
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
            } else {
                outcome.duplicates += 1;
            }
        }
        Ok(outcome)
    }

    fn student_id(&mut self, email: &str, name: Option<&str>) -> Result<i64, rusqlite::Error> {
        if let Some(id) = self.students.get(email) {
            return Ok(*id);
        }
        let id: i64 = self.upsert_student.query_row((email, name), |r| r.get(0))?;
        self.students.insert(email.to_owned(), id);
        Ok(id)
    }
}

/// What a session lost: `(missing, dropped)`. `missing` counts the numbers absent from its `seq`
/// 0…max (sent by the client, never arrived); `dropped` sums the drops its client reported.
pub fn session_losses(conn: &Connection, session_token: &str) -> Result<(u64, u64), StorageError> {
    let (present, max): (i64, Option<i64>) = conn.query_row(
        "SELECT count(DISTINCT seq), max(seq) FROM events WHERE session_token = ?1 AND seq IS NOT NULL",
        [session_token],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let missing = max.map_or(0, |max| (max + 1 - present).max(0) as u64);
    let dropped: i64 = conn.query_row(
        "SELECT coalesce(sum(json_extract(event_data, '$.droppedCount')), 0) FROM events
         WHERE session_token = ?1 AND event_type = ?2",
        (session_token, session_log_protocol::EVENTS_DROPPED),
        |r| r.get(0),
    )?;
    Ok((missing, dropped.max(0) as u64))
}

/// Now as ISO 8601 UTC with ms, the format of `created_at` (sorts as text in time order).
pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Runs an event query on a read connection: newest first (by `event_id`).
pub fn query_events(conn: &Connection, query: &EventQuery) -> Result<Vec<EventRow>, StorageError> {
    let mut sql = String::from(
        "SELECT e.event_id, e.session_token, e.event_type, e.event_data, e.created_at,
                s.email, s.name, e.event_uuid, e.seq
         FROM events e LEFT JOIN students s ON s.student_id = e.student_id WHERE 1 = 1",
    );
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
    if let Some(token) = &query.session_token {
        sql.push_str(" AND e.session_token = ?");
        params.push(token);
    }
    if let Some(email) = &query.student_email {
        sql.push_str(" AND e.student_id = (SELECT student_id FROM students WHERE email = ?)");
        params.push(email);
    }
    if let Some(event_type) = &query.event_type {
        sql.push_str(" AND e.event_type = ?");
        params.push(event_type);
    }
    sql.push_str(" ORDER BY e.event_id DESC LIMIT ?");
    params.push(&query.limit);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(params), |row| {
        let data: String = row.get(3)?;
        let uuid: Vec<u8> = row.get(7)?;
        Ok(StoredEvent {
            event_id: row.get(0)?,
            session_token: row.get(1)?,
            event_type: row.get(2)?,
            event_data: RawValue::from_string(data).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
            })?,
            created_at: row.get(4)?,
            student_email: row.get(5)?,
            student_name: row.get(6)?,
            event_uuid: Uuid::from_slice(&uuid).unwrap_or_default(),
            seq: row.get::<_, Option<i64>>(8)?.map(|s| s as u64),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The migrations are valid SQL that SQLite accepts from an empty database.
    #[test]
    fn migrations_validate() {
        assert!(Migrations::from_slice(MIGRATIONS).validate().is_ok());
    }
}
