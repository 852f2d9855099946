//! Read-side queries, run on the read pool's connections.

use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde_json::value::RawValue;
use session_log_protocol::{StoredEvent, Uuid};

use super::SqliteError;
use crate::storage::filter::{self, Dialect, Param, StudentScope};
use crate::storage::{EventQuery, EventRow, SessionQuery, SessionRow};

const EVENTS_HEAD: &str = "SELECT e.event_id, e.session_token, e.event_type, e.event_data, e.created_at,
        s.email, s.name, e.event_uuid, e.seq
     FROM events e LEFT JOIN students s ON s.student_id = e.student_id WHERE true";

use crate::domain::workshop::Placement;

const SESSIONS_HEAD: &str = "SELECT x.session_token, s.email, s.name, x.summary, p.workshop_id, p.room_id
     FROM sessions x LEFT JOIN students s ON s.student_id = x.student_id
     LEFT JOIN session_rooms p ON p.session_token = x.session_token WHERE true";

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match *self {
            Param::Text(text) => text.to_sql(),
            Param::Int(n) => Ok(n.into()),
        }
    }
}

/// What a session lost: `(missing, dropped)`, from its summary (one row, whatever the session's
/// size). `missing` counts the numbers absent from its `seq` 0…max (sent by the client, not
/// arrived); `dropped` sums the drops its client reported. A session without events lost nothing.
pub fn session_losses(conn: &Connection, session_token: &str) -> Result<(u64, u64), SqliteError> {
    Ok(super::load_summary(conn, session_token)?.map_or((0, 0), |s| (s.missing_events(), s.dropped_events)))
}

/// Runs an event query on a read connection, in `query.order` by `event_id`, starting after
/// `query.after`. Errors: [`SqliteError::Sqlite`].
pub fn query_events(conn: &Connection, query: &EventQuery) -> Result<Vec<EventRow>, SqliteError> {
    // A student's events: looked up first, so that one session (the usual case) is an equality.
    let student = match &query.student_email {
        Some(email) => match student_sessions(conn, email)? {
            Some(student) => Some(student),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let scope = student.as_ref().map(StudentScope::of);
    let plan = filter::event_plan(query, scope.is_some());
    let mut found: Vec<String> = Vec::new();
    if plan == filter::EventPlan::Sessions {
        let sessions = filter::room_sessions(Dialect::Sqlite, query);
        found = conn
            .prepare_cached(&sessions.sql)?
            .query_map(params_from_iter(sessions.params), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
    }
    let statement = filter::event_statement(Dialect::Sqlite, EVENTS_HEAD, query, plan, scope, &found);
    let mut prepared = conn.prepare_cached(&statement.sql)?;
    let rows = prepared.query_map(params_from_iter(statement.params), |row| {
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
    Ok(filter::resolved_student(student, sessions))
}

/// Reads session summaries, most recently seen first (by `last_seen`, then token, through
/// `idx_sessions_last_seen`; never the
/// events table). Errors: [`SqliteError::Sqlite`], including a summary that is not valid JSON.
pub fn query_sessions(conn: &Connection, query: &SessionQuery) -> Result<Vec<SessionRow>, SqliteError> {
    let statement = filter::sessions(Dialect::Sqlite, SESSIONS_HEAD, query);
    let mut prepared = conn.prepare_cached(&statement.sql)?;
    let rows = prepared.query_map(params_from_iter(statement.params), |row| {
        let summary = super::parse_summary(&row.get::<_, String>(3)?)?;
        let placement = row
            .get::<_, Option<i64>>(4)?
            .map(|workshop_id| Ok::<_, rusqlite::Error>(Placement { workshop_id, room_id: row.get(5)? }))
            .transpose()?;
        Ok(SessionRow {
            session_token: row.get(0)?,
            student_email: row.get(1)?,
            student_name: row.get(2)?,
            summary,
            placement,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
