//! The help queue over HTTP. Helpers: `POST /api/alerts/{id}/claim`, `…/unclaim` and
//! `…/resolve` (each with an optional `{note, name, group}`, and a claim's `to` for a hand-over). A student's page, authenticated by
//! its session token alone: `GET /api/session-log/help` (its latest request and its room's
//! notices) and `POST /api/session-log/help/cancel`. The lifecycle's rules are
//! `domain::alerts::queue`; what a request's evidence is, `domain::alerts::evidence`.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::alerts::{
    check_help, clean, fill_queue, Alert, AlertAction, AlertStatus, Evidence, HelpChange, HelpStatus, Label, Rule,
    StudentHelp, NAME_CHARS, NOTE_CHARS,
};
use crate::domain::clock::iso_ms;
use crate::domain::notice::{Notice, MAX_CURRENT};
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::params::{alert_places, pairs, selected};
use crate::state::AppState;
use crate::storage::{iso_ago, now_iso, AlertQuery, EventQuery, Order, SessionQuery};

/// Open alerts read to place a request in its room's queue.
const QUEUE_READ: u32 = 10_000;
/// Events of a session read for its evidence (the newest, within the window).
const EVIDENCE_READ: u32 = 200;

/// The optional body of claim, unclaim and resolve.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelpNote {
    /// A note to the student ("on my way"), at most 280 characters; it reaches their page.
    #[serde(default)]
    pub note: Option<String>,
    /// Who claims or resolves, for a server-wide token (at most 80 characters; default
    /// `instructor`). A helper token always acts under its own name.
    #[serde(default)]
    pub name: Option<String>,
    /// Also the other open requests of the room that share this one's cause (its `help.group`):
    /// one helper answers them all with one note.
    #[serde(default)]
    pub group: bool,
    /// Claim only: hands the request to this helper (at most 80 characters), whoever's token
    /// asks: a hand-over ("Sam knows Twilio"). The student's page names them.
    #[serde(default)]
    pub to: Option<String>,
}

/// The answer of claim, unclaim and resolve.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HelpResponse {
    /// Always `true`.
    pub success: bool,
    /// The help request as it is now.
    pub alert: Alert,
    /// With `group: true`, the other requests of its group as they are now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<Alert>,
}

/// `GET /api/session-log/help`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StudentHelpResponse {
    /// Always `true`.
    pub success: bool,
    /// The session's latest help request, or `null` when it never asked.
    pub help: Option<StudentHelp>,
    /// The notices to its room that have not expired, newest first (at most 20).
    pub notices: Vec<Notice>,
}

/// `POST /api/session-log/help/cancel`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelHelp {
    /// The session whose open request is withdrawn.
    pub session_token: String,
}

/// Which change a helper's endpoint makes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Claim,
    Unclaim,
    Resolve,
}

macro_rules! helper_endpoint {
    ($name:ident, $path:literal, $kind:expr, $what:literal) => {
        #[doc = concat!("`POST ", $path, "`: ", $what, " Body (optional): `{note, name, group, to}`; see [`HelpNote`].")]
        ///
        /// Errors: 400 (a body that is not `HelpNote`), 401 (no token), 403 (a request of a room
        /// the helper token does not cover), 404 (no such alert), 409 (not a help request, or one
        /// resolved or cancelled already), 503 (storage).
        #[utoipa::path(post, path = $path, tag = "help",
            params(("id" = String, Path, description = "The help request's alert id.")),
            request_body(content = Option<HelpNote>, description = "Optional."),
            responses(
                (status = 200, description = "The help request as it is now.", body = HelpResponse),
                (status = 400, description = "Invalid body.", body = session_log_protocol::ErrorResponse),
                (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
                (status = 403, description = "A request of a room the helper token does not cover.", body = session_log_protocol::ErrorResponse),
                (status = 404, description = "No such alert.", body = session_log_protocol::ErrorResponse),
                (status = 409, description = "Not a help request, or resolved or cancelled already.", body = session_log_protocol::ErrorResponse),
                (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
            ),
            security(("bearer" = [])))]
        pub async fn $name(
            instructor: Instructor,
            id: web::Path<String>,
            body: web::Bytes,
            state: web::Data<AppState>,
        ) -> Result<HttpResponse, ApiError> {
            change(&instructor, id.into_inner(), &body, $kind, &state).await
        }
    };
}

