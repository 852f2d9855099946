//! Alerts on PostgreSQL: the `alerts` table and the `alert_changes` log (migration V3). Every
//! write takes [`ALERT_ORDER_LOCK`] before it draws change positions and holds it to its commit,
//! so positions become visible in increasing order whichever server writes (as for events).

use deadpool_postgres::Pool;
use deadpool_postgres::{GenericClient, Transaction};

use super::{db_error, sql};
use crate::domain::alerts::{self, Alert, AlertChange, AlertStatus, ChangeKind};
use crate::storage::{Acknowledged, AlertQuery, LoggedChange, StoreError};

/// The transaction-level advisory lock of alert writes.
pub(super) const ALERT_ORDER_LOCK: i64 = 0x5e55_1010_0004;

fn parse(text: &str) -> Result<Alert, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("a stored alert is not valid: {e}")))
}

fn status_text(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Open => "open",
        AlertStatus::Resolved => "resolved",
    }
}

async fn stored(tx: &Transaction<'_>, id: &str) -> Result<Option<Alert>, StoreError> {
    let row = sql::query_opt(tx, "SELECT alert::text FROM alerts WHERE alert_id = $1 FOR UPDATE", &[&id]).await?;
    row.map(|r| parse(r.get(0))).transpose()
}

async fn write(tx: &Transaction<'_>, kind: ChangeKind, alert: Alert) -> Result<LoggedChange, StoreError> {
    let text = serde_json::to_string(&alert).map_err(|e| StoreError::Internal(e.to_string()))?;
    sql::execute(
        tx,
        "INSERT INTO alerts (alert_id, status, opened_at, alert) VALUES ($1, $2, $3, $4::text::json)
         ON CONFLICT (alert_id) DO UPDATE SET status = excluded.status, alert = excluded.alert",
        &[&alert.id, &status_text(alert.status), &alert.opened_at, &text],
    )
    .await?;
    let change = AlertChange { kind, alert };
    let text = serde_json::to_string(&change).map_err(|e| StoreError::Internal(e.to_string()))?;
    let row = sql::query_one(
        tx,
        "INSERT INTO alert_changes (alert_id, change) VALUES ($1, $2::text::json) RETURNING change_id",
        &[&change.alert.id, &text],
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

/// `Storage::record_alert_changes`.
pub(super) async fn record(pool: &Pool, changes: Vec<AlertChange>) -> Result<Vec<LoggedChange>, StoreError> {
    in_transaction(pool, move |tx| {
        Box::pin(async move {
            let mut logged = Vec::with_capacity(changes.len());
            for AlertChange { kind, mut alert } in changes {
                if let Some(before) = stored(tx, &alert.id).await? {
                    alerts::merge_stored(&mut alert, &before);
                }
                logged.push(write(tx, kind, alert).await?);
            }
            Ok(logged)
        })
    })
    .await
}

/// `Storage::acknowledge_alert`.
pub(super) async fn acknowledge(
    pool: &Pool,
    id: String,
    action: alerts::AlertAction,
    at: String,
) -> Result<Option<Acknowledged>, StoreError> {
    in_transaction(pool, move |tx| {
        Box::pin(async move {
            let Some(mut alert) = stored(tx, &id).await? else { return Ok(None) };
            let change = match alerts::act(&mut alert, action, &at) {
                Some(kind) => Some(write(tx, kind, alert.clone()).await?),
                None => None,
            };
            Ok(Some(Acknowledged { alert, change }))
        })
    })
    .await
}

/// `Storage::alerts`.
pub(super) async fn query(client: &impl GenericClient, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
    let status = query.status.map(status_text);
    let limit = i64::from(query.limit);
    let rows = sql::query(
        client,
        "SELECT alert::text FROM alerts
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR opened_at >= $2)
             ORDER BY opened_at DESC, alert_id DESC LIMIT $3",
        &[&status, &query.since, &limit],
    )
    .await?;
    rows.iter().map(|r| parse(r.get(0))).collect()
}

/// `Storage::newest_alert_change`.
pub(super) async fn newest_change(client: &impl GenericClient) -> Result<i64, StoreError> {
    let row = sql::query_one(client, "SELECT coalesce(max(change_id), 0) FROM alert_changes", &[]).await?;
    Ok(row.get(0))
}

/// `Storage::alert_changes`.
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
    rows.iter()
        .map(|r| {
            let change: AlertChange = serde_json::from_str(r.get(1))
                .map_err(|e| StoreError::Internal(format!("a stored alert change is not valid: {e}")))?;
            Ok((r.get(0), change))
        })
        .collect()
}
