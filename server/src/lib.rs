//! session-log's server: ingest of workshop events into SQLite or PostgreSQL, and the
//! instructors' query API. [`http`] translates requests, [`domain`] holds the rules, [`storage`] the
//! backends, [`tasks`] the background work.
//!
//! `main.rs` parses flags into a [`Config`] and calls [`run`]; tests call [`run`] with a listener
//! bound to port 0 and their own shutdown signal.
#![deny(missing_docs)]

pub mod config;
pub mod domain;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod rate_limits;
pub mod state;
pub mod storage;
pub mod tasks;
pub mod tls;
pub mod webhooks;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

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
    /// A setting is invalid (the message names it), e.g. an `--allowed-origin` that is not an
    /// origin.
    #[error("{0}")]
    Config(String),
    /// The TLS certificate or key could not be loaded (the message names the file).
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
}

/// Serves the API (and the static demo, when configured) on `listener` until `shutdown` resolves;
/// then stops accepting, finishes the requests in progress, commits every accepted event, and
/// returns. Must run inside an actix (tokio) runtime.
///
/// With `config.tls` it serves HTTPS on `listener` and reads the certificate and key again on
/// `SIGHUP` (unix), keeping the one in force when they cannot be read.
///
/// Errors: [`ServerError::NoInstructorToken`] when `config.instructor_tokens` is empty,
/// [`ServerError::Config`] for an invalid `allowed_origins` value, [`ServerError::Tls`] when the
/// certificate or key cannot be loaded, [`ServerError::Storage`]
/// when the database cannot be opened, [`ServerError::Io`] when serving fails.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), ServerError> {
    if config.instructor_tokens.iter().all(|t| t.is_empty()) {
        return Err(ServerError::NoInstructorToken);
    }
    let mut config = config;
    config.allowed_origins =
        domain::origin::parse_allowed_origins(&config.allowed_origins).map_err(ServerError::Config)?;
    webhooks::check_targets(&config.alert_webhooks, config.alert_webhook_allow_private).map_err(ServerError::Config)?;
    if !config.alert_webhooks.is_empty() && config.alert_webhook_secret.is_none() {
        tracing::warn!(
            "alert webhooks are unsigned: set --alert-webhook-secret so receivers can tell them from forgeries"
        );
    }
    // Before the database: a bad certificate is a clear error at once, naming the file.
    let certificates = config.tls.clone().map(tls::CertResolver::new).transpose()?.map(Arc::new);
    let metrics = Arc::new(metrics::Metrics::new());
    let database = storage::Database::of(&config)
        .map_err(|source| ServerError::Storage { path: "the database URL".to_owned(), source })?;
    let storage = Storage::open(&config, metrics.clone())
        .map_err(|source| ServerError::Storage { path: database.describe(), source })?;
    tracing::info!(backend = storage.backend_name(), database = %database.describe(), "storage open");
    let limits = rate_limits::RateLimits::new(&config);
    let (stop_streams, stopping) = tokio::sync::watch::channel(false);
    let webhooks =
        webhooks::Webhooks::start(config.alert_webhooks.clone(), config.alert_webhook_secret.clone(), metrics.clone());
    let alerting = state::Alerting { logged: tokio::sync::watch::channel(0).0, webhooks };
    let workshops = state::Workshops::default();
    workshops.reload(&storage).await.map_err(|source| ServerError::Storage { path: database.describe(), source })?;
    let state =
        web::Data::from(Arc::new(state::AppState { config, storage, metrics, limits, stopping, alerting, workshops }));
    // Before the first request: the alert rules see every event stored from here on.
    let start = domain::cursor::EventCursor::at(*state.storage.committed().borrow());
    let app_state = state.clone();
    let workers = app_state.config.http_workers;
    let mut server = HttpServer::new(move || {
        let config = &app_state.config;
        let mut app = App::new()
            .app_data(app_state.clone())
            .wrap(http::cors(&config.allowed_origins))
            .wrap(actix_web::middleware::from_fn(http::headers::security_headers))
            .configure(http::configure);
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
    let server = match &certificates {
        Some(resolver) => server.listen_rustls_0_23(listener, resolver.server_config())?,
        None => server.listen(listener)?,
    };
    let server = server.disable_signals().shutdown_timeout(10).run();
    if let Some(resolver) = certificates {
        actix_web::rt::spawn(reload_on_hangup(resolver, state.metrics.clone()));
    }

    let handle = server.handle();
    let housekeeping = state.clone();
    actix_web::rt::spawn(async move {
        let mut every_minute = actix_web::rt::time::interval(std::time::Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            housekeeping.limits.forget_idle_keys();
            memory::release_freed();
        }
    });
    if let Some(retention) = state.config.retention {
        actix_web::rt::spawn(tasks::retention(state.clone(), retention));
    }
    actix_web::rt::spawn(tasks::alerts::evaluate(state.clone(), start));
    actix_web::rt::spawn(tasks::refresh_workshops(state.clone()));
    if let Some(every) = state.config.report_interval.filter(|d| !d.is_zero()) {
        actix_web::rt::spawn(tasks::periodic_report(state.clone(), every));
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

/// Reads the TLS certificate and key again on every `SIGHUP`, until the server stops.
async fn reload_on_hangup(resolver: Arc<tls::CertResolver>, metrics: Arc<metrics::Metrics>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch for SIGHUP: the TLS certificate will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match resolver.reload() {
                Ok(()) => {
                    metrics.tls_reloads.with_label_values(&["ok"]).inc();
                    tracing::info!("SIGHUP: TLS certificate reloaded; new connections get it");
                }
                Err(error) => {
                    metrics.tls_reloads.with_label_values(&["failed"]).inc();
                    tracing::warn!(%error, "SIGHUP: TLS certificate not reloaded; the one in force stays");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (resolver, metrics);
    }
}
