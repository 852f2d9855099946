//! The `workshops` table on SQLite. Reads go through the reader pool; the rare admin writes
//! open a connection of their own that waits for the write lock (busy timeout), like the
//! command line's, so they never queue behind (or ahead of) the writer's group commits.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{SqliteError, BUSY_TIMEOUT};
use crate::domain::workshop::Workshop;
use crate::storage::workshop_rows::{origins_from_json, origins_to_json, NewWorkshop};
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

/// A connection for an admin write on the database at `path` (already migrated by the server).
fn admin_connection(path: &Path) -> Result<Connection, SqliteError> {
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
