//! The checkpointer thread: checkpoints the WAL beside the writer, never in a commit, and has
//! SQLite start the WAL over when it has grown past [`WAL_RESTART_FRAMES`].

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;

use super::{SqliteError, BUSY_TIMEOUT};

/// Past this many WAL frames (pages, 4 KiB each) the checkpointer asks the writer to finish the
/// WAL's cycle (see [`Checkpointer`]).
const WAL_RESTART_FRAMES: i64 = 16_384;

/// How often the checkpointer runs a passive checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

pub(super) fn wal_bytes(wal: &Path) -> u64 {
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Runs `PRAGMA wal_checkpoint(<mode>)`, logs the outcome and returns the WAL's length in frames
/// (pages) as the checkpoint saw it, or `None` when it failed.
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> Option<i64> {
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
