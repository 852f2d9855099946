//! Read-side queries, run on the read pool's connections.

use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde_json::value::RawValue;
use session_log_protocol::{StoredEvent, Uuid};

use super::SqliteError;
use crate::storage::{EventQuery, EventRow, Order, SessionQuery, SessionRow};

/// What a session lost: `(missing, dropped)`, from its summary (one row, whatever the session's
/// size). `missing` counts the numbers absent from its `seq` 0…max (sent by the client, not
/// arrived); `dropped` sums the drops its client reported. A session without events lost nothing.
pub fn session_losses(conn: &Connection, session_token: &str) -> Result<(u64, u64), SqliteError> {
    Ok(super::load_summary(conn, session_token)?.map_or((0, 0), |s| (s.missing_events(), s.dropped_events)))
}

/// Runs an event query on a read connection, in `query.order` by `event_id`, starting after
/// `query.after`. Errors: [`SqliteError::Sqlite`].
pub fn query_events(conn: &Connection, query: &EventQuery) -> Result<Vec<EventRow>, SqliteError> {
    let mut sql = String::from(
        "SELECT e.event_id, e.session_token, e.event_type, e.event_data, e.created_at,
                s.email, s.name, e.event_uuid, e.seq
         FROM events e LEFT JOIN students s ON s.student_id = e.student_id WHERE 1 = 1",
    );
    // A student's events are found through their sessions (`session_students`, then
    // `idx_events_session`; events have no index on `student_id`). One session, the usual case,
    // is an equality, which reads the index in `event_id` order and stops at `limit`.
    let student = match &query.student_email {
        Some(email) => match student_sessions(conn, email)? {
            Some(student) => Some(student),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
    if let Some(token) = &query.session_token {
        sql.push_str(" AND e.session_token = ?");
        params.push(token);
    }
    if let Some((student_id, one_session)) = &student {
        // A student on many sessions (any number: a client chooses them) is a join on the stored
        // relation, never a placeholder per session.
        match one_session {
            Some(token) => {
                sql.push_str(" AND e.session_token = ?");
                params.push(token);
            }
            None => {
                sql.push_str(
                    " AND e.session_token IN (SELECT session_token FROM session_students WHERE student_id = ?)",
                );
                params.push(student_id);
            }
        }
        sql.push_str(" AND e.student_id = ?");
        params.push(student_id);
    }
    if let Some(event_type) = &query.event_type {
        sql.push_str(" AND e.event_type = ?");
        params.push(event_type);
    }
    if let Some(since) = &query.since {
        sql.push_str(" AND e.created_at >= ?");
        params.push(since);
    }
    if let Some(until) = &query.until {
        sql.push_str(" AND e.created_at < ?");
        params.push(until);
    }
    let (compare, order) = match query.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    let after = query.after.map(|cursor| cursor.position());
    if let Some(after) = &after {
        sql.push_str(&format!(" AND e.event_id {compare} ?"));
        params.push(after);
    }
    sql.push_str(&format!(" ORDER BY e.event_id {order} LIMIT ?"));
    params.push(&query.limit);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(params), |row| {
        let data: String = row.get(3)?;
        let uuid: Vec<u8> = row.get(7)?;
        Ok(StoredEvent {
            event_id: row.get(0)?,
            session_token: row.get(1)?,
            event_type: row.get(2)?,
            event_data: RawValue::from_string(data)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?,
            created_at: row.get(4)?,
            student_email: row.get(5)?,
            student_name: row.get(6)?,
            event_uuid: Uuid::from_slice(&uuid).unwrap_or_default(),
            seq: row.get::<_, Option<i64>>(8)?.map(|s| s as u64),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The id of the student with `email` (case-insensitive) and, when they appear in exactly one
/// session, that session (`None` for several); `None` when no such student is stored or they
/// appear in no session.
fn student_sessions(conn: &Connection, email: &str) -> Result<Option<(i64, Option<String>)>, SqliteError> {
    let student: Option<i64> = conn
        .prepare_cached("SELECT student_id FROM students WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .optional()?;
    let Some(student) = student else { return Ok(None) };
    // Two rows at most: whether the student has none, one (then which) or several sessions.
    let sessions: Vec<String> = conn
        .prepare_cached("SELECT session_token FROM session_students WHERE student_id = ?1 LIMIT 2")?
        .query_map([student], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match sessions.len() {
        0 => Ok(None),
        1 => Ok(Some((student, sessions.into_iter().next()))),
        _ => Ok(Some((student, None))),
    }
}

/// Reads session summaries, most recently seen first (by `last_seen`, then token, through
/// `idx_sessions_last_seen`; never the
/// events table). Errors: [`SqliteError::Sqlite`], including a summary that is not valid JSON.
pub fn query_sessions(conn: &Connection, query: &SessionQuery) -> Result<Vec<SessionRow>, SqliteError> {
    let mut sql = String::from(
        "SELECT x.session_token, s.email, s.name, x.summary
         FROM sessions x LEFT JOIN students s ON s.student_id = x.student_id WHERE 1 = 1",
    );
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
    if let Some(email) = &query.student_email {
        sql.push_str(" AND x.student_id = (SELECT student_id FROM students WHERE email = ?)");
        params.push(email);
    }
    if let Some(since) = &query.since {
        sql.push_str(" AND x.last_seen >= ?");
        params.push(since);
    }
    if let Some(until) = &query.until {
        sql.push_str(" AND x.first_seen < ?");
        params.push(until);
    }
    if let Some(after) = &query.after {
        sql.push_str(" AND (x.last_seen, x.session_token) < (?, ?)");
        params.push(&after.last_seen);
        params.push(&after.session_token);
    }
    sql.push_str(" ORDER BY x.last_seen DESC, x.session_token DESC LIMIT ?");
    params.push(&query.limit);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(params), |row| {
        let summary = super::parse_summary(&row.get::<_, String>(3)?)?;
        Ok(SessionRow { session_token: row.get(0)?, student_email: row.get(1)?, student_name: row.get(2)?, summary })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
