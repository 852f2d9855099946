//! `POST /api/rooms/{code}/sessions`: an instructor puts sessions into a room (from their
//! workshop's lobby, where sessions that sent no code land, or from another of its rooms).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Most sessions one request moves.
pub const MAX_MOVED: usize = 500;

/// `POST /api/rooms/{code}/sessions`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveSessions {
    /// The sessions to move (1–500 tokens).
    #[schema(min_items = 1, max_items = 500)]
    pub session_tokens: Vec<String>,
}

/// `POST /api/rooms/{code}/sessions`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MovedSessions {
    /// Always `true`.
    pub success: bool,
    /// The room's join code.
    pub room: String,
    /// The sessions now in the room.
    pub moved: Vec<String>,
    /// The tokens left as they were: no stored session has them, or theirs belongs to another
    /// workshop (steps differ between workshops, so a session never changes workshop).
    pub not_moved: Vec<String>,
}

/// Moves the body's sessions into the room with join code `code`: their events count in the
/// room's reads at once and in its alert rules within a minute. Server-wide tokens only (a
/// helper token sees no lobby).
///
/// Errors: 400 (a body that is not `{sessionTokens: [1–500 strings]}`), 401 (no token), 403 (a
/// helper token), 404 (no room with that code), 503 (the database is unavailable).
#[utoipa::path(post, path = "/api/rooms/{code}/sessions", tag = "instructors",
    params(("code" = String, Path, description = "The room's join code (any case; spaces and dashes ignored).")),
    request_body = MoveSessions,
    responses(
        (status = 200, description = "What moved, and what did not.", body = MovedSessions),
        (status = 400, description = "Invalid body.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A helper token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room with that code.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn move_sessions(
    instructor: Instructor,
    code: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if instructor.helper.is_some() {
        return Err(ApiError::OutOfScope("moving sessions (a helper token sees no lobby)".into()));
    }
    let body: MoveSessions = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidParameter { name: "body", reason: e.to_string() })?;
    if !(1..=MAX_MOVED).contains(&body.session_tokens.len()) {
        return Err(ApiError::InvalidParameter {
            name: "sessionTokens",
            reason: format!("1 to {MAX_MOVED} tokens, got {}", body.session_tokens.len()),
        });
    }
    let code = code.into_inner();
    let room = state
        .workshops
        .room_by_code(&state.storage, &code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room with code {code:?}")))?;
    let moved = state.storage.move_sessions(body.session_tokens.clone(), room.workshop_id, room.id).await?;
    let mut not_moved: Vec<String> = body.session_tokens.into_iter().filter(|t| !moved.contains(t)).collect();
    not_moved.dedup();
    Ok(HttpResponse::Ok().json(MovedSessions { success: true, room: room.code.clone(), moved, not_moved }))
}
