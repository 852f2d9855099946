//! HTTP handlers: routes, instructor authentication, body reading, query parameters.
//!
//! Handlers only translate between HTTP and [`crate::ingest`] / [`crate::storage`]; every failure
//! is an [`ApiError`], whose `ResponseError` impl picks the status and the JSON body.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use session_log_protocol::{BatchResponse, LoggedResponse, QueryResponse};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::error::ApiError;
use crate::ingest::{parse_body, Parsed};
use crate::storage::{query_events, EventQuery, Storage, StorageError};

/// Default `limit` of `GET /api/session-log` (events).
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` of `GET /api/session-log` (events).
pub const MAX_LIMIT: u32 = 1000;

/// What every handler shares.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// The database.
    pub storage: Storage,
}

/// Registers the API routes (static files are added by `run`, after these).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).service(
        web::scope("/api")
            .service(
                web::resource("/session-log")
                    .route(web::post().to(post_events))
                    .route(web::get().to(get_events))
                    .default_service(web::to(|req: HttpRequest| async move {
                        Err::<HttpResponse, _>(ApiError::NotFound(format!(
                            "{} {} (use GET or POST)",
                            req.method(),
                            req.path()
                        )))
                    })),
            )
            .default_service(web::to(|req: HttpRequest| async move {
                Err::<HttpResponse, _>(ApiError::NotFound(req.path().to_owned()))
            })),
    );
}

/// `GET /healthz`: `{"success": true, "status": "ok"}` while the server runs.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"success": true, "status": "ok"}))
}

/// `POST /api/session-log`: one event (answers the reference's
/// `{"success": true, "message": "Event logged successfully"}`) or a batch `{"events": [...]}`
/// (answers `{"success": true, "accepted": N, "rejected": [...]}`), as `application/json` or
/// `text/plain` (beacons). Answers only after the events are committed.
///
/// Errors: 400 (empty, malformed or invalid body, naming the field), 413 (body or batch too
/// large), 415 (other content types), 503 with `Retry-After` (overloaded or shutting down).
async fn post_events(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_content_type(&req)?;
    let body = read_body(&req, payload, state.config.max_body_bytes).await?;
    match parse_body(&body, &state.config)? {
        Parsed::Single(event) => {
            state.storage.insert(vec![event]).await.map_err(storage_error)?;
            Ok(HttpResponse::Ok().json(LoggedResponse::default()))
        }
        Parsed::Batch { valid, rejected } => {
            let accepted = valid.len();
            let inserted = state.storage.insert(valid).await.map_err(storage_error)?;
            Ok(HttpResponse::Ok().json(BatchResponse {
                success: true,
                accepted,
                duplicates: inserted.duplicates,
                rejected,
            }))
        }
    }
}

fn storage_error(error: StorageError) -> ApiError {
    match error {
        StorageError::Busy | StorageError::WriterGone => ApiError::ShuttingDown,
        other => ApiError::Storage(other),
    }
}

/// JSON and plain text (what `sendBeacon` sends for a string) are accepted; so is a missing
/// Content-Type. Errors: [`ApiError::UnsupportedMediaType`].
fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else { return Ok(()) };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/plain" => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(text.to_owned())),
    }
}

/// Reads the body, refusing it as soon as it exceeds `limit` bytes (before reading anything when
/// Content-Length says so). Errors: [`ApiError::BodyTooLarge`], [`ApiError::MalformedJson`] when
/// the connection breaks mid-body.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedJson(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Proof that the request carries a configured instructor token (`Authorization: Bearer <token>`),
/// compared in constant time. Rejects with [`ApiError::Unauthorized`].
pub struct Instructor;

impl FromRequest for Instructor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Instructor, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let tokens = req.app_data::<web::Data<AppState>>().map(|s| &s.config.instructor_tokens);
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = match (tokens, presented) {
            (Some(tokens), Some(presented)) => tokens
                .iter()
                .fold(false, |found, token| found | bool::from(token.as_bytes().ct_eq(presented.as_bytes()))),
            _ => false,
        };
        std::future::ready(if ok { Ok(Instructor) } else { Err(ApiError::Unauthorized) })
    }
}

/// Reads the reference's query parameters: `sessionToken`, `studentEmail`, `eventType`, `limit`
/// (1–1000, default 100). Unknown parameters are ignored. Errors: [`ApiError::InvalidParameter`].
pub fn parse_event_query(query_string: &str) -> Result<EventQuery, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query_string)
        .map_err(|e| ApiError::InvalidParameter { name: "query", reason: e.to_string() })?
        .into_inner();
    let mut query = EventQuery { limit: DEFAULT_LIMIT, ..EventQuery::default() };
    for (name, value) in pairs {
        match name.as_str() {
            "sessionToken" => query.session_token = Some(value),
            "studentEmail" => query.student_email = Some(value),
            "eventType" => query.event_type = Some(value),
            "limit" => {
                query.limit = value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    ApiError::InvalidParameter {
                        name: "limit",
                        reason: format!("must be a whole number from 1 to {MAX_LIMIT}, got {value:?}"),
                    }
                })?
            }
            _ => {}
        }
    }
    Ok(query)
}

/// `GET /api/session-log?sessionToken=&studentEmail=&eventType=&limit=`: the reference's query,
/// newest first, answering `{"success": true, "count": N, "events": [...]}`.
///
/// Errors: 401 without an instructor token, 400 for an invalid parameter, 500 for a storage error.
async fn get_events(
    _: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_event_query(req.query_string())?;
    let events = web::block(move || {
        let conn = state.storage.reader()?;
        query_events(&conn, &query)
    })
    .await
    .map_err(|_| ApiError::ShuttingDown)??;
    Ok(HttpResponse::Ok().json(QueryResponse { success: true, count: events.len(), events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query parameters keep the reference's names and defaults; a bad limit names `limit`.
    #[test]
    fn query_parameters() {
        let q = parse_event_query("sessionToken=ws_1&eventType=error&limit=50&other=x").unwrap();
        assert_eq!(q.session_token.as_deref(), Some("ws_1"));
        assert_eq!(q.event_type.as_deref(), Some("error"));
        assert_eq!(q.limit, 50);
        assert_eq!(parse_event_query("").unwrap().limit, 100);
        for bad in ["limit=0", "limit=1001", "limit=ten"] {
            let error = parse_event_query(bad).unwrap_err().to_string();
            assert!(error.starts_with("limit:"), "{error}");
        }
    }
}
