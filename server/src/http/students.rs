//! `DELETE /api/students/{email}`: deletion on request.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::AppState;

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
/// Errors: 401 without a token, 404 when no such student is stored, 503 when overloaded or
/// shutting down, 500 for storage.
#[utoipa::path(delete, path = "/api/students/{email}", tag = "instructors",
    params(("email" = String, Path, description = "The student's email (case-insensitive).")),
    responses(
        (status = 200, description = "What was deleted.", body = DeleteResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No such student.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn delete_student(
    _: Instructor,
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
