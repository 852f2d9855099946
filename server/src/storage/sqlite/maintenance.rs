//! Deleting on SQLite: retention's purge and a student's deletion, in the writer's transaction
//! (or, from the command line, in one of their own).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::cache::{refresh_summary, WriterCache};
use super::{open_writer_connection, SqliteError};
use crate::config::Config;
use crate::storage::maintenance::{Deleted, Maintenance};
use crate::storage::{Removed, StoreError};

/// Runs a maintenance task in one immediate transaction, after flushing the summaries in it (the
/// task then works on summaries that reflect every stored event; the caller resets the cache).
pub(super) fn maintain(
    conn: &mut Connection,
    task: &Maintenance,
    cache: &mut WriterCache,
) -> Result<Removed, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    cache.begin(&tx)?;
    cache.flush(&tx)?;
    let removed = match task {
        Maintenance::Purge { before, limit, ids } => {
            purge(&tx, before, *limit, ids.as_deref(), cache.completion_types())?
        }
        Maintenance::DeleteStudent { email } => delete_student(&tx, email)?,
    };
    tx.commit()?;
    Ok(removed)
}

fn purge(
    conn: &Connection,
    before: &str,
    limit: usize,
    ids: Option<&[i64]>,
    completion_types: &[String],
) -> Result<Removed, rusqlite::Error> {
    // Oldest first by event_id. The bound on event_id (the newest event before the cutoff, one
    // seek in idx_events_created) makes the scan a rowid range that stops at `limit`, also when
    // nothing is old enough; ids grow with `created_at` (one writer per file).
    let rows: Vec<(String, Option<i64>)> = match ids {
        None => conn
            .prepare_cached(
                "DELETE FROM events WHERE event_id IN
                     (SELECT event_id FROM events WHERE created_at < ?1
                          AND event_id <= (SELECT event_id FROM events WHERE created_at < ?1
                                           ORDER BY created_at DESC, event_id DESC LIMIT 1)
                      ORDER BY event_id LIMIT ?2)
                 RETURNING session_token, student_id",
            )?
            .query_map((before, limit as i64), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
        Some(ids) => {
            let list = format!("[{}]", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
            conn.prepare_cached(
                "DELETE FROM events WHERE created_at < ?1
                     AND event_id IN (SELECT value FROM json_each(?2))
                 RETURNING session_token, student_id",
            )?
            .query_map((before, list), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
        }
    };
    let deleted = Deleted::from_rows(rows);
    let mut emptied = 0;
    for token in &deleted.sessions {
        if !refresh_summary(conn, token, completion_types)? {
            emptied += 1;
        }
    }
    // A student goes with the last session they appear in (`refresh_summary` deleted the
    // `session_students` rows of the sessions left without events).
    let mut students = 0;
    for student in &deleted.students {
        students += conn
            .prepare_cached(
                "DELETE FROM students WHERE student_id = ?1
                 AND NOT EXISTS (SELECT 1 FROM session_students WHERE student_id = ?1)",
            )?
            .execute([student])? as u64;
    }
    Ok(deleted.removed(emptied, students))
}

/// [`delete_student`] on the database file at `path`, for the command line: waits for the write
/// lock (busy timeout), so it works beside a running server, whose writer sees the change through
/// `PRAGMA data_version` and reloads its summaries. Errors: [`SqliteError::NoDatabase`], the
/// file cannot be opened or migrated, or SQLite fails.
pub fn delete_student_in_file(path: &Path, email: &str) -> Result<Removed, StoreError> {
    Ok(delete_student_in_file_inner(path, email)?)
}

fn delete_student_in_file_inner(path: &Path, email: &str) -> Result<Removed, SqliteError> {
    if !path.is_file() {
        return Err(SqliteError::NoDatabase(path.display().to_string()));
    }
    let mut conn = open_writer_connection(path, &Config::default().completion_event_types)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let removed = delete_student(&tx, email)?;
    tx.commit()?;
    Ok(removed)
}

/// Deletes a student and every trace: all events of the sessions in which they appear (found
/// through `session_students`, which is written with the events), those sessions' summaries,
/// `session_students` and `session_rooms` rows, and the student row.
pub fn delete_student(conn: &Connection, email: &str) -> Result<Removed, rusqlite::Error> {
    let mut removed = Removed::default();
    let student: Option<i64> = conn
        .prepare_cached("SELECT student_id FROM students WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    let Some(student) = student else { return Ok(removed) };
    let tokens: Vec<String> = conn
        .prepare_cached("SELECT session_token FROM session_students WHERE student_id = ?1")?
        .query_map([student], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for token in &tokens {
        removed.events += conn.prepare_cached("DELETE FROM events WHERE session_token = ?1")?.execute([token])? as u64;
        removed.sessions +=
            conn.prepare_cached("DELETE FROM sessions WHERE session_token = ?1")?.execute([token])? as u64;
        conn.prepare_cached("DELETE FROM session_students WHERE session_token = ?1")?.execute([token])?;
        conn.prepare_cached("DELETE FROM session_rooms WHERE session_token = ?1")?.execute([token])?;
    }
    removed.students = conn.prepare_cached("DELETE FROM students WHERE student_id = ?1")?.execute([student])? as u64;
    Ok(removed)
}
