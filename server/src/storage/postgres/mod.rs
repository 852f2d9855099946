//! The PostgreSQL backend: the schema (refinery migrations in `server/migrations/postgres`), a
//! writer task that commits in groups, and reads on a connection pool (`deadpool-postgres` over
//! `tokio-postgres`).
//!
//! Invariants:
//! - Everything runs on the store's own Tokio runtime (two threads), whatever runtime the caller
//!   is on: the pool's connections live there and outlive any HTTP worker.
//! - One writer task per server commits: it takes every job waiting (up to `max_rows_per_commit`
//!   rows) and stores their new events in one transaction with one multi-row `INSERT … SELECT
//!   FROM UNNEST(…)`, folding them into their sessions' summaries in the same transaction (under
//!   a transaction-level advisory lock per session, so two servers never fold one session at
//!   once). A request is answered after the commit and its [`DURABILITY_BARRIER`]: an
//!   acknowledged event is on disk, and no reader gets an event before it is.
//! - A failed group is retried job by job once, so one job the database refuses fails alone;
//!   a database that cannot be reached fails every job with [`StoreError::Unavailable`] (503),
//!   and the pool reconnects by itself when it is back.
//! - Several servers may share one database. One transaction at a time draws `event_id`s and a
//!   draw ticket (under [`ID_ORDER_LOCK`], for one statement), and each commits only after the
//!   transaction with the previous ticket has ended ([`TICKET_CLASS`]): commits become visible in
//!   id order whichever server commits, and `event_id` stays a cursor that never skips an event,
//!   while the inserts themselves run side by side. Every commit NOTIFYs its newest id
//!   (`cluster`), which wakes every server's live tails; one server at a time holds the leader
//!   lock and runs the background work.
//! - `event_data` is `json`: the text as the client sent it, checked by PostgreSQL's JSON lexer
//!   (a `\u0000` escape, which PostgreSQL's JSON functions refuse, is stored as U+FFFD).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::value::RawValue;
use session_log_protocol::{StoredEvent, Uuid};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::backend::Backend;
use super::feed::CommitFeed;
use super::filter::{self, Dialect, Param, StudentScope};
use super::maintenance::{Deleted, Maintenance};
use super::summary_rows::{self, FoldColumns};
use super::{EventQuery, EventRow, Inserted, Removed, SessionQuery, SessionRow, StoreError};
use crate::config::Config;
use crate::domain::event::{CommittedEvent, ValidEvent};
use crate::domain::summary::{FoldEvent, SessionSummary};
use crate::metrics::Metrics;

mod alerts;
mod cluster;
mod sql;
mod vacuum;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// How long a request waits for a pooled connection, or for a new one to connect, before the
/// database counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a group commit may take before its jobs are answered 503 (the events may still have
/// been stored: a retry is deduplicated by `eventId`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);
/// The advisory lock key held while migrating, so that servers starting together migrate once.
const MIGRATION_LOCK: i64 = 0x5e55_1010_0001;
/// The session-level advisory lock key a group holds while it draws its ticket and its
/// `event_id`s (one statement, then it lets go): one transaction at a time draws, across
/// servers, so each transaction's ids and ticket are above every one drawn before.
const ID_ORDER_LOCK: i64 = 0x5e55_1010_0005;
/// The class (first key of PostgreSQL's two-key advisory locks, a space apart from the one-key
/// locks) of draw tickets: a group holds the transaction-level lock of its ticket (drawn from
/// `events_draw_tickets` with its ids) until it ends, and takes the previous ticket's lock just
/// before its commit, so it commits after the transaction that drew before it has ended: commits
/// become visible in id order and `event_id` stays a cursor that never skips an event, while the
/// inserts of several groups run side by side.
const TICKET_CLASS: i32 = 0x5e55_1011;
/// How long `close` waits for the writer to commit what it was handed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

/// `created_at` as `now_iso` writes it (ISO 8601 UTC with ms).
const ISO: &str = r#"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

/// Where the writer answers an insert request.
type InsertAck = oneshot::Sender<Result<Inserted, StoreError>>;

/// Group commits in flight at once, each on a connection of its own (see `Writer::run`): enough
/// that a group is always filling while others wait for their commit; the measured choice among
/// 3 to 6 is in `docs/benchmarks.md` ("Figures behind constants").
const PIPELINE: usize = 4;

enum Job {
    Insert { events: Vec<ValidEvent>, ack: InsertAck },
    Maintain { task: Maintenance, ack: oneshot::Sender<Result<Removed, StoreError>> },
}

/// The PostgreSQL database: the writer task's queue and the pool, on the store's runtime.
pub struct PostgresStore {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    committed: watch::Receiver<i64>,
    /// Every committed `event_id` up to this one is durable (its WAL flushed): raised by the
    /// writer after each group's [`DURABILITY_BARRIER`] and by readers after theirs.
    durable: Arc<AtomicI64>,
    leader: Arc<std::sync::atomic::AtomicBool>,
    metrics: Arc<Metrics>,
    completion_types: Arc<Vec<String>>,
}

/// `url` with its password replaced by `***`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A PostgreSQL error by what the caller can do: a closed connection, an unreachable server, a
/// server shutting down or not accepting writes is unavailable; the rest internal.
fn db_error(error: tokio_postgres::Error) -> StoreError {
    let unreachable = error.is_closed()
        || error.code().is_some_and(|code| {
            let code = code.code();
            // 08: connection exception; 57P: operator intervention (shutdown); 53: insufficient
            // resources; 25006: read-only transaction (a standby).
            code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") || code == "25006"
        })
        || error.code().is_none();
    // A server error's Display is only "db error": name its code and message instead.
    let detail = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    };
    if unreachable {
        unavailable(detail)
    } else {
        StoreError::Internal(format!("postgres: {detail}"))
    }
}

/// Whether a group lost a race over an `eventId` that another transaction stored under another
/// session meanwhile (see `insert_events`): PostgreSQL's `unique_violation` (SQLSTATE 23505), or
/// `deadlock_detected` (40P01) when that transaction was waiting for this one's commit. Both are
/// read from the end of [`db_error`]'s message, where it names the SQLSTATE.
fn lost_a_race(error: &StoreError) -> bool {
    matches!(error, StoreError::Internal(message) if message.ends_with("(23505)") || message.ends_with("(40P01)"))
}

/// A pooled connection that is closed, not returned to the pool, unless [`Closing::release`] is
/// called: a group that failed, or whose future was dropped (its commit timed out), may still
/// hold the session-level [`ID_ORDER_LOCK`], and PostgreSQL frees a session's advisory locks for
/// certain when the session ends.
struct Closing(Option<deadpool_postgres::Object>);

impl Closing {
    fn client(&mut self) -> &mut deadpool_postgres::Object {
        self.0.as_mut().expect("held until released or dropped")
    }

