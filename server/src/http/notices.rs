//! `POST` and `GET /api/rooms/{code}/notices`: what an instructor tells every page of one room
//! ("the provider is failing for many of you right now; it is not your setup"). Pages receive
//! them through `GET /api/session-log/help` (`onNotice` in the client); the rules are
//! `domain::notice`.

use std::time::{Duration, SystemTime};

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::domain::notice::{Notice, NoticeRequest, MAX_CURRENT};
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::storage::{now_iso, NewNotice};

/// The answer of both endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticesResponse {
    /// Always `true`.
    pub success: bool,
    /// The room's notices that have not expired, newest first (after a `POST`, the new one
    /// first).
    pub notices: Vec<Notice>,
}

/// The room with join code `code`, when `instructor` covers it. Errors: 404 (no such room), 403.
async fn covered_room(state: &AppState, instructor: &Instructor, code: &str) -> Result<(i64, String), ApiError> {
    let room = state
        .workshops
        .room_by_code(&state.storage, code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room with code {code:?}")))?;
    instructor.narrow(Some(vec![room.id]))?;
    Ok((room.id, room.code))
}

/// `POST /api/rooms/{code}/notices` (`{message, minutes}`): tells every page of the room, until
/// it expires (1–600 minutes, default 30). Pages with `onNotice` hear it within their poll
/// interval (see the README's help section); pages of other rooms never do. An assistant's
/// token may not post.
///
/// Errors: 400 (a body that is not `{message: 1–500 characters, minutes?: 1–600}`, naming the
/// field), 401 (no token), 403 (an assistant, or a room the helper token does not cover), 404
/// (no room with that code), 503 (storage).
#[utoipa::path(post, path = "/api/rooms/{code}/notices", tag = "help",
    params(("code" = String, Path, description = "The room's join code (any case; spaces and dashes ignored).")),
    request_body = NoticeRequest,
    responses(
        (status = 201, description = "Posted; the room's current notices, the new one first.", body = NoticesResponse),
        (status = 400, description = "Invalid body, the field named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "An assistant's token, or a room it does not cover.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room with that code.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn post_notice(
    instructor: Instructor,
    code: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    instructor.not_assistant("posting a notice")?;
    let request: NoticeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidParameter { name: "body", reason: e.to_string() })?;
    let (message, minutes) =
        request.check().map_err(|e| ApiError::InvalidParameter { name: e.field, reason: e.reason })?;
    let (_, room) = covered_room(&state, &instructor, &code).await?;
    let expires = SystemTime::now() + Duration::from_secs(u64::from(minutes) * 60);
    let new = NewNotice {
        room: room.clone(),
        message,
        posted_by: instructor.name.clone().unwrap_or_else(|| "instructor".to_owned()),
        posted_at: now_iso(),
        expires_at: humantime::format_rfc3339_millis(expires).to_string(),
    };
    state.storage.post_notice(new).await?;
    let notices = state.storage.notices(room, now_iso(), MAX_CURRENT).await?;
    Ok(HttpResponse::Created().json(NoticesResponse { success: true, notices }))
}

/// `GET /api/rooms/{code}/notices`: the room's notices that have not expired, newest first (at
/// most 20).
///
/// Errors: 401 (no token), 403 (a room the helper token does not cover), 404 (no room with that
/// code), 503 (storage).
#[utoipa::path(get, path = "/api/rooms/{code}/notices", tag = "help",
    params(("code" = String, Path, description = "The room's join code (any case; spaces and dashes ignored).")),
    responses(
        (status = 200, description = "The room's current notices.", body = NoticesResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the helper token does not cover.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room with that code.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn list_notices(
    instructor: Instructor,
    code: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, room) = covered_room(&state, &instructor, &code).await?;
    let notices = state.storage.notices(room, now_iso(), MAX_CURRENT).await?;
    Ok(HttpResponse::Ok().json(NoticesResponse { success: true, notices }))
}
