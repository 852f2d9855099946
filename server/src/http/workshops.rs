//! `/api/workshops`: the admin's workshops and their write keys.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::origin::parse_allowed_origins;
use crate::domain::workshop::{check_slug, write_key, Workshop};
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::storage::NewWorkshop;

/// `POST /api/workshops`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkshop {
    /// `a-z`, `0-9` and `-`, 1 to 40 characters, not starting with `-`.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,39}$")]
    pub slug: String,
    /// Its name, for people: 1 to 200 characters, not only spaces.
    #[schema(pattern = "\\S", min_length = 1, max_length = 200)]
    pub name: String,
    /// The origins allowed to send with its key; absent or empty: any.
    #[serde(default)]
    pub allowed_origins: Vec<OriginText>,
}

/// An origin as `POST /api/workshops` takes it: `http(s)://host[:port]`, no path (RFC 6454).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,4})?$")]
pub struct OriginText(pub String);

/// Whether `c` is white space to a JSON Schema pattern's `\\s` (ECMA-262's WhiteSpace and
/// LineTerminator).
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// A workshop's or room's `name` as given, trimmed: 1 to `max` characters, not only white
/// space (the same rules as the schema's `\\S` pattern and lengths, so that what the document
/// accepts is accepted). Errors: [`ApiError::InvalidParameter`] naming `name`.
pub(crate) fn checked_name(name: &str, max: usize) -> Result<String, ApiError> {
    let count = name.chars().count();
    if !(1..=max).contains(&count) || name.chars().all(is_js_space) {
        return Err(ApiError::InvalidParameter {
            name: "name",
            reason: format!("1 to {max} characters, not only spaces"),
        });
    }
    Ok(name.trim_matches(is_js_space).to_owned())
}

/// Whether `origin` matches [`OriginText`]'s pattern, `^https?://[A-Za-z0-9.-]+(:[0-9]{1,4})?$`.
fn origin_shaped(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else { return false };
    let (host, port) = rest.split_once(':').map_or((rest, None), |(h, p)| (h, Some(p)));
    !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && port.is_none_or(|p| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A workshop as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkshopView {
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Its public write key (`wk_…`); absent for `default`, which takes keyless events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_key: Option<String>,
    /// The origins allowed to send with its key; empty: any.
    pub allowed_origins: Vec<String>,
    /// When its key was revoked (ISO 8601 UTC), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl From<Workshop> for WorkshopView {
    fn from(w: Workshop) -> Self {
        WorkshopView {
            slug: w.slug,
            name: w.name,
            write_key: w.write_key,
            allowed_origins: w.allowed_origins,
            revoked_at: w.revoked_at,
        }
    }
}

/// `GET /api/workshops`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkshopsResponse {
    /// Always `true`.
    pub success: bool,
    /// Every workshop, `default` first.
    pub workshops: Vec<WorkshopView>,
}

/// `POST /api/workshops` (admin token): creates a workshop with a new write key (`wk_` and 32
/// hex digits, 128 random bits) and answers 201 with it.
///
/// Errors: 400 (a body that is not `{slug, name, allowedOrigins?}`, a bad slug or origin, a name
/// that is empty or over 200 characters), 401/403 (not an admin token), 409 (the slug is taken),
/// 503 (the database is unavailable).
#[utoipa::path(post, path = "/api/workshops", tag = "admin",
    request_body = CreateWorkshop,
    responses(
        (status = 201, description = "Created, with its write key.", body = WorkshopView),
        (status = 400, description = "Invalid body, slug, name or origin.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
        (status = 409, description = "The slug is taken.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn create_workshop(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let invalid = |reason: String| ApiError::InvalidParameter { name: "body", reason };
    let body: CreateWorkshop = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    check_slug(&body.slug).map_err(|reason| ApiError::InvalidParameter { name: "slug", reason })?;
    let name = checked_name(&body.name, 200)?;
    let origins: Vec<String> = body.allowed_origins.into_iter().map(|o| o.0).collect();
    if let Some(bad) = origins.iter().find(|o| !origin_shaped(o)) {
        return Err(ApiError::InvalidParameter {
            name: "allowedOrigins",
            reason: format!("{bad:?} is not http(s)://host[:port]"),
        });
    }
    let allowed_origins = parse_allowed_origins(&origins)
        .map_err(|reason| ApiError::InvalidParameter { name: "allowedOrigins", reason })?;
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| ApiError::Storage(crate::storage::StoreError::Internal(e.to_string())))?;
    let new = NewWorkshop { slug: body.slug, name, allowed_origins, write_key: write_key(random) };
    let workshop = state.storage.create_workshop(new).await?;
    // This server's ingest sees the change at once (others within `Workshops::REFRESH`).
    state.workshops.reload(&state.storage).await?;
    Ok(HttpResponse::Created().json(WorkshopView::from(workshop)))
}

/// `GET /api/workshops` (admin token): every workshop with its write key.
///
/// Errors: 401/403 (not an admin token), 503 (the database is unavailable).
#[utoipa::path(get, path = "/api/workshops", tag = "admin",
    responses(
        (status = 200, description = "Every workshop, `default` first.", body = WorkshopsResponse),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn list_workshops(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let workshops = state.storage.workshops().await?;
    Ok(HttpResponse::Ok()
        .json(WorkshopsResponse { success: true, workshops: workshops.into_iter().map(WorkshopView::from).collect() }))
}

/// `POST /api/workshops/{slug}/revoke` (admin token): revokes the workshop's write key at once;
/// from then on its events are refused with 401 (on other servers of the same database within
/// 5 s). Revoking again changes nothing.
///
/// Errors: 401/403 (not an admin token), 404 (no such workshop), 503 (the database is
/// unavailable).
#[utoipa::path(post, path = "/api/workshops/{slug}/revoke", tag = "admin",
    params(("slug" = String, Path, description = "The workshop.")),
    responses(
        (status = 200, description = "Revoked.", body = WorkshopView),
        (status = 401, description = "Missing or invalid token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "Not an admin token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such workshop.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn revoke_write_key(
    _admin: Admin,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let slug = slug.into_inner();
    let Some(workshop) = state.storage.revoke_write_key(slug.clone()).await? else {
        return Err(ApiError::NotFound(format!("no workshop with slug {slug:?}")));
    };
    // This server's ingest sees the change at once (others within `Workshops::REFRESH`).
    state.workshops.reload(&state.storage).await?;
    Ok(HttpResponse::Ok().json(WorkshopView::from(workshop)))
}
