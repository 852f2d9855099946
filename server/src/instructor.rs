//! The instructors' read and delete API. Every handler takes the [`Instructor`] extractor, so
//! each answers 401 without a configured token.
//!
//! - `GET /api/session-log`: the reference's query, plus `since`, `until`, `order` and cursor paging.
//! - `GET /api/session-log/stream`: the same filters as a live tail (Server-Sent Events).
//! - `GET /api/session-log/export`: the same filters as a streamed CSV or NDJSON download.
//! - `GET /api/sessions`: one row per session, from the session summaries.
//! - `GET /api/report`: the room at a glance.
//! - `DELETE /api/students/{email}`: deletion on request.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use session_log_protocol::QueryResponse;

use crate::api::{AppState, Instructor};
use crate::error::ApiError;
use crate::export::Format;
use crate::report::{self, Report};
use crate::storage::{iso_ago, now_iso, EventQuery, EventRow, Order, SessionQuery, StoreError};
use crate::summary::{EndpointStats, Status, StepStats};

/// Default `limit` of `GET /api/session-log` (events).
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` of `GET /api/session-log` (events).
pub const MAX_LIMIT: u32 = 1000;
/// Events read per page by the live tail and the export.
pub const PAGE_EVENTS: u32 = 1000;
/// Default and largest `limit` of `GET /api/sessions`.
pub const MAX_SESSIONS: u32 = 10_000;

/// Registers the instructor routes inside the `/api` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/session-log/stream", web::get().to(stream_events))
        .route("/session-log/export", web::get().to(export_events))
        .route("/sessions", web::get().to(get_sessions))
        .route("/report", web::get().to(get_report))
        .route("/students/{email}", web::delete().to(delete_student));
}

fn pairs(query_string: &str) -> Result<Vec<(String, String)>, ApiError> {
    Ok(web::Query::<Vec<(String, String)>>::from_query(query_string)
        .map_err(|e| ApiError::InvalidParameter { name: "query", reason: e.to_string() })?
        .into_inner())
}

/// Reads an ISO 8601 time (`2026-11-21T09:30:00Z`, with or without fractions, or a date
/// `2026-11-21` meaning its midnight UTC) as `created_at` text. Errors: the parameter named.
pub fn parse_time(name: &'static str, value: &str) -> Result<String, ApiError> {
    let text = if value.len() == 10 { format!("{value}T00:00:00Z") } else { value.to_owned() };
    humantime::parse_rfc3339_weak(&text).map(|t| humantime::format_rfc3339_millis(t).to_string()).map_err(|e| {
        ApiError::InvalidParameter {
            name,
            reason: format!("must be an ISO 8601 UTC time such as 2026-11-21T09:30:00Z, got {value:?} ({e})"),
        }
    })
}

fn parse_limit(name: &'static str, value: &str, max: u32) -> Result<u32, ApiError> {
    value.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| ApiError::InvalidParameter {
        name,
        reason: format!("must be a whole number from 1 to {max}, got {value:?}"),
    })
}

fn parse_event_id(name: &'static str, value: &str) -> Result<i64, ApiError> {
    value.parse().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError::InvalidParameter {
        name,
        reason: format!("must be a cursor or event id this server returned, got {value:?}"),
    })
}

/// Reads the event filters: the reference's `sessionToken`, `studentEmail`, `eventType`, `limit`
/// (1–1000, default 100), and `since`, `until` (ISO 8601; `since` inclusive, `until`
/// exclusive), `order` (`asc` | `desc`, default `desc`), `cursor` (a `nextCursor`). Unknown
/// parameters are ignored. Errors: [`ApiError::InvalidParameter`] naming the parameter.
pub fn parse_event_query(query_string: &str) -> Result<EventQuery, ApiError> {
    event_query(&pairs(query_string)?)
}

/// [`parse_event_query`] over parameters already split into pairs.
fn event_query(pairs: &[(String, String)]) -> Result<EventQuery, ApiError> {
    let mut query = EventQuery { limit: DEFAULT_LIMIT, ..EventQuery::default() };
    for (name, value) in pairs {
        let value = value.clone();
        match name.as_str() {
            "sessionToken" => query.session_token = Some(value),
            "studentEmail" => query.student_email = Some(value),
            "eventType" => query.event_type = Some(value),
            "limit" => query.limit = parse_limit("limit", &value, MAX_LIMIT)?,
            "since" => query.since = Some(parse_time("since", &value)?),
            "until" => query.until = Some(parse_time("until", &value)?),
            "order" => {
                query.order = match value.as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => {
                        return Err(ApiError::InvalidParameter {
                            name: "order",
                            reason: format!("must be asc or desc, got {value:?}"),
                        })
                    }
                }
            }
            "cursor" => query.after = Some(parse_event_id("cursor", &value)?),
            _ => {}
        }
    }
    Ok(query)
}

/// The event filters shared by the query, the live tail and the export (OpenAPI description only;
/// [`parse_event_query`] reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EventFilters {
    /// Only this session.
    session_token: Option<String>,
    /// Only this student (case-insensitive).
    student_email: Option<String>,
    /// Only this event type.
    event_type: Option<String>,
    /// Only events stored at or after this ISO 8601 time.
    since: Option<String>,
    /// Only events stored before this ISO 8601 time.
    until: Option<String>,
}

/// `GET /api/session-log`: the reference's query and answer
/// `{"success": true, "count": N, "events": [...]}`, newest first unless `order=asc`. When more
/// events match than `limit`, the answer carries `nextCursor`; passing it as `cursor` (with the
/// same filters and order) continues exactly after the last event returned, also while new
/// events arrive. With `sessionToken` it also carries `missing_events` and `dropped_events`.
///
/// Errors: 401 without an instructor token, 400 naming an invalid parameter, 500 for storage.
#[utoipa::path(get, path = "/api/session-log", tag = "instructors",
    params(
        EventFilters,
        ("order" = Option<String>, Query, description = "asc or desc (default desc)."),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100."),
        ("cursor" = Option<String>, Query, description = "The nextCursor of the previous page."),
    ),
    responses(
        (status = 200, description = "The matching events.", body = QueryResponse<serde_json::Value>),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_events(_: Instructor, req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut query = parse_event_query(req.query_string())?;
    let limit = query.limit as usize;
    query.limit += 1;
    let (mut events, losses) = state.storage.events_and_losses(query).await.map_err(ApiError::from)?;
    let next_cursor = (events.len() > limit).then(|| {
        events.truncate(limit);
        events.last().map(|e| e.event_id.to_string()).unwrap_or_default()
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

/// One Server-Sent Events message for an event: `id` is its `event_id` (what `Last-Event-ID`
/// resumes from), `event: event`, `data` the event as the query returns it.
fn sse_message(event: &EventRow) -> Vec<u8> {
    let mut out = format!("id: {}\nevent: event\ndata: ", event.event_id).into_bytes();
    let _ = serde_json::to_writer(&mut out, event);
    out.extend_from_slice(b"\n\n");
    out
}

/// `GET /api/session-log/stream`: a live tail as Server-Sent Events (`text/event-stream`), with
/// the filters of `GET /api/session-log` (`limit`, `order` and `cursor` aside). Each event is sent
/// once, oldest first, as `id: <event_id>` / `event: event` / `data: <StoredEvent JSON>`. A
/// `Last-Event-ID` header (or `lastEventId` parameter) resumes after that event with no gap and
/// no repeat; without it the tail starts with the next event stored. A `: heartbeat` comment goes
/// out when nothing has been sent for the heartbeat interval (default 15 s). The stream ends when
/// the server shuts down.
///
/// Errors (before the stream starts): 401 without a token, 400 naming an invalid parameter.
#[utoipa::path(get, path = "/api/session-log/stream", tag = "instructors",
    params(
        EventFilters,
        ("lastEventId" = Option<i64>, Query, description = "Resume after this event (or send the Last-Event-ID header)."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id: <event_id>`, `event: event`, `data: <StoredEvent JSON>`.", content_type = "text/event-stream", body = String),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn stream_events(
    _: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string())?;
    let mut query = event_query(&params)?;
    let resume = match req.headers().get("last-event-id") {
        Some(value) => Some(parse_event_id("Last-Event-ID", value.to_str().unwrap_or("").trim())?),
        None => match params.iter().find(|(name, _)| name == "lastEventId") {
            Some((_, value)) => Some(parse_event_id("lastEventId", value)?),
            None => None,
        },
    };
    let mut committed = state.storage.committed();
    let start = resume.unwrap_or_else(|| *committed.borrow_and_update());
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
            return Some((Ok::<_, actix_web::Error>(Bytes::from_static(b"retry: 2000\n: connected\n\n")), tail));
        }
        loop {
            if *tail.stopping.borrow() {
                return None;
            }
            // Read the newest committed id before querying: the query's snapshot holds every event
            // up to it, so when fewer than a page match, the tail may move past it.
            let newest = *tail.committed.borrow_and_update();
            let query = tail.query.clone();
            let page = tail.state.storage.events(query).await.map_err(ApiError::from);
            let Ok(page) = page else { return None };
            let after = tail.query.after.unwrap_or(0);
            let full = page.len() as u32 >= tail.query.limit;
            let last = page.last().map_or(after, |e| e.event_id);
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
                    return Some((Ok(Bytes::from_static(b": heartbeat\n\n")), tail));
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
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
    params(
        EventFilters,
        ("format" = String, Query, description = "csv or ndjson."),
        ("order" = Option<String>, Query, description = "asc (default) or desc."),
    ),
    responses(
        (status = 200, description = "The events, streamed as an attachment.", content(
            (String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn export_events(
    _: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string())?;
    let format = match params.iter().find(|(name, _)| name == "format") {
        Some((_, value)) => {
            Format::parse(value).map_err(|reason| ApiError::InvalidParameter { name: "format", reason })?
        }
        None => return Err(ApiError::InvalidParameter { name: "format", reason: "must be csv or ndjson".into() }),
    };
    let mut query = event_query(&params)?;
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
                .then(|| EventQuery { after: page.last().map(|e| e.event_id), ..query });
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

/// `GET /api/sessions`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsResponse {
    /// Always `true`.
    pub success: bool,
    /// `sessions.len()`.
    pub count: usize,
    /// The sessions.
    pub sessions: Vec<SessionView>,
}

/// `DELETE /api/students/{email}`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResponse {
    /// Always `true`.
    pub success: bool,
    /// The email as given.
    pub student_email: String,
    /// What was deleted.
    pub deleted: crate::storage::Removed,
}

/// One row of `GET /api/sessions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The session token.
    pub session_token: String,
    /// The student's email, or `null` for an anonymous session.
    pub student_email: Option<String>,
    /// The student's name, or `null`.
    pub student_name: Option<String>,
    /// `active`, `idle` or `completed`.
    pub status: Status,
    /// The first event's `created_at`.
    pub first_seen: String,
    /// The latest event's `created_at`.
    pub last_seen: String,
    /// When the session last moved to another step (or started): how long it has been stuck.
    pub last_progress_at: String,
    /// The step the student is on.
    pub current_step: Option<i64>,
    /// That step's name (from the latest navigation or event naming it).
    pub step_name: Option<String>,
    /// The highest step reached.
    pub max_step: Option<i64>,
    /// Events stored.
    pub events: u64,
    /// Events by `eventType`.
    pub events_by_type: std::collections::BTreeMap<String, u64>,
    /// `error` events.
    pub errors: u64,
    /// `error` events by `errorType`.
    pub errors_by_type: std::collections::BTreeMap<String, u64>,
    /// `api_call` events that failed.
    pub failed_api_calls: u64,
    /// `api_call` events by endpoint: `{"calls", "failed"}`.
    pub api_calls: std::collections::BTreeMap<String, EndpointCount>,
    /// Numbers missing from the session's `seq` (sent, never arrived).
    pub missing_events: u64,
    /// Events the client reported dropping.
    pub dropped_events: u64,
    /// When the session completed, if it did.
    pub completed_at: Option<String>,
    /// The steps reached, by number: name, first entered (ms since the Unix epoch), visits and
    /// time spent (ms).
    pub steps: std::collections::BTreeMap<i64, StepStats>,
}

/// Calls to one endpoint in one session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointCount {
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub failed: u64,
}

impl From<&EndpointStats> for EndpointCount {
    fn from(stats: &EndpointStats) -> EndpointCount {
        EndpointCount { calls: stats.calls, failed: stats.failed }
    }
}

/// `GET /api/sessions?status=&studentEmail=&since=&until=&limit=`: one row per session
/// ([`SessionView`]), most recently seen first, as `{"success": true, "count": N, "sessions":
/// [...]}`. `since`/`until` keep sessions with an event in that window; `status` is `active`,
/// `idle` or `completed`; `limit` 1–10,000 (default 10,000). Read from the session summaries,
/// never from the events table.
///
/// Errors: 401 without a token, 400 naming an invalid parameter, 500 for storage.
#[utoipa::path(get, path = "/api/sessions", tag = "instructors",
    params(
        ("status" = Option<Status>, Query, description = "Only sessions with this status."),
        ("studentEmail" = Option<String>, Query, description = "Only this student's sessions."),
        ("since" = Option<String>, Query, description = "Only sessions with an event at or after this ISO 8601 time."),
        ("until" = Option<String>, Query, description = "Only sessions with an event before this ISO 8601 time."),
        ("limit" = Option<u32>, Query, description = "1–10000, default 10000."),
    ),
    responses(
        (status = 200, description = "One row per session, most recently seen first.", body = SessionsResponse),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_sessions(
    _: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut query = SessionQuery { limit: MAX_SESSIONS, ..SessionQuery::default() };
    let mut status = None;
    for (name, value) in pairs(req.query_string())? {
        match name.as_str() {
            "studentEmail" => query.student_email = Some(value),
            "since" => query.since = Some(parse_time("since", &value)?),
            "until" => query.until = Some(parse_time("until", &value)?),
            "limit" => query.limit = parse_limit("limit", &value, MAX_SESSIONS)?,
            "status" => {
                status = Some(
                    value.parse::<Status>().map_err(|reason| ApiError::InvalidParameter { name: "status", reason })?,
                )
            }
            _ => {}
        }
    }
    let limit = query.limit as usize;
    if status.is_some() {
        query.limit = u32::MAX;
    }
    let rows = state.storage.sessions(query).await.map_err(ApiError::from)?;
    let active_since = iso_ago(state.config.active_window);
    let final_step = state.config.final_step;
    let sessions: Vec<SessionView> = rows
        .into_iter()
        .filter_map(|row| {
            let s = row.summary;
            let row_status = s.status(&active_since, final_step);
            if status.is_some_and(|wanted| wanted != row_status) {
                return None;
            }
            Some(SessionView {
                missing_events: s.missing_events(),
                step_name: s.step_name().map(str::to_owned),
                session_token: row.session_token,
                student_email: row.student_email,
                student_name: row.student_name,
                status: row_status,
                first_seen: s.first_seen,
                last_seen: s.last_seen,
                last_progress_at: s.last_progress_at,
                current_step: s.current_step,
                max_step: s.max_step,
                events: s.events,
                events_by_type: s.events_by_type,
                errors: s.errors,
                errors_by_type: s.errors_by_type,
                failed_api_calls: s.failed_api_calls,
                api_calls: s.api_calls.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
                dropped_events: s.dropped_events,
                completed_at: s.completed_at,
                steps: s.steps,
            })
        })
        .take(limit)
        .collect();
    Ok(HttpResponse::Ok().json(SessionsResponse { success: true, count: sessions.len(), sessions }))
}

/// Builds the report of the sessions seen in `[since, until)` on a read connection.
pub async fn build_report(
    storage: &crate::storage::Storage,
    since: Option<String>,
    until: Option<String>,
    active_window: Duration,
    final_step: Option<i64>,
) -> Result<Report, StoreError> {
    let query = SessionQuery { since: since.clone(), until: until.clone(), limit: u32::MAX, ..SessionQuery::default() };
    let rows = storage.sessions(query).await?;
    Ok(report::build(&rows, now_iso(), (since, until), &iso_ago(active_window), final_step))
}

/// `GET /api/report?since=&until=`: the room at a glance ([`Report`]) over the sessions with an
/// event in the window (both optional; ISO 8601).
///
/// Errors: 401 without a token, 400 naming an invalid parameter, 500 for storage.
#[utoipa::path(get, path = "/api/report", tag = "instructors",
    params(
        ("since" = Option<String>, Query, description = "Sessions with an event at or after this ISO 8601 time."),
        ("until" = Option<String>, Query, description = "Sessions with an event before this ISO 8601 time."),
    ),
    responses(
        (status = 200, description = "The room at a glance.", body = Report),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_report(_: Instructor, req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (mut since, mut until) = (None, None);
    for (name, value) in pairs(req.query_string())? {
        match name.as_str() {
            "since" => since = Some(parse_time("since", &value)?),
            "until" => until = Some(parse_time("until", &value)?),
            _ => {}
        }
    }
    let (window, final_step) = (state.config.active_window, state.config.final_step);
    let report = build_report(&state.storage, since, until, window, final_step).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `DELETE /api/students/{email}`: deletes the student (email matched case-insensitively), every
/// event of every session they appear in, and those sessions' summaries; answers
/// `{"success": true, "studentEmail": "...", "deleted": {"events": N, "sessions": N, "students": 1}}`.
///
/// Errors: 401 without a token, 404 when no such student is stored, 503 when overloaded or
/// shutting down, 500 for storage.
#[utoipa::path(delete, path = "/api/students/{email}", tag = "instructors",
    params(("email" = String, Path, description = "The student's email (case-insensitive).")),
    responses(
        (status = 200, description = "What was deleted.", body = DeleteResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such student.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn delete_student(
    _: Instructor,
    email: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let email = email.into_inner();
    let removed = state.storage.delete_student(email.clone()).await.map_err(ApiError::from)?;
    if removed.students == 0 {
        return Err(ApiError::NotFound(format!("no student with email {email:?}")));
    }
    tracing::info!(events = removed.events, sessions = removed.sessions, "deleted a student on request");
    Ok(HttpResponse::Ok().json(DeleteResponse { success: true, student_email: email, deleted: removed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query parameters keep the reference's names and defaults; a bad one is named in the error.
    #[test]
    fn query_parameters() {
        let q = parse_event_query("sessionToken=ws_1&eventType=error&limit=50&other=x&order=asc&cursor=7").unwrap();
        assert_eq!(q.session_token.as_deref(), Some("ws_1"));
        assert_eq!(q.event_type.as_deref(), Some("error"));
        assert_eq!((q.limit, q.order, q.after), (50, Order::Asc, Some(7)));
        assert_eq!(parse_event_query("").unwrap().limit, 100);
        assert_eq!(parse_event_query("").unwrap().order, Order::Desc);
        let q = parse_event_query("since=2026-11-21&until=2026-11-21T10:00:00.5Z").unwrap();
        assert_eq!(q.since.as_deref(), Some("2026-11-21T00:00:00.000Z"));
        assert_eq!(q.until.as_deref(), Some("2026-11-21T10:00:00.500Z"));
        for (bad, name) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("since=yesterday", "since"),
            ("until=2026-13-01", "until"),
            ("order=up", "order"),
            ("cursor=abc", "cursor"),
        ] {
            let error = parse_event_query(bad).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{name}:")), "{bad}: {error}");
        }
    }
}
