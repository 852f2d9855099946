//! The `workshops`, `rooms` and `helper_tokens` tables on PostgreSQL, through the pool (admin writes are rare and need no
//! ordering with the event writer).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::sql;
use crate::domain::helper::HelperToken;
use crate::domain::workshop::{Room, Workshop};
use crate::storage::workshop_rows::{
    origins_from_json, origins_to_json, role_from_text, rooms_from_json, rooms_to_json, NewHelperToken, NewRoom,
    NewWorkshop,
};
use crate::storage::StoreError;

/// The columns [`workshop`] reads, times as ISO 8601 UTC with ms.
const COLUMNS: &str = r#"workshop_id, slug, name, write_key, allowed_origins::text,
    to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

fn workshop(row: &Row) -> Result<Workshop, StoreError> {
    let origins: String = row.get(4);
    Ok(Workshop {
        id: row.get(0),
        slug: row.get(1),
        name: row.get(2),
        write_key: row.get(3),
        allowed_origins: origins_from_json(&origins).map_err(|e| StoreError::Internal(e.to_string()))?,
        revoked_at: row.get(5),
    })
}

/// Every workshop, by id (`default` first).
pub(super) async fn workshops(client: &impl GenericClient) -> Result<Vec<Workshop>, StoreError> {
    let rows = sql::query(client, &format!("SELECT {COLUMNS} FROM workshops ORDER BY workshop_id"), &[]).await?;
    rows.iter().map(workshop).collect()
}

/// Creates `new`. Errors: [`StoreError::Conflict`] when the slug is taken.
pub(super) async fn create(client: &impl GenericClient, new: &NewWorkshop) -> Result<Workshop, StoreError> {
    let origins = origins_to_json(&new.allowed_origins);
    let row = sql::query_opt(
        client,
        &format!(
            "INSERT INTO workshops (slug, name, write_key, allowed_origins) VALUES ($1, $2, $3, $4::text::json)
             ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
        ),
        &[&new.slug, &new.name, &new.write_key, &origins],
    )
    .await?;
    match row {
        Some(row) => workshop(&row),
        None => Err(StoreError::Conflict(format!("a workshop with slug {:?} exists", new.slug))),
    }
}

