//! What the writer keeps in memory between commits, in step with the database: the session
//! summaries, written behind the events (flushed at most [`SUMMARY_FLUSH_EVERY`] apart), so that
//! a group commit writes its events and not the row of every session it touched (rewriting those
//! rows on every commit tripled the pages each commit wrote to the WAL and halved single-event
//! throughput, `cargo xtask bench`); and the students and (session, student) pairs already
//! stored, so that a commit looks up neither again.
//!
//! Invariants:
//! - `summary_watermark.event_id` (W) is the newest event reflected in the `sessions` table:
//!   every stored summary equals the fold (in `event_id` order) of its session's events up to W,
//!   and W only moves in the transaction that writes the summaries.
//! - A summary in the cache is the fold of all its session's committed events, W or not.
//! - Whatever could make the cache wrong resets it: a failed transaction, a commit by another
//!   connection (seen through `PRAGMA data_version`, e.g. the `delete-student` command), a
//!   maintenance job. The next transaction catches up: it folds the events past W into the stored
//!   summaries. Opening the database does the same, so a crash loses no summary work.
//! - Students and `session_students` (which students appear in which session, for deletion and
//!   retention) are written in the same transaction as the events, never behind; so is a
//!   session's room (`session_rooms`, its first placement only).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::borrow::Cow;

use rusqlite::{Connection, Row};

use crate::domain::summary::{FoldEvent, SessionSummary};
use crate::storage::summary_rows::{self, FoldColumns};