helper_endpoint!(claim, "/api/alerts/{id}/claim", Kind::Claim,
    "claims the help request for the token's helper, or for the helper named in `to` (a claimed one is handed over); the student's page shows who is coming.");
helper_endpoint!(
    unclaim,
    "/api/alerts/{id}/unclaim",
    Kind::Unclaim,
    "puts a claimed help request back in the queue, at its first place."
);
helper_endpoint!(
    resolve,
    "/api/alerts/{id}/resolve",
    Kind::Resolve,
    "resolves the help request (the note reaches the student)."
);

/// Makes the change of `kind` to help request `id` (and, with `group`, to the other open
/// requests of its room that share its cause), publishes each change and answers them.
async fn change(
    instructor: &Instructor,
    id: String,
    body: &[u8],
    kind: Kind,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let body: HelpNote = if body.iter().all(u8::is_ascii_whitespace) {
        HelpNote::default()
    } else {
        serde_json::from_slice::<Option<HelpNote>>(body)
            .map_err(|e| ApiError::InvalidParameter { name: "body", reason: e.to_string() })?
            .unwrap_or_default()
    };
    let note = clean(body.note.as_deref(), NOTE_CHARS);
    let name = instructor
        .name
        .clone()
        .or_else(|| clean(body.name.as_deref(), NAME_CHARS))
        .unwrap_or_else(|| "instructor".to_owned());
    let change = match kind {
        Kind::Claim => HelpChange::Claim { by: clean(body.to.as_deref(), NAME_CHARS).unwrap_or(name), note },
        Kind::Unclaim => HelpChange::Unclaim { note },
        Kind::Resolve => HelpChange::Resolve { by: Some(name), note },
    };
    let query = AlertQuery { id: Some(id.clone()), limit: 1, ..AlertQuery::default() };
    let alert = state
        .storage
        .alerts(query)
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id:?}")))?;
    if !selected(&alert, &alert_places(&[], state, instructor)?) {
        return Err(ApiError::OutOfScope("a help request of that room".into()));
    }
    check_help(&alert, &change).map_err(|refusal| ApiError::Conflict(refusal.to_string()))?;
    let mut ids = vec![id];
    if body.group {
        ids.extend(group_members(state, &alert).await?);
    }
    let mut answered = Vec::with_capacity(ids.len());
    for id in ids {
        let done = state.storage.acknowledge_alert(id, AlertAction::Help(change.clone()), now_iso()).await?;
        if let Some(done) = done {
            if let Some(logged) = done.change {
                state.alerting.publish(&[logged], &state.metrics);
            }
            answered.push(done.alert);
        }
    }
    let mut answered = answered.into_iter();
    let alert = answered.next().ok_or_else(|| ApiError::NotFound("the help request went away".into()))?;
    Ok(HttpResponse::Ok().json(HelpResponse { success: true, alert, group: answered.collect() }))
}

/// The ids of the other open help requests of `alert`'s room whose session's latest error or
/// failing endpoint is the same as its session's.
async fn group_members(state: &AppState, alert: &Alert) -> Result<Vec<String>, ApiError> {
    let mut queue = room_queue(state, &Label::of(alert)).await?;
    let causes = evidence_of(state, &mut queue).await?;
    let token = alert.session_tokens.first().cloned().unwrap_or_default();
    let Some(cause) = causes.get(&token) else { return Ok(Vec::new()) };
    Ok(queue
        .iter()
        .filter(|a| a.id != alert.id)
        .filter(|a| a.session_tokens.first().and_then(|t| causes.get(t)) == Some(cause))
        .map(|a| a.id.clone())
        .collect())
}

