//! Authentication and roles: the `Authorization: Bearer <token>` extractors.
//!
//! Server-wide tokens: an instructor token (`--instructor-token`) reads everything and
//! acknowledges alerts. An admin token (`--admin-token`) does that too and, when any admin token
//! is configured, is the only kind that may delete and manage workshops, rooms and helper tokens
//! (with no admin token configured, instructor tokens may). Helper tokens (`ht_…`, made with
//! `POST /api/tokens`, `domain::helper`) read only the rooms they cover ([`Instructor::scope`]);
//! an assistant's may not export; neither may delete or manage. Tokens are compared in
//! constant time, and an address that keeps presenting wrong or no tokens is refused for a while
//! before its token is compared (429, `domain::auth_throttle`).

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::domain::helper::{HelperRole, Scope};
use crate::http::error::ApiError;
use crate::state::AppState;

/// What a presented token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Instructor,
    Admin,
    /// A helper token: its role and rooms.
    Helper {
        role: HelperRole,
        rooms: Vec<i64>,
        name: String,
    },
}

/// Whether `presented` is one of `tokens`, comparing each in constant time.
fn matches(tokens: &[String], presented: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        found | (!token.is_empty() && bool::from(token.as_bytes().ct_eq(presented.as_bytes())))
    })
}

/// The role of the request's bearer token. Errors: [`ApiError::RateLimited`] when the client's
/// address failed too often lately, [`ApiError::Unauthorized`] when there is no token or it is
/// not configured (counted against the address).
fn role(req: &HttpRequest) -> Result<Role, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or(ApiError::Unauthorized)?;
    let address = crate::http::ingest::request_address(req, state);
    if let Some(address) = address {
        state.limits.check_auth(address)?;
    }
    let found = token_role(req, state);
    if let (Err(_), Some(address)) = (&found, address) {
        state.limits.auth_failed(address);
    }
    found
}

/// The role of the request's bearer token, without the throttle.
fn token_role(req: &HttpRequest, state: &web::Data<AppState>) -> Result<Role, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let config = &state.config;
    if matches(&config.admin_tokens, presented) {
        Ok(Role::Admin)
    } else if matches(&config.instructor_tokens, presented) {
        Ok(Role::Instructor)
    } else {
        let directory = state.workshops.snapshot();
        let helper = crate::domain::helper::find(&directory.helpers, presented).ok_or(ApiError::Unauthorized)?;
        // Its last use, written at most once a minute, off the request's path.
        if state.workshops.use_due(helper.id) {
            let (state, id) = (state.clone(), helper.id);
            actix_web::rt::spawn(async move {
                if let Err(error) = state.storage.record_token_use(id).await {
                    tracing::warn!(%error, token = id, "a helper token's last use was not recorded");
                }
            });
        }
        Ok(Role::Helper { role: helper.role, rooms: helper.rooms.clone(), name: helper.name.clone() })
    }
}

/// Proof that the request carries a token that may read: a server-wide instructor or admin
/// token, or a helper token, with what it may see. Rejects with [`ApiError::Unauthorized`] (401).
#[derive(Debug, Clone)]
pub struct Instructor {
    /// The rooms it reads.
    pub scope: Scope,
    /// A helper token's role; `None` for a server-wide token.
    pub helper: Option<HelperRole>,
    /// A helper token's name ("Alex"): who claims a help request with it.
    pub name: Option<String>,
}

impl Instructor {
    /// The rooms a query reads given those it named (see [`Scope::narrow`]). Errors:
    /// [`ApiError::OutOfScope`] (403) for a room the token does not cover.
    pub fn narrow(&self, named: Option<Vec<i64>>) -> Result<Option<Vec<i64>>, ApiError> {
        self.scope.narrow(named).map_err(|_| ApiError::OutOfScope("that room".into()))
    }

    /// Refuses what an assistant's token may not do (`what`, e.g. "export"). Errors:
    /// [`ApiError::OutOfScope`] (403).
    pub fn not_assistant(&self, what: &str) -> Result<(), ApiError> {
        match &self.helper {
            Some(HelperRole::Assistant) => Err(ApiError::OutOfScope(format!("{what} (an assistant's token)"))),
            _ => Ok(()),
        }
    }
}

impl FromRequest for Instructor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Instructor, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(role(req).map(|role| match role {
            Role::Helper { role, rooms, name } => {
                Instructor { scope: Scope::Rooms(rooms), helper: Some(role), name: Some(name) }
            }
            Role::Instructor | Role::Admin => Instructor { scope: Scope::All, helper: None, name: None },
        }))
    }
}

/// Proof that the request may delete: an admin token, or an instructor token when no admin token
/// is configured. Rejects with [`ApiError::Unauthorized`] (401, no or an unknown token) or
/// [`ApiError::Forbidden`] (403, an instructor token where an admin token is required).
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let admins_configured =
            req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.admin_tokens.iter().any(|t| !t.is_empty()));
        std::future::ready(match role(req) {
            Ok(Role::Admin) => Ok(Admin),
            Ok(Role::Instructor) if !admins_configured => Ok(Admin),
            Ok(Role::Instructor | Role::Helper { .. }) => Err(ApiError::Forbidden),
            Err(error) => Err(error),
        })
    }
}
