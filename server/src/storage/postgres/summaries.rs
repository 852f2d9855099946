//! Session summaries on PostgreSQL: loading, storing and recomputing them from the events.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::sql;
use super::sql::ISO;
use crate::domain::summary::SessionSummary;
use crate::storage::summary_rows::FoldColumns;
use crate::storage::{summary_rows, StoreError};

/// Writes summaries (insert or replace) from five arrays: tokens, students, first and last seen,
/// summary JSON.
pub(super) const STORE_SUMMARIES: &str =
    "INSERT INTO sessions (session_token, student_id, first_seen, last_seen, summary)
     SELECT t, s, f::timestamptz, l::timestamptz, j::json
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[]) AS x(t, s, f, l, j)
     ON CONFLICT (session_token) DO UPDATE SET student_id = excluded.student_id,
         first_seen = excluded.first_seen, last_seen = excluded.last_seen, summary = excluded.summary";

pub(super) fn parse_summary(text: &str) -> Result<SessionSummary, StoreError> {
    Ok(summary_rows::parse(text)?)
}

/// The stored summaries of `tokens`' sessions, by token.
pub(super) async fn load_summaries(
    client: &impl GenericClient,
    tokens: &[&str],
) -> Result<HashMap<String, SessionSummary>, StoreError> {
    let rows = sql::query(
        client,
        "SELECT session_token, summary::text FROM sessions WHERE session_token = ANY($1)",
        &[&tokens],
    )
    .await?;
    rows.iter().map(|r| Ok((r.get(0), parse_summary(r.get(1))?))).collect()
}

/// The five arrays of [`STORE_SUMMARIES`] for `summaries`.
pub(super) type SummaryRows<'a> = (Vec<&'a str>, Vec<Option<i64>>, Vec<&'a str>, Vec<&'a str>, Vec<String>);

pub(super) fn summary_arrays<'a>(
    summaries: impl Iterator<Item = (&'a str, &'a SessionSummary)>,
) -> Result<SummaryRows<'a>, StoreError> {
    let mut rows: SummaryRows<'a> = (vec![], vec![], vec![], vec![], vec![]);
    for (token, summary) in summaries {
        rows.0.push(token);
        rows.1.push(summary.student_id);
        rows.2.push(summary.first_seen.as_str());
        rows.3.push(summary.last_seen.as_str());
        rows.4.push(summary_rows::to_json(summary));
    }
    Ok(rows)
}

/// Writes summaries (insert or replace).
pub(super) async fn store_summaries<'a>(
    tx: &Transaction<'_>,
    summaries: impl Iterator<Item = (&'a str, &'a SessionSummary)>,
) -> Result<(), StoreError> {
    let rows = summary_arrays(summaries)?;
    if rows.0.is_empty() {
        return Ok(());
    }
    sql::execute(tx, STORE_SUMMARIES, &[&rows.0, &rows.1, &rows.2, &rows.3, &rows.4]).await?;
    Ok(())
}

/// The fold of a session's stored events in `event_id` order, `None` when it has none.
pub(super) async fn fold_session(
    client: &impl GenericClient,
    token: &str,
    completion_types: &[String],
) -> Result<Option<SessionSummary>, StoreError> {
    let rows = sql::query(
        client,
        &format!(
            "SELECT event_type, seq, student_id, {ISO}, event_data::text FROM events
                 WHERE session_token = $1 ORDER BY event_id"
        ),
        &[&token],
    )
    .await?;
    let mut summary: Option<SessionSummary> = None;
    for row in &rows {
        let columns = FoldColumns {
            event_type: row.get(0),
            seq: row.get(1),
            student_id: row.get(2),
            created_at: row.get(3),
            data: row.get(4),
        };
        summary_rows::fold(&mut summary, columns, completion_types);
    }
    Ok(summary)
}

/// Recomputes the summaries of `tokens` from their remaining events; a session left without
/// events loses its summary, `session_students` and `session_rooms` rows. Returns how many sessions went.
pub(super) async fn refresh_summaries(
    tx: &Transaction<'_>,
    tokens: &[&str],
    completion_types: &[String],
) -> Result<u64, StoreError> {
    let mut gone = 0;
    for token in tokens {
        match fold_session(tx, token, completion_types).await? {
            Some(summary) => store_summaries(tx, std::iter::once((*token, &summary))).await?,
            None => {
                sql::execute(tx, "DELETE FROM sessions WHERE session_token = $1", &[token]).await?;
                sql::execute(tx, "DELETE FROM session_students WHERE session_token = $1", &[token]).await?;
                sql::execute(tx, "DELETE FROM session_rooms WHERE session_token = $1", &[token]).await?;
                gone += 1;
            }
        }
    }
    Ok(gone)
}
