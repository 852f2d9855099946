//! The instructors' event API. Every handler takes the [`Instructor`] extractor, so each answers
//! 401 without a configured token.
//!
//! - `GET /api/session-log`: the reference's query, plus `since`, `until`, `order` and cursor paging.
//! - `GET /api/session-log/stream`: the same filters as a live tail (Server-Sent Events).
//! - `GET /api/session-log/export`: the same filters as a streamed CSV or NDJSON download.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use session_log_protocol::QueryResponse;

use crate::domain::cursor::EventCursor;
use crate::domain::export::Format;
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::params::{
    event_query, pairs, parse_enum, parse_event_cursor, place_filter, EventFilters, EventPage, ExportOptions,
    TailResume,
};
use crate::http::sse;
use crate::state::AppState;
use crate::storage::{now_iso, EventQuery, EventRow, Order};

/// Events read per page by the live tail and the export.
pub const PAGE_EVENTS: u32 = 1000;

/// `GET /api/session-log`: the reference's query and answer
/// `{"success": true, "count": N, "events": [...]}`, newest first unless `order=asc`. When more
/// events match than `limit`, the answer carries `nextCursor`; passing it as `cursor` (with the
/// same filters and order) continues exactly after the last event returned, also while new
/// events arrive. With `sessionToken` it also carries `missing_events` and `dropped_events`.
///
/// Errors: 401 without an instructor token, 400 naming an invalid parameter, 500 for storage.
#[utoipa::path(get, path = "/api/session-log", tag = "instructors",
    params(EventFilters, EventPage),
    responses(
        (status = 200, description = "The matching events.", body = QueryResponse<serde_json::Value>),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the token does not cover (helper tokens; for the export, also an assistant's token).", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room or workshop with the `room` or `workshop` given.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_events(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string())?;
    let mut query = scoped_query(&params, &instructor, &state)?;
    let limit = query.limit as usize;
    query.limit += 1;
    let (mut events, losses) = state.storage.events_and_losses(query).await.map_err(ApiError::from)?;
    let next_cursor = (events.len() > limit).then(|| {
        events.truncate(limit);
        events.last().map(|e| EventCursor::at(e.event_id).encode()).unwrap_or_default()
    });
    Ok(HttpResponse::Ok().json(QueryResponse {
        success: true,
        count: events.len(),
        events,
        missing_events: losses.map(|(missing, _)| missing),
        dropped_events: losses.map(|(_, dropped)| dropped),
        next_cursor,
    }))
}

/// The event filters of `params` ([`event_query`]), limited to the rooms and workshop they name
/// and to the rooms `instructor`'s token covers ([`place_filter`]). Errors: those of both.
fn scoped_query(
    params: &[(String, String)],
    instructor: &Instructor,
    state: &AppState,
) -> Result<EventQuery, ApiError> {
    let mut query = event_query(params)?;
    (query.rooms, query.workshop) = place_filter(params, &state.workshops.snapshot(), instructor)?;
    Ok(query)
}

/// One Server-Sent Events message for an event: `id` is its cursor (what `Last-Event-ID`
/// resumes from), `event: event`, `data` the event as the query returns it.
fn sse_message(event: &EventRow) -> Vec<u8> {
    let mut out = format!("id: {}\nevent: event\ndata: ", EventCursor::at(event.event_id).encode()).into_bytes();
    let _ = serde_json::to_writer(&mut out, event);
    out.extend_from_slice(b"\n\n");
    out
}

/// `GET /api/session-log/stream`: a live tail as Server-Sent Events (`text/event-stream`), with
/// the filters of `GET /api/session-log` (`limit`, `order` and `cursor` aside). Each event is sent
/// once, oldest first, as `id: <cursor>` / `event: event` / `data: <StoredEvent JSON>`. A
/// `Last-Event-ID` header (or `lastEventId` parameter) resumes after that event with no gap and
/// no repeat; without it the tail starts with the next event stored. A `: heartbeat` comment goes
/// out when nothing has been sent for the heartbeat interval (default 15 s). The stream ends when
/// the server shuts down.
///
/// Errors (before the stream starts): 401 without a token, 400 naming an invalid parameter.
#[utoipa::path(get, path = "/api/session-log/stream", tag = "instructors",
    params(EventFilters, TailResume),
    responses(
        (status = 200, description = "Server-Sent Events: `id: <cursor>`, `event: event`, `data: <StoredEvent JSON>`.", content_type = "text/event-stream", body = String),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the token does not cover (helper tokens; for the export, also an assistant's token).", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room or workshop with the `room` or `workshop` given.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn stream_events(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string())?;
    let mut query = scoped_query(&params, &instructor, &state)?;
    let resume = sse::resume_from(&req, &params, parse_event_cursor)?;
    let mut committed = state.storage.committed();
    let start = resume.unwrap_or_else(|| EventCursor::at(*committed.borrow_and_update()));
    query.order = Order::Asc;
    query.limit = PAGE_EVENTS;
    query.after = Some(start);
    let heartbeat = state.config.sse_heartbeat;
    let stopping = state.stopping.clone();
    struct Tail {
        state: web::Data<AppState>,
        query: EventQuery,
        committed: tokio::sync::watch::Receiver<i64>,
        stopping: tokio::sync::watch::Receiver<bool>,
        heartbeat: Duration,
        opened: bool,
    }
    let tail = Tail { state, query, committed, stopping, heartbeat, opened: false };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        if !tail.opened {
            tail.opened = true;
            return Some((Ok::<_, actix_web::Error>(Bytes::from_static(sse::OPENING)), tail));
        }
        loop {
            if *tail.stopping.borrow() {
                return None;
            }
            // Read the newest committed id before querying: the query's snapshot holds every event
            // up to it, so when fewer than a page match, the tail may move past it.
            let newest = EventCursor::at(*tail.committed.borrow_and_update());
            let query = tail.query.clone();
            let page = tail.state.storage.events(query).await.map_err(ApiError::from);
            let Ok(page) = page else { return None };
            let after = tail.query.after.unwrap_or(EventCursor::START);
            let full = page.len() as u32 >= tail.query.limit;
            let last = page.last().map_or(after, |e| EventCursor::at(e.event_id));
            tail.query.after = Some(if full { last } else { last.max(newest).max(after) });
            if !page.is_empty() {
                let bytes: Vec<u8> = page.iter().flat_map(sse_message).collect();
                return Some((Ok(Bytes::from(bytes)), tail));
            }
            tokio::select! {
                changed = tail.committed.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = tail.stopping.changed() => return None,
                _ = tokio::time::sleep(tail.heartbeat) => {
                    return Some((Ok(Bytes::from_static(sse::HEARTBEAT)), tail));
                }
            }
        }
    });
    Ok(sse::response(stream))
}

