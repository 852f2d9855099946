//! `/api/tokens`: the admin's helper tokens (personal, scoped to rooms, shown once, stored as a
//! hash, revocable at once).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::helper::{hash_token, new_token, HelperRole, HelperToken, MAX_NAME};
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::state::{AppState, Directory};
use crate::storage::NewHelperToken;

/// `POST /api/tokens`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// Whose it is ("Alex"): 1 to 100 characters, not only spaces.
    #[schema(pattern = "\\S", min_length = 1, max_length = 100)]
    pub name: String,
    /// `instructor` (everything in its rooms but deleting) or `assistant` (reads its rooms, no
    /// export).
    pub role: HelperRole,
    /// The join codes of the rooms it covers (404 for a code no room has).
    #[schema(min_items = 1, max_items = 100)]
    pub rooms: Vec<String>,
}

/// A helper token as the API shows it (never the token, but once, at creation).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// Its id (what `DELETE /api/tokens/{id}` takes).
    pub id: i64,
    /// The token (`ht_` and 48 hex digits): in the answer to its creation only; it is stored as
    /// a hash and cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Whose it is.
    pub name: String,
    /// `instructor` or `assistant`.
    pub role: HelperRole,
    /// The join codes of the rooms it covers.
    pub rooms: Vec<String>,
    /// When it was made (ISO 8601 UTC).
    pub created_at: String,
    /// When it was revoked (ISO 8601 UTC), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// When a request last presented it (ISO 8601 UTC, to the minute), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

impl TokenView {
    /// `token` as shown, its rooms by code (a room that no longer exists is left out).
    pub fn of(token: HelperToken, directory: &Directory) -> TokenView {
        TokenView {
            id: token.id,
            token: None,
            name: token.name,
            role: token.role,
            rooms: token
                .rooms
                .iter()
                .filter_map(|id| directory.rooms.iter().find(|r| r.id == *id).map(|r| r.code.clone()))
                .collect(),
            created_at: token.created_at,
            revoked_at: token.revoked_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// `GET /api/tokens`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokensResponse {
    /// Always `true`.
    pub success: bool,
    /// Every helper token, oldest first, without the tokens themselves.
    pub tokens: Vec<TokenView>,
}

/// `POST /api/tokens` (admin token): makes a helper token (192 random bits) for `name` with
/// `role` over `rooms` and answers 201 with it: the only time the token is shown. It works at
/// once on this server and within 5 s on every other server of the database.
///
/// Errors: 400 (a body that is not `{name, role, rooms}`, an empty name or one over 100
/// characters, no rooms), 401/403 (not an admin token), 404 (a room code no room has), 503 (the
/// database is unavailable).
#[utoipa::path(post, path = "/api/tokens", tag = "admin",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` is shown this once.", body = TokenView),
        (status = 400, description = "Invalid body or name, or no rooms.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "A room code no room has.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn create_token(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidParameter { name: "body", reason: e.to_string() })?;
    let name = crate::http::workshops::checked_name(&body.name, MAX_NAME)?;
    if body.rooms.is_empty() || body.rooms.len() > 100 {
        return Err(ApiError::InvalidParameter { name: "rooms", reason: "1 to 100 join codes".into() });
    }
    state.workshops.reload(&state.storage).await?;
    let directory = state.workshops.snapshot();
    let mut rooms = Vec::with_capacity(body.rooms.len());
    for code in &body.rooms {
        let room =
            directory.room_by_code(code).ok_or_else(|| ApiError::NotFound(format!("no room with code {code:?}")))?;
        if !rooms.contains(&room.id) {
            rooms.push(room.id);
        }
    }
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| ApiError::Storage(crate::storage::StoreError::Internal(e.to_string())))?;
    let token = new_token(random);
    let new = NewHelperToken { name, role: body.role, token_hash: hash_token(&token), rooms };
    let stored = state.storage.create_helper_token(new).await?;
    // This server accepts the token at once (others within `Workshops::REFRESH`).
    state.workshops.reload(&state.storage).await?;
    let mut view = TokenView::of(stored, &state.workshops.snapshot());
    view.token = Some(token);
    Ok(HttpResponse::Created().json(view))
}

/// `GET /api/tokens` (admin token): every helper token, without the tokens themselves.
///
/// Errors: 401/403 (not an admin token), 503 (the database is unavailable).
#[utoipa::path(get, path = "/api/tokens", tag = "admin",
    responses(
        (status = 200, description = "Every helper token, oldest first.", body = TokensResponse),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn list_tokens(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.workshops.reload(&state.storage).await?;
    let directory = state.workshops.snapshot();
    let tokens = directory.helpers.iter().cloned().map(|t| TokenView::of(t, &directory)).collect();
    Ok(HttpResponse::Ok().json(TokensResponse { success: true, tokens }))
}

/// `DELETE /api/tokens/{id}` (admin token): revokes the helper token: refused with 401 from its
/// next request on this server, within 5 s on the others. Revoking again changes nothing.
///
/// Errors: 401/403 (not an admin token), 404 (no such token), 503 (the database is unavailable).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The token's id.")),
    responses(
        (status = 200, description = "Revoked.", body = TokenView),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn revoke_token(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let text = id.into_inner();
    let id: i64 = text.parse().map_err(|_| ApiError::NotFound(format!("no helper token with id {text:?}")))?;
    let Some(token) = state.storage.revoke_helper_token(id).await? else {
        return Err(ApiError::NotFound(format!("no helper token with id {id}")));
    };
    state.workshops.reload(&state.storage).await?;
    Ok(HttpResponse::Ok().json(TokenView::of(token, &state.workshops.snapshot())))
}
