//! Every statement the backend runs goes through its connection's prepared-statement cache
//! (`deadpool_postgres`'s `prepare_cached`): PostgreSQL parses a statement once per pooled
//! connection, and each later run is one round trip (Bind/Execute) instead of two (Parse/Describe,
//! then Bind/Execute). A commit runs about eight statements and a session query two: measured on
//! loopback, single-event POSTs went from 3.6k to 5.2k/s and one session's events from p50 2.05
//! to 1.40 ms (1,000,000 events) with the cache.
//!
//! The statements are fixed strings, plus the event and session queries' filter combinations
//! (at most 64 of them), so each connection's cache stays small. Errors: those of
//! [`super::db_error`], for the prepare or the run.

use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::{GenericClient, Object, Pool, Transaction};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{db_error, pool_error};
use crate::storage::StoreError;

/// Set when PostgreSQL answered that a cached statement's plan changed its result type (SQLSTATE
/// `0A000`, "cached plan must not change result type"): a schema change, such as another
/// server's migration during a rolling upgrade, made the connections' prepared statements
/// stale. [`connection`] then drops every cached statement of the pool before handing out the
/// next connection.
static STALE: AtomicBool = AtomicBool::new(false);

/// Whether `error` is PostgreSQL's "cached plan must not change result type".
fn is_stale_plan(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED && db.message().contains("cached plan")
    })
}

/// A pooled connection; after a stale plan anywhere, the pool's statement caches are dropped
/// first, so every statement is prepared again against the schema as it is now. Errors: those
/// of [`super::pool_error`].
pub(super) async fn connection(pool: &Pool) -> Result<Object, StoreError> {
    if STALE.swap(false, Ordering::AcqRel) {
        tracing::info!("the schema changed under cached statements: preparing them again");
        pool.manager().statement_caches.clear();
    }
    pool.get().await.map_err(pool_error)
}

/// Whether a stale plan was seen since the last [`connection`] (which clears it): a failed
/// transaction is then worth one more try on a fresh connection.
pub(super) fn stale_seen() -> bool {
    STALE.load(Ordering::Acquire)
}

/// Runs `$client.$method(statement, $params)` with `statement` from the cache; when its plan has
/// gone stale, marks the pool's caches for dropping and runs it once more with the statement
/// prepared afresh (outside a transaction this succeeds; inside one, PostgreSQL has aborted the
/// transaction, and the caller's retry on a fresh connection does).
macro_rules! cached {
    ($client:expr, $statement:expr, $method:ident, $params:expr) => {{
        let prepared = $client.prepare_cached($statement).await.map_err(db_error)?;
        match $client.$method(&prepared, $params).await {
            Err(error) if is_stale_plan(&error) => {
                STALE.store(true, Ordering::Release);
                let fresh = $client.prepare($statement).await.map_err(db_error)?;
                $client.$method(&fresh, $params).await.map_err(db_error)
            }
            other => other.map_err(db_error),
        }
    }};
}

/// The rows `statement` returns.
pub(super) async fn query(
    client: &impl GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    cached!(client, statement, query, params)
}

/// The one row `statement` returns; an error when it returns none or several.
pub(super) async fn query_one(
    client: &impl GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, StoreError> {
    cached!(client, statement, query_one, params)
}

/// The row `statement` returns, if any; an error when it returns several.
pub(super) async fn query_opt(
    client: &impl GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    cached!(client, statement, query_opt, params)
}

/// Runs `statement`; returns the rows it changed.
pub(super) async fn execute(
    client: &impl GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    cached!(client, statement, execute, params)
}

/// Statements sent together in one round trip, in order: each is prepared first (from the cache,
/// so usually without a round trip), then every Bind/Execute is written before any answer is
/// read. PostgreSQL runs them one after another in the order sent, so a lock taken by one holds
/// for those after it. Returns each statement's rows, in order, or the first error (a statement
/// after a failed one fails too: the transaction is aborted). A stale plan (see [`connection`])
/// is marked for the caller's retry, not retried here (inside a transaction it cannot be).
pub(super) async fn pipeline(
    client: &impl GenericClient,
    statements: &[(&str, &[&(dyn ToSql + Sync)])],
) -> Result<Vec<Vec<Row>>, StoreError> {
    let mut prepared = Vec::with_capacity(statements.len());
    for (statement, _) in statements {
        prepared.push(client.prepare_cached(statement).await.map_err(db_error)?);
    }
    let runs = prepared.iter().zip(statements).map(|(statement, (_, params))| client.query(statement, params));
    let mut rows = Vec::with_capacity(statements.len());
    for outcome in futures_util::future::join_all(runs).await {
        match outcome {
            Err(error) if is_stale_plan(&error) => {
                STALE.store(true, Ordering::Release);
                return Err(db_error(error));
            }
            outcome => rows.push(outcome.map_err(db_error)?),
        }
    }
    Ok(rows)
}

/// `created_at` as `now_iso` writes it (ISO 8601 UTC with ms).
pub(super) const ISO: &str = r#"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

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
/// rules and counted in [`PostgresStore::durable`](super::PostgresStore::durable) only after its barrier. Before the barrier
/// the commit is already visible to other transactions: a reader that sees an event newer than
/// `durable` runs a barrier itself before returning it (see `made_durable`), so no cursor moves
/// past an event a crash of PostgreSQL could take back. Its throughput against a flush per
/// group in the chain is measured in `docs/benchmarks.md`.
pub(super) const DURABILITY_BARRIER: &str = "SELECT setval('session_log_durability', 1)";

/// The expression that takes the transaction-level advisory locks of the sessions `$1`
/// (text[]), in one order, and counts them: shared by [`LOCK_SESSIONS`] and [`OPEN_GROUP`](super::writer::OPEN_GROUP).
macro_rules! session_locks {
    () => {
        "(SELECT count(pg_advisory_xact_lock(k)) FROM
         (SELECT DISTINCT hashtextextended(t, 0) AS k FROM unnest($1::text[]) AS t ORDER BY 1) AS keys)"
    };
}
pub(super) use session_locks;

/// Takes the sessions' transaction-level advisory locks of `$1` (text[]), in one order.
pub(super) const LOCK_SESSIONS: &str = concat!("SELECT ", session_locks!());

/// Takes the transaction-level advisory locks of `tokens`' sessions, in one order (no deadlock
/// between two servers), so that no other transaction folds them until this one ends.
pub(super) async fn lock_sessions(tx: &Transaction<'_>, tokens: &[&str]) -> Result<(), StoreError> {
    if tokens.is_empty() {
        return Ok(());
    }
    execute(tx, LOCK_SESSIONS, &[&tokens]).await?;
    Ok(())
}