/// `GET /api/session-log/export?format=csv|ndjson`: every event matching the filters of
/// `GET /api/session-log` (`limit` aside; `order` defaults to `asc`), streamed page by page
/// (1,000 events a page), so memory does not grow with the export. CSV has a header row and the
/// query's field names as columns, with cells that start with `=`, `+`, `-`, `@`, tab or CR
/// prefixed by `'` (formula injection); NDJSON is one `StoredEvent` object per line.
///
/// Errors (before the stream starts): 401 without a token, 400 naming an invalid parameter
/// (`format` is required).
#[utoipa::path(get, path = "/api/session-log/export", tag = "instructors",
    params(EventFilters, ExportOptions),
    responses(
        (status = 200, description = "The events, streamed as an attachment.", content(
            (String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the token does not cover (helper tokens; for the export, also an assistant's token).", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room or workshop with the `room` or `workshop` given.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn export_events(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    instructor.not_assistant("export")?;
    let params = pairs(req.query_string())?;
    let format = match params.iter().find(|(name, _)| name == "format") {
        Some((_, value)) => parse_enum::<Format>("format", value, "csv or ndjson")?,
        None => return Err(ApiError::InvalidParameter { name: "format", reason: "must be csv or ndjson".into() }),
    };
    let mut query = scoped_query(&params, &instructor, &state)?;
    if !params.iter().any(|(name, _)| name == "order") {
        query.order = Order::Asc;
    }
    query.limit = PAGE_EVENTS;
    let first = Bytes::from(format.preamble());
    let pages = futures_util::stream::unfold(Some(query), move |query| {
        let state = state.clone();
        async move {
            let query = query?;
            let current = query.clone();
            let page = match state.storage.events(current).await.map_err(ApiError::from) {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "export failed mid-stream");
                    return Some((Err(actix_web::Error::from(error)), None));
                }
            };
            if page.is_empty() {
                return None;
            }
            let next = (page.len() as u32 == query.limit)
                .then(|| EventQuery { after: page.last().map(|e| EventCursor::at(e.event_id)), ..query });
            Some((Ok(Bytes::from(format.page(&page))), next))
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::once(async move { Ok(first) }), pages);
    let stamp = now_iso().replace([':', '.'], "-");
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"session-log-{stamp}.{}\"", format.extension()),
        ))
        .streaming(stream))
}
