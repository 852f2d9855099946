//! The `notices` table on SQLite (migration V10): posted on a connection of their own that
//! waits for the write lock, like the admin writes; read through the reader pool.

use std::path::Path;

use rusqlite::Connection;

use super::workshops::admin_connection;
use super::SqliteError;
use crate::domain::notice::Notice;
use crate::storage::{NewNotice, StoreError};

const COLUMNS: &str = "notice_id, room, message, posted_by, posted_at, expires_at";

fn notice(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notice> {
    Ok(Notice {
        id: r.get(0)?,
        room: r.get(1)?,
        message: r.get(2)?,
        posted_by: r.get(3)?,
        posted_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

/// `Backend::post_notice`. Errors: SQLite's.
pub fn post(path: &Path, new: &NewNotice) -> Result<Notice, StoreError> {
    let conn = admin_connection(path)?;
    Ok(conn
        .query_row(
            &format!(
                "INSERT INTO notices (room, message, posted_by, posted_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {COLUMNS}"
            ),
            (&new.room, &new.message, &new.posted_by, &new.posted_at, &new.expires_at),
            notice,
        )
        .map_err(SqliteError::from)?)
}

/// `Backend::notices` on a read connection.
pub fn current(conn: &Connection, room: &str, now: &str, limit: u32) -> Result<Vec<Notice>, SqliteError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notices WHERE room = ?1 AND expires_at > ?2 ORDER BY notice_id DESC LIMIT ?3"
        ))?
        .query_map((room, now, limit), notice)?
        .collect::<Result<_, _>>()?)
}