    /// Returns the connection to the pool (its transaction committed, the id lock released).
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => db_error(error),
        other => unavailable(other),
    }
}

/// Opens a pool of at most `size` connections to `url`, on the current runtime.
/// The connection settings of `url`. Errors: [`StoreError::Invalid`] when it does not parse.
fn pg_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config =
        url.parse().map_err(|e| StoreError::Invalid(format!("database URL {}: {e}", redact_url(url))))?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.application_name("session-log");
    Ok(pg)
}

fn open_pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let pg = pg_config(url)?;
    let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Internal(format!("connection pool: {e}")))
}

/// Brings the schema up to date (refinery), under an advisory lock so concurrent servers
/// migrate once.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = sql::connection(pool).await?;
    // Not through the statement cache: a migration may change what a cached statement returns.
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
    let client: &mut tokio_postgres::Client = &mut client;
    let outcome = embedded::migrations::runner().run_async(client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
    let report = outcome.map_err(|e| StoreError::Internal(format!("migration: {e}")))?;
    for migration in report.applied_migrations() {
        tracing::info!(version = migration.version(), name = migration.name(), "applied a PostgreSQL migration");
    }
    Ok(())
}

/// Runs `work` to completion on `handle`'s runtime and waits for it from any thread (also from
/// inside another runtime, where `block_on` is not allowed).
fn wait_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (done, outcome) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = done.send(work.await);
    });
    outcome.recv().ok()
}

impl PostgresStore {
    /// Connects to `url`, migrates the schema and starts the writer task on a runtime of the
    /// store's own. Blocks until the database answers (at most about 5 s when it does not).
    ///
    /// Errors: [`StoreError::Invalid`] for a URL that does not parse, [`StoreError::Unavailable`]
    /// when the server cannot be reached, [`StoreError::Internal`] when a migration fails or the
    /// runtime cannot start.
    pub fn open(
        url: &str,
        config: &Config,
        metrics: Arc<Metrics>,
        feed: Arc<CommitFeed>,
    ) -> Result<PostgresStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("session-log-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let size = config.read_connections.max(1) as usize + PIPELINE;
        let pg = match pg_config(url) {
            Ok(pg) => pg,
            Err(error) => {
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let url = url.to_owned();
        let opened = wait_on(&handle, async move {
            let pool = open_pool(&url, size)?;
            migrate(&pool).await?;
            let client = sql::connection(&pool).await?;
            let row = sql::query_one(&client, "SELECT coalesce(max(event_id), 0) FROM events", &[]).await?;
            drop(client);
            Ok::<_, StoreError>((pool, row.get::<_, i64>(0)))
        })
        .unwrap_or(Err(StoreError::Stopped));
        let (pool, newest) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                // Dropping a runtime blocks, which panics inside the caller's async context.
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let (committed_tx, committed) = watch::channel(newest);
        let committed_tx = Arc::new(committed_tx);
        let leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Nothing is known durable yet: the first read of an event runs a barrier.
        let durable = Arc::new(AtomicI64::new(0));
        handle.spawn(cluster::listen(pg.clone(), committed_tx.clone()));
        handle.spawn(cluster::lead(pg.clone(), leader.clone(), metrics.clone()));
        handle.spawn(vacuum::maintain(pg, leader.clone()));
        let (sender, receiver) = mpsc::channel(config.write_queue_requests.max(1));
        let (done_tx, writer_done) = std::sync::mpsc::channel();
        let completion_types = Arc::new(config.completion_event_types.clone());
        let writer = Writer {
            pool: pool.clone(),
            max_rows: config.max_rows_per_commit.max(1),
            metrics: metrics.clone(),
            completion_types: completion_types.clone(),
            committed: committed_tx,
            durable: durable.clone(),
            feed,
            last_failure_logged: Mutex::new(None),
        };
        handle.spawn(async move {
            Arc::new(writer).run(receiver).await;
            let _ = done_tx.send(());
        });
        Ok(PostgresStore {
            runtime: Mutex::new(Some(runtime)),
            handle,
            pool,
            writer: Mutex::new(Some(sender)),
            writer_done: Mutex::new(Some(writer_done)),
            committed,
            durable,
            leader,
            metrics,
            completion_types,
        })
    }

    /// Runs `work` on the store's runtime and awaits it. Errors: `work`'s, or
    /// [`StoreError::Stopped`] when the runtime is gone.
    async fn on_runtime<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.handle.spawn(work).await.map_err(|_| StoreError::Stopped)?
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let writer = lock(&self.writer).clone().ok_or(StoreError::Stopped)?;
        writer.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Stopped,
        })
    }

    async fn maintain(&self, task: Maintenance) -> Result<Removed, StoreError> {
        let (ack, done) = oneshot::channel();
        self.submit(Job::Maintain { task, ack })?;
        done.await.map_err(|_| StoreError::Stopped)?
    }
}

