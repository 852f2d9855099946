//! Query parameters: splitting, times, limits, cursors and the event filters shared by the event
//! query, the live tail and the export.

use actix_web::web;

use crate::domain::cursor::EventCursor;
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

/// Reads an ISO 8601 time (`2026-11-21T09:30:00Z`, with or without fractions, or a date
/// `2026-11-21` meaning its midnight UTC) as `created_at` text. Errors: the parameter named.
pub fn parse_time(name: &'static str, value: &str) -> Result<String, ApiError> {
    let text = if value.len() == 10 { format!("{value}T00:00:00Z") } else { value.to_owned() };
    humantime::parse_rfc3339_weak(&text).map(|t| humantime::format_rfc3339_millis(t).to_string()).map_err(|e| {
        ApiError::InvalidParameter {
            name,
            reason: format!("must be an ISO 8601 UTC time such as 2026-11-21T09:30:00Z, got {value:?} ({e})"),
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
            "order" => {
                query.order = match value.as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => {
                        return Err(ApiError::InvalidParameter {
                            name: "order",
                            reason: format!("must be asc or desc, got {value:?}"),
                        })
                    }
                }
            }
            "cursor" => query.after = Some(parse_event_cursor("cursor", &value)?),
            _ => {}
        }
    }
    Ok(query)
}

/// The event filters shared by the query, the live tail and the export (OpenAPI description only;
/// [`parse_event_query`] reads them).
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
    /// Only events stored at or after this ISO 8601 time.
    since: Option<String>,
    /// Only events stored before this ISO 8601 time.
    until: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query parameters keep the reference's names and defaults; a bad one is named in the error.
    #[test]
    fn query_parameters() {
        let q =
            parse_event_query("sessionToken=ws_1&eventType=error&limit=50&other=x&order=asc&cursor=ZTE6Nw").unwrap();
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
