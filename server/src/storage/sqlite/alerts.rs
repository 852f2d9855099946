//! Alerts on SQLite: the `alerts` table (one row per alert, its JSON as last written) and the
//! `alert_changes` log (`AUTOINCREMENT` positions, the alert stream's cursor). Writes run on the
//! writer's connection, in a transaction of their own; reads on the read pool.

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::SqliteError;
use crate::domain::alerts::{Alert, AlertAction, AlertChange};
use crate::storage::alert_rows::{parse_alert, parse_change, status_text, ChangeRows};
use crate::storage::{Acknowledged, AlertQuery, LoggedChange};

fn stored(tx: &Connection, id: &str) -> Result<Option<Alert>, SqliteError> {
    let text: Option<String> =
        tx.prepare_cached("SELECT alert FROM alerts WHERE alert_id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    Ok(text.as_deref().map(parse_alert).transpose()?)
}

/// Writes the alert of `rows` and logs its change; returns the logged change.
fn write(tx: &Connection, rows: ChangeRows) -> Result<LoggedChange, SqliteError> {
    let change = rows.change;
    tx.prepare_cached(
        "INSERT INTO alerts (alert_id, status, opened_at, alert, workshop, room, session_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (alert_id) DO UPDATE SET status = excluded.status, alert = excluded.alert",
    )?
    .execute((
        &change.alert.id,
        rows.status,
        &change.alert.opened_at,
        &rows.alert_json,
        &rows.workshop,
        &rows.room,
        &rows.session,
    ))?;
    tx.prepare_cached("INSERT INTO alert_changes (alert_id, change) VALUES (?1, ?2)")?
        .execute((&change.alert.id, &rows.change_json))?;
    Ok((tx.last_insert_rowid(), change))
}

/// `Backend::record_alert_changes` within `tx`.
pub fn record(tx: &Transaction<'_>, changes: Vec<AlertChange>) -> Result<Vec<LoggedChange>, SqliteError> {
    changes
        .into_iter()
        .map(|change| {
            let before = stored(tx, &change.alert.id)?;
            write(tx, ChangeRows::recorded(change, before.as_ref()))
        })
        .collect()
}

/// `Backend::acknowledge_alert` within `tx`.
pub fn acknowledge(
    tx: &Transaction<'_>,
    id: &str,
    action: AlertAction,
    at: &str,
) -> Result<Option<Acknowledged>, SqliteError> {
    let Some(alert) = stored(tx, id)? else { return Ok(None) };
    let (alert, rows) = ChangeRows::acted(alert, action, at);
    let change = rows.map(|rows| write(tx, rows)).transpose()?;
    Ok(Some(Acknowledged { alert, change }))
}

/// `Backend::alerts` on a read connection.
pub fn query(conn: &Connection, query: &AlertQuery) -> Result<Vec<Alert>, SqliteError> {
    let mut sql = String::from("SELECT alert FROM alerts WHERE 1 = 1");
    let status = query.status.map(status_text);
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
    if let Some(status) = &status {
        sql.push_str(" AND status = ?");
        params.push(status);
    }
    if let Some(since) = &query.since {
        sql.push_str(" AND opened_at >= ?");
        params.push(since);
    }
    let rooms = query.rooms.as_ref().map(|codes| serde_json::to_string(codes).expect("strings serialize"));
    if let Some(rooms) = &rooms {
        // `""` names the lobbies, whose alerts have no room.
        sql.push_str(" AND (room IN (SELECT value FROM json_each(?)) OR (room IS NULL AND '' IN (SELECT value FROM json_each(?))))");
        params.push(rooms);
        params.push(rooms);
    }
    if let Some(workshop) = &query.workshop {
        sql.push_str(" AND workshop = ?");
        params.push(workshop);
    }
    if let Some(id) = &query.id {
        sql.push_str(" AND alert_id = ?");
        params.push(id);
    }
    if let Some(session) = &query.session {
        sql.push_str(" AND session_token = ?");
        params.push(session);
    }
    sql.push_str(" ORDER BY opened_at DESC, alert_id DESC LIMIT ?");
    params.push(&query.limit);
    let mut statement = conn.prepare_cached(&sql)?;
    let texts = statement.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(0))?;
    texts.map(|t| Ok(parse_alert(&t?)?)).collect()
}

/// `Backend::newest_alert_change` on a read connection: the newest change's position, 0 when
/// none is logged.
pub fn newest_change(conn: &Connection) -> Result<i64, SqliteError> {
    let mut statement = conn.prepare_cached("SELECT coalesce(max(change_id), 0) FROM alert_changes")?;
    Ok(statement.query_row((), |r| r.get(0))?)
}

/// `Backend::alert_changes` on a read connection.
pub fn changes(conn: &Connection, after: i64, limit: u32) -> Result<Vec<LoggedChange>, SqliteError> {
    let mut statement = conn.prepare_cached(
        "SELECT change_id, change FROM alert_changes WHERE change_id > ?1 ORDER BY change_id LIMIT ?2",
    )?;
    let rows = statement.query_map((after, limit), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|row| {
        let (id, text) = row?;
        Ok((id, parse_change(&text)?))
    })
    .collect()
}
