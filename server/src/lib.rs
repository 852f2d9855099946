//! session-log's server: ingest of workshop events into SQLite, and the instructors' query API.
//!
//! `main.rs` parses flags into a [`Config`] and calls [`run`]; tests call [`run`] with a listener
//! bound to port 0 and their own shutdown signal.
#![deny(missing_docs)]

pub mod api;
pub mod archive;
pub mod config;
pub mod error;
pub mod event;
pub mod export;
pub mod ingest;
pub mod instructor;
pub mod metrics;
pub mod openapi;
pub mod report;
pub mod routes;
pub mod storage;
pub mod summary;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::{web, App, HttpServer};

pub use config::Config;
use storage::Storage;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database could not be opened or migrated.
    #[error("database {path}: {source}")]
    Storage {
        /// The database: the SQLite file, or the PostgreSQL URL without its password.
        path: String,
        /// The cause.
        source: storage::StoreError,
    },
    /// The HTTP server failed (binding, accepting).
    #[error("http: {0}")]
    Io(#[from] std::io::Error),
    /// No instructor token is configured.
    #[error("no instructor token configured")]
    NoInstructorToken,
}

/// Serves the API (and the static demo, when configured) on `listener` until `shutdown` resolves;
/// then stops accepting, finishes the requests in progress, commits every accepted event, and
/// returns. Must run inside an actix (tokio) runtime.
///
/// Errors: [`ServerError::NoInstructorToken`] when `config.instructor_tokens` is empty,
/// [`ServerError::Storage`] when the database cannot be opened, [`ServerError::Io`] when serving fails.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), ServerError> {
    if config.instructor_tokens.iter().all(|t| t.is_empty()) {
        return Err(ServerError::NoInstructorToken);
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let database = storage::Database::of(&config)
        .map_err(|source| ServerError::Storage { path: "the database URL".to_owned(), source })?;
    let storage = Storage::open(&config, metrics.clone())
        .map_err(|source| ServerError::Storage { path: database.describe(), source })?;
    tracing::info!(backend = storage.backend_name(), database = %database.describe(), "storage open");
    let limits = api::RateLimits::new(&config);
    let (stop_streams, stopping) = tokio::sync::watch::channel(false);
    let state = web::Data::from(Arc::new(api::AppState { config, storage, metrics, limits, stopping }));
    let app_state = state.clone();
    let workers = app_state.config.http_workers;
    let mut server = HttpServer::new(move || {
        let config = &app_state.config;
        let mut app =
            App::new().app_data(app_state.clone()).wrap(cors(&config.allowed_origins)).configure(routes::configure);
        if let Some(pkg) = config.pkg_dir.as_ref().filter(|d| d.is_dir()) {
            app = app.service(actix_files::Files::new("/pkg", pkg));
        }
        if let Some(www) = config.www_dir.as_ref().filter(|d| d.is_dir()) {
            // `/` is the demo workshop, `/dashboard/` the instructor dashboard (`/dashboard` redirects).
            app = app.service(actix_files::Files::new("/", www).index_file("index.html").redirect_to_slash_directory());
        }
        app
    });
    server = server.workers(workers.unwrap_or_else(config::default_http_workers).max(1));
    let server = server.listen(listener)?.disable_signals().shutdown_timeout(10).run();

    let handle = server.handle();
    let housekeeping = state.clone();
    actix_web::rt::spawn(async move {
        let mut every_minute = actix_web::rt::time::interval(std::time::Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            housekeeping.limits.forget_idle_keys();
        }
    });
    if let Some(retention) = state.config.retention {
        actix_web::rt::spawn(retention_task(state.clone(), retention));
    }
    if let Some(every) = state.config.report_interval.filter(|d| !d.is_zero()) {
        actix_web::rt::spawn(report_task(state.clone(), every));
    }
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in progress");
        let _ = stop_streams.send(true);
        handle.stop(true).await;
    });
    let served = server.await;
    state.storage.close();
    tracing::info!("stopped; every accepted event is committed");
    Ok(served?)
}

/// Events deleted per retention transaction: small, so ingest commits slip in between.
pub const RETENTION_BATCH_EVENTS: usize = 1000;

/// Deletes events older than `retention`, soon after start and then every `retention_every`, through the writer in
/// transactions of [`RETENTION_BATCH_EVENTS`] (each recomputes its sessions' summaries), yielding
/// between them so ingest never waits long.
async fn retention_task(state: web::Data<api::AppState>, retention: std::time::Duration) {
    // The first run waits a little (at most a minute), so start-up traffic goes first.
    let first =
        actix_web::rt::time::Instant::now() + state.config.retention_every.min(std::time::Duration::from_secs(60));
    let mut every = actix_web::rt::time::interval_at(first, state.config.retention_every);
    loop {
        every.tick().await;
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
    state: &web::Data<api::AppState>,
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

/// Appends the report of the sessions seen in the last 24 hours to `reports/report.csv` beside
/// the database, every `every`.
async fn report_task(state: web::Data<api::AppState>, every: std::time::Duration) {
    let path = match &state.config.reports_dir {
        Some(dir) => dir.join("report.csv"),
        None => report::csv_path(&state.config.db_path),
    };
    let mut ticks = actix_web::rt::time::interval(every);
    ticks.tick().await; // the first tick is immediate: the first report comes after one interval
    loop {
        ticks.tick().await;
        let since = Some(storage::iso_ago(std::time::Duration::from_secs(86_400)));
        let (window, final_step) = (state.config.active_window, state.config.final_step);
        let built = instructor::build_report(&state.storage, since, None, window, final_step).await;
        let outcome = match built {
            Ok(report) => report::append_csv(&path, &report).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, path = %path.display(), "periodic report failed");
        }
    }
}

/// CORS: workshop pages live on other origins, so by default any origin may POST events and (with
/// a token) read them; `allowed_origins` restricts that. No cookies are involved, so no
/// credentials are allowed. `Retry-After` is exposed to scripts (the client honours it) and
/// preflights are cached for a day.
fn cors(allowed_origins: &[String]) -> Cors {
    let cors = if allowed_origins.is_empty() {
        Cors::default().allow_any_origin()
    } else {
        allowed_origins.iter().fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
    };
    cors.allowed_methods(["GET", "POST", "DELETE", "OPTIONS"])
        .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::CONTENT_ENCODING])
        .expose_headers([header::RETRY_AFTER])
        .max_age(86_400)
}
