//! The instructors' alerts: `GET /api/alerts`, `POST /api/alerts/{id}/ack` and the alert stream
//! `GET /api/alerts/stream` (Server-Sent Events). Every handler takes [`Instructor`].

use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::domain::alerts::{rank, Alert, AlertAction, AlertStatus};
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::params::{alert_places, pairs, parse_enum, parse_limit, parse_time, selected};
use crate::http::sse;
use crate::state::AppState;
use crate::storage::{now_iso, AlertQuery, LoggedChange};

/// Largest (and default) number of alerts `GET /api/alerts` answers.
pub const MAX_ALERTS: u32 = 1000;
/// Open alerts read to rank them (far more than a room's open episodes).
const OPEN_RANKED: u32 = 10_000;
/// Changes read per page by the alert stream.
const PAGE_CHANGES: u32 = 500;
/// How often an alert stream reads the change log without a local wake-up (changes logged by
/// another server on the same database).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// `status=` of `GET /api/alerts`.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// Open alerts (the default).
    Open,
    /// Resolved alerts.
    Resolved,
    /// Both.
    All,
}

/// `GET /api/alerts`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertsResponse {
    /// Always `true`.
    pub success: bool,
    /// The alerts, ranked (`domain::alerts::rank`): open before resolved; open alerts help
    /// requests first, then the other critical ones, then warnings, then `info` notices, each
    /// by `lastSeenAt`, newest first; resolved alerts by `openedAt`, newest first.
    pub alerts: Vec<Alert>,
}

/// `POST /api/alerts/{id}/ack`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AckResponse {
    /// Always `true`.
    pub success: bool,
    /// The alert as it is now.
    pub alert: Alert,
}

