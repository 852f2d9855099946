//! Alerts on PostgreSQL: the `alerts` table and the `alert_changes` log (migration V3). Every
//! write takes [`ALERT_ORDER_LOCK`] before it draws change positions and holds it to its commit,
//! so positions become visible in increasing order whichever server writes (as for events).

use deadpool_postgres::Pool;
use deadpool_postgres::{GenericClient, Transaction};

use super::{db_error, sql};
use crate::domain::alerts::{Alert, AlertAction, AlertChange};
use crate::storage::alert_rows::{parse_alert, parse_change, status_text, ChangeRows};
use crate::storage::{Acknowledged, AlertQuery, LoggedChange, StoreError};

/// The transaction-level advisory lock of alert writes.
pub(super) const ALERT_ORDER_LOCK: i64 = 0x5e55_1010_0004;

async fn stored(tx: &Transaction<'_>, id: &str) -> Result<Option<Alert>, StoreError> {
    let row = sql::query_opt(tx, "SELECT alert::text FROM alerts WHERE alert_id = $1 FOR UPDATE", &[&id]).await?;
    Ok(row.map(|r| parse_alert(r.get(0))).transpose()?)
}

/// Writes the alert of `rows` and logs its change; returns the logged change.
async fn write(tx: &Transaction<'_>, rows: ChangeRows) -> Result<LoggedChange, StoreError> {
    let change = rows.change;
    sql::execute(
        tx,
        "INSERT INTO alerts (alert_id, status, opened_at, alert, workshop, room, session_token)
         VALUES ($1, $2, $3, $4::text::json, $5, $6, $7)
         ON CONFLICT (alert_id) DO UPDATE SET status = excluded.status, alert = excluded.alert",
        &[
            &change.alert.id,
            &rows.status,
            &change.alert.opened_at,
            &rows.alert_json,
            &rows.workshop,
            &rows.room,
            &rows.session,
        ],
    )
    .await?;
    let row = sql::query_one(
        tx,
        "INSERT INTO alert_changes (alert_id, change) VALUES ($1, $2::text::json) RETURNING change_id",
        &[&change.alert.id, &rows.change_json],
    )
    .await?;
    Ok((row.get(0), change))
}

async fn in_transaction<T>(
    pool: &Pool,
    work: impl for<'t> FnOnce(&'t Transaction<'t>) -> futures_util::future::BoxFuture<'t, Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut client = sql::connection(pool).await?;
    let tx = client.transaction().await.map_err(db_error)?;
    sql::execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&ALERT_ORDER_LOCK]).await?;
    let outcome = work(&tx).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(outcome)
}

/// `Backend::record_alert_changes`.
pub(super) async fn record(pool: &Pool, changes: Vec<AlertChange>) -> Result<Vec<LoggedChange>, StoreError> {
    in_transaction(pool, move |tx| {
        Box::pin(async move {
            let mut logged = Vec::with_capacity(changes.len());
            for change in changes {
                let before = stored(tx, &change.alert.id).await?;
                logged.push(write(tx, ChangeRows::recorded(change, before.as_ref())).await?);
            }
            Ok(logged)
        })
    })
    .await
}

/// `Backend::acknowledge_alert`.
pub(super) async fn acknowledge(
    pool: &Pool,
    id: String,
    action: AlertAction,
    at: String,
) -> Result<Option<Acknowledged>, StoreError> {
    in_transaction(pool, move |tx| {
        Box::pin(async move {
            let Some(alert) = stored(tx, &id).await? else { return Ok(None) };
            let (alert, rows) = ChangeRows::acted(alert, action, &at);
            let change = match rows {
                Some(rows) => Some(write(tx, rows).await?),
                None => None,
            };
            Ok(Some(Acknowledged { alert, change }))
        })
    })
    .await
}

/// `Backend::alerts`.
pub(super) async fn query(client: &impl GenericClient, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
    let status = query.status.map(status_text);
    let limit = i64::from(query.limit);
    let rows = sql::query(
        client,
        "SELECT alert::text FROM alerts
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR opened_at >= $2)
               AND ($4::text[] IS NULL OR room = ANY($4) OR (room IS NULL AND '' = ANY($4))) AND ($5::text IS NULL OR workshop = $5)
               AND ($6::text IS NULL OR alert_id = $6) AND ($7::text IS NULL OR session_token = $7)
             ORDER BY opened_at DESC, alert_id DESC LIMIT $3",
        &[&status, &query.since, &limit, &query.rooms, &query.workshop, &query.id, &query.session],
    )
    .await?;
    rows.iter().map(|r| Ok(parse_alert(r.get(0))?)).collect()
}

/// `Backend::newest_alert_change`.
pub(super) async fn newest_change(client: &impl GenericClient) -> Result<i64, StoreError> {
    let row = sql::query_one(client, "SELECT coalesce(max(change_id), 0) FROM alert_changes", &[]).await?;
    Ok(row.get(0))
}

/// `Backend::alert_changes`.
pub(super) async fn changes(
    client: &impl GenericClient,
    after: i64,
    limit: u32,
) -> Result<Vec<LoggedChange>, StoreError> {
    let rows = sql::query(
        client,
        "SELECT change_id, change::text FROM alert_changes WHERE change_id > $1 ORDER BY change_id LIMIT $2",
        &[&after, &i64::from(limit)],
    )
    .await?;
    rows.iter().map(|r| Ok((r.get(0), parse_change(r.get(1))?))).collect()
}
