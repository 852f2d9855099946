//! The `workshops`, `rooms` and `helper_tokens` tables on SQLite. Reads go through the reader pool; the rare admin writes
//! open a connection of their own that waits for the write lock (busy timeout), like the
//! command line's, so they never queue behind (or ahead of) the writer's group commits.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{SqliteError, BUSY_TIMEOUT};
use crate::domain::helper::HelperToken;
use crate::domain::workshop::{Room, Workshop};
use crate::storage::workshop_rows::{
    origins_from_json, origins_to_json, role_from_text, rooms_from_json, rooms_to_json, NewHelperToken, NewRoom,
    NewWorkshop,
};
use crate::storage::StoreError;

const COLUMNS: &str = "workshop_id, slug, name, write_key, allowed_origins, created_at, revoked_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Workshop, String)> {
    let origins: String = r.get(4)?;
    Ok((
        Workshop {
            id: r.get(0)?,
            slug: r.get(1)?,
            name: r.get(2)?,
            write_key: r.get(3)?,
            allowed_origins: Vec::new(),
            revoked_at: r.get(6)?,
        },
        origins,
    ))
}

fn parsed((mut workshop, origins): (Workshop, String)) -> Result<Workshop, SqliteError> {
    workshop.allowed_origins = origins_from_json(&origins)?;
    Ok(workshop)
}

/// Every workshop, by id (`default` first).
pub fn workshops(conn: &Connection) -> Result<Vec<Workshop>, SqliteError> {
    let rows: Vec<(Workshop, String)> = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM workshops ORDER BY workshop_id"))?
        .query_map([], row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(parsed).collect()
}

const ROOM_COLUMNS: &str = "room_id, workshop_id, name, code, opens_at, closes_at";

fn room(r: &rusqlite::Row<'_>) -> rusqlite::Result<Room> {
    Ok(Room {
        id: r.get(0)?,
        workshop_id: r.get(1)?,
        name: r.get(2)?,
        code: r.get(3)?,
        opens_at: r.get(4)?,
        closes_at: r.get(5)?,
    })
}

/// Every room, by id.
pub fn rooms(conn: &Connection) -> Result<Vec<Room>, SqliteError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {ROOM_COLUMNS} FROM rooms ORDER BY room_id"))?
        .query_map([], room)?
        .collect::<Result<_, _>>()?)
}

/// `Storage::move_sessions`, on a connection of its own, in one transaction: the sessions'
/// `session_rooms` rows and the `room_id` their events carry. The writer notices the commit
/// (`PRAGMA data_version`) and reads the sessions' rooms again. Errors: SQLite's.
pub fn move_sessions(
    path: &Path,
    tokens: &[String],
    workshop_id: i64,
    room_id: i64,
) -> Result<Vec<String>, StoreError> {
    let mut conn = admin_connection(path)?;
    let list = serde_json::to_string(tokens).expect("strings serialize");
    let moved = (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let moved = tx
            .prepare(
                "UPDATE session_rooms SET room_id = ?1
                 WHERE workshop_id = ?2 AND session_token IN (SELECT value FROM json_each(?3)) RETURNING session_token",
            )?
            .query_map((room_id, workshop_id, &list), |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let moved_list = serde_json::to_string(&moved).expect("strings serialize");
        tx.execute(
            "UPDATE events SET room_id = ?1 WHERE session_token IN (SELECT value FROM json_each(?2))",
            (room_id, moved_list),
        )?;
        tx.commit()?;
        Ok::<_, rusqlite::Error>(moved)
    })()
    .map_err(SqliteError::from)?;
    Ok(moved)
}