#[async_trait]
impl Backend for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    /// `Storage::is_leader`: whether this server holds the database's leader lock.
    fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Storage::insert`: the summaries are folded in the events' transaction.
    async fn insert(&self, mut events: Vec<ValidEvent>) -> Result<Inserted, StoreError> {
        // On the request's task, not the writer's: what JSONB cannot hold is replaced here.
        for event in &mut events {
            if let std::borrow::Cow::Owned(data) = jsonb_text(&event.event_data) {
                event.event_data = data;
            }
        }
        let (ack, done) = oneshot::channel();
        self.submit(Job::Insert { events, ack })?;
        done.await.map_err(|_| StoreError::Stopped)?
    }

    /// `Storage::ping`: a pooled connection that is not on a read-only standby.
    async fn ping(&self) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            let row = sql::query_one(&client, "SELECT pg_is_in_recovery()", &[]).await?;
            match row.get::<_, bool>(0) {
                false => Ok(()),
                true => Err(unavailable("the database is a read-only standby")),
            }
        })
        .await
    }

    /// `Storage::flush_summaries`: nothing to do, summaries are written with their events.
    async fn flush_summaries(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// `Storage::purge` and `Storage::purge_ids`.
    async fn purge(&self, before: String, limit: usize, ids: Option<Vec<i64>>) -> Result<Removed, StoreError> {
        self.maintain(Maintenance::Purge { before, limit, ids }).await
    }

    /// `Storage::delete_student`.
    async fn delete_student(&self, email: String) -> Result<Removed, StoreError> {
        self.maintain(Maintenance::DeleteStudent { email }).await
    }

    /// `Storage::committed`.
    fn committed(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    /// `Storage::observe_queue_depth`.
    fn observe_queue_depth(&self) -> usize {
        let depth = lock(&self.writer).as_ref().map_or(0, |w| w.max_capacity() - w.capacity());
        self.metrics.queue_depth.set(depth as i64);
        depth
    }

    /// `Storage::events`.
    /// Events newer than [`PostgresStore::durable`] are returned only after a
    /// [`DURABILITY_BARRIER`] on the same connection.
    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        let pool = self.pool.clone();
        let durable = self.durable.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            let rows = query_events(&client, &query).await?;
            made_durable(&client, &durable, &rows).await?;
            Ok(rows)
        })
        .await
    }

    /// `Storage::count_events`.
    async fn count_events(&self, after: i64, upto: i64) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            let row = sql::query_one(
                &client,
                "SELECT count(*) FROM events WHERE event_id > $1 AND event_id <= $2",
                &[&after, &upto],
            )
            .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
    }

    /// `Storage::events_and_losses`.
    async fn events_and_losses(&self, query: EventQuery) -> Result<(Vec<EventRow>, Option<(u64, u64)>), StoreError> {
        let pool = self.pool.clone();
        let durable = self.durable.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            // Both statements in one pipeline on the connection: one round trip, not two.
            let losses = async {
                let Some(token) = &query.session_token else { return Ok(None) };
                let mut summaries = load_summaries(&client, &[token.as_str()]).await?;
                Ok(Some(summaries.remove(token).map_or((0, 0), |s| (s.missing_events(), s.dropped_events))))
            };
            let (rows, losses) = tokio::try_join!(query_events(&client, &query), losses)?;
            made_durable(&client, &durable, &rows).await?;
            Ok((rows, losses))
        })
        .await
    }

    /// `Storage::sessions`.
    async fn sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            query_sessions(&client, &query).await
        })
        .await
    }

    /// `Storage::record_alert_changes`.
    async fn record_alert_changes(
        &self,
        changes: Vec<crate::domain::alerts::AlertChange>,
    ) -> Result<Vec<super::LoggedChange>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { alerts::record(&pool, changes).await }).await
    }

    /// `Storage::acknowledge_alert`.
    async fn acknowledge_alert(
        &self,
        id: String,
        action: crate::domain::alerts::AlertAction,
        at: String,
    ) -> Result<Option<super::Acknowledged>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { alerts::acknowledge(&pool, id, action, at).await }).await
    }

    /// `Storage::alerts`.
    async fn alerts(&self, query: super::AlertQuery) -> Result<Vec<crate::domain::alerts::Alert>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            alerts::query(&client, &query).await
        })
        .await
    }

    /// `Storage::alert_changes`.
    async fn alert_changes(&self, after: i64, limit: u32) -> Result<Vec<super::LoggedChange>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            alerts::changes(&client, after, limit).await
        })
        .await
    }

    /// `Storage::newest_alert_change`.
    async fn newest_alert_change(&self) -> Result<i64, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            alerts::newest_change(&client).await
        })
        .await
    }

    /// `Storage::summary_drift`.
    async fn summary_drift(&self) -> Result<Vec<String>, StoreError> {
        let pool = self.pool.clone();
        let completion_types = self.completion_types.clone();
        self.on_runtime(async move {
            let client = sql::connection(&pool).await?;
            let rows = sql::query(
                &client,
                "SELECT session_token FROM sessions UNION SELECT DISTINCT session_token FROM events ORDER BY 1",
                &[],
            )
            .await?;
            let tokens: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
            let stored = load_summaries(&client, &tokens).await?;
            let mut drifted = Vec::new();
            for token in tokens {
                if stored.get(token) != fold_session(&client, token, &completion_types).await?.as_ref() {
                    drifted.push(token.to_owned());
                }
            }
            Ok(drifted)
        })
        .await
    }

    /// `Storage::close`: stops taking writes, waits (at most [`CLOSE_TIMEOUT`]) for the writer
    /// to commit what it was handed, then stops the runtime.
    fn close(&self) {
        lock(&self.writer).take();
        if let Some(done) = lock(&self.writer_done).take() {
            if done.recv_timeout(CLOSE_TIMEOUT).is_err() {
                tracing::error!("the PostgreSQL writer did not finish in time");
            }
        }
        if let Some(runtime) = lock(&self.runtime).take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Makes sure every event of `rows` is durable before a reader gets it: when one is newer than
/// `durable` (a commit of another server, or of a group of this one whose barrier has not
/// answered yet, visible before its WAL is flushed), runs a [`DURABILITY_BARRIER`] on `client`,
/// which flushes the WAL through every commit the rows' snapshot saw, and raises `durable`.
/// Errors: those of the barrier.
async fn made_durable(client: &impl GenericClient, durable: &AtomicI64, rows: &[EventRow]) -> Result<(), StoreError> {
    let Some(newest) = rows.iter().map(|row| row.event_id).max() else { return Ok(()) };
    if newest > durable.load(Ordering::Acquire) {
        sql::query(client, DURABILITY_BARRIER, &[]).await?;
        durable.fetch_max(newest, Ordering::AcqRel);
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`Storage::delete_student`](super::Storage::delete_student) on the database at `url`, for
/// the command line (beside a running server: the sessions are locked as the writer locks them).
/// Errors: as for [`PostgresStore::open`], and [`StoreError::Unavailable`] or
/// [`StoreError::Internal`] when the transaction fails.
pub fn delete_student_at(url: &str, email: &str) -> Result<Removed, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    runtime.block_on(async {
        let pool = open_pool(url, 1)?;
        migrate(&pool).await?;
        let mut client = sql::connection(&pool).await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let removed = delete_student(&tx, email).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(removed)
    })
}

/// The writer task's state.
struct Writer {
    pool: Pool,
    max_rows: usize,
    metrics: Arc<Metrics>,
    completion_types: Arc<Vec<String>>,
    committed: Arc<watch::Sender<i64>>,
    /// See [`PostgresStore::durable`].
    durable: Arc<AtomicI64>,
    /// Where committed events go for the alert rules (when they listen).
    feed: Arc<CommitFeed>,
    /// When a failed commit was last logged (failures during an outage are logged every 10 s).
    last_failure_logged: Mutex<Option<Instant>>,
}

impl Writer {
    fn log_failure(&self, error: &StoreError, rows: usize) {
        let mut last = lock(&self.last_failure_logged);
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            tracing::error!(%error, rows, "commit failed (further failures in the next 10 s are not logged)");
            *last = Some(Instant::now());
        }
    }

    /// Commit what is waiting, answer, repeat; returns once every sender is gone and the queue
    /// is drained (the graceful shutdown). Inserts share one transaction (group commit), and up
    /// to [`PIPELINE`] groups are in flight on connections of their own, side by side: only the
    /// draw of ids is one at a time ([`ID_ORDER_LOCK`]), and the commits follow the draws' order
    /// ([`TICKET_CLASS`]).
    /// Groups publish and answer in the order they were formed. A maintenance job runs alone,
    /// once every group before it is done.
    async fn run(self: Arc<Self>, mut receiver: mpsc::Receiver<Job>) {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
        let mut previous: Option<oneshot::Receiver<()>> = None;
        loop {
            // A request is taken from the queue only once a connection is free for its group, so
            // the queue's bound (`write_queue_requests`) holds: beyond the groups in flight, the
            // rest waits there, and a full queue is refused at once.
            let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
            let Some(first) = receiver.recv().await else { break };
            let mut jobs = Vec::new();
            let mut maintenance = None;
            let mut rows = 0;
            match first {
                Job::Maintain { task, ack } => maintenance = Some((task, ack)),
                Job::Insert { events, ack } => {
                    rows += events.len();
                    jobs.push((events, ack));
                }
            }
            while maintenance.is_none() && rows < self.max_rows {
                match receiver.try_recv() {
                    Ok(Job::Maintain { task, ack }) => maintenance = Some((task, ack)),
                    Ok(Job::Insert { events, ack }) => {
                        rows += events.len();
                        jobs.push((events, ack));
                    }
                    Err(_) => break,
                }
            }
            if jobs.is_empty() {
                drop(permit);
            } else {
                let (done, done_rx) = oneshot::channel();
                let before = previous.replace(done_rx);
                let writer = self.clone();
                tokio::spawn(async move {
                    writer.commit_group(jobs, rows, before).await;
                    let _ = done.send(());
                    drop(permit);
                });
            }
            if let Some((task, ack)) = maintenance {
                let all = in_flight.acquire_many(PIPELINE as u32).await.expect("the semaphore is never closed");
                let outcome = self.maintain(&task).await;
                drop(all);
                if let Err(error) = &outcome {
                    tracing::error!(%error, ?task, "maintenance failed");
                }
                let _ = ack.send(outcome);
            }
        }
        let _ = in_flight.acquire_many(PIPELINE as u32).await;
        tracing::debug!("PostgreSQL writer stopped: every accepted event is committed");
    }

    /// Commits the jobs' events in one transaction and answers each, after the group formed
    /// `before` it has answered; when that fails for a reason other than an unreachable
    /// database, commits each job alone so one refused job does not fail the others.
    async fn commit_group(
        &self,
        mut jobs: Vec<(Vec<ValidEvent>, InsertAck)>,
        rows: usize,
        before: Option<oneshot::Receiver<()>>,
    ) {
        let started = Instant::now();
        let batches: Vec<&[ValidEvent]> = jobs.iter().map(|(events, _)| events.as_slice()).collect();
        let outcome = self.commit(&batches).await;
        if let Some(before) = before {
            // Published and answered in order (the feed, the watch).
            let _ = before.await;
        }
        match outcome {
            Ok(Group { counts, newest, ids, created_at }) => {
                self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                if let Some(newest) = newest {
                    self.durable.fetch_max(newest, Ordering::AcqRel);
                }
                self.metrics.commit_rows.observe(rows as f64);
                if newest.is_some() && self.feed.is_active() {
                    let at_ms = crate::domain::clock::iso_ms(&created_at);
                    let mut fed = Vec::new();
                    let mut ids = ids.into_iter();
                    for (events, _) in &mut jobs {
                        for (event, id) in std::mem::take(events).into_iter().zip(ids.by_ref()) {
                            if let Some(id) = id {
                                fed.push(CommittedEvent::of(event, id, at_ms));
                            }
                        }
                    }
                    // In `event_id` order, fed before the watch is raised (see `CommitFeed::publish`).
                    fed.sort_by_key(|e| e.event_id);
                    self.feed.publish(fed);
                }
                if let Some(newest) = newest {
                    cluster::advance(&self.committed, newest);
                }
                for ((_, ack), count) in jobs.into_iter().zip(counts) {
                    let _ = ack.send(Ok(count));
                }
            }
            Err(error @ StoreError::Internal(_)) if jobs.len() > 1 => {
                tracing::warn!(%error, jobs = jobs.len(), "group commit failed: committing its requests one by one");
                for (events, ack) in jobs {
                    let rows = events.len();
                    let (single, answer) = oneshot::channel();
                    Box::pin(self.commit_group(vec![(events, single)], rows, None)).await;
                    let _ = ack.send(answer.await.unwrap_or(Err(StoreError::Stopped)));
                }
            }
            Err(error) => {
                self.log_failure(&error, rows);
                for (_, ack) in jobs {
                    let _ = ack.send(Err(error.clone()));
                }
            }
        }
    }

    /// One transaction storing `batches` (in order): returns each batch's counts and the newest
    /// new `event_id`.
    async fn commit(&self, batches: &[&[ValidEvent]]) -> Result<Group, StoreError> {
        let mut outcome = self.commit_once(batches).await;
        // A schema change made a cached statement stale (see `sql::connection`): once more, with
        // every statement prepared again.
        if outcome.is_err() && sql::stale_seen() {
            outcome = self.commit_once(batches).await;
        }
        // A lost race over an `eventId` (see `lost_a_race`): the next read of stored events sees
        // it once the other transaction has ended, and each try after a deadlock lets the other
        // commit, so three tries settle it.
        for _ in 0..2 {
            match &outcome {
                Err(error) if lost_a_race(error) => outcome = self.commit_once(batches).await,
                _ => break,
            }
        }
        outcome
    }

    async fn commit_once(&self, batches: &[&[ValidEvent]]) -> Result<Group, StoreError> {
        let work = async {
            let mut connection = Closing(Some(sql::connection(&self.pool).await?));
            let client: &deadpool_postgres::Object = connection.client();
            let outcome = insert_events(client, batches, &self.completion_types).await?;
            connection.release();
            Ok(outcome)
        };
        tokio::time::timeout(COMMIT_TIMEOUT, work).await.map_err(|_| unavailable("the commit timed out"))?
    }

    async fn maintain(&self, task: &Maintenance) -> Result<Removed, StoreError> {
        let work = async {
            let mut client = sql::connection(&self.pool).await?;
            let tx = client.transaction().await.map_err(db_error)?;
            let removed = match task {
                Maintenance::Purge { before, limit, ids } => {
                    purge(&tx, before, *limit, ids.as_deref(), &self.completion_types).await?
                }
                Maintenance::DeleteStudent { email } => delete_student(&tx, email).await?,
            };
            tx.commit().await.map_err(db_error)?;
            Ok(removed)
        };
        tokio::time::timeout(COMMIT_TIMEOUT, work).await.map_err(|_| unavailable("the transaction timed out"))?
    }
}

/// Takes the transaction-level advisory locks of `tokens`' sessions, in one order (no deadlock
/// between two servers), so that no other transaction folds them until this one ends.
async fn lock_sessions(tx: &Transaction<'_>, tokens: &[&str]) -> Result<(), StoreError> {
    if tokens.is_empty() {
        return Ok(());
    }
    sql::execute(tx, LOCK_SESSIONS, &[&tokens]).await?;
    Ok(())
}

/// The expression that takes the transaction-level advisory locks of the sessions `$1`
/// (text[]), in one order, and counts them: shared by [`LOCK_SESSIONS`] and [`OPEN_GROUP`].
macro_rules! session_locks {
    () => {
        "(SELECT count(pg_advisory_xact_lock(k)) FROM
         (SELECT DISTINCT hashtextextended(t, 0) AS k FROM unnest($1::text[]) AS t ORDER BY 1) AS keys)"
    };
}

/// Takes the sessions' transaction-level advisory locks of `$1` (text[]), in one order.
const LOCK_SESSIONS: &str = concat!("SELECT ", session_locks!());

/// Stores the students `$1` (emails) named `$2` (names): a row is written only when it is new or
/// its name changes (rewriting every student of every commit left 116 MB of dead rows for 20,000
/// students after 10,000,000 events).
const UPSERT_STUDENTS: &str = "INSERT INTO students AS s (email, name) SELECT * FROM unnest($1::text[], $2::text[])
     ON CONFLICT (lower(email)) DO UPDATE SET name = excluded.name
     WHERE excluded.name IS NOT NULL AND excluded.name IS DISTINCT FROM s.name";

/// Writes summaries (insert or replace) from five arrays: tokens, students, first and last seen,
/// summary JSON.
const STORE_SUMMARIES: &str = "INSERT INTO sessions (session_token, student_id, first_seen, last_seen, summary)
     SELECT t, s, f::timestamptz, l::timestamptz, j::json
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[]) AS x(t, s, f, l, j)
     ON CONFLICT (session_token) DO UPDATE SET student_id = excluded.student_id,
         first_seen = excluded.first_seen, last_seen = excluded.last_seen, summary = excluded.summary";

/// The students `events` name, by lowercased email (the first spelling seen, and the latest name
/// given, as on SQLite), sorted so that two servers upserting the same students lock their rows
/// in one order: their emails and names.
fn students_of<'e>(events: &[&'e ValidEvent]) -> (Vec<&'e str>, Vec<Option<&'e str>>) {
    let mut by_key: HashMap<String, (&str, Option<&str>)> = HashMap::new();
    for event in events {
        let Some(email) = event.student_email.as_deref() else { continue };
        let entry = by_key.entry(email.to_lowercase()).or_insert((email, None));
        if event.student_name.is_some() {
            entry.1 = event.student_name.as_deref();
        }
    }
    let mut named: Vec<(String, &str, Option<&str>)> = by_key.into_iter().map(|(k, (e, n))| (k, e, n)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(_, email, name)| (email, name)).unzip()
}

/// `event_data` as JSONB takes it: a `\u0000` escape (which JSONB refuses) becomes U+FFFD.
fn jsonb_text(data: &str) -> std::borrow::Cow<'_, str> {
    if !data.contains("\\u0000") {
        return std::borrow::Cow::Borrowed(data);
    }
    fn clean(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    clean(&mut item);
                    map.insert(key.replace('\0', "\u{FFFD}"), item);
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(data) {
        Ok(mut value) => {
            clean(&mut value);
            std::borrow::Cow::Owned(value.to_string())
        }
        Err(_) => std::borrow::Cow::Borrowed(data),
    }
}

/// What one group's transaction stored: each batch's counts, the newest new `event_id`, the
/// `event_id` of each event in the batches' order (`None` for a duplicate), and `created_at`.
struct Group {
    counts: Vec<Inserted>,
    newest: Option<i64>,
    ids: Vec<Option<i64>>,
    created_at: String,
}

/// Inserts `batches` in one transaction on `client` (BEGIN and COMMIT travel in its two
/// pipelines) and folds the new events into their sessions' summaries there; returns after the
/// group's [`DURABILITY_BARRIER`].
///
/// The group reads and folds side by side with other groups (the writer runs [`PIPELINE`] groups
/// at once), then draws its ticket and its ids (one at a time across transactions, under
/// [`ID_ORDER_LOCK`], for one statement), inserts, and waits for the end of the transaction with
/// the previous ticket just before its commit. Which events are new is known before the
/// insert: the session locks are held, so no other transaction stores an event of these
/// sessions meanwhile, and the events already stored are read by `event_uuid`; only the new ones
/// are inserted. The one case this can miss (another transaction storing the same `eventId`
/// under another session at that moment) fails the insert on the unique index (`23505`), or in
/// a deadlock with that transaction's wait for this one (`40P01`), and the writer tries the group
/// once more (see `Writer::commit`), when the read sees it.
///
/// Errors: those of PostgreSQL. The transaction may then still hold the session-level
/// [`ID_ORDER_LOCK`]: the caller closes its connection instead of returning it to the pool.
async fn insert_events(
    client: &deadpool_postgres::Object,
    batches: &[&[ValidEvent]],
    completion_types: &[String],
) -> Result<Group, StoreError> {
    let events: Vec<&ValidEvent> = batches.iter().flat_map(|b| b.iter()).collect();
    let created_at = super::now_iso();
    if events.is_empty() {
        let counts = vec![Inserted::default(); batches.len()];
        return Ok(Group { counts, newest: None, ids: Vec::new(), created_at });
    }
    let mut tokens: Vec<&str> = events.iter().map(|e| e.session_token.as_str()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    let (emails, names) = students_of(&events);
    let uuids: Vec<Uuid> = events.iter().map(|e| e.uuid).collect();
    // One round trip of four statements: BEGIN; the commit made asynchronous and the sessions'
    // locks (PostgreSQL runs the statements in the order sent); the students; the students' ids,
    // the events already stored and the summaries.
    let looked_up = sql::pipeline(
        client,
        &[
            ("BEGIN", &[]),
            (OPEN_GROUP, &[&tokens]),
            (UPSERT_STUDENTS, &[&emails, &names]),
            (LOOK_UP, &[&emails, &uuids, &tokens]),
        ],
    )
    .await?
    .pop()
    .unwrap_or_default();
    let mut students: HashMap<String, i64> = HashMap::new();
    let mut known: Vec<Uuid> = Vec::new();
    let mut summaries: HashMap<String, SessionSummary> = HashMap::new();
    for row in &looked_up {
        match row.get::<_, i16>(0) {
            LOOKED_UP_STUDENT => {
                students.insert(row.get(1), row.get(2));
            }
            LOOKED_UP_EVENT => known.push(row.get(3)),
            LOOKED_UP_SUMMARY => {
                summaries.insert(row.get(1), parse_summary(row.get(4))?);
            }
            kind => return Err(StoreError::Internal(format!("a look-up row of unknown kind {kind}"))),
        }
    }
    // The new events, predicted: not stored yet, and the first of their `eventId` in the group,
    // each with its student. Only they are folded and inserted (so the insert needs no
    // `ON CONFLICT`: PostgreSQL's speculative insertion cost about 30% of it), in batch order,
    // taking the ids drawn for them in increasing order.
    let mut seen: std::collections::HashSet<Uuid> = known.into_iter().collect();
    let predicted: Vec<bool> = uuids.iter().map(|u| seen.insert(*u)).collect();
    let new_events: Vec<(&ValidEvent, Option<i64>)> = events
        .iter()
        .zip(&predicted)
        .filter(|(_, new)| **new)
        .map(|(event, _)| {
            let student_id = event.student_email.as_deref().and_then(|m| students.get(&m.to_lowercase()).copied());
            (*event, student_id)
        })
        .collect();
    let mut pairs: Vec<(&str, i64)> = Vec::new();
    let mut changed: Vec<&str> = Vec::new();
    for (event, student_id) in &new_events {
        let fold = FoldEvent {
            event_type: &event.event_type,
            seq: event.seq,
            student_id: *student_id,
            created_at: &created_at,
            facts: &event.facts,
        };
        summaries.entry(event.session_token.clone()).or_default().apply(&fold, completion_types);
        changed.push(&event.session_token);
        if let Some(student_id) = student_id {
            pairs.push((&event.session_token, *student_id));
        }
    }
    changed.sort_unstable();
    changed.dedup();
    pairs.sort_unstable();
    pairs.dedup();
    let (pair_tokens, pair_students): (Vec<&str>, Vec<i64>) = pairs.into_iter().unzip();
    let rows = summary_arrays(changed.iter().map(|t| (*t, &summaries[*t])))?;

    let wanted = new_events.len() as i64;
    let new_uuids: Vec<Uuid> = new_events.iter().map(|(e, _)| e.uuid).collect();
    let seqs: Vec<Option<i64>> = new_events.iter().map(|(e, _)| e.seq.map(|s| s as i64)).collect();
    let student_ids: Vec<Option<i64>> = new_events.iter().map(|(_, student_id)| *student_id).collect();
    let session_tokens: Vec<&str> = new_events.iter().map(|(e, _)| e.session_token.as_str()).collect();
    let types: Vec<&str> = new_events.iter().map(|(e, _)| e.event_type.as_str()).collect();
    let data: Vec<&str> = new_events.iter().map(|(e, _)| e.event_data.as_str()).collect();

    // One more round trip: when there are new events, the draw of a ticket and of an id for
    // each; the summaries, the (session, student) pairs and the events in one statement; the
    // wait for the end of the transaction with the previous ticket and the NOTIFY of the newest
    // id (delivered to every listening server at the commit, never before). Then COMMIT and the
    // durability barrier. Drawn this late, a ticket orders only the group's write and commit:
    // the previous ticket's transaction has already read and folded. A failed statement aborts
    // the transaction and the COMMIT then rolls it back; the first error is returned.
    let write_params: [&(dyn ToSql + Sync); 15] = [
        &rows.0,
        &rows.1,
        &rows.2,
        &rows.3,
        &rows.4,
        &pair_tokens,
        &pair_students,
        &wanted,
        &new_uuids,
        &seqs,
        &student_ids,
        &session_tokens,
        &types,
        &data,
        &created_at,
    ];
    let draw_params: [&(dyn ToSql + Sync); 3] = [&ID_ORDER_LOCK, &TICKET_CLASS, &wanted];
    let close_params: [&(dyn ToSql + Sync); 2] = [&TICKET_CLASS, &cluster::EVENTS_CHANNEL];
    let mut statements: Vec<(&str, &[&(dyn ToSql + Sync)])> = Vec::new();
    if wanted > 0 {
        statements.push((DRAW, &draw_params));
        statements.push((WRITE_GROUP, &write_params));
        statements.push((CLOSE_GROUP, &close_params));
    }
    statements.push(("COMMIT", &[]));
    statements.push((DURABILITY_BARRIER, &[]));
    let answers = sql::pipeline(client, &statements).await?;
    // The ids drawn: `last - wanted + 1 ..= last`.
    let newest: Option<i64> = match wanted {
        0 => None,
        _ => Some(
            answers
                .first()
                .and_then(|draw| draw.first())
                .map(|row| row.get(0))
                .ok_or_else(|| StoreError::Internal("no draw answer".into()))?,
        ),
    };
    // Each batch's counts, and each event's id.
    let mut ids_of_new = newest.map(|last| last - wanted + 1..=last).into_iter().flatten();
    let mut counts = Vec::with_capacity(batches.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut predicted = predicted.into_iter();
    for batch in batches {
        let mut count = Inserted::default();
        for _ in batch.iter() {
            let event_id = if predicted.next().unwrap_or(false) { ids_of_new.next() } else { None };
            ids.push(event_id);
            match event_id {
                Some(_) => count.new += 1,
                None => count.duplicates += 1,
            }
        }
        counts.push(count);
    }
    Ok(Group { counts, newest, ids, created_at })
}

/// Takes [`ID_ORDER_LOCK`] (`$1`), draws a ticket (`events_draw_tickets`) and takes its
/// transaction-level lock in [`TICKET_CLASS`] (`$2`), held until the transaction ends, draws `$3`
/// event ids at once from `events_event_id_seq` (the sequence of V1's `event_id BIGSERIAL`),
/// keeps the ticket in the transaction's setting `session_log.ticket` (for [`CLOSE_GROUP`]) and
/// lets the id lock go: migration V9's `session_log_draw`. Returns one row: the last id drawn
/// (the ticket stays in PostgreSQL), so the ids are `last - $3 + 1 ..= last` (`currval('events_event_id_seq')` for
/// [`WRITE_GROUP`]). Every drawer holds the id lock, so no other `nextval` falls between the
/// ticket and the ids. The ticket lock's second key is the ticket modulo 2^31 - 1, as in
/// [`CLOSE_GROUP`]. One call draws every id of the group under the lock, which is held for
/// one statement only (see `docs/benchmarks.md` for what one `nextval` per row cost).
const DRAW: &str = "SELECT last_id FROM session_log_draw($1::int8, $2::int4, $3::int8)";

/// The durability barrier, run after a group's COMMIT on the same connection, as a transaction
/// of its own: `setval` on the sequence of migration V8 writes a WAL record and takes a
/// transaction id (a transaction that writes no WAL commits without a flush, whatever the
/// setting), so with the connection's own `synchronous_commit` (on by default) PostgreSQL
/// answers it only once the WAL is flushed (and replicated, where the database asks for that)
/// through its commit record, which comes after the group's commit record and after the commit
/// of every group drawn before it (the ticket chain). The group itself commits with
/// `synchronous_commit = off`: waiting for the previous ticket and committing are then a few
/// microseconds each, not a WAL flush each, while the barriers of several groups share their
/// flushes (PostgreSQL's own group commit). An event is acknowledged, published to the alert
/// rules and counted in [`PostgresStore::durable`] only after its barrier. Before the barrier
/// the commit is already visible to other transactions: a reader that sees an event newer than
/// `durable` runs a barrier itself before returning it (see `made_durable`), so no cursor moves
/// past an event a crash of PostgreSQL could take back. Its throughput against a flush per
/// group in the chain is measured in `docs/benchmarks.md`.
const DURABILITY_BARRIER: &str = "SELECT setval('session_log_durability', 1)";

/// Waits until the transaction holding the ticket before this transaction's ([`DRAW`]) in class
/// `$1` has ended (committed or rolled back; at once when no transaction holds it), then NOTIFYs
/// the group's newest id (the last drawn, as text) on channel `$2` ([`cluster::EVENTS_CHANNEL`]),
/// delivered at this transaction's commit. PostgreSQL evaluates a target list in order.
const CLOSE_GROUP: &str = "SELECT pg_advisory_xact_lock_shared($1::int4,
         ((current_setting('session_log.ticket')::int8 - 1) % 2147483647)::int4),
     pg_notify($2, currval('events_event_id_seq')::text)";

/// Opens a group's transaction: its commit does not wait for the WAL flush (the barrier after
/// the COMMIT does, see [`DURABILITY_BARRIER`]), and it takes the transaction-level advisory
/// locks of the sessions `$1` (text[]) in one order, as [`LOCK_SESSIONS`].
const OPEN_GROUP: &str = concat!("SELECT set_config('synchronous_commit', 'off', true), ", session_locks!());

/// What a group reads before it folds, in one statement: rows of `(kind, key, student_id,
/// event_uuid, summary)`, where kind is [`LOOKED_UP_STUDENT`] (the ids of the students `$1`
/// (emails), by lowercased email), [`LOOKED_UP_EVENT`] (the events of `$2` (uuid[]) already
/// stored) or [`LOOKED_UP_SUMMARY`] (the summaries of the sessions `$3` (text[]), by token).
const LOOK_UP: &str = "SELECT 0::int2, lower(email), student_id, NULL::uuid, NULL::text FROM students
         WHERE lower(email) = ANY(SELECT lower(e) FROM unnest($1::text[]) AS e)
     UNION ALL SELECT 1::int2, NULL, NULL, event_uuid, NULL FROM events WHERE event_uuid = ANY($2)
     UNION ALL SELECT 2::int2, session_token, NULL, NULL, summary::text FROM sessions WHERE session_token = ANY($3)";
const LOOKED_UP_STUDENT: i16 = 0;
const LOOKED_UP_EVENT: i16 = 1;
const LOOKED_UP_SUMMARY: i16 = 2;

/// A group's writes in one statement: the summaries (`$1`..`$5` as [`STORE_SUMMARIES`]), the
/// (session, student) pairs (`$6` text[], `$7` int8[]) and the `$8` new events (`$9`..`$14`:
/// uuids, seqs, students, tokens, types and data as text; `$15` `created_at` as text), which take
/// the ids just drawn ([`DRAW`]) in order. The three touch different tables, so the order
/// PostgreSQL runs them in does not matter.
const WRITE_GROUP: &str = "WITH summaries AS (
         INSERT INTO sessions (session_token, student_id, first_seen, last_seen, summary)
         SELECT t, s, f::timestamptz, l::timestamptz, j::json
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[]) AS x(t, s, f, l, j)
         ON CONFLICT (session_token) DO UPDATE SET student_id = excluded.student_id,
             first_seen = excluded.first_seen, last_seen = excluded.last_seen, summary = excluded.summary),
     pairs AS (
         INSERT INTO session_students (session_token, student_id)
         SELECT * FROM unnest($6::text[], $7::int8[]) ON CONFLICT DO NOTHING)
     INSERT INTO events (event_id, event_uuid, seq, student_id, session_token, event_type, event_data, created_at)
     SELECT b.last - $8::int8 + x.o, u, s, st, t, ty, d::json, $15::text::timestamptz
     FROM (SELECT currval('events_event_id_seq') AS last) AS b,
         unnest($9::uuid[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[])
             WITH ORDINALITY AS x(u, s, st, t, ty, d, o)";

fn parse_summary(text: &str) -> Result<SessionSummary, StoreError> {
    Ok(summary_rows::parse(text)?)
}

/// The stored summaries of `tokens`' sessions, by token.
async fn load_summaries(
    client: &impl GenericClient,
    tokens: &[&str],
) -> Result<HashMap<String, SessionSummary>, StoreError> {
    let rows = sql::query(
        client,
        "SELECT session_token, summary::text FROM sessions WHERE session_token = ANY($1)",
        &[&tokens],
    )
    .await?;
    rows.iter().map(|r| Ok((r.get(0), parse_summary(r.get(1))?))).collect()
}

/// The five arrays of [`STORE_SUMMARIES`] for `summaries`.
type SummaryRows<'a> = (Vec<&'a str>, Vec<Option<i64>>, Vec<&'a str>, Vec<&'a str>, Vec<String>);

