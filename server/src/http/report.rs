//! `GET /api/report`: the room at a glance.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::report::Report;
use crate::domain::workshop::{earlier_rooms, EARLIER_WITHIN};
use crate::http::auth::Instructor;
use crate::http::error::ApiError;
use crate::http::params::{pairs, parse_time, place_filter, Window};
use crate::state::AppState;
use crate::storage::SessionQuery;

/// `GET /api/report?since=&until=&room=&workshop=`: the room at a glance ([`Report`]) over the
/// sessions with an event in the window (both optional; ISO 8601), of the room (a join code)
/// and workshop (a slug) when given; a helper token's report covers its rooms only. A report
/// of one room gives each funnel step the median of the workshop's earlier rooms too
/// (`earlierMedianTimeMs`).
///
/// Errors: 401 without a token, 400 naming an invalid parameter, 403 for a room the token does
/// not cover, 404 for an unknown room or workshop, 500 for storage.
#[utoipa::path(get, path = "/api/report", tag = "instructors",
    params(Window,
        ("room" = Option<String>, Query, description = "Only sessions of the room with this join code (404 when there is none), or `lobby` for the sessions placed in no room (server-wide tokens only)."),
        ("workshop" = Option<String>, Query, description = "Only sessions of the workshop with this slug (404 when there is none)."),
    ),
    responses(
        (status = 200, description = "The room at a glance.", body = Report),
        (status = 400, description = "An invalid parameter, named.", body = session_log_protocol::ErrorResponse),
        (status = 401, description = "No or a wrong instructor token.", body = session_log_protocol::ErrorResponse),
        (status = 403, description = "A room the token does not cover (helper tokens; for the export, also an assistant's token).", body = session_log_protocol::ErrorResponse),
        (status = 404, description = "No room or workshop with the `room` or `workshop` given.", body = session_log_protocol::ErrorResponse),
        (status = 429, description = "Too many failed authentications from this address; see Retry-After.", body = session_log_protocol::ErrorResponse),
    ),
    security(("bearer" = [])))]
pub async fn get_report(
    instructor: Instructor,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut place = SessionQuery::default();
    let params = pairs(req.query_string())?;
    (place.rooms, place.workshop) = place_filter(&params, &state.workshops.snapshot(), &instructor)?;
    for (name, value) in params {
        match name.as_str() {
            "since" => place.since = Some(parse_time("since", &value)?),
            "until" => place.until = Some(parse_time("until", &value)?),
            _ => {}
        }
    }
    let (window, final_step) = (state.config.active_window, state.config.final_step);
    // One room: its funnel also shows the pace of the workshop's earlier rooms.
    let earlier = match place.rooms.as_deref() {
        Some([id]) => {
            let directory = state.workshops.snapshot();
            directory.rooms.iter().find(|r| r.id == *id).map(|room| earlier_rooms(&directory.rooms, room))
        }
        _ => None,
    };
    let mut report = state.storage.report(place, window, final_step).await.map_err(ApiError::from)?;
    if let Some(rooms) = earlier {
        let since = crate::domain::clock::iso_ago(EARLIER_WITHIN);
        let medians = state.storage.step_medians(rooms, since).await.map_err(ApiError::from)?;
        for step in &mut report.funnel {
            step.earlier_median_time_ms = medians.get(&step.step).copied();
        }
    }
    Ok(HttpResponse::Ok().json(report))
}
