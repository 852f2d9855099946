//! Reads: event and session queries (the filter chains of `storage::filter`), and the
//! durability check that keeps a reader from returning an event a crash could take back.

use std::sync::atomic::{AtomicI64, Ordering};

use deadpool_postgres::GenericClient;
use serde_json::value::RawValue;
use session_log_protocol::StoredEvent;
use tokio_postgres::types::ToSql;

use super::sql;
use super::sql::{DURABILITY_BARRIER, ISO};
use super::summaries::parse_summary;
use crate::storage::filter::{Dialect, Param, StudentScope};
use crate::storage::{filter, EventQuery, EventRow, SessionQuery, SessionRow, StoreError};

/// Makes sure every event of `rows` is durable before a reader gets it: when one is newer than
/// `durable` (a commit of another server, or of a group of this one whose barrier has not
/// answered yet, visible before its WAL is flushed), runs a [`DURABILITY_BARRIER`] on `client`,
/// which flushes the WAL through every commit the rows' snapshot saw, and raises `durable`.
/// Errors: those of the barrier.
pub(super) async fn made_durable(
    client: &impl GenericClient,
    durable: &AtomicI64,
    rows: &[EventRow],
) -> Result<(), StoreError> {
    let Some(newest) = rows.iter().map(|row| row.event_id).max() else { return Ok(()) };
    if newest > durable.load(Ordering::Acquire) {
        sql::query(client, DURABILITY_BARRIER, &[]).await?;
        durable.fetch_max(newest, Ordering::AcqRel);
    }
    Ok(())
}

/// The id of the student with `email` (case-insensitive) and, when they appear in exactly one
/// session, that session (`None` for several); `None` when no such student is stored or they
/// appear in no session. One statement.
async fn student_sessions(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<(i64, Option<String>)>, StoreError> {
    let row = sql::query_opt(
        client,
        "SELECT s.student_id, ARRAY(SELECT session_token FROM session_students
             WHERE student_id = s.student_id LIMIT 2)
         FROM students s WHERE lower(email) = lower($1)",
        &[&email],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(filter::resolved_student(row.get(0), row.get(1)))
}

/// Runs an event query, in `query.order` by `event_id`, starting after `query.after`.
pub(super) async fn query_events(client: &impl GenericClient, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
    let head = format!(
        "SELECT e.event_id, e.session_token, e.event_type, e.event_data::text, {}, s.email, s.name, e.event_uuid, e.seq
         FROM events e LEFT JOIN students s ON s.student_id = e.student_id WHERE true",
        ISO.replace("created_at", "e.created_at")
    );
    // A student's events: looked up first, so that one session (the usual case) is an equality
    // the planner estimates right (`session_token` determines `student_id`: migration V16).
    let student = match &query.student_email {
        Some(email) => match student_sessions(client, email).await? {
            Some(student) => Some(student),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let scope = student.as_ref().map(StudentScope::of);
    let plan = filter::event_plan(query, scope.is_some());
    let mut found: Vec<String> = Vec::new();
    if plan == filter::EventPlan::Sessions {
        let sessions = filter::room_sessions(Dialect::Postgres, query);
        found = sql::query(client, &sessions.sql, &bound(&sessions.params)).await?.iter().map(|r| r.get(0)).collect();
        if found.is_empty() {
            return Ok(Vec::new());
        }
    }
    let statement = filter::event_statement(Dialect::Postgres, &head, query, plan, scope, &found);
    let rows = sql::query(client, &statement.sql, &bound(&statement.params)).await?;
    rows.iter()
        .map(|row| {
            let data: String = row.get(3);
            Ok(StoredEvent {
                event_id: row.get(0),
                session_token: row.get(1),
                event_type: row.get(2),
                event_data: RawValue::from_string(data)
                    .map_err(|e| StoreError::Internal(format!("stored event data: {e}")))?,
                created_at: row.get(4),
                student_email: row.get(5),
                student_name: row.get(6),
                event_uuid: row.get(7),
                seq: row.get::<_, Option<i64>>(8).map(|s| s as u64),
            })
        })
        .collect()
}

/// The driver's view of a statement's parameters.
pub(super) fn bound<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Int(n) => n as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Reads session summaries, most recently seen first (by `last_seen`, then token).
pub(super) async fn query_sessions(
    client: &impl GenericClient,
    query: &SessionQuery,
) -> Result<Vec<SessionRow>, StoreError> {
    let statement = filter::sessions(
        Dialect::Postgres,
        "SELECT x.session_token, s.email, s.name, x.summary::text, p.workshop_id, p.room_id
         FROM sessions x LEFT JOIN students s ON s.student_id = x.student_id
         LEFT JOIN session_rooms p ON p.session_token = x.session_token WHERE true",
        query,
    );
    let rows = sql::query(client, &statement.sql, &bound(&statement.params)).await?;
    rows.iter()
        .map(|row| {
            Ok(SessionRow {
                session_token: row.get(0),
                student_email: row.get(1),
                student_name: row.get(2),
                summary: parse_summary(row.get(3))?,
                placement: row
                    .get::<_, Option<i64>>(4)
                    .map(|workshop_id| crate::domain::workshop::Placement { workshop_id, room_id: row.get(5) }),
            })
        })
        .collect()
}