fn summary_arrays<'a>(
    summaries: impl Iterator<Item = (&'a str, &'a SessionSummary)>,
) -> Result<SummaryRows<'a>, StoreError> {
    let mut rows: SummaryRows<'a> = (vec![], vec![], vec![], vec![], vec![]);
    for (token, summary) in summaries {
        rows.0.push(token);
        rows.1.push(summary.student_id);
        rows.2.push(summary.first_seen.as_str());
        rows.3.push(summary.last_seen.as_str());
        rows.4.push(summary_rows::to_json(summary));
    }
    Ok(rows)
}

/// Writes summaries (insert or replace).
async fn store_summaries<'a>(
    tx: &Transaction<'_>,
    summaries: impl Iterator<Item = (&'a str, &'a SessionSummary)>,
) -> Result<(), StoreError> {
    let rows = summary_arrays(summaries)?;
    if rows.0.is_empty() {
        return Ok(());
    }
    sql::execute(tx, STORE_SUMMARIES, &[&rows.0, &rows.1, &rows.2, &rows.3, &rows.4]).await?;
    Ok(())
}

/// The fold of a session's stored events in `event_id` order, `None` when it has none.
async fn fold_session(
    client: &impl GenericClient,
    token: &str,
    completion_types: &[String],
) -> Result<Option<SessionSummary>, StoreError> {
    let rows = sql::query(
        client,
        &format!(
            "SELECT event_type, seq, student_id, {ISO}, event_data::text FROM events
                 WHERE session_token = $1 ORDER BY event_id"
        ),
        &[&token],
    )
    .await?;
    let mut summary: Option<SessionSummary> = None;
    for row in &rows {
        let columns = FoldColumns {
            event_type: row.get(0),
            seq: row.get(1),
            student_id: row.get(2),
            created_at: row.get(3),
            data: row.get(4),
        };
        summary_rows::fold(&mut summary, columns, completion_types);
    }
    Ok(summary)
}

