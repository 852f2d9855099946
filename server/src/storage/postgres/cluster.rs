//! What several servers on one PostgreSQL database coordinate through it: the live tail's wake-up
//! (`LISTEN`/`NOTIFY`) and which one server runs the background work (a session-level advisory
//! lock held on a connection of its own).
//!
//! Both use a dedicated connection (not the pool's: a pooled connection is recycled and a
//! `LISTEN` or a session lock would follow it) and reconnect by themselves, every
//! [`RECONNECT_EVERY`], when the database goes away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::metrics::Metrics;

/// The channel on which every commit announces its newest `event_id` (a decimal payload: a
/// position, never the event, since NOTIFY payloads are limited to 8,000 bytes and are not
/// replayed to a listener that was away).
pub(super) const EVENTS_CHANNEL: &str = "session_log_events";
/// The advisory lock key held by the server that runs the background work.
pub(super) const LEADER_LOCK: i64 = 0x5e55_1010_0003;
/// How long a lost connection waits before reconnecting, and how often a server that is not the
/// leader tries the lock (so the background work resumes this long after its leader dies).
pub(super) const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Raises `committed` to `newest` if it is newer (a commit of this server or of another).
pub(super) fn advance(committed: &watch::Sender<i64>, newest: i64) {
    committed.send_if_modified(|value| {
        let changed = newest > *value;
        *value = (*value).max(newest);
        changed
    });
}

/// Keeps `committed` at the newest `event_id` any server has committed on the database at `pg`:
/// listens on [`EVENTS_CHANNEL`] and, after every (re)connection, reads `max(event_id)`, since
/// notifications sent while it was away are lost. Runs until the runtime stops.
pub(super) async fn listen(pg: tokio_postgres::Config, committed: Arc<watch::Sender<i64>>) {
    loop {
        if let Err(error) = listen_once(&pg, &committed).await {
            tracing::debug!(%error, "the PostgreSQL listener lost its connection; reconnecting");
        }
        tokio::time::sleep(RECONNECT_EVERY).await;
    }
}

async fn listen_once(pg: &tokio_postgres::Config, committed: &watch::Sender<i64>) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = pg.connect(NoTls).await?;
    let (payloads, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if payloads.send(note.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "PostgreSQL listener connection failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {EVENTS_CHANNEL}")).await?;
    let newest: i64 = client.query_one("SELECT coalesce(max(event_id), 0) FROM events", &[]).await?.get(0);
    advance(committed, newest);
    while let Some(payload) = received.recv().await {
        if let Ok(newest) = payload.parse() {
            advance(committed, newest);
        }
    }
    driver.abort();
    Ok(())
}

/// Holds the leader lock while it can: `leader` is true exactly while this server holds it on a
/// live connection. A server that is not the leader tries again every [`RECONNECT_EVERY`]; when
/// the leader dies its connection closes, PostgreSQL releases the lock, and another server takes
/// it. Runs until the runtime stops.
pub(super) async fn lead(pg: tokio_postgres::Config, leader: Arc<AtomicBool>, metrics: Arc<Metrics>) {
    let set = |is: bool| {
        leader.store(is, Ordering::SeqCst);
        metrics.background_leader.set(i64::from(is));
    };
    loop {
        match pg.connect(NoTls).await {
            Ok((client, connection)) => {
                let mut driver = tokio::spawn(connection);
                loop {
                    let held = tokio::select! {
                        held = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]) => held,
                        _ = &mut driver => break,
                    };
                    match held.map(|row| row.get::<_, bool>(0)) {
                        Ok(true) => {
                            set(true);
                            // Held until the connection fails: check it while waiting.
                            loop {
                                tokio::select! {
                                    _ = &mut driver => break,
                                    _ = tokio::time::sleep(RECONNECT_EVERY) => {
                                        if client.simple_query("SELECT 1").await.is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                            set(false);
                            break;
                        }
                        Ok(false) => tokio::time::sleep(RECONNECT_EVERY).await,
                        Err(_) => break,
                    }
                }
                driver.abort();
            }
            Err(error) => tracing::debug!(%error, "the PostgreSQL leader lease cannot connect"),
        }
        set(false);
        tokio::time::sleep(RECONNECT_EVERY).await;
    }
}
