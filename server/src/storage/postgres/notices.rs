//! The `notices` table on PostgreSQL (migration V14).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::sql;
use crate::domain::notice::Notice;
use crate::storage::{NewNotice, StoreError};

const COLUMNS: &str = "notice_id, room, message, posted_by, posted_at, expires_at";

fn notice(r: &Row) -> Notice {
    Notice {
        id: r.get(0),
        room: r.get(1),
        message: r.get(2),
        posted_by: r.get(3),
        posted_at: r.get(4),
        expires_at: r.get(5),
    }
}

/// `Backend::post_notice`.
pub(super) async fn post(client: &impl GenericClient, new: &NewNotice) -> Result<Notice, StoreError> {
    let row = sql::query_one(
        client,
        &format!(
            "INSERT INTO notices (room, message, posted_by, posted_at, expires_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ),
        &[&new.room, &new.message, &new.posted_by, &new.posted_at, &new.expires_at],
    )
    .await?;
    Ok(notice(&row))
}

/// `Backend::notices`.
pub(super) async fn current(
    client: &impl GenericClient,
    room: &str,
    now: &str,
    limit: u32,
) -> Result<Vec<Notice>, StoreError> {
    let rows = sql::query(
        client,
        &format!("SELECT {COLUMNS} FROM notices WHERE room = $1 AND expires_at > $2 ORDER BY notice_id DESC LIMIT $3"),
        &[&room, &now, &i64::from(limit)],
    )
    .await?;
    Ok(rows.iter().map(notice).collect())
}