/// Recomputes the summaries of `tokens` from their remaining events; a session left without
/// events loses its summary and `session_students` rows. Returns how many sessions went.
async fn refresh_summaries(
    tx: &Transaction<'_>,
    tokens: &[&str],
    completion_types: &[String],
) -> Result<u64, StoreError> {
    let mut gone = 0;
    for token in tokens {
        match fold_session(tx, token, completion_types).await? {
            Some(summary) => store_summaries(tx, std::iter::once((*token, &summary))).await?,
            None => {
                sql::execute(tx, "DELETE FROM sessions WHERE session_token = $1", &[token]).await?;
                sql::execute(tx, "DELETE FROM session_students WHERE session_token = $1", &[token]).await?;
                gone += 1;
            }
        }
    }
    Ok(gone)
}

async fn purge(
    tx: &Transaction<'_>,
    before: &str,
    limit: usize,
    ids: Option<&[i64]>,
    completion_types: &[String],
) -> Result<Removed, StoreError> {
    let rows = match ids {
        None => {
            sql::query(
                tx,
                "DELETE FROM events WHERE event_id IN
                     (SELECT event_id FROM events WHERE created_at < $1::text::timestamptz ORDER BY event_id LIMIT $2)
                 RETURNING session_token, student_id",
                &[&before, &(limit as i64)],
            )
            .await?
        }
        Some(ids) => {
            sql::query(
                tx,
                "DELETE FROM events WHERE created_at < $1::text::timestamptz AND event_id = ANY($2)
                 RETURNING session_token, student_id",
                &[&before, &ids],
            )
            .await?
        }
    };
    let deleted = Deleted::from_rows(rows.iter().map(|r| (r.get(0), r.get(1))));
    let tokens: Vec<&str> = deleted.sessions.iter().map(String::as_str).collect();
    lock_sessions(tx, &tokens).await?;
    let emptied = refresh_summaries(tx, &tokens, completion_types).await?;
    let mut students = 0;
    if !deleted.students.is_empty() {
        students = sql::execute(
            tx,
            "DELETE FROM students s WHERE student_id = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM session_students x WHERE x.student_id = s.student_id)",
            &[&deleted.students],
        )
        .await?;
    }
    Ok(deleted.removed(emptied, students))
}