/// Longest time a summary change waits in memory before it is written: `/api/sessions` and the
/// report ask for a flush first (see `Storage::flush_summaries`), so this bounds only how far
/// the stored rows lag when nobody reads them.
pub const SUMMARY_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Changed sessions that make a flush due at once, whatever their age (bounds the flush's size).
const MAX_DIRTY_SESSIONS: usize = 4096;
/// Sessions whose summaries the cache keeps; past it, a flush drops the unchanged ones (bounds
/// memory: a summary is bounded, see `crate::domain::summary`).
const MAX_CACHED_SESSIONS: usize = 4096;
/// (session, student) pairs, and students, remembered as stored; past it a map starts over.
const MAX_REMEMBERED: usize = 65_536;

/// What the writer keeps in memory between commits (see the module docs).
pub struct WriterCache {
    completion_types: Vec<String>,
    sessions: HashMap<String, Cached>,
    /// Sessions changed since the last flush.
    dirty: usize,
    /// When the oldest unflushed change was made.
    dirty_since: Option<Instant>,
    /// The newest `event_id` folded into the cache.
    folded_through: i64,
    /// The watermark written by the last flush.
    flushed_through: i64,
    /// Students known to be in `session_students`, by session.
    pairs: HashMap<String, Vec<i64>>,
    /// How many pairs `pairs` holds.
    pair_count: usize,
    /// Sessions known to have their `session_rooms` row, with its room.
    placed: HashMap<String, Option<i64>>,
    /// Stored students by email (ASCII-lowercased, as `COLLATE NOCASE` compares): id and name.
    students: HashMap<String, (i64, Option<String>)>,
    /// `PRAGMA data_version` when the cache was last in step with the database; `None` after a
    /// reset (the next transaction catches up).
    data_version: Option<i64>,
}

struct Cached {
    summary: SessionSummary,
    dirty: bool,
}

impl WriterCache {
    /// An empty cache; sessions complete on an event of one of `completion_types`.
    pub fn new(completion_types: &[String]) -> WriterCache {
        WriterCache {
            completion_types: completion_types.to_vec(),
            sessions: HashMap::new(),
            dirty: 0,
            dirty_since: None,
            folded_through: 0,
            flushed_through: 0,
            pairs: HashMap::new(),
            pair_count: 0,
            placed: HashMap::new(),
            students: HashMap::new(),
            data_version: None,
        }
    }

    /// The event types that complete a session.
    pub fn completion_types(&self) -> &[String] {
        &self.completion_types
    }

    /// Brings the cache in step with the database at the start of a write transaction on
    /// `conn`: after a reset, or when another connection has committed since, it drops what it
    /// holds and folds the events past the watermark. Errors: any SQLite error (reset the cache).
    pub fn begin(&mut self, conn: &Connection) -> Result<(), rusqlite::Error> {
        let version: i64 = conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?;
        if self.data_version != Some(version) {
            if self.data_version.is_some() {
                tracing::debug!("another connection wrote to the database: summaries catch up");
            }
            self.reset();
            self.catch_up(conn)?;
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Forgets everything; the next [`WriterCache::begin`] catches up from the database.
    pub fn reset(&mut self) {
        self.sessions.clear();
        self.pairs.clear();
        self.pair_count = 0;
        self.placed.clear();
        self.students.clear();
        self.dirty = 0;
        self.dirty_since = None;
        self.data_version = None;
    }

    /// Folds the events stored past the watermark into their sessions' summaries.
    fn catch_up(&mut self, conn: &Connection) -> Result<(), rusqlite::Error> {
        let watermark: i64 = conn.query_row("SELECT event_id FROM summary_watermark", [], |r| r.get(0))?;
        self.folded_through = watermark;
        self.flushed_through = watermark;
        let mut statement = conn.prepare(&format!(
            "SELECT event_id, session_token, {FOLD_COLUMNS} FROM events WHERE event_id > ?1 ORDER BY event_id"
        ))?;
        let mut rows = statement.query([watermark])?;
        let mut events = 0u64;
        while let Some(row) = rows.next()? {
            let (event_id, token): (i64, String) = (row.get(0)?, row.get(1)?);
            with_fold_event(row, 2, |fold| self.apply(conn, &token, fold, event_id))??;
            events += 1;
        }
        if events > 0 {
            tracing::info!(events, sessions = self.dirty, "session summaries caught up with the stored events");
        }
        Ok(())
    }

    /// Folds one newly stored event (`event_id`, the newest so far) into its session's summary,
    /// reading the stored summary first if the cache has none. Errors: SQLite, or a stored
    /// summary that is not valid JSON.
    pub fn apply(
        &mut self,
        conn: &Connection,
        token: &str,
        event: &FoldEvent<'_>,
        event_id: i64,
    ) -> Result<(), rusqlite::Error> {
        let cached = match self.sessions.get_mut(token) {
            Some(cached) => cached,
            None => {
                let summary = load_summary(conn, token)?.unwrap_or_default();
                self.sessions.entry(token.to_owned()).or_insert(Cached { summary, dirty: false })
            }
        };
        cached.summary.apply(event, &self.completion_types);
        if !cached.dirty {
            cached.dirty = true;
            self.dirty += 1;
        }
        self.dirty_since.get_or_insert_with(Instant::now);
        self.folded_through = event_id;
        Ok(())
    }

    /// Records that `student_id` appears in session `token` (`session_students`), once per pair.
    pub fn record_student(&mut self, conn: &Connection, token: &str, student_id: i64) -> Result<(), rusqlite::Error> {
        if self.pairs.get(token).is_some_and(|students| students.contains(&student_id)) {
            return Ok(());
        }
        conn.prepare_cached("INSERT OR IGNORE INTO session_students (session_token, student_id) VALUES (?1, ?2)")?
            .execute((token, student_id))?;
        if self.pair_count >= MAX_REMEMBERED {
            self.pairs.clear();
            self.pair_count = 0;
        }
        self.pairs.entry(token.to_owned()).or_default().push(student_id);
        self.pair_count += 1;
        Ok(())
    }

    /// Records session `token`'s workshop and room (`session_rooms`) at `at` unless it has one:
    /// the first placement stays. Returns the session's room as stored (`None` for a lobby), which
    /// its events carry. Errors: any SQLite error.
    pub fn place(
        &mut self,
        conn: &Connection,
        token: &str,
        placement: crate::domain::workshop::Placement,
        at: &str,
    ) -> Result<Option<i64>, rusqlite::Error> {
        if let Some(room) = self.placed.get(token) {
            return Ok(*room);
        }
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO session_rooms (session_token, workshop_id, room_id, joined_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((token, placement.workshop_id, placement.room_id, at))?;
        let room = match inserted {
            1 => placement.room_id,
            _ => conn
                .prepare_cached("SELECT room_id FROM session_rooms WHERE session_token = ?1")?
                .query_row([token], |r| r.get(0))?,
        };
        if self.placed.len() >= MAX_REMEMBERED {
            self.placed.clear();
        }
        self.placed.insert(token.to_owned(), room);
        Ok(room)
    }

    /// The id of the student with `email`, storing them (or their new `name`) when the cache
    /// does not know them so. Errors: any SQLite error.
    pub fn student_id(&mut self, conn: &Connection, email: &str, name: Option<&str>) -> Result<i64, rusqlite::Error> {
        let key = if email.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(email.to_ascii_lowercase())
        } else {
            Cow::Borrowed(email)
        };
        if let Some((id, known)) = self.students.get(key.as_ref()) {
            if name.is_none() || name == known.as_deref() {
                return Ok(*id);
            }
        }
        let (id, stored): (i64, Option<String>) = conn
            .prepare_cached(
                "INSERT INTO students (email, name) VALUES (?1, ?2)
                 ON CONFLICT (email) DO UPDATE SET name = coalesce(excluded.name, students.name)
                 RETURNING student_id, name",
            )?
            .query_row((email, name), |r| Ok((r.get(0)?, r.get(1)?)))?;
        if self.students.len() >= MAX_REMEMBERED {
            self.students.clear();
        }
        self.students.insert(key.into_owned(), (id, stored));
        Ok(id)
    }

    /// Whether a flush is due: the oldest unflushed change is [`SUMMARY_FLUSH_EVERY`] old, or
    /// many sessions changed.
    pub fn flush_due(&self) -> bool {
        self.dirty >= MAX_DIRTY_SESSIONS || self.dirty_since.is_some_and(|t| t.elapsed() >= SUMMARY_FLUSH_EVERY)
    }

    /// Whether some change is not yet written.
    pub fn is_dirty(&self) -> bool {
        self.dirty > 0
    }

    /// The watermark of the last flush: every event up to it is reflected in `sessions` once
    /// that flush's transaction commits.
    pub fn flushed_through(&self) -> i64 {
        self.flushed_through
    }

    /// Writes the changed summaries and moves the watermark, within the caller's transaction
    /// (reset the cache if it does not commit). Errors: any SQLite error.
    pub fn flush(&mut self, conn: &Connection) -> Result<(), rusqlite::Error> {
        for (token, cached) in self.sessions.iter_mut().filter(|(_, c)| c.dirty) {
            store_summary(conn, token, &cached.summary)?;
            cached.dirty = false;
        }
        if self.folded_through != self.flushed_through {
            conn.prepare_cached("UPDATE summary_watermark SET event_id = ?1")?.execute([self.folded_through])?;
            self.flushed_through = self.folded_through;
        }
        self.dirty = 0;
        self.dirty_since = None;
        if self.sessions.len() > MAX_CACHED_SESSIONS {
            self.sessions.clear();
        }
        Ok(())
    }
}

/// Brings the stored summaries up to date with the stored events (the catch-up of the module
/// docs) in a transaction of its own; run when a write connection opens. Errors: any SQLite error.
pub fn catch_up_summaries(conn: &mut Connection, completion_types: &[String]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut cache = WriterCache::new(completion_types);
    cache.begin(&tx)?;
    cache.flush(&tx)?;
    tx.commit()
}

/// A session's stored summary, if it has one. Errors: SQLite, or a summary that is not valid JSON.
pub fn load_summary(conn: &Connection, token: &str) -> Result<Option<SessionSummary>, rusqlite::Error> {
    let mut statement = conn.prepare_cached("SELECT summary FROM sessions WHERE session_token = ?1")?;
    let mut rows = statement.query([token])?;
    let Some(row) = rows.next()? else { return Ok(None) };
    parse_summary(&row.get::<_, String>(0)?).map(Some)
}

/// Reads `sessions.summary` JSON text; a failure is reported as SQLite's conversion error.
pub(super) fn parse_summary(text: &str) -> Result<SessionSummary, rusqlite::Error> {
    summary_rows::parse(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn store_summary(conn: &Connection, token: &str, summary: &SessionSummary) -> Result<(), rusqlite::Error> {
    let text = summary_rows::to_json(summary);
    conn.prepare_cached(
        "INSERT INTO sessions (session_token, student_id, first_seen, last_seen, summary) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (session_token) DO UPDATE SET student_id = excluded.student_id,
             first_seen = excluded.first_seen, last_seen = excluded.last_seen, summary = excluded.summary",
    )?
    .execute((token, summary.student_id, &summary.first_seen, &summary.last_seen, &text))?;
    Ok(())
}

/// Recomputes a session's summary from its stored events (the same fold as at ingest), storing
/// it, or deleting it and its `session_students` and `session_rooms` rows when no event is left. Returns whether the
/// session still has events. Run with the cache flushed (maintenance), which then resets it.
pub fn refresh_summary(conn: &Connection, token: &str, completion_types: &[String]) -> Result<bool, rusqlite::Error> {
    let summary = fold_session(conn, token, completion_types)?;
    match &summary {
        Some(summary) => store_summary(conn, token, summary)?,
        None => {
            conn.prepare_cached("DELETE FROM sessions WHERE session_token = ?1")?.execute([token])?;
            conn.prepare_cached("DELETE FROM session_students WHERE session_token = ?1")?.execute([token])?;
            conn.prepare_cached("DELETE FROM session_rooms WHERE session_token = ?1")?.execute([token])?;
        }
    }
    Ok(summary.is_some())
}

/// The columns of a stored event that a fold reads, in the order [`with_fold_event`] expects.
const FOLD_COLUMNS: &str = "event_type, seq, student_id, created_at, event_data";

/// Calls `f` with the stored event whose [`FOLD_COLUMNS`] start at column `at` of `row`.
/// Errors: a column of an unexpected type.
fn with_fold_event<T>(row: &Row<'_>, at: usize, f: impl FnOnce(&FoldEvent<'_>) -> T) -> Result<T, rusqlite::Error> {
    let (event_type, created_at, data): (String, String, String) = (row.get(at)?, row.get(at + 3)?, row.get(at + 4)?);
    let columns = FoldColumns {
        event_type: &event_type,
        seq: row.get(at + 1)?,
        student_id: row.get(at + 2)?,
        created_at: &created_at,
        data: &data,
    };
    Ok(columns.with_event(f))
}

/// The fold of a session's stored events in `event_id` order, or `None` when it has none.
pub fn fold_session(
    conn: &Connection,
    token: &str,
    completion_types: &[String],
) -> Result<Option<SessionSummary>, rusqlite::Error> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {FOLD_COLUMNS} FROM events WHERE session_token = ?1 ORDER BY event_id"))?;
    let mut rows = statement.query([token])?;
    let mut summary: Option<SessionSummary> = None;
    while let Some(row) = rows.next()? {
        with_fold_event(row, 0, |fold| {
            summary.get_or_insert_with(SessionSummary::default).apply(fold, completion_types)
        })?;
    }
    Ok(summary)
}
