//! The PostgreSQL backend: the schema (refinery migrations in `server/migrations/postgres`), a
//! writer task that commits in groups, and reads on a connection pool (`deadpool-postgres` over
//! `tokio-postgres`). Here: the store and its `Backend` methods; beside it, one concern a file:
//! `pool.rs` (connecting, migrating, errors), `writer.rs` (group commits), `summaries.rs`,
//! `maintenance.rs`, `read.rs`, `alerts.rs`, `cluster.rs` (several servers), `sql.rs`, `vacuum.rs`.
//!
//! Invariants:
//! - Everything runs on the store's own Tokio runtime (two threads), whatever runtime the caller
//!   is on: the pool's connections live there and outlive any HTTP worker.
//! - One writer task per server commits: it takes every job waiting (up to `max_rows_per_commit`
//!   rows) and stores their new events in one transaction with one multi-row `INSERT … SELECT
//!   FROM UNNEST(…)`, folding them into their sessions' summaries in the same transaction (under
//!   a transaction-level advisory lock per session, so two servers never fold one session at
//!   once). A request is answered after the commit and its [`DURABILITY_BARRIER`](sql::DURABILITY_BARRIER): an
//!   acknowledged event is on disk, and no reader gets an event before it is.
//! - A failed group is retried job by job once, so one job the database refuses fails alone;
//!   a database that cannot be reached fails every job with [`StoreError::Unavailable`] (503),
//!   and the pool reconnects by itself when it is back.
//! - Several servers may share one database. One transaction at a time draws `event_id`s and a
//!   draw ticket (under [`ID_ORDER_LOCK`](writer::ID_ORDER_LOCK), for one statement), and each commits only after the
//!   transaction with the previous ticket has ended ([`TICKET_CLASS`](writer::TICKET_CLASS)): commits become visible in
//!   id order whichever server commits, and `event_id` stays a cursor that never skips an event,
//!   while the inserts themselves run side by side. Every commit NOTIFYs its newest id
//!   (`cluster`), which wakes every server's live tails; one server at a time holds the leader
//!   lock and runs the background work.
//! - `event_data` is `json`: the text as the client sent it, checked by PostgreSQL's JSON lexer
//!   (a `\u0000` escape, which PostgreSQL's JSON functions refuse, is stored as U+FFFD).

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, watch};

use super::backend::Backend;
use super::feed::CommitFeed;
use super::maintenance::Maintenance;
use super::{EventQuery, EventRow, Inserted, Removed, SessionQuery, SessionRow, StoreError};
use crate::config::Config;
use crate::domain::event::ValidEvent;
use crate::metrics::Metrics;
use pool::{migrate, open_pool, pg_config, wait_on};
use read::{made_durable, query_events, query_sessions};
use summaries::{fold_session, load_summaries};
use writer::{jsonb_text, Job, Writer, PIPELINE};

mod alerts;
mod cluster;
mod maintenance;
mod notices;
mod pool;
mod read;
mod sql;
mod summaries;
mod vacuum;
mod workshops;
mod writer;

pub use maintenance::delete_student_at;
pub use pool::redact_url;
use pool::{db_error, pool_error, unavailable};
pub use workshops::at as workshops_at;
pub use workshops::directory_at;

/// How long `close` waits for the writer to commit what it was handed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

/// The PostgreSQL database: the writer task's queue and the pool, on the store's runtime.
pub struct PostgresStore {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    committed: watch::Receiver<i64>,
    /// Every committed `event_id` up to this one is durable (its WAL flushed): raised by the
    /// writer after each group's [`DURABILITY_BARRIER`](sql::DURABILITY_BARRIER) and by readers after theirs.
    durable: Arc<AtomicI64>,
    leader: Arc<std::sync::atomic::AtomicBool>,
    metrics: Arc<Metrics>,
    completion_types: Arc<Vec<String>>,
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
    /// [`DURABILITY_BARRIER`](sql::DURABILITY_BARRIER) on the same connection.
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

    /// `Storage::workshops`.
    async fn workshops(&self) -> Result<Vec<crate::domain::workshop::Workshop>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::workshops(&sql::connection(&pool).await?).await }).await
    }

    /// `Storage::create_workshop`.
    async fn create_workshop(&self, new: super::NewWorkshop) -> Result<crate::domain::workshop::Workshop, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::create(&sql::connection(&pool).await?, &new).await }).await
    }

    /// `Storage::revoke_write_key`.
    async fn revoke_write_key(&self, slug: String) -> Result<Option<crate::domain::workshop::Workshop>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::revoke(&sql::connection(&pool).await?, &slug).await }).await
    }

    /// `Storage::rooms`.
    async fn rooms(&self) -> Result<Vec<crate::domain::workshop::Room>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::rooms(&sql::connection(&pool).await?).await }).await
    }

    /// `Storage::move_sessions`.
    async fn move_sessions(
        &self,
        tokens: Vec<String>,
        workshop_id: i64,
        room_id: i64,
    ) -> Result<Vec<String>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            workshops::move_sessions(&mut sql::connection(&pool).await?, &tokens, workshop_id, room_id).await
        })
        .await
    }

    /// `Storage::session_places`.
    async fn session_places(&self, tokens: Vec<String>) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::session_places(&sql::connection(&pool).await?, &tokens).await }).await
    }

    /// `Storage::create_room`.
    async fn create_room(&self, new: super::NewRoom) -> Result<crate::domain::workshop::Room, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::create_room(&sql::connection(&pool).await?, &new).await }).await
    }

    /// `Storage::post_notice`.
    async fn post_notice(&self, new: super::NewNotice) -> Result<crate::domain::notice::Notice, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { notices::post(&sql::connection(&pool).await?, &new).await }).await
    }

    /// `Storage::notices`.
    async fn notices(
        &self,
        room: String,
        now: String,
        limit: u32,
    ) -> Result<Vec<crate::domain::notice::Notice>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { notices::current(&sql::connection(&pool).await?, &room, &now, limit).await }).await
    }

    /// `Storage::record_token_use`.
    async fn record_token_use(&self, id: i64) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::record_token_use(&sql::connection(&pool).await?, id).await }).await
    }

    /// `Storage::helper_tokens`.
    async fn helper_tokens(&self) -> Result<Vec<crate::domain::helper::HelperToken>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::helper_tokens(&sql::connection(&pool).await?).await }).await
    }

    /// `Storage::create_helper_token`.
    async fn create_helper_token(
        &self,
        new: super::NewHelperToken,
    ) -> Result<crate::domain::helper::HelperToken, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::create_helper_token(&sql::connection(&pool).await?, &new).await }).await
    }

    /// `Storage::revoke_helper_token`.
    async fn revoke_helper_token(&self, id: i64) -> Result<Option<crate::domain::helper::HelperToken>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { workshops::revoke_helper_token(&sql::connection(&pool).await?, id).await }).await
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::pool::MIGRATION_LOCK;
    use super::writer::ID_ORDER_LOCK;
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
