//! Query parameters: splitting, times, limits, cursors and the event filters shared by the event
//! query, the live tail and the export.

use actix_web::web;

use crate::domain::cursor::EventCursor;
use crate::domain::workshop::{LOBBY_CODE, LOBBY_ROOM_ID};
use crate::http::error::ApiError;
use crate::storage::{EventQuery, Order};

/// Default `limit` of `GET /api/session-log` (events).
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` of `GET /api/session-log` (events).
pub const MAX_LIMIT: u32 = 1000;

/// Splits a query string into decoded `(name, value)` pairs. Errors: [`ApiError::InvalidParameter`]
/// (`query`) when it does not decode.
pub fn pairs(query_string: &str) -> Result<Vec<(String, String)>, ApiError> {
    Ok(web::Query::<Vec<(String, String)>>::from_query(query_string)
        .map_err(|e| ApiError::InvalidParameter { name: "query", reason: e.to_string() })?
        .into_inner())
}

/// Reads an RFC 3339 time (`2026-11-21T09:30:00Z`, `2026-11-21T10:30:00.5+01:00`, any year
/// 0000–9999, any offset; or a date `2026-11-21` meaning its midnight UTC) as `created_at`
/// text: UTC with ms. Times before year 1 or after 9999 in UTC are clamped to those bounds,
/// which no stored event passes. Errors: [`ApiError::InvalidParameter`] naming `name`.
pub fn parse_time(name: &'static str, value: &str) -> Result<String, ApiError> {
    use time::format_description::well_known::Rfc3339;
    let text = if value.len() == 10 { format!("{value}T00:00:00Z") } else { value.to_owned() };
    let parsed = time::OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| ApiError::InvalidParameter {
        name,
        reason: format!("must be an RFC 3339 time such as 2026-11-21T09:30:00Z, got {value:?} ({e})"),
    })?;
    let utc = parsed.to_offset(time::UtcOffset::UTC);
    Ok(match utc.year() {
        ..=0 => "0001-01-01T00:00:00.000Z".to_owned(),
        10_000.. => "9999-12-31T23:59:59.999Z".to_owned(),
        _ => {
            let iso = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            utc.format(&iso).map_err(|e| ApiError::InvalidParameter { name, reason: e.to_string() })?
        }
    })
}

/// Reads a whole number from 1 to `max`. Errors: [`ApiError::InvalidParameter`] naming `name`.
pub fn parse_limit(name: &'static str, value: &str, max: u32) -> Result<u32, ApiError> {
    value.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| ApiError::InvalidParameter {
        name,
        reason: format!("must be a whole number from 1 to {max}, got {value:?}"),
    })
}

/// Reads an event cursor (`cursor`, `Last-Event-ID`). Errors: [`ApiError::InvalidParameter`] naming `name`.
pub fn parse_event_cursor(name: &'static str, value: &str) -> Result<EventCursor, ApiError> {
    EventCursor::decode(value).map_err(|e| ApiError::InvalidParameter { name, reason: e.to_string() })
}

/// Reads the event filters: the reference's `sessionToken`, `studentEmail`, `eventType`, `limit`
/// (1–1000, default 100), and `since`, `until` (ISO 8601; `since` inclusive, `until`
/// exclusive), `order` (`asc` | `desc`, default `desc`), `cursor` (a `nextCursor`). Unknown
/// parameters are ignored. Errors: [`ApiError::InvalidParameter`] naming the parameter.
pub fn parse_event_query(query_string: &str) -> Result<EventQuery, ApiError> {
    event_query(&pairs(query_string)?)
}

/// [`parse_event_query`] over parameters already split into pairs.
pub fn event_query(pairs: &[(String, String)]) -> Result<EventQuery, ApiError> {
    let mut query = EventQuery { limit: DEFAULT_LIMIT, ..EventQuery::default() };
    for (name, value) in pairs {
        let value = value.clone();
        match name.as_str() {
            "sessionToken" => query.session_token = Some(value),
            "studentEmail" => query.student_email = Some(value),
            "eventType" => query.event_type = Some(value),
            "limit" => query.limit = parse_limit("limit", &value, MAX_LIMIT)?,
            "since" => query.since = Some(parse_time("since", &value)?),
            "until" => query.until = Some(parse_time("until", &value)?),
            "order" => query.order = parse_enum("order", &value, "asc or desc")?,
            "cursor" => query.after = Some(parse_event_cursor("cursor", &value)?),
            _ => {}
        }
    }
    Ok(query)
}

/// Reads `room` (a join code, as typed, or `lobby` for the sessions placed in no room:
/// [`LOBBY_ROOM_ID`]) and `workshop` (a slug) against `directory`: the rooms
/// and the workshop a query is limited to, as `EventQuery::rooms`/`workshop` (and the same of
/// `SessionQuery`), the rooms narrowed to those `instructor`'s token covers
/// ([`crate::http::auth::Instructor::narrow`]). Errors: [`ApiError::NotFound`] naming a room or workshop that does
/// not exist; [`ApiError::OutOfScope`] for a room the token does not cover.
pub fn place_filter(
    pairs: &[(String, String)],
    directory: &crate::state::Directory,
    instructor: &crate::http::auth::Instructor,
) -> Result<(Option<Vec<i64>>, Option<i64>), ApiError> {
    let mut rooms = None;
    let mut workshop = None;
    for (name, value) in pairs {
        match name.as_str() {
            "room" if value.eq_ignore_ascii_case(LOBBY_CODE) => rooms = Some(vec![LOBBY_ROOM_ID]),
            "room" => {
                let room = directory
                    .room_by_code(value)
                    .ok_or_else(|| ApiError::NotFound(format!("no room with code {value:?}")))?;
                rooms = Some(vec![room.id]);
            }
            "workshop" => {
                let found = directory
                    .workshop_by_slug(value)
                    .ok_or_else(|| ApiError::NotFound(format!("no workshop with slug {value:?}")))?;
                workshop = Some(found.id);
            }
            _ => {}
        }
    }
    Ok((instructor.narrow(rooms)?, workshop))
}

/// The rooms (join codes, `""` for a lobby: an alert's `room` column is NULL there) and
/// workshop (slug) an alert read is limited to: its `room=` and `workshop=` (see
/// [`place_filter`]), narrowed to the token's rooms. Errors: those of [`place_filter`].
pub fn alert_places(
    params: &[(String, String)],
    state: &crate::state::AppState,
    instructor: &crate::http::auth::Instructor,
) -> Result<(Option<Vec<String>>, Option<String>), ApiError> {
    let directory = state.workshops.snapshot();
    let (rooms, workshop) = place_filter(params, &directory, instructor)?;
    let codes = rooms.map(|ids| {
        let lobby = ids.contains(&LOBBY_ROOM_ID).then(String::new);
        let named = directory.rooms.iter().filter(|r| ids.contains(&r.id)).map(|r| r.code.clone());
        lobby.into_iter().chain(named).collect::<Vec<_>>()
    });
    let slug = workshop.and_then(|id| directory.workshop(id)).map(|w| w.slug.clone());
    Ok((codes, slug))
}

/// Whether `alert` is among those `places` (from [`alert_places`]) select.
pub fn selected(
    alert: &crate::domain::alerts::Alert,
    (rooms, workshop): &(Option<Vec<String>>, Option<String>),
) -> bool {
    let label = crate::domain::alerts::Label::of(alert);
    rooms.as_ref().is_none_or(|codes| codes.iter().any(|c| *c == label.room.as_deref().unwrap_or_default()))
        && workshop.as_ref().is_none_or(|slug| *slug == label.workshop)
}

/// The event filters shared by the query, the live tail and the export (the OpenAPI document's
/// parameters; [`parse_event_query`] reads them, with the same names and rules).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EventFilters {
    /// Only this session.
    session_token: Option<String>,
    /// Only this student (case-insensitive).
    student_email: Option<String>,
    /// Only this event type.
    event_type: Option<String>,
    /// Only sessions of the room with this join code (404 when there is none), or `lobby` for
    /// the sessions placed in no room (server-wide tokens only: 403 for a helper token).
    room: Option<String>,
    /// Only sessions of the workshop with this slug (404 when there is none).
    workshop: Option<String>,
    /// Only events stored at or after this time (ISO 8601 UTC; a date alone is its midnight).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events stored before this time (ISO 8601 UTC).
    #[param(format = DateTime)]
    until: Option<String>,
}

/// Paging of `GET /api/session-log` (document only; [`parse_event_query`] reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventPage {
    /// `desc` (default, newest first) or `asc`.
    order: Option<Order>,
    /// Events per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = r"^e1\.[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// Resuming a live tail (document only; the handler reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct TailResume {
    /// Resume after this SSE id (or send the `Last-Event-ID` header).
    #[param(pattern = r"^e1\.[0-9]{1,18}$")]
    last_event_id: Option<String>,
}

/// The export's own parameters (document only; the handler reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportOptions {
    /// `csv` or `ndjson`.
    format: crate::domain::export::Format,
    /// `asc` (default) or `desc`.
    order: Option<Order>,
}

/// A time window (document only): `since` inclusive, `until` exclusive, both ISO 8601 UTC.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Window {
    /// At or after this time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Before this time.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// Reads one enum parameter through its `Deserialize` (the type the document describes).
/// Errors: [`ApiError::InvalidParameter`] naming `name` and the accepted values.
pub fn parse_enum<T: serde::de::DeserializeOwned>(
    name: &'static str,
    value: &str,
    accepted: &str,
) -> Result<T, ApiError> {
    use serde::de::IntoDeserializer;
    T::deserialize(value.into_deserializer()).map_err(|_: serde::de::value::Error| ApiError::InvalidParameter {
        name,
        reason: format!("must be {accepted}, got {value:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query parameters keep the reference's names and defaults; a bad one is named in the error.
    #[test]
    fn query_parameters() {
        let q = parse_event_query("sessionToken=ws_1&eventType=error&limit=50&other=x&order=asc&cursor=e1.7").unwrap();
        assert_eq!(q.session_token.as_deref(), Some("ws_1"));
        assert_eq!(q.event_type.as_deref(), Some("error"));
        assert_eq!((q.limit, q.order, q.after), (50, Order::Asc, Some(EventCursor::at(7))));
        assert_eq!(parse_event_query("").unwrap().limit, 100);
        assert_eq!(parse_event_query("").unwrap().order, Order::Desc);
        let q = parse_event_query("since=2026-11-21&until=2026-11-21T10:00:00.5Z").unwrap();
        assert_eq!(q.since.as_deref(), Some("2026-11-21T00:00:00.000Z"));
        assert_eq!(q.until.as_deref(), Some("2026-11-21T10:00:00.500Z"));
        for (bad, name) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("since=yesterday", "since"),
            ("until=2026-13-01", "until"),
            ("order=up", "order"),
            ("cursor=abc", "cursor"),
        ] {
            let error = parse_event_query(bad).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{name}:")), "{bad}: {error}");
        }
    }
}
