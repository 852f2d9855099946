//! `GET /api/sessions`: one row per session, from the session summaries.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::domain::cursor::SessionCursor;
use crate::domain::summary::{EndpointStats, Status, StepStats};
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::params::{pairs, parse_limit, parse_time, place_filter};
use crate::state::AppState;
use crate::storage::{iso_ago, SessionQuery};

/// Largest `limit` of `GET /api/sessions`.
pub const MAX_SESSIONS: u32 = 10_000;
/// Default `limit` of `GET /api/sessions`: a page a dashboard renders at once.
pub const DEFAULT_SESSIONS: u32 = 500;

/// `GET /api/sessions`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsResponse {
    /// Always `true`.
    pub success: bool,
    /// `sessions.len()`.
    pub count: usize,
    /// The sessions.
    pub sessions: Vec<SessionView>,
    /// Present when more sessions match: pass it as `cursor` (with the same filters) for the next page.
    #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One row of `GET /api/sessions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The session token.
    pub session_token: String,
    /// Its workshop's slug (`default` for keyless sessions and those stored before workshops).
    pub workshop: Option<String>,
    /// Its room's join code; absent in the workshop's lobby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
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

impl SessionView {
    /// The row of a session whose summary has `status`; its workshop and room named from
    /// `directory`.
    fn of(row: crate::storage::SessionRow, status: Status, directory: &crate::state::Directory) -> SessionView {
        let s = row.summary;
        let placement = row.placement.unwrap_or_default();
        SessionView {
            workshop: directory.workshop(placement.workshop_id).map(|w| w.slug.clone()),
            room: placement.room_id.and_then(|id| directory.rooms.iter().find(|r| r.id == id)).map(|r| r.code.clone()),
            missing_events: s.missing_events(),
            step_name: s.step_name().map(str::to_owned),
            session_token: row.session_token,
            student_email: row.student_email,
            student_name: row.student_name,
            status,
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
        }
    }
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
/// `idle` or `completed`; `limit` 1–10,000 (default 500). When more sessions match, the answer
/// carries `nextCursor`; passing it as `cursor` (same filters) gives the next page. Read from the
/// session summaries, never from the events table.
///
/// Errors: 401 without a token, 400 naming an invalid parameter, 500 for storage.
#[utoipa::path(get, path = "/api/sessions", tag = "instructors",
    params(
        ("status" = Option<Status>, Query, description = "Only sessions with this status."),
        ("studentEmail" = Option<String>, Query, description = "Only this student's sessions."),
        ("room" = Option<String>, Query, description = "Only sessions of the room with this join code (404 when there is none), or `lobby` for the sessions placed in no room (server-wide tokens only)."),
        ("workshop" = Option<String>, Query, description = "Only sessions of the workshop with this slug (404 when there is none)."),
        ("since" = Option<String>, Query, format = DateTime, description = "Only sessions with an event at or after this ISO 8601 time."),
        ("until" = Option<String>, Query, format = DateTime, description = "Only sessions with an event before this ISO 8601 time."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "1–10000, default 500."),
        ("cursor" = Option<String>, Query, pattern = r"^s1\.[0-9]{1,14}\.([0-9a-f]{2}){1,512}$", description = "The nextCursor of the previous page."),
    ),
    responses(
        (status = 200, description = "One row per session, most recently seen first.", body = SessionsResponse),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the token does not cover (helper tokens; for the export, also an assistant's token).", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room or workshop with the `room` or `workshop` given.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_sessions(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut query = SessionQuery { limit: DEFAULT_SESSIONS, ..SessionQuery::default() };
    let mut status = None;
    let params = pairs(req.query_string())?;
    let directory = state.workshops.snapshot();
    (query.rooms, query.workshop) = place_filter(&params, &directory, &instructor)?;
    for (name, value) in params {
        match name.as_str() {
            "studentEmail" => query.student_email = Some(value),
            "since" => query.since = Some(parse_time("since", &value)?),
            "until" => query.until = Some(parse_time("until", &value)?),
            "limit" => query.limit = parse_limit("limit", &value, MAX_SESSIONS)?,
            "cursor" => {
                query.after = Some(
                    SessionCursor::decode(&value)
                        .map_err(|e| ApiError::InvalidParameter { name: "cursor", reason: e.to_string() })?,
                )
            }
            "status" => {
                status = Some(
                    value.parse::<Status>().map_err(|reason| ApiError::InvalidParameter { name: "status", reason })?,
                )
            }
            _ => {}
        }
    }
    // One more than asked says whether there is a next page. A status is computed from the
    // summary, so with one the summaries are read page by page until enough match.
    let wanted = query.limit as usize + 1;
    query.limit = if status.is_some() { MAX_SESSIONS } else { wanted as u32 };
    let active_since = iso_ago(state.config.active_window);
    let final_step = state.config.final_step;
    let mut sessions: Vec<SessionView> = Vec::with_capacity(wanted.min(1024));
    loop {
        let rows = state.storage.sessions(query.clone()).await.map_err(ApiError::from)?;
        let read = rows.len();
        query.after = rows.last().map(|row| SessionCursor {
            last_seen: row.summary.last_seen.clone(),
            session_token: row.session_token.clone(),
        });
        for row in rows {
            let row_status = row.summary.status(&active_since, final_step);
            if status.is_none_or(|wanted| wanted == row_status) && sessions.len() < wanted {
                sessions.push(SessionView::of(row, row_status, &directory));
            }
        }
        if sessions.len() >= wanted || read < query.limit as usize {
            break;
        }
    }
    let next_cursor = (sessions.len() == wanted).then(|| {
        sessions.pop();
        let last = sessions.last().expect("a page holds at least one session");
        SessionCursor { last_seen: last.last_seen.clone(), session_token: last.session_token.clone() }.encode()
    });
    Ok(HttpResponse::Ok().json(SessionsResponse { success: true, count: sessions.len(), sessions, next_cursor }))
}