/// `GET /api/alerts?status=open|resolved|all&since=&limit=`: the alerts in the order an
/// instructor reads them (`domain::alerts::rank`): open alerts first, help requests on top, then
/// the other critical alerts, warnings and `info` notices, each newest first by `lastSeenAt`;
/// then resolved alerts, newest first by `openedAt`. `status` defaults to `open`, `since`
/// (ISO 8601) keeps alerts opened at or after it, `limit` 1–1000 (default 1000) cuts the ranked
/// list.
///
/// Errors: 401 without a token, 400 naming an invalid parameter, 503/500 for storage.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts",
    params(
        ("status" = Option<StatusFilter>, Query, description = "open (default), resolved or all."),
        ("since" = Option<String>, Query, format = DateTime, description = "Only alerts opened at or after this ISO 8601 time."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 1000."),
        ("room" = Option<String>, Query, description = "Only alerts of the room with this join code (404 when there is none), or `lobby` for the alerts of sessions placed in no room (server-wide tokens only). A helper token reads only its rooms' alerts."),
        ("workshop" = Option<String>, Query, description = "Only alerts of the workshop with this slug (404 when there is none)."),
    ),
    responses(
        (status = 200, description = "The alerts, ranked: open first (help requests, critical, warning, info; each newest first), then resolved, newest first.", body = AlertsResponse),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the helper token does not cover.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room with that code, or no workshop with that slug.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_alerts(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string())?;
    let (rooms, workshop) = alert_places(&params, &state, &instructor)?;
    let mut query =
        AlertQuery { status: Some(AlertStatus::Open), limit: MAX_ALERTS, rooms, workshop, ..AlertQuery::default() };
    for (name, value) in params {
        match name.as_str() {
            "status" => {
                query.status = match parse_enum("status", &value, "open, resolved or all")? {
                    StatusFilter::Open => Some(AlertStatus::Open),
                    StatusFilter::Resolved => Some(AlertStatus::Resolved),
                    StatusFilter::All => None,
                }
            }
            "since" => query.since = Some(parse_time("since", &value)?),
            "limit" => query.limit = parse_limit("limit", &value, MAX_ALERTS)?,
            _ => {}
        }
    }
    // Open alerts are few (one per episode) and all of them are ranked before the limit cuts;
    // resolved ones come newest first from storage.
    let mut alerts = Vec::new();
    if query.status != Some(AlertStatus::Resolved) {
        let open = AlertQuery { status: Some(AlertStatus::Open), limit: OPEN_RANKED, ..query.clone() };
        alerts = state.storage.alerts(open).await.map_err(ApiError::from)?;
    }
    if query.status != Some(AlertStatus::Open) {
        let resolved = AlertQuery { status: Some(AlertStatus::Resolved), ..query.clone() };
        alerts.extend(state.storage.alerts(resolved).await.map_err(ApiError::from)?);
    }
    // Open help requests get their queue place, group and evidence (their rooms' open
    // requests are all read above).
    crate::http::help::fill_help(&state, &mut alerts).await?;
    rank(&mut alerts);
    alerts.truncate(query.limit as usize);
    Ok(HttpResponse::Ok().json(AlertsResponse { success: true, alerts }))
}

/// `POST /api/alerts/{id}/ack`: marks the alert acknowledged (a help request is resolved too)
/// and answers it; acknowledging again changes nothing.
///
/// Errors: 401 without a token, 404 for an unknown id, 503/500 for storage.
#[utoipa::path(post, path = "/api/alerts/{id}/ack", tag = "alerts",
    params(("id" = String, Path, description = "The alert's id.")),
    responses(
        (status = 200, description = "The alert, acknowledged.", body = AckResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "An alert of a room the helper token does not cover.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such alert.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn acknowledge(
    instructor: Instructor,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    act(id.into_inner(), AlertAction::Acknowledge, &instructor, &state).await
}

/// `POST /api/alerts/{id}/mute`: acknowledges and resolves the alert, and mutes what raised it:
/// a help request's session, a help flood's address. Their later help requests (and, for a
/// session, any alert) are stored but raise nothing; muting again changes nothing.
///
/// Errors: 401 without a token, 404 for an unknown id, 503/500 for storage.
#[utoipa::path(post, path = "/api/alerts/{id}/mute", tag = "alerts",
    params(("id" = String, Path, description = "The alert's id.")),
    responses(
        (status = 200, description = "The alert, muted.", body = AckResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "An assistant's token, or an alert of a room the helper token does not cover.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such alert.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn mute(
    instructor: Instructor,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    instructor.not_assistant("muting")?;
    act(id.into_inner(), AlertAction::Mute, &instructor, &state).await
}

/// Does `action` to alert `id`, publishes the change and answers the alert. A helper token
/// acts only on its rooms' alerts. Errors: [`ApiError::NotFound`] for no such alert;
/// [`ApiError::OutOfScope`] for another room's; storage errors.
async fn act(
    id: String,
    action: AlertAction,
    instructor: &Instructor,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no alert with id {id:?}"));
    if instructor.helper.is_some() {
        let query = AlertQuery { id: Some(id.clone()), limit: 1, ..AlertQuery::default() };
        let alert = state.storage.alerts(query).await.map_err(ApiError::from)?.pop().ok_or_else(not_found)?;
        if !selected(&alert, &alert_places(&[], state, instructor)?) {
            return Err(ApiError::OutOfScope("an alert of that room".into()));
        }
    }
    let done = state.storage.acknowledge_alert(id.clone(), action, now_iso()).await.map_err(ApiError::from)?;
    let done = done.ok_or_else(not_found)?;
    if let Some(change) = done.change {
        state.alerting.publish(&[change], &state.metrics);
    }
    Ok(HttpResponse::Ok().json(AckResponse { success: true, alert: done.alert }))
}

/// One Server-Sent Events message for a logged change: `id` its position, `event: alert`,
/// `data` the alert after the change, with `"change"` its kind (`alert.opened`, …).
fn sse_message((position, change): &LoggedChange) -> Vec<u8> {
    let mut data = serde_json::to_value(&change.alert).unwrap_or_default();
    if let Some(object) = data.as_object_mut() {
        object.insert("change".into(), change.kind.name().into());
    }
    format!("id: {position}\nevent: alert\ndata: {data}\n\n").into_bytes()
}

/// `GET /api/alerts/stream`: Server-Sent Events, one `event: alert` whenever an alert opens,
/// changes or resolves (`data`: the alert, with `change` its kind), oldest first. `Last-Event-ID`
/// (or `lastEventId`) resumes after that change with no gap and no repeat; without it the stream
/// starts with the next change. Heartbeat comments as for the event tail.
///
/// Errors (before the stream starts): 401 without a token, 400 for an invalid `Last-Event-ID`.
#[utoipa::path(get, path = "/api/alerts/stream", tag = "alerts",
    params(
        ("lastEventId" = Option<String>, Query, pattern = r"^[0-9]{1,18}$", description = "Resume after this SSE id (or send the Last-Event-ID header)."),
        ("room" = Option<String>, Query, description = "Only changes of the room with this join code (404 when there is none), or `lobby` (server-wide tokens only). A helper token hears only its rooms."),
        ("workshop" = Option<String>, Query, description = "Only changes of the workshop with this slug (404 when there is none)."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id: <position>`, `event: alert`, `data: <Alert JSON with change>`.", content_type = "text/event-stream", body = String),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the helper token does not cover.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room with that code, or no workshop with that slug.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn stream_alerts(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let parse = |name: &'static str, value: &str| {
        let digits = (1..=18).contains(&value.trim().len()) && value.trim().bytes().all(|b| b.is_ascii_digit());
        value.trim().parse::<i64>().ok().filter(|_| digits).ok_or_else(|| ApiError::InvalidParameter {
            name,
            reason: format!("must be an SSE id this server sent, got {value:?}"),
        })
    };
    let params = pairs(req.query_string())?;
    let places = alert_places(&params, &state, &instructor)?;
    let resume = sse::resume_from(&req, &params, parse)?;
    let after = match resume {
        Some(position) => position,
        // The newest change stored now: the stream starts with the next one.
        None => state.storage.newest_alert_change().await.map_err(ApiError::from)?,
    };
    struct Tail {
        state: web::Data<AppState>,
        after: i64,
        logged: tokio::sync::watch::Receiver<i64>,
        stopping: tokio::sync::watch::Receiver<bool>,
        heartbeat: Duration,
        quiet: Duration,
        opened: bool,
        places: (Option<Vec<String>>, Option<String>),
    }
    let tail = Tail {
        logged: state.alerting.logged.subscribe(),
        stopping: state.stopping.clone(),
        heartbeat: state.config.sse_heartbeat,
        quiet: Duration::ZERO,
        state,
        after,
        opened: false,
        places,
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        if !tail.opened {
            tail.opened = true;
            return Some((Ok::<_, actix_web::Error>(Bytes::from_static(sse::OPENING)), tail));
        }
        loop {
            if *tail.stopping.borrow() {
                return None;
            }
            tail.logged.borrow_and_update();
            let page = tail.state.storage.alert_changes(tail.after, PAGE_CHANGES).await.ok()?;
            if let Some((position, _)) = page.last() {
                tail.after = *position;
                let bytes: Vec<u8> =
                    page.iter().filter(|(_, c)| selected(&c.alert, &tail.places)).flat_map(sse_message).collect();
                if !bytes.is_empty() {
                    tail.quiet = Duration::ZERO;
                    return Some((Ok(Bytes::from(bytes)), tail));
                }
                continue;
            }
            if tail.quiet >= tail.heartbeat {
                tail.quiet = Duration::ZERO;
                return Some((Ok(Bytes::from_static(sse::HEARTBEAT)), tail));
            }
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = tail.logged.changed() => {}
                _ = tail.stopping.changed() => return None,
                _ = tokio::time::sleep(POLL_EVERY.min(tail.heartbeat)) => {}
            }
            tail.quiet += started.elapsed();
        }
    });
    Ok(sse::response(stream))
}
