//! The writer thread: the jobs it takes ([`WriteJob`]), how it gathers them into one group
//! commit ([`Writer`], [`EventWriter`]) and how alert writes run in their own transaction.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use super::cache::WriterCache;
use super::checkpointer::{checkpoint, wal_bytes, WalRestart};
use super::maintenance::maintain;
use super::{alerts, SqliteError};
use crate::domain::event::{CommittedEvent, ValidEvent};
use crate::domain::summary::FoldEvent;
use crate::metrics::Metrics;
use crate::storage::feed::CommitFeed;
use crate::storage::maintenance::Maintenance;
use crate::storage::{now_iso, Inserted, Removed};

/// One request to the writer.
pub(super) enum WriteJob {
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
pub(super) enum AlertWork {
    Record(Vec<crate::domain::alerts::AlertChange>),
    Acknowledge { id: String, action: crate::domain::alerts::AlertAction, at: String },
}

/// What an alert write did.
pub(super) enum AlertOutcome {
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

/// When the WAL is larger than this (bytes), the writer truncates it once it is idle.
pub const WAL_CHECKPOINT_IDLE: u64 = 16 * 1024 * 1024;

/// The writer counts as idle after this long without a job. A momentarily empty queue is not
/// idleness: under steady load it empties between most group commits, and a TRUNCATE checkpoint
/// there (an fsync while every request waits) was the single-event benchmark's tail latency.
pub const WRITER_IDLE_AFTER: Duration = Duration::from_millis(500);

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// The checkpointer's requests to finish a WAL cycle, run between group commits.
    pub(super) wal_restart: WalRestart,
    /// The WAL file, whose size decides when an idle writer truncates it.
    pub(super) wal_path: PathBuf,
    pub(super) max_rows: usize,
    pub(super) metrics: Arc<Metrics>,
    /// The session summaries (written behind the events) and the students already stored.
    pub(super) cache: WriterCache,
    /// The newest committed `event_id`.
    pub(super) committed: watch::Sender<i64>,
    /// The summary watermark of the last committed flush (read by `Storage::flush_summaries`).
    pub(super) flushed: Arc<AtomicI64>,
    /// Where committed events go for the alert rules (when they listen).
    pub(super) feed: Arc<CommitFeed>,
}

impl Writer {
    /// Commit what is waiting, answer, repeat; returns when every sender is gone and the channel
    /// is drained (that is the graceful shutdown: nothing handed over is lost, and the summaries
    /// are flushed). Inserts, pings and flushes share one transaction (group commit); a
    /// maintenance job runs alone, after the group it ended. After [`WRITER_IDLE_AFTER`] without
    /// a job the writer flushes the summaries and truncates a large WAL.
    pub(super) fn run(mut self, receiver: Receiver<WriteJob>) {
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
                "INSERT INTO events (event_uuid, seq, student_id, session_token, event_type, event_data, created_at, room_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
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
            // The session's room as stored (its first placement, or where it was moved).
            let room = self.cache.place(self.conn, &event.session_token, event.placement, self.created_at)?;
            let changed = self.insert.execute((
                event.uuid.as_bytes().as_slice(),
                event.seq.map(|s| s as i64),
                student_id,
                &event.session_token,
                &event.event_type,
                &event.event_data,
                self.created_at,
                room,
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