/// `Storage::session_places`: the tokens travel as one JSON array (one statement whatever
/// their number). Errors: SQLite's.
pub fn session_places(conn: &Connection, tokens: &[String]) -> Result<Vec<(String, i64, Option<i64>)>, SqliteError> {
    let list = serde_json::to_string(tokens).expect("strings serialize");
    Ok(conn
        .prepare_cached(
            "SELECT session_token, workshop_id, room_id FROM session_rooms
             WHERE session_token IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([list], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?)
}

/// Creates `new` at `at` (ISO 8601 UTC). Errors: [`StoreError::Conflict`] when its join code
/// is taken; SQLite's.
pub fn create_room(path: &Path, new: &NewRoom, at: &str) -> Result<Room, StoreError> {
    let conn = admin_connection(path)?;
    let row = conn
        .query_row(
            &format!(
                "INSERT INTO rooms (workshop_id, name, code, opens_at, closes_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (code) DO NOTHING RETURNING {ROOM_COLUMNS}"
            ),
            (new.workshop_id, &new.name, &new.code, &new.opens_at, &new.closes_at, at),
            room,
        )
        .optional()
        .map_err(SqliteError::from)?;
    row.ok_or_else(|| StoreError::Conflict(format!("a room with code {:?} exists", new.code)))
}

const TOKEN_COLUMNS: &str = "token_id, name, role, token_hash, rooms, created_at, revoked_at, last_used_at";

type TokenRow = (i64, String, String, String, String, String, Option<String>, Option<String>);

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn helper_token(
    (id, name, role, token_hash, rooms, created_at, revoked_at, last_used_at): TokenRow,
) -> Result<HelperToken, SqliteError> {
    Ok(HelperToken {
        id,
        name,
        role: role_from_text(&role)?,
        token_hash,
        rooms: rooms_from_json(&rooms)?,
        created_at,
        revoked_at,
        last_used_at,
    })
}

/// `Storage::record_token_use`. Errors: SQLite's.
pub fn record_token_use(path: &Path, id: i64, at: &str) -> Result<(), StoreError> {
    let conn = admin_connection(path)?;
    conn.execute("UPDATE helper_tokens SET last_used_at = ?2 WHERE token_id = ?1", (id, at))
        .map_err(SqliteError::from)?;
    Ok(())
}

/// Every helper token, by id.
pub fn helper_tokens(conn: &Connection) -> Result<Vec<HelperToken>, SqliteError> {
    let rows: Vec<TokenRow> = conn
        .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM helper_tokens ORDER BY token_id"))?
        .query_map([], token_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(helper_token).collect()
}

/// Stores `new` at `at` (ISO 8601 UTC). Errors: SQLite's.
pub fn create_helper_token(path: &Path, new: &NewHelperToken, at: &str) -> Result<HelperToken, StoreError> {
    let conn = admin_connection(path)?;
    let row = conn
        .query_row(
            &format!(
                "INSERT INTO helper_tokens (name, role, token_hash, rooms, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 RETURNING {TOKEN_COLUMNS}"
            ),
            (&new.name, new.role.name(), &new.token_hash, rooms_to_json(&new.rooms), at),
            token_row,
        )
        .map_err(SqliteError::from)?;
    Ok(helper_token(row)?)
}

/// Revokes helper token `id` at `at` (the first revocation's time is kept). Returns it, or
/// `None` when there is none with that id.
pub fn revoke_helper_token(path: &Path, id: i64, at: &str) -> Result<Option<HelperToken>, StoreError> {
    let conn = admin_connection(path)?;
    let row = conn
        .query_row(
            &format!(
                "UPDATE helper_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE token_id = ?1 RETURNING {TOKEN_COLUMNS}"
            ),
            (id, at),
            token_row,
        )
        .optional()
        .map_err(SqliteError::from)?;
    Ok(row.map(helper_token).transpose()?)
}

/// A connection for an admin write on the database at `path` (already migrated by the server).
pub(super) fn admin_connection(path: &Path) -> Result<Connection, SqliteError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Creates `new` at `at` (ISO 8601 UTC). Errors: [`StoreError::Conflict`] when the slug is
/// taken; SQLite's.
pub fn create(path: &Path, new: &NewWorkshop, at: &str) -> Result<Workshop, StoreError> {
    let conn = admin_connection(path)?;
    // One statement, as on PostgreSQL: a slug taken meanwhile is a conflict, never an error.
    let row = conn
        .query_row(
            &format!(
                "INSERT INTO workshops (slug, name, write_key, allowed_origins, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
            ),
            (&new.slug, &new.name, &new.write_key, origins_to_json(&new.allowed_origins), at),
            row,
        )
        .optional()
        .map_err(SqliteError::from)?;
    match row {
        Some(row) => Ok(parsed(row)?),
        None => Err(StoreError::Conflict(format!("a workshop with slug {:?} exists", new.slug))),
    }
}

/// Revokes the write key of workshop `slug` at `at` (a revoked key stays revoked: the first
/// time is kept). Returns the workshop, or `None` when there is none with that slug.
pub fn revoke(path: &Path, slug: &str, at: &str) -> Result<Option<Workshop>, StoreError> {
    let conn = admin_connection(path)?;
    conn.execute(
        "UPDATE workshops SET revoked_at = coalesce(revoked_at, ?2) WHERE slug = ?1 AND write_key IS NOT NULL",
        (slug, at),
    )
    .map_err(SqliteError::from)?;
    let row = conn
        .query_row(&format!("SELECT {COLUMNS} FROM workshops WHERE slug = ?1"), [slug], row)
        .optional()
        .map_err(SqliteError::from)?;
    Ok(row.map(parsed).transpose()?)
}

/// `op` on the database file at `path`, for the command line: brings the schema up to date
/// (as the server would) and waits for the write lock, so it works beside a running server,
/// which sees the change within its next refresh. Returns the workshop created or revoked (none
/// when no workshop has the slug), or all of them. Errors: [`SqliteError::NoDatabase`] when the
/// file does not exist; those of [`create`] and SQLite's.
pub fn in_file(path: &Path, op: crate::storage::workshop_rows::WorkshopOp) -> Result<Vec<Workshop>, StoreError> {
    use crate::storage::workshop_rows::WorkshopOp;
    if !path.is_file() {
        return Err(SqliteError::NoDatabase(path.display().to_string()).into());
    }
    let conn = super::open_writer_connection(path, &crate::config::Config::default().completion_event_types)?;
    let now = crate::storage::now_iso();
    match op {
        WorkshopOp::Create(new) => Ok(vec![create(path, &new, &now)?]),
        WorkshopOp::Revoke(slug) => Ok(revoke(path, &slug, &now)?.into_iter().collect()),
        WorkshopOp::List => Ok(workshops(&conn)?),
    }
}

/// `op` on the database file at `path`, for the command line (as [`in_file`]): the rooms and
/// helper tokens after it, and what it made. Errors: [`SqliteError::NoDatabase`] when the file
/// does not exist; [`StoreError::Conflict`] for a room code taken; SQLite's.
pub fn directory_in_file(
    path: &Path,
    op: crate::storage::workshop_rows::DirectoryOp,
) -> Result<crate::storage::workshop_rows::DirectoryRows, StoreError> {
    use crate::storage::workshop_rows::{DirectoryOp, DirectoryRows};
    if !path.is_file() {
        return Err(SqliteError::NoDatabase(path.display().to_string()).into());
    }
    let conn = super::open_writer_connection(path, &crate::config::Config::default().completion_event_types)?;
    let now = crate::storage::now_iso();
    let mut rows = DirectoryRows::default();
    match op {
        DirectoryOp::CreateRoom(new) => rows.room = Some(create_room(path, &new, &now)?),
        DirectoryOp::CreateToken(new) => rows.token = Some(create_helper_token(path, &new, &now)?),
        DirectoryOp::RevokeToken(id) => rows.token = revoke_helper_token(path, id, &now)?,
        DirectoryOp::Read => {}
    }
    rows.workshops = workshops(&conn)?;
    rows.rooms = rooms(&conn)?;
    rows.tokens = helper_tokens(&conn)?;
    Ok(rows)
}
