//! Background work of a running server: retention (with archiving) and the periodic report. With
//! several servers on one database, only the one that holds the leader lease
//! (`Storage::is_leader`) runs a pass; the others skip their ticks until they hold it.

pub mod alerts;
pub mod archive;

use actix_web::web;

use crate::domain::report;
use crate::state::AppState;
use crate::storage;

/// Events deleted per retention transaction: small, so ingest commits slip in between.
pub const RETENTION_BATCH_EVENTS: usize = 1000;

/// Deletes events older than `retention`, soon after start and then every `retention_every`, through the writer in
/// transactions of [`RETENTION_BATCH_EVENTS`] (each recomputes its sessions' summaries), yielding
/// between them so ingest never waits long.
pub async fn retention(state: web::Data<AppState>, retention: std::time::Duration) {
    // The first run waits a little (at most a minute), so start-up traffic goes first.
    let first =
        actix_web::rt::time::Instant::now() + state.config.retention_every.min(std::time::Duration::from_secs(60));
    let mut every = actix_web::rt::time::interval_at(first, state.config.retention_every);
    loop {
        every.tick().await;
        if !state.storage.is_leader() {
            continue; // another server on this database runs it
        }
        state.metrics.background_runs.with_label_values(&["retention"]).inc();
        let before = storage::iso_ago(retention);
        let mut total = storage::Removed::default();
        loop {
            let purged = match &state.config.archive_dir {
                Some(dir) => archive_and_purge(&state, dir.clone(), &before).await,
                None => state.storage.purge(before.clone(), RETENTION_BATCH_EVENTS).await,
            };
            match purged {
                Ok(removed) => {
                    total += removed;
                    if removed.events < RETENTION_BATCH_EVENTS as u64 {
                        break;
                    }
                }
                Err(storage::StoreError::Overloaded) => {
                    actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(error) => {
                    tracing::warn!(%error, "retention purge failed; retrying at the next run");
                    break;
                }
            }
            actix_web::rt::task::yield_now().await;
        }
        if total.events > 0 {
            tracing::info!(
                before,
                events = total.events,
                sessions = total.sessions,
                students = total.students,
                "retention purge"
            );
        }
    }
}

/// One retention step with an archive: reads the oldest [`RETENTION_BATCH_EVENTS`] events stored
/// before `before`, writes them to the archive (synced), then purges exactly those. Errors: the
/// read, the archive write ([`storage::StoreError::Internal`] naming it: nothing is purged) or
/// the purge.
async fn archive_and_purge(
    state: &web::Data<AppState>,
    dir: std::path::PathBuf,
    before: &str,
) -> Result<storage::Removed, storage::StoreError> {
    let query = storage::EventQuery {
        until: Some(before.to_owned()),
        order: storage::Order::Asc,
        limit: RETENTION_BATCH_EVENTS as u32,
        ..storage::EventQuery::default()
    };
    let rows = state.storage.events(query).await?;
    if rows.is_empty() {
        return Ok(storage::Removed::default());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    let written = web::block(move || archive::write(&dir, &rows))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(error) = written {
        state.metrics.archive_failures.inc();
        return Err(storage::StoreError::Internal(format!("archive write: {error}")));
    }
    state.metrics.events_archived.inc_by(ids.len() as u64);
    state.storage.purge_ids(before.to_owned(), ids).await
}

/// Reads the workshops again every [`crate::state::Workshops::REFRESH`], so write keys created or
/// revoked by another server or the command line count here too. A failed read keeps the
/// workshops last read (and is logged).
pub async fn refresh_workshops(state: web::Data<AppState>) {
    let mut ticks = tokio::time::interval(crate::state::Workshops::REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(error) = state.workshops.reload(&state.storage).await {
            tracing::warn!(%error, "reading the workshops failed; keeping the last read");
        }
    }
}

/// Appends the report of the sessions seen in the last 24 hours to `reports/report.csv` beside
/// the database, every `every`.
pub async fn periodic_report(state: web::Data<AppState>, every: std::time::Duration) {
    let path = match &state.config.reports_dir {
        Some(dir) => dir.join("report.csv"),
        None => report::csv_path(&state.config.db_path),
    };
    let mut ticks = actix_web::rt::time::interval(every);
    ticks.tick().await; // the first tick is immediate: the first report comes after one interval
    loop {
        ticks.tick().await;
        if !state.storage.is_leader() {
            continue;
        }
        state.metrics.background_runs.with_label_values(&["report"]).inc();
        let since = Some(storage::iso_ago(std::time::Duration::from_secs(86_400)));
        let (window, final_step) = (state.config.active_window, state.config.final_step);
        let place = crate::storage::SessionQuery { since, ..Default::default() };
        let built = state.storage.report(place, window, final_step).await;
        let outcome = match built {
            Ok(report) => report::append_csv(&path, &report).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, path = %path.display(), "periodic report failed");
        }
    }
}