/// The open help requests of the room (or lobby) `label`.
async fn room_queue(state: &AppState, label: &Label) -> Result<Vec<Alert>, ApiError> {
    let query = AlertQuery {
        status: Some(AlertStatus::Open),
        limit: QUEUE_READ,
        rooms: label.room.clone().map(|code| vec![code]),
        workshop: Some(label.workshop.clone()),
        ..AlertQuery::default()
    };
    let mut alerts = state.storage.alerts(query).await?;
    alerts.retain(|a| a.rule == Rule::HelpRequest && Label::of(a) == *label);
    Ok(alerts)
}

/// Fills in the `evidence` of every open help request among `alerts` and answers each session's
/// cause (its latest error type or failing endpoint). Reads each session's summary and its
/// events of the evidence window, and each room's step medians once.
pub async fn evidence_of(state: &AppState, alerts: &mut [Alert]) -> Result<HashMap<String, String>, ApiError> {
    let directory = state.workshops.snapshot();
    let since = iso_ago(crate::domain::alerts::EVIDENCE_WINDOW);
    let room_since = iso_ago(state.config.alert_rules.room_window);
    let now = iso_ms(&now_iso());
    let mut medians: HashMap<Option<String>, HashMap<i64, i64>> = HashMap::new();
    let mut causes = HashMap::new();
    for alert in alerts.iter_mut().filter(|a| a.rule == Rule::HelpRequest && a.status == AlertStatus::Open) {
        let Some(token) = alert.session_tokens.first().cloned() else { continue };
        if !medians.contains_key(&alert.room) {
            let rooms: Vec<i64> = alert
                .room
                .as_deref()
                .and_then(|code| directory.room_by_code(code))
                .map(|room| vec![room.id])
                .unwrap_or_default();
            medians.insert(alert.room.clone(), state.storage.step_medians(rooms, room_since.clone()).await?);
        }
        let summary = state
            .storage
            .sessions(SessionQuery { session_token: Some(token.clone()), limit: 1, ..SessionQuery::default() })
            .await?
            .pop()
            .map(|row| row.summary);
        let events = state
            .storage
            .events(EventQuery {
                session_token: Some(token.clone()),
                since: Some(since.clone()),
                order: Order::Desc,
                limit: EVIDENCE_READ,
                ..EventQuery::default()
            })
            .await?;
        let step = summary.as_ref().and_then(|s| s.current_step);
        let typical = step.and_then(|step| medians.get(&alert.room).and_then(|m| m.get(&step)).copied());
        let evidence = Evidence::build(summary.as_ref(), &events, typical, now);
        if let Some(cause) = &evidence.cause {
            causes.insert(token, cause.clone());
        }
        alert.evidence = Some(evidence);
    }
    Ok(causes)
}

/// Fills in each open help request's queue place, group and evidence (`GET /api/alerts`).
/// `alerts` holds every open alert of the rooms it names.
pub async fn fill_help(state: &AppState, alerts: &mut [Alert]) -> Result<(), ApiError> {
    if !alerts.iter().any(|a| a.rule == Rule::HelpRequest && a.status == AlertStatus::Open) {
        return Ok(());
    }
    let causes = evidence_of(state, alerts).await?;
    fill_queue(alerts, &|token| causes.get(token).cloned());
    Ok(())
}

/// The session token of a student's request: any text (a token no session has reads nothing).
/// Errors: [`ApiError::InvalidParameter`] when it is missing.
fn session_token(value: Option<&str>) -> Result<String, ApiError> {
    let value = value.ok_or(ApiError::InvalidParameter { name: "sessionToken", reason: "is required".into() })?;
    Ok(value.to_owned())
}

/// Refuses a student's request over the per-address rate limit (as ingest does).
fn check_rate(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if let Some(address) = crate::http::ingest::request_address(req, state) {
        state.limits.check_ip(address)?;
    }
    Ok(())
}

/// The latest help request of session `token`, with its queue place filled in.
async fn latest_request(state: &AppState, token: &str) -> Result<Option<Alert>, ApiError> {
    let query = AlertQuery { session: Some(token.to_owned()), limit: 1, ..AlertQuery::default() };
    let Some(latest) = state.storage.alerts(query).await?.pop() else { return Ok(None) };
    if latest.status != AlertStatus::Open {
        return Ok(Some(latest));
    }
    let mut queue = room_queue(state, &Label::of(&latest)).await?;
    fill_queue(&mut queue, &|_| None);
    Ok(queue.into_iter().find(|a| a.id == latest.id).or(Some(latest)))
}

