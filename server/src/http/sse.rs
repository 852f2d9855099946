//! What the two Server-Sent Events streams (the event tail and the alert stream) share: where a
//! client resumes, the opening message, and the response's headers.

use actix_web::web::Bytes;
use actix_web::{http::header, HttpRequest, HttpResponse};

use crate::http::error::ApiError;

/// The first message of a stream: the reconnection delay browsers use (ms), and a comment.
pub const OPENING: &[u8] = b"retry: 2000\n: connected\n\n";
/// The message sent when nothing else was for the heartbeat interval (a comment).
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// Where the client resumes: its `Last-Event-ID` header (what `EventSource` sends after a break),
/// else a `lastEventId` parameter, read by `parse`; `None` when neither is there.
/// Errors: `parse`'s, naming the header or the parameter.
pub fn resume_from<T>(
    req: &HttpRequest,
    params: &[(String, String)],
    parse: impl Fn(&'static str, &str) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    match req.headers().get("last-event-id") {
        Some(value) => parse("Last-Event-ID", value.to_str().unwrap_or("").trim()).map(Some),
        None => match params.iter().find(|(name, _)| name == "lastEventId") {
            Some((_, value)) => parse("lastEventId", value).map(Some),
            None => Ok(None),
        },
    }
}

/// The streaming answer: `text/event-stream`, not cached, not buffered by proxies (nginx's
/// `X-Accel-Buffering`).
pub fn response(stream: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}
