//! `/api/rooms` and `/api/workshops/{slug}/rooms`: the runs of a workshop, each with the join
//! code its students' pages send.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::clock::now_iso;
use crate::domain::workshop::{Room, MAX_ROOM_NAME};
use crate::http::auth::{Admin, Instructor};
use crate::http::error::ApiError;
use crate::http::params::parse_time;
use crate::state::{AppState, Directory};
use crate::storage::NewRoom;

/// `POST /api/workshops/{slug}/rooms`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoom {
    /// Its name, for people ("London, 7 Dec"): 1 to 200 characters, not only spaces.
    #[schema(pattern = "\\S", min_length = 1, max_length = 200)]
    pub name: String,
    /// When it opens (RFC 3339); absent: open from now on.
    #[schema(format = DateTime)]
    pub opens_at: Option<String>,
    /// When it closes (RFC 3339); absent: it does not close. A room that closes before it opens
    /// is never open by time; sessions still join it by its code.
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
}

/// A room as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// Its join code: 6 letters and digits without look-alikes (no 0/O, 1/I/L), what a page
    /// sends as `room` (case, spaces and dashes do not matter).
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its workshop's slug.
    pub workshop: String,
    /// When it opens (ISO 8601 UTC), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// When it closes (ISO 8601 UTC), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<String>,
    /// Whether it is open now (by its times): a keyed session that sends no code joins the one
    /// room of its workshop that is open.
    pub open: bool,
}

impl RoomView {
    /// `room` as shown at `now` (ISO 8601 UTC), its workshop named from `directory`.
    pub fn of(room: Room, directory: &Directory, now: &str) -> RoomView {
        RoomView {
            open: room.open_at(now),
            workshop: directory.workshop(room.workshop_id).map(|w| w.slug.clone()).unwrap_or_default(),
            code: room.code,
            name: room.name,
            opens_at: room.opens_at,
            closes_at: room.closes_at,
        }
    }
}

/// `GET /api/rooms`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoomsResponse {
    /// Always `true`.
    pub success: bool,
    /// The rooms, open ones first, then by name.
    pub rooms: Vec<RoomView>,
    /// The role of the helper token that asked (`instructor` or `assistant`); absent for a
    /// server-wide token. What the dashboard offers follows it (an assistant neither exports
    /// nor mutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::domain::helper::HelperRole>,
}

/// `POST /api/workshops/{slug}/rooms` (admin token): creates a room of the workshop with a new
/// join code and answers 201 with it. Pages join it by sending the code as `room`; keyed pages
/// that send no code join it while it is the workshop's only open room.
///
/// Errors: 400 (a body that is not `{name, opensAt?, closesAt?}`, an empty name or one over 200
/// characters, a time that is not RFC 3339), 401/403 (not an admin token), 404 (no such
/// workshop), 503 (the database is unavailable).
#[utoipa::path(post, path = "/api/workshops/{slug}/rooms", tag = "admin",
    params(("slug" = String, Path, description = "The workshop.")),
    request_body = CreateRoom,
    responses(
        (status = 201, description = "Created, with its join code.", body = RoomView),
        (status = 400, description = "Invalid body, name or time.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such workshop.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn create_room(
    _admin: Admin,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateRoom = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidParameter { name: "body", reason: e.to_string() })?;
    let name = crate::http::workshops::checked_name(&body.name, MAX_ROOM_NAME)?;
    let opens_at = body.opens_at.as_deref().map(|t| parse_time("opensAt", t)).transpose()?;
    let closes_at = body.closes_at.as_deref().map(|t| parse_time("closesAt", t)).transpose()?;
    state.workshops.reload(&state.storage).await?;
    let directory = state.workshops.snapshot();
    let slug = slug.into_inner();
    let workshop = directory
        .workshop_by_slug(&slug)
        .ok_or_else(|| ApiError::NotFound(format!("no workshop with slug {slug:?}")))?;
    let new = NewRoom { workshop_id: workshop.id, name, code: String::new(), opens_at, closes_at };
    let room = state.storage.create_room(new).await?;
    // This server's ingest sees the room at once (others within `Workshops::REFRESH`).
    state.workshops.reload(&state.storage).await?;
    Ok(HttpResponse::Created().json(RoomView::of(room, &state.workshops.snapshot(), &now_iso())))
}

/// `GET /api/rooms`: the rooms the token covers (every room for a server-wide token), open ones
/// first, then by name.
///
/// Errors: 401 without a token, 503 (the database is unavailable).
#[utoipa::path(get, path = "/api/rooms", tag = "instructors",
    responses(
        (status = 200, description = "The rooms, open ones first.", body = RoomsResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn list_rooms(instructor: Instructor, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let directory = Directory {
        workshops: state.storage.workshops().await?,
        rooms: state.storage.rooms().await?,
        helpers: Vec::new(),
    };
    let now = now_iso();
    let mut rooms: Vec<RoomView> = directory
        .rooms
        .iter()
        .filter(|room| instructor.scope.covers(Some(room.id)))
        .cloned()
        .map(|room| RoomView::of(room, &directory, &now))
        .collect();
    rooms.sort_by(|a, b| b.open.cmp(&a.open).then_with(|| a.name.cmp(&b.name)));
    Ok(HttpResponse::Ok().json(RoomsResponse { success: true, rooms, role: instructor.helper }))
}