/// Deletes a student and every trace (see `Storage::delete_student`) within `tx`.
async fn delete_student(tx: &Transaction<'_>, email: &str) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    let Some(row) =
        sql::query_opt(tx, "SELECT student_id FROM students WHERE lower(email) = lower($1)", &[&email]).await?
    else {
        return Ok(removed);
    };
    let student: i64 = row.get(0);
    let rows =
        sql::query(tx, "SELECT session_token FROM session_students WHERE student_id = $1 ORDER BY 1", &[&student])
            .await?;
    let tokens: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    lock_sessions(tx, &tokens).await?;
    removed.events = sql::execute(tx, "DELETE FROM events WHERE session_token = ANY($1)", &[&tokens]).await?;
    removed.sessions = sql::execute(tx, "DELETE FROM sessions WHERE session_token = ANY($1)", &[&tokens]).await?;
    sql::execute(tx, "DELETE FROM session_students WHERE session_token = ANY($1)", &[&tokens]).await?;
    removed.students = sql::execute(tx, "DELETE FROM students WHERE student_id = $1", &[&student]).await?;
    Ok(removed)
}

/// Runs an event query, in `query.order` by `event_id`, starting after `query.after`.
async fn query_events(client: &impl GenericClient, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
    let head = format!(
        "SELECT e.event_id, e.session_token, e.event_type, e.event_data::text, {}, s.email, s.name, e.event_uuid, e.seq
         FROM events e LEFT JOIN students s ON s.student_id = e.student_id WHERE true",
        ISO.replace("created_at", "e.created_at")
    );
    let scope = query.student_email.as_deref().map(StudentScope::ByEmail);
    let statement = filter::events(Dialect::Postgres, &head, query, scope);
    let rows = sql::query(client, &statement.sql, &bound(&statement.params)).await?;
    rows.iter()
        .map(|row| {
            let data: String = row.get(3);
            Ok(StoredEvent {
                event_id: row.get(0),
                session_token: row.get(1),
                event_type: row.get(2),
                event_data: RawValue::from_string(data)
                    .map_err(|e| StoreError::Internal(format!("stored event data: {e}")))?,
                created_at: row.get(4),
                student_email: row.get(5),
                student_name: row.get(6),
                event_uuid: row.get(7),
                seq: row.get::<_, Option<i64>>(8).map(|s| s as u64),
            })
        })
        .collect()
}

