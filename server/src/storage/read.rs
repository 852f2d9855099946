//! Read-side queries, run on the read pool's connections.

use std::time::SystemTime;

use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde_json::value::RawValue;
use session_log_protocol::{StoredEvent, Uuid};

use super::StorageError;
use crate::summary::SessionSummary;

/// The order of an event query, by `event_id` (which is also the order of storage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the reference's order, the default).
    #[default]
    Desc,
}

/// Filters of an event query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this session.
    pub session_token: Option<String>,
    /// Only this student (case-insensitive).
    pub student_email: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events stored at or after this time (ISO 8601 UTC with ms, as `created_at`).
    pub since: Option<String>,
    /// Only events stored before this time (same format).
    pub until: Option<String>,
    /// The order.
    pub order: Order,
    /// Continue after this `event_id` (in `order`): the cursor of the page before.
    pub after: Option<i64>,
    /// At most this many events.
    pub limit: u32,
}

/// A stored event as queries return it, its data as the JSON text stored.
pub type EventRow = StoredEvent<Box<RawValue>>;

/// What a session lost: `(missing, dropped)`, from its summary (one row, whatever the session's
/// size). `missing` counts the numbers absent from its `seq` 0…max (sent by the client, not
/// arrived); `dropped` sums the drops its client reported. A session without events lost nothing.
pub fn session_losses(conn: &Connection, session_token: &str) -> Result<(u64, u64), StorageError> {
    Ok(super::load_summary(conn, session_token)?.map_or((0, 0), |s| (s.missing_events(), s.dropped_events)))
}

/// Now as ISO 8601 UTC with ms, the format of `created_at` (sorts as text in time order).
pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `ago` before now, in the format of [`now_iso`] (the Unix epoch when `ago` reaches past it).
pub fn iso_ago(ago: std::time::Duration) -> String {
    let at = SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Runs an event query on a read connection, in `query.order` by `event_id`, starting after
/// `query.after`. Errors: [`StorageError::Sqlite`].
pub fn query_events(conn: &Connection, query: &EventQuery) -> Result<Vec<EventRow>, StorageError> {
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
    if let Some((student_id, sessions)) = &student {
        sql.push_str(&format!(
            " AND e.session_token IN ({}) AND e.student_id = ?",
            vec!["?"; sessions.len()].join(", ")
        ));
        params.extend(sessions.iter().map(|t| t as &dyn rusqlite::ToSql));
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
    if let Some(after) = &query.after {
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

/// The id of the student with `email` (case-insensitive) and the sessions they appear in;
/// `None` when no such student is stored or they appear in no session.
fn student_sessions(conn: &Connection, email: &str) -> Result<Option<(i64, Vec<String>)>, StorageError> {
    let student: Option<i64> = conn
        .prepare_cached("SELECT student_id FROM students WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .optional()?;
    let Some(student) = student else { return Ok(None) };
    let sessions: Vec<String> = conn
        .prepare_cached("SELECT session_token FROM session_students WHERE student_id = ?1")?
        .query_map([student], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok((!sessions.is_empty()).then_some((student, sessions)))
}

/// Filters of a session query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this student's sessions (case-insensitive).
    pub student_email: Option<String>,
    /// Only sessions with an event at or after this time (`last_seen`, ISO text).
    pub since: Option<String>,
    /// Only sessions with an event before this time (`first_seen`, ISO text).
    pub until: Option<String>,
    /// At most this many sessions, most recently seen first.
    pub limit: u32,
}

/// A session's summary with its token and student.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// The session token.
    pub session_token: String,
    /// The student's email, when an event named one.
    pub student_email: Option<String>,
    /// The student's name.
    pub student_name: Option<String>,
    /// The summary.
    pub summary: SessionSummary,
}

/// Reads session summaries, most recently seen first (through `idx_sessions_last_seen`; never the
/// events table). Errors: [`StorageError::Sqlite`], including a summary that is not valid JSON.
pub fn query_sessions(conn: &Connection, query: &SessionQuery) -> Result<Vec<SessionRow>, StorageError> {
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
    sql.push_str(" ORDER BY x.last_seen DESC LIMIT ?");
    params.push(&query.limit);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(params), |row| {
        let summary = super::parse_summary(&row.get::<_, String>(3)?)?;
        Ok(SessionRow { session_token: row.get(0)?, student_email: row.get(1)?, student_name: row.get(2)?, summary })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
