//! Connecting: the URL, the pool, the migrations, running on the store's runtime, and how
//! driver and pool errors become `StoreError`s.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::sql;
use crate::storage::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// How long a request waits for a pooled connection, or for a new one to connect, before the
/// database counts as unavailable.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key held while migrating, so that servers starting together migrate once.
pub(super) const MIGRATION_LOCK: i64 = 0x5e55_1010_0001;

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

pub(super) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A PostgreSQL error by what the caller can do: a closed connection, an unreachable server, a
/// server shutting down or not accepting writes is unavailable; the rest internal.
pub(super) fn db_error(error: tokio_postgres::Error) -> StoreError {
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
pub(super) fn lost_a_race(error: &StoreError) -> bool {
    matches!(error, StoreError::Internal(message) if message.ends_with("(23505)") || message.ends_with("(40P01)"))
}

/// A pooled connection that is closed, not returned to the pool, unless [`Closing::release`] is
/// called: a group that failed, or whose future was dropped (its commit timed out), may still
/// hold the session-level [`ID_ORDER_LOCK`](super::writer::ID_ORDER_LOCK), and PostgreSQL frees a session's advisory locks for
/// certain when the session ends.
pub(super) struct Closing(pub(super) Option<deadpool_postgres::Object>);

impl Closing {
    pub(super) fn client(&mut self) -> &mut deadpool_postgres::Object {
        self.0.as_mut().expect("held until released or dropped")
    }

    /// Returns the connection to the pool (its transaction committed, the id lock released).
    pub(super) fn release(mut self) {
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

pub(super) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => db_error(error),
        other => unavailable(other),
    }
}

/// Opens a pool of at most `size` connections to `url`, on the current runtime.
/// The connection settings of `url`. Errors: [`StoreError::Invalid`] when it does not parse.
pub(super) fn pg_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config =
        url.parse().map_err(|e| StoreError::Invalid(format!("database URL {}: {e}", redact_url(url))))?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.application_name("session-log");
    Ok(pg)
}

pub(super) fn open_pool(url: &str, size: usize) -> Result<Pool, StoreError> {
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
pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
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
pub(super) fn wait_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (done, outcome) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = done.send(work.await);
    });
    outcome.recv().ok()
}
