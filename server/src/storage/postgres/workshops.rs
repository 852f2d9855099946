//! The `workshops` table on PostgreSQL, through the pool (admin writes are rare and need no
//! ordering with the event writer).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::sql;
use crate::domain::workshop::Workshop;
use crate::storage::workshop_rows::{origins_from_json, origins_to_json, NewWorkshop};
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    runtime.block_on(async {
        let pool = super::pool::open_pool(url, 1)?;
        super::pool::migrate(&pool).await?;
        let client = sql::connection(&pool).await?;
        match op {
            WorkshopOp::Create(new) => Ok(vec![create(&client, &new).await?]),
            WorkshopOp::Revoke(slug) => Ok(revoke(&client, &slug).await?.into_iter().collect()),
            WorkshopOp::List => workshops(&client).await,
        }
    })
}
