//! The HTTP layer: it translates between HTTP and the [`crate::domain`] rules and the
//! [`crate::storage`] API, and holds no rule of its own. One file per resource; every failure is
//! an [`error::ApiError`], whose `ResponseError` impl picks the status and the JSON body.
//!
//! - [`ingest`]: `POST /api/session-log`; [`alerts`]: alerts, their acknowledgement and stream;
//!   [`help`]: the help queue (claim, unclaim, resolve) and a student's page's help channel;
//!   [`notices`]: notices to a room's pages; [`events`]: the instructors' event query, live tail and
//!   export; [`sessions`]: `/api/sessions`; [`report`]: `/api/report`; [`students`]: one student's
//!   progress and deletion; [`workshops`]: the admin's workshops and write keys; [`rooms`]: the
//!   rooms of a workshop and their join codes; [`tokens`]: the admin's helper tokens;
//!   [`health`]: `/healthz` and `/metrics`; [`openapi`]: the API document.
//! - [`auth`]: the instructor-token extractor; [`params`]: query parameters; [`headers`]: the
//!   security headers of every response; [`error`]: the mapping of every failure to a status and
//!   a JSON body. The rate limits are `crate::rate_limits`.

pub mod alerts;
pub mod auth;
pub mod error;
pub mod events;
pub mod headers;
pub mod health;
pub mod help;
pub mod ingest;
pub mod notices;
pub mod openapi;
pub mod params;
pub mod report;
pub mod room_sessions;
pub mod rooms;
pub mod sessions;
pub mod sse;
pub mod students;
pub mod tokens;
pub mod workshops;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

pub use crate::state::AppState;
use error::ApiError;

/// Registers the API routes (static files are added by `run`, after these). Every path answers
/// its other methods with 405 and an `Allow` header (RFC 9110 §15.5.6); an unknown `/api/` path
/// with a 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)))
        .service(
            web::scope("/api")
                .service(
                    resource("/session-log", "GET, POST")
                        .route(web::post().to(ingest::post_events))
                        .route(web::get().to(events::get_events)),
                )
                .service(resource("/session-log/help", "GET").route(web::get().to(help::student_help)))
                .service(resource("/session-log/help/cancel", "POST").route(web::post().to(help::cancel_help)))
                .service(resource("/session-log/stream", "GET").route(web::get().to(events::stream_events)))
                .service(resource("/session-log/export", "GET").route(web::get().to(events::export_events)))
                .service(resource("/sessions", "GET").route(web::get().to(sessions::get_sessions)))
                .service(resource("/report", "GET").route(web::get().to(report::get_report)))
                .service(resource("/alerts", "GET").route(web::get().to(alerts::get_alerts)))
                .service(resource("/alerts/stream", "GET").route(web::get().to(alerts::stream_alerts)))
                .service(resource("/alerts/{id}/ack", "POST").route(web::post().to(alerts::acknowledge)))
                .service(resource("/alerts/{id}/mute", "POST").route(web::post().to(alerts::mute)))
                .service(resource("/alerts/{id}/claim", "POST").route(web::post().to(help::claim)))
                .service(resource("/alerts/{id}/unclaim", "POST").route(web::post().to(help::unclaim)))
                .service(resource("/alerts/{id}/resolve", "POST").route(web::post().to(help::resolve)))
                .service(
                    resource("/students/{email}", "GET, DELETE")
                        .route(web::get().to(students::get_student))
                        .route(web::delete().to(students::delete_student)),
                )
                .service(
                    resource("/workshops", "GET, POST")
                        .route(web::get().to(workshops::list_workshops))
                        .route(web::post().to(workshops::create_workshop)),
                )
                .service(
                    resource("/workshops/{slug}/revoke", "POST").route(web::post().to(workshops::revoke_write_key)),
                )
                .service(resource("/workshops/{slug}/rooms", "POST").route(web::post().to(rooms::create_room)))
                .service(resource("/rooms", "GET").route(web::get().to(rooms::list_rooms)))
                .service(
                    resource("/rooms/{code}/notices", "GET, POST")
                        .route(web::get().to(notices::list_notices))
                        .route(web::post().to(notices::post_notice)),
                )
                .service(resource("/rooms/{code}/sessions", "POST").route(web::post().to(room_sessions::move_sessions)))
                .service(
                    resource("/tokens", "GET, POST")
                        .route(web::get().to(tokens::list_tokens))
                        .route(web::post().to(tokens::create_token)),
                )
                .service(resource("/tokens/{id}", "DELETE").route(web::delete().to(tokens::revoke_token)))
                .service(resource("/openapi.json", "GET").route(web::get().to(openapi::openapi_json)))
                .default_service(web::to(|req: HttpRequest| async move {
                    Err::<HttpResponse, _>(ApiError::NotFound(format!("no such endpoint: {}", req.path())))
                })),
        );
}

/// A resource at `path` whose methods are `allow` (for the 405's `Allow` header).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { method: req.method().to_string(), allow })
    }))
}

/// CORS: workshop pages live on other origins, so by default any origin may POST events and (with
/// a token) read them; `allowed_origins` restricts that. No cookies are involved, so no
/// credentials are allowed. `Retry-After` is exposed to scripts (the client honours it) and
/// preflights are cached for a day.
pub fn cors(allowed_origins: &[String]) -> Cors {
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