/// The join code of the room session `token` is in, if any.
async fn room_of(state: &AppState, token: &str, request: Option<&Alert>) -> Result<Option<String>, ApiError> {
    if let Some(room) = request.and_then(|a| a.room.clone()) {
        return Ok(Some(room));
    }
    let places = state.storage.session_places(vec![token.to_owned()]).await?;
    let directory = state.workshops.snapshot();
    Ok(places
        .into_iter()
        .find_map(|(_, _, room)| room)
        .and_then(|id| directory.rooms.iter().find(|r| r.id == id).map(|r| r.code.clone())))
}

/// `GET /api/session-log/help?sessionToken=…`: what a student's page is told. The session's
/// latest help request (`{status, position, helper, note, updatedAt, message}`: `position` 1
/// is served next; `null` when it never asked) and the notices to its room that have not
/// expired, newest first. The session token is the only credential: it reads only its own
/// request and its own room's notices. Pages poll it (the client's help channel) while a
/// request is open or a callback is registered; answers are never cached.
///
/// Errors: 400 (no `sessionToken`), 429 (the per-address rate limit, with
/// `Retry-After`), 503 (storage).
#[utoipa::path(get, path = "/api/session-log/help", tag = "help",
    params(("sessionToken" = String, Query, description = "The page's session token.")),
    responses(
        (status = 200, description = "The session's latest help request and its room's notices.", body = StudentHelpResponse),
        (status = 400, description = "No sessionToken.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ))]
pub async fn student_help(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_rate(&req, &state)?;
    let params = pairs(req.query_string())?;
    let token = session_token(params.iter().find(|(n, _)| n == "sessionToken").map(|(_, v)| v.as_str()))?;
    let request = latest_request(&state, &token).await?;
    let notices = match room_of(&state, &token, request.as_ref()).await? {
        Some(room) => state.storage.notices(room, now_iso(), MAX_CURRENT).await?,
        None => Vec::new(),
    };
    let help = request.as_ref().map(StudentHelp::of);
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(StudentHelpResponse { success: true, help, notices }))
}

/// `POST /api/session-log/help/cancel` (`{sessionToken}`): the student withdraws their open
/// help request; it leaves the queue (status `cancelled`) and every helper hears it. Answers
/// the request as the page sees it.
///
/// Errors: 400 (a body that is not `{sessionToken}`), 404 (the session has no open request),
/// 429 (the per-address rate limit), 503 (storage).
#[utoipa::path(post, path = "/api/session-log/help/cancel", tag = "help",
    request_body = CancelHelp,
    responses(
        (status = 200, description = "The request, cancelled.", body = StudentHelpResponse),
        (status = 400, description = "Invalid body.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "The session has no open help request.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ))]
pub async fn cancel_help(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_rate(&req, &state)?;
    let body: CancelHelp = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidParameter { name: "body", reason: e.to_string() })?;
    let token = session_token(Some(&body.session_token))?;
    let query =
        AlertQuery { session: Some(token.clone()), status: Some(AlertStatus::Open), limit: 1, ..AlertQuery::default() };
    let open = state.storage.alerts(query).await?.pop();
    let open = open.filter(|a| crate::domain::alerts::help_state(a).status != HelpStatus::Resolved);
    let Some(open) = open else {
        return Err(ApiError::NotFound("this session has no open help request".into()));
    };
    let done =
        state.storage.acknowledge_alert(open.id.clone(), AlertAction::Help(HelpChange::Cancel), now_iso()).await?;
    let alert = match done {
        Some(done) => {
            if let Some(logged) = done.change {
                state.alerting.publish(&[logged], &state.metrics);
            }
            done.alert
        }
        None => open,
    };
    Ok(HttpResponse::Ok().json(StudentHelpResponse {
        success: true,
        help: Some(StudentHelp::of(&alert)),
        notices: Vec::new(),
    }))
}
