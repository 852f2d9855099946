//! `GET /api/report`: the room at a glance.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::report::Report;
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::params::{pairs, parse_time, Window};
use crate::state::AppState;

/// `GET /api/report?since=&until=`: the room at a glance ([`Report`]) over the sessions with an
/// event in the window (both optional; ISO 8601).
///
/// Errors: 401 without a token, 400 naming an invalid parameter, 500 for storage.
#[utoipa::path(get, path = "/api/report", tag = "instructors",
    params(Window),
    responses(
        (status = 200, description = "The room at a glance.", body = Report),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_report(_: Instructor, req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (mut since, mut until) = (None, None);
    for (name, value) in pairs(req.query_string())? {
        match name.as_str() {
            "since" => since = Some(parse_time("since", &value)?),
            "until" => until = Some(parse_time("until", &value)?),
            _ => {}
        }
    }
    let (window, final_step) = (state.config.active_window, state.config.final_step);
    let report = state.storage.report(since, until, window, final_step).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(report))
}
