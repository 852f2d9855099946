//! Deleting on PostgreSQL: retention's purge and a student's deletion, in the writer's
//! transaction (or, from the command line, in one of their own).

use deadpool_postgres::Transaction;

use super::pool::{db_error, migrate, open_pool};
use super::sql;
use super::sql::lock_sessions;
use super::summaries::refresh_summaries;
use crate::storage::maintenance::Deleted;
use crate::storage::{Removed, StoreError};

/// [`Storage::delete_student`](crate::storage::Storage::delete_student) on the database at `url`, for
/// the command line (beside a running server: the sessions are locked as the writer locks them).
/// Errors: as for [`super::PostgresStore::open`], and [`StoreError::Unavailable`] or
/// [`StoreError::Internal`] when the transaction fails.
pub fn delete_student_at(url: &str, email: &str) -> Result<Removed, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    runtime.block_on(async {
        let pool = open_pool(url, 1)?;
        migrate(&pool).await?;
        let mut client = sql::connection(&pool).await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let removed = delete_student(&tx, email).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(removed)
    })
}

pub(super) async fn purge(
    tx: &Transaction<'_>,
    before: &str,
    limit: usize,
    ids: Option<&[i64]>,
    completion_types: &[String],
) -> Result<Removed, StoreError> {
    let rows = match ids {
        None => {
            sql::query(
                tx,
                "DELETE FROM events WHERE event_id IN
                     (SELECT event_id FROM events WHERE created_at < $1::text::timestamptz ORDER BY event_id LIMIT $2)
                 RETURNING session_token, student_id",
                &[&before, &(limit as i64)],
            )
            .await?
        }
        Some(ids) => {
            sql::query(
                tx,
                "DELETE FROM events WHERE created_at < $1::text::timestamptz AND event_id = ANY($2)
                 RETURNING session_token, student_id",
                &[&before, &ids],
            )
            .await?
        }
    };
    let deleted = Deleted::from_rows(rows.iter().map(|r| (r.get(0), r.get(1))));
    let tokens: Vec<&str> = deleted.sessions.iter().map(String::as_str).collect();
    lock_sessions(tx, &tokens).await?;
    let emptied = refresh_summaries(tx, &tokens, completion_types).await?;
    let mut students = 0;
    if !deleted.students.is_empty() {
        students = sql::execute(
            tx,
            "DELETE FROM students s WHERE student_id = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM session_students x WHERE x.student_id = s.student_id)",
            &[&deleted.students],
        )
        .await?;
    }
    Ok(deleted.removed(emptied, students))
}

/// Deletes a student and every trace (see `Storage::delete_student`) within `tx`.
pub(super) async fn delete_student(tx: &Transaction<'_>, email: &str) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    let Some(row) =
        sql::query_opt(tx, "SELECT student_id FROM students WHERE lower(email) = lower($1)", &[&email]).await?
    else {
        return Ok(removed);
    };
    let student: i64 = row.get(0);
    let rows =
        sql::query(tx, "SELECT session_token FROM session_students WHERE student_id = $1 ORDER BY 1", &[&student])
            .await?;
    let tokens: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    lock_sessions(tx, &tokens).await?;
    removed.events = sql::execute(tx, "DELETE FROM events WHERE session_token = ANY($1)", &[&tokens]).await?;
    removed.sessions = sql::execute(tx, "DELETE FROM sessions WHERE session_token = ANY($1)", &[&tokens]).await?;
    sql::execute(tx, "DELETE FROM session_students WHERE session_token = ANY($1)", &[&tokens]).await?;
    sql::execute(tx, "DELETE FROM session_rooms WHERE session_token = ANY($1)", &[&tokens]).await?;
    removed.students = sql::execute(tx, "DELETE FROM students WHERE student_id = $1", &[&student]).await?;
    Ok(removed)
}