/// The driver's view of a statement's parameters.
fn bound<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Int(n) => n as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Reads session summaries, most recently seen first (by `last_seen`, then token).
async fn query_sessions(client: &impl GenericClient, query: &SessionQuery) -> Result<Vec<SessionRow>, StoreError> {
    let statement = filter::sessions(
        Dialect::Postgres,
        "SELECT x.session_token, s.email, s.name, x.summary::text
         FROM sessions x LEFT JOIN students s ON s.student_id = x.student_id WHERE true",
        query,
    );
    let rows = sql::query(client, &statement.sql, &bound(&statement.params)).await?;
    rows.iter()
        .map(|row| {
            Ok(SessionRow {
                session_token: row.get(0),
                student_email: row.get(1),
                student_name: row.get(2),
                summary: parse_summary(row.get(3))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every advisory lock key of the backend is its own: two that shared one would wait on each
    // other (an id lock on the leader lock's key would wait for the leader forever).
    #[test]
    fn advisory_lock_keys_are_distinct() {
        // (Tickets use the two-key form, whose space is apart from these one-key locks.)
        let keys = [MIGRATION_LOCK, ID_ORDER_LOCK, cluster::LEADER_LOCK, alerts::ALERT_ORDER_LOCK];
        let distinct: std::collections::HashSet<i64> = keys.into_iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:x?}");
    }

    // A URL's password never reaches a log line; URLs without one are unchanged.
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/logs"), "postgres://app:***@db:5432/logs");
        assert_eq!(redact_url("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(redact_url("postgres://127.0.0.1/x?user=a"), "postgres://127.0.0.1/x?user=a");
    }

    // Event data JSONB cannot hold keeps its shape: NUL escapes become U+FFFD, the rest is untouched.
    #[test]
    fn nul_escapes_become_replacement_characters() {
        assert_eq!(jsonb_text(r#"{"a":"x"}"#), r#"{"a":"x"}"#);
        assert_eq!(jsonb_text(r#"{"a\u0000":["\u0000b"]}"#), "{\"a\u{FFFD}\":[\"\u{FFFD}b\"]}");
        assert_eq!(jsonb_text(r#"{"a":"\\u0000"}"#), r#"{"a":"\\u0000"}"#);
    }
}
