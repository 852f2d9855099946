//! One student: `GET /api/students/{email}` (their progress across sessions) and
//! `DELETE /api/students/{email}` (deletion on request).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::domain::student::{self, StudentProfile};
use crate::http::auth::{Admin, Instructor};
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::storage::{iso_ago, SessionQuery};

/// `GET /api/students/{email}`: the student (email matched case-insensitively) across all their
/// sessions, oldest first ([`StudentProfile`]): each session's status, first and last event,
/// duration, current and furthest step, events, errors and failed calls, plus totals. Read from
/// the session summaries.
///
/// Errors: 401 without a token, 404 when no session names the student, 503/500 for storage.
#[utoipa::path(get, path = "/api/students/{email}", tag = "instructors",
    params(("email" = String, Path, description = "The student's email (case-insensitive).")),
    responses(
        (status = 200, description = "The student's sessions and totals.", body = StudentProfile),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such student.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_student(
    instructor: Instructor,
    email: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let email = email.into_inner();
    // A helper token sees the student's sessions in its rooms only (and a 404 when none is).
    let query = SessionQuery {
        student_email: Some(email.clone()),
        rooms: instructor.narrow(None)?,
        limit: u32::MAX,
        ..SessionQuery::default()
    };
    let rows = state.storage.sessions(query).await.map_err(ApiError::from)?;
    let active_since = iso_ago(state.config.active_window);
    let profile = student::profile(rows, &active_since, state.config.final_step)
        .ok_or_else(|| ApiError::NotFound(format!("no student with email {email:?}")))?;
    Ok(HttpResponse::Ok().json(profile))
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

/// `DELETE /api/students/{email}`: deletes the student (email matched case-insensitively), every
/// event of every session they appear in, and those sessions' summaries; answers
/// `{"success": true, "studentEmail": "...", "deleted": {"events": N, "sessions": N, "students": 1}}`.
///
/// Needs an admin token when `--admin-token` is configured (else an instructor token).
///
/// Errors: 401 without a token, 403 for an instructor token when admin tokens are configured,
/// 404 when no such student is stored, 503 when overloaded or
/// shutting down, 500 for storage.
#[utoipa::path(delete, path = "/api/students/{email}", tag = "instructors",
    params(("email" = String, Path, description = "The student's email (case-insensitive).")),
    responses(
        (status = 200, description = "What was deleted.", body = DeleteResponse),
        (status = 401, description = "No or a wrong token.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "An instructor token where an admin token is required.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such student.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn delete_student(
    _: Admin,
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