/// The columns [`room`] reads, times as ISO 8601 UTC with ms.
const ROOM_COLUMNS: &str = r#"room_id, workshop_id, name, code,
    to_char(opens_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(closes_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

fn room(row: &Row) -> Room {
    Room {
        id: row.get(0),
        workshop_id: row.get(1),
        name: row.get(2),
        code: row.get(3),
        opens_at: row.get(4),
        closes_at: row.get(5),
    }
}

/// Every room, by id.
pub(super) async fn rooms(client: &impl GenericClient) -> Result<Vec<Room>, StoreError> {
    let rows = sql::query(client, &format!("SELECT {ROOM_COLUMNS} FROM rooms ORDER BY room_id"), &[]).await?;
    Ok(rows.iter().map(room).collect())
}

/// `Storage::move_sessions`, in one transaction holding the sessions' locks (as a group of
/// events does, so no group writes them with their old room meanwhile): their `session_rooms`
/// rows and the `room_id` their events carry.
pub(super) async fn move_sessions(
    client: &mut deadpool_postgres::Object,
    tokens: &[String],
    workshop_id: i64,
    room_id: i64,
) -> Result<Vec<String>, StoreError> {
    let tx = client.transaction().await.map_err(super::db_error)?;
    let locked: Vec<&str> = tokens.iter().map(String::as_str).collect();
    sql::lock_sessions(&tx, &locked).await?;
    let rows = sql::query(
        &tx,
        "UPDATE session_rooms SET room_id = $1 WHERE workshop_id = $2 AND session_token = ANY($3) RETURNING session_token",
        &[&room_id, &workshop_id, &tokens],
    )
    .await?;
    let moved: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    sql::execute(&tx, "UPDATE events SET room_id = $1 WHERE session_token = ANY($2)", &[&room_id, &moved]).await?;
    tx.commit().await.map_err(super::db_error)?;
    Ok(moved)
}

/// `Storage::session_places`.
pub(super) async fn session_places(
    client: &impl GenericClient,
    tokens: &[String],
) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
    let rows = sql::query(
        client,
        "SELECT session_token, workshop_id, room_id FROM session_rooms WHERE session_token = ANY($1)",
        &[&tokens],
    )
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Creates `new`. Errors: [`StoreError::Conflict`] when its join code is taken.
pub(super) async fn create_room(client: &impl GenericClient, new: &NewRoom) -> Result<Room, StoreError> {
    let row = sql::query_opt(
        client,
        &format!(
            "INSERT INTO rooms (workshop_id, name, code, opens_at, closes_at)
             VALUES ($1, $2, $3, $4::text::timestamptz, $5::text::timestamptz)
             ON CONFLICT (code) DO NOTHING RETURNING {ROOM_COLUMNS}"
        ),
        &[&new.workshop_id, &new.name, &new.code, &new.opens_at, &new.closes_at],
    )
    .await?;
    row.as_ref().map(room).ok_or_else(|| StoreError::Conflict(format!("a room with code {:?} exists", new.code)))
}

/// The columns [`helper_token`] reads, times as ISO 8601 UTC with ms.
const TOKEN_COLUMNS: &str = r#"token_id, name, role, token_hash, rooms::text,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

fn helper_token(row: &Row) -> Result<HelperToken, StoreError> {
    Ok(HelperToken {
        id: row.get(0),
        name: row.get(1),
        role: role_from_text(row.get(2))?,
        token_hash: row.get(3),
        rooms: rooms_from_json(row.get(4))?,
        created_at: row.get(5),
        revoked_at: row.get(6),
        last_used_at: row.get(7),
    })
}

/// `Storage::record_token_use`.
pub(super) async fn record_token_use(client: &impl GenericClient, id: i64) -> Result<(), StoreError> {
    sql::execute(client, "UPDATE helper_tokens SET last_used_at = now() WHERE token_id = $1", &[&id]).await?;
    Ok(())
}

/// Every helper token, by id.
pub(super) async fn helper_tokens(client: &impl GenericClient) -> Result<Vec<HelperToken>, StoreError> {
    let rows = sql::query(client, &format!("SELECT {TOKEN_COLUMNS} FROM helper_tokens ORDER BY token_id"), &[]).await?;
    rows.iter().map(helper_token).collect()
}

/// Stores `new`.
pub(super) async fn create_helper_token(
    client: &impl GenericClient,
    new: &NewHelperToken,
) -> Result<HelperToken, StoreError> {
    let rooms = rooms_to_json(&new.rooms);
    let row = sql::query_opt(
        client,
        &format!(
            "INSERT INTO helper_tokens (name, role, token_hash, rooms) VALUES ($1, $2, $3, $4::text::json)
             RETURNING {TOKEN_COLUMNS}"
        ),
        &[&new.name, &new.role.name(), &new.token_hash, &rooms],
    )
    .await?
    .ok_or_else(|| StoreError::Internal("the insert returned no row".into()))?;
    helper_token(&row)
}

/// Revokes helper token `id` (the first revocation's time is kept); `None` when there is none.
pub(super) async fn revoke_helper_token(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<HelperToken>, StoreError> {
    let row = sql::query_opt(
        client,
        &format!("UPDATE helper_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = $1 RETURNING {TOKEN_COLUMNS}"),
        &[&id],
    )
    .await?;
    row.as_ref().map(helper_token).transpose()
}

/// Revokes the write key of workshop `slug` (the first revocation's time is kept). Returns the
/// workshop, or `None` when there is none with that slug.
pub(super) async fn revoke(client: &impl GenericClient, slug: &str) -> Result<Option<Workshop>, StoreError> {
    sql::execute(
        client,
        "UPDATE workshops SET revoked_at = coalesce(revoked_at, now()) WHERE slug = $1 AND write_key IS NOT NULL",
        &[&slug],
    )
    .await?;
    let row = sql::query_opt(client, &format!("SELECT {COLUMNS} FROM workshops WHERE slug = $1"), &[&slug]).await?;
    row.as_ref().map(workshop).transpose()
}

/// `op` on the database at `url`, for the command line (beside running servers, which see a
/// change within their next refresh). Returns the workshop created or revoked (none when no
/// workshop has the slug), or all of them. Errors: as for [`super::PostgresStore::open`], and
/// those of [`create`].
pub fn at(url: &str, op: crate::storage::workshop_rows::WorkshopOp) -> Result<Vec<Workshop>, StoreError> {
    use crate::storage::workshop_rows::WorkshopOp;
    with_connection(url, async |client| match op {
        WorkshopOp::Create(new) => Ok(vec![create(client, &new).await?]),
        WorkshopOp::Revoke(slug) => Ok(revoke(client, &slug).await?.into_iter().collect()),
        WorkshopOp::List => workshops(client).await,
    })
}

/// Runs `work` on a connection to the database at `url` (its schema brought up to date), on a
/// runtime of its own: how the command line reaches PostgreSQL. Errors: as for
/// [`super::PostgresStore::open`], and those of `work`.
fn with_connection<T>(
    url: &str,
    work: impl AsyncFnOnce(&deadpool_postgres::Object) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    runtime.block_on(async {
        let pool = super::pool::open_pool(url, 1)?;
        super::pool::migrate(&pool).await?;
        let client = sql::connection(&pool).await?;
        work(&client).await
    })
}

/// `op` on the database at `url`, for the command line (as [`at`]): the rooms and helper tokens
/// after it, and what it made. Errors: as for [`super::PostgresStore::open`];
/// [`StoreError::Conflict`] for a room code taken.
pub fn directory_at(
    url: &str,
    op: crate::storage::workshop_rows::DirectoryOp,
) -> Result<crate::storage::workshop_rows::DirectoryRows, StoreError> {
    use crate::storage::workshop_rows::{DirectoryOp, DirectoryRows};
    with_connection(url, async |client| {
        let mut rows = DirectoryRows::default();
        match op {
            DirectoryOp::CreateRoom(new) => rows.room = Some(create_room(client, &new).await?),
            DirectoryOp::CreateToken(new) => rows.token = Some(create_helper_token(client, &new).await?),
            DirectoryOp::RevokeToken(id) => rows.token = revoke_helper_token(client, id).await?,
            DirectoryOp::Read => {}
        }
        rows.workshops = workshops(client).await?;
        rows.rooms = rooms(client).await?;
        rows.tokens = helper_tokens(client).await?;
        Ok(rows)
    })
}
