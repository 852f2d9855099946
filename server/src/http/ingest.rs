//! `POST /api/session-log`: reading, decompressing and checking a body, then handing its events to
//! [`crate::domain::validate`] and [`crate::storage`]. Answers only after the commit.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use session_log_protocol::{BatchResponse, LoggedResponse};

use crate::domain::client_addr;
use crate::domain::validate::{parse_body, BodyError, Parsed};
use crate::domain::workshop::{assign_room, check_write_key, Placement};
use crate::http::error::ApiError;
use crate::state::AppState;

/// `POST /api/session-log`: one event (answers the reference's
/// `{"success": true, "message": "Event logged successfully"}`) or a batch `{"events": [...]}`
/// (answers `{"success": true, "accepted": N, "rejected": [...]}`), as `application/json` or
/// `text/plain` (beacons). Answers only after the events are committed.
///
/// The body may carry `writeKey` (a workshop's public write key) and `room` (a room's join code)
/// at its top level, beside `events` or the single event's fields.
///
/// Errors: 400 (empty, malformed or invalid body, naming the field; bad gzip), 401 (a `writeKey`
/// that is unknown or revoked, or none under `--require-write-key`), 403 (an `Origin` that
/// `--allowed-origin`, or the write key's workshop, does not list), 408 (the body did not arrive within the deadline), 413 (body, batch
/// or decompressed body too large), 415 (other content types or encodings), 429 with
/// `Retry-After` (rate limit), 503 with `Retry-After` (overloaded or shutting down).
#[utoipa::path(post, path = "/api/session-log", tag = "ingest",
    request_body(content = PostBody, description = "One event (the reference's shape) or a batch; also, from the package's page-exit beacon, the calls of a page left before its WebAssembly module was ready, `{\"sessionToken\": …, \"calls\": [[name, args, at], …]}` (made into the events the module would have made, then taken as a batch; not a shape for other clients); application/json or text/plain (beacons); gzip Content-Encoding accepted. Either may carry top-level `writeKey` (a workshop's write key) and `room` (a join code), strings of at most 64 bytes."),
    responses(
        (status = 200, description = "Stored (committed): the reference's answer for one event, counts for a batch.", body = PostAnswer),
        (status = 400, description = "Empty, malformed or invalid body, naming the field.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "The writeKey is unknown or revoked, or missing under --require-write-key; nothing was stored.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "The request's Origin is not among --allowed-origin, or not among its write key's workshop's allowed origins.", body = session_log_protocol::ErrorResponse),
        (status = 408, description = "The body did not arrive within the deadline.", body = session_log_protocol::ErrorResponse),
        (status = 413, description = "Body, decompressed body or batch too large.", body = session_log_protocol::ErrorResponse),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Rate limited; see Retry-After.", body = session_log_protocol::ErrorResponse),
        (status = 503, description = "Overloaded or shutting down; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ))]
pub async fn post_events(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = ingest(&req, payload, &state).await;
    if let Err(error) = &result {
        let m = &state.metrics;
        m.requests_refused.with_label_values(&[error.reason()]).inc();
        match error {
            ApiError::Body(BodyError::NoValidEvents(rejected)) => {
                m.events_rejected.with_label_values(&["invalid_event"]).inc_by(rejected.len() as u64)
            }
            ApiError::Body(BodyError::InvalidEvent(_)) => m.events_rejected.with_label_values(&["invalid_event"]).inc(),
            ApiError::RateLimited { key, .. } => m.rate_limited.with_label_values(&[key]).inc(),
            _ => {}
        }
    }
    result
}

async fn ingest(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<HttpResponse, ApiError> {
    // A browser names the page's origin; one that --allowed-origin does not list stores nothing
    // (curl and servers send no Origin, and are not browsers to protect).
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !crate::domain::origin::origin_allowed(&state.config.allowed_origins, origin) {
            return Err(ApiError::OriginNotAllowed(origin.to_owned()));
        }
    }
    let address = request_address(req, state);
    if let Some(address) = address {
        state.limits.check_ip(address)?;
    }
    check_content_type(req)?;
    let limit = state.config.max_body_bytes;
    let deadline = state.config.body_timeout;
    let body = actix_web::rt::time::timeout(deadline, read_body(req, payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout(deadline.as_secs()))??;
    let body = decode_body(req, body, limit)?;
    let (parsed, credentials) = parse_body(&body, &state.config.ingest_limits())?;
    // The write key decides the workshop: unknown, revoked, or sent from an origin its workshop
    // does not allow, nothing is stored.
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let check = |directory: &crate::state::Directory| {
        check_write_key(&directory.workshops, credentials.write_key.as_deref(), origin, state.config.require_write_key)
            .map(|w| w.id)
    };
    let mut directory = state.workshops.snapshot();
    let mut workshop_id = check(&directory);
    // A key or a room made on another server on the same database: read the directory now
    // (at most once a second, whatever clients send) rather than refuse the key or place the
    // session elsewhere until the next refresh.
    let unknown_room = credentials
        .room
        .as_deref()
        .and_then(crate::domain::workshop::normalize_code)
        .is_some_and(|code| !directory.rooms.iter().any(|r| r.code == code));
    let unknown_key = matches!(workshop_id, Err(crate::domain::workshop::KeyError::Unknown(_)));
    if (unknown_key || unknown_room) && matches!(state.workshops.reload_on_miss(&state.storage).await, Ok(true)) {
        directory = state.workshops.snapshot();
        workshop_id = check(&directory);
    }
    let workshop_id = workshop_id?;
    let (mut events, rejected, single) = match parsed {
        Parsed::Single(event) => (vec![event], Vec::new(), true),
        Parsed::Batch { valid, rejected } => (valid, rejected, false),
    };
    // The room a new session joins (a session already placed keeps its room: the writer
    // records only a session's first placement).
    let now = crate::domain::clock::now_iso();
    let placement = Placement {
        workshop_id,
        room_id: assign_room(&directory.rooms, workshop_id, credentials.room.as_deref(), &now),
    };
    for event in &mut events {
        event.placement = placement;
    }
    // A keyed workshop's events count against its key's rate (keyless ones against the
    // address's and the sessions').
    if credentials.write_key.is_some() {
        state.limits.check_key(workshop_id, events.len())?;
    }
    let mut checked: Vec<&str> = Vec::with_capacity(1);
    for event in &events {
        if !checked.contains(&event.session_token.as_str()) {
            state.limits.check_session(&event.session_token)?;
            checked.push(&event.session_token);
        }
    }
    // A help request records the address it came from: the alert rules group a flood by it, and
    // an instructor can mute it.
    if let Some(address) = address {
        let address = address.to_string();
        for event in events.iter_mut().filter(|e| e.event_type == crate::domain::event::HELP_REQUEST) {
            event.event_data = crate::domain::event::with_client_address(&event.event_data, &address);
        }
    }
    let accepted = events.len();
    let redacted: usize = events.iter().map(|e| e.redacted).sum();
    let inserted = state.storage.insert(events).await?;
    let m = &state.metrics;
    m.redacted_values.inc_by(redacted as u64);
    m.batches.inc();
    m.events_accepted.inc_by(accepted as u64);
    m.events_duplicate.inc_by(inserted.duplicates as u64);
    m.events_rejected.with_label_values(&["invalid_event"]).inc_by(rejected.len() as u64);
    if single {
        return Ok(HttpResponse::Ok().json(LoggedResponse::default()));
    }
    Ok(HttpResponse::Ok().json(BatchResponse { success: true, accepted, duplicates: inserted.duplicates, rejected }))
}

/// The address of `req`'s client (see [`client_address`]); `None` without a peer address.
pub(crate) fn request_address(req: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|peer| client_address(req, peer.ip(), &state.config.trusted_proxies))
}

/// The client's address: the peer, or behind a trusted proxy what its forwarding headers say
/// (see [`client_addr::client_address`]).
pub(crate) fn client_address(
    req: &HttpRequest,
    peer: std::net::IpAddr,
    trusted: &[client_addr::IpNet],
) -> std::net::IpAddr {
    if trusted.is_empty() {
        return peer;
    }
    let lines = |name: &str| -> Vec<&str> { req.headers().get_all(name).filter_map(|v| v.to_str().ok()).collect() };
    client_addr::client_address(peer, &lines("x-forwarded-for"), &lines("forwarded"), trusted)
}

/// Undoes `Content-Encoding: gzip`, refusing output over `limit` bytes as soon as it gets there
/// (a small gzip bomb costs at most `limit` bytes of memory). `identity` or no header: the body as
/// is. Errors: [`ApiError::BodyTooLarge`], [`ApiError::BadGzip`], [`ApiError::UnsupportedEncoding`].
fn decode_body(req: &HttpRequest, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let Some(encoding) = req.headers().get(header::CONTENT_ENCODING) else { return Ok(body) };
    let encoding = encoding.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            flate2::read::GzDecoder::new(body.as_slice())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(ApiError::BodyTooLarge { limit });
            }
            Ok(out)
        }
        other => Err(ApiError::UnsupportedEncoding(other.to_owned())),
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

/// Reads the body as sent (still compressed, if it is), refusing it as soon as it exceeds `limit`
/// bytes (before reading anything when Content-Length says so). Errors: [`ApiError::BodyTooLarge`],
/// [`BodyError::MalformedJson`] when the connection breaks mid-body.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::Body(BodyError::MalformedJson(format!("could not read the body: {e}"))))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An event's `eventData` as the document describes it: a JSON object (schema only).
#[derive(utoipa::ToSchema, serde::Serialize)]
#[schema(value_type = Object)]
pub struct EventData(serde_json::Map<String, serde_json::Value>);

/// The body of `POST /api/session-log` (schema only): one event or a batch.
#[derive(utoipa::ToSchema, serde::Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PostBody {
    /// The reference's single event.
    Single(session_log_protocol::Event<EventData>),
    /// `{"events": [...], "dropped": N}`.
    Batch(session_log_protocol::Batch<session_log_protocol::Event<EventData>>),
}

/// The answer to `POST /api/session-log` (schema only).
#[derive(utoipa::ToSchema, serde::Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PostAnswer {
    /// For one event: the reference's answer.
    Single(session_log_protocol::LoggedResponse),
    /// For a batch.
    Batch(session_log_protocol::BatchResponse),
}
