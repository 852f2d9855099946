//! session-log's server: ingest of workshop events into SQLite, and the instructors' query API.
//!
//! `main.rs` parses flags into a [`Config`] and calls [`run`]; tests call [`run`] with a listener
//! bound to port 0 and their own shutdown signal.
#![deny(missing_docs)]

pub mod api;
pub mod config;
pub mod error;
pub mod ingest;
pub mod metrics;
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
        /// The database file.
        path: String,
        /// The cause.
        source: storage::StorageError,
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
    let storage = Storage::open(&config, metrics.clone())
        .map_err(|source| ServerError::Storage { path: config.db_path.display().to_string(), source })?;
    let limits = api::RateLimits::new(&config);
    let state = web::Data::from(Arc::new(api::AppState { config, storage, metrics, limits }));
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        let config = &app_state.config;
        let mut app = App::new()
            .app_data(app_state.clone())
            .wrap(cors(&config.allowed_origins))
            .configure(api::routes);
        if let Some(pkg) = config.pkg_dir.as_ref().filter(|d| d.is_dir()) {
            app = app.service(actix_files::Files::new("/pkg", pkg));
        }
        if let Some(www) = config.www_dir.as_ref().filter(|d| d.is_dir()) {
            app = app.service(actix_files::Files::new("/", www).index_file("index.html"));
        }
        app
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(10)
    .run();

    let handle = server.handle();
    let housekeeping = state.clone();
    actix_web::rt::spawn(async move {
        let mut every_minute = actix_web::rt::time::interval(std::time::Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            housekeeping.limits.forget_idle_keys();
        }
    });
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in progress");
        handle.stop(true).await;
    });
    let served = server.await;
    state.storage.close();
    tracing::info!("stopped; every accepted event is committed");
    Ok(served?)
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
