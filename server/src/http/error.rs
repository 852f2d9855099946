//! The one error type of the HTTP API, and its mapping to status codes.
//!
//! Every error answers `{"success": false, "error": "<message>"}` (plus `rejected` for a batch
//! with no valid event); the messages name the field or parameter at fault, for the developer
//! who sent the request.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use session_log_protocol::ErrorResponse;

use crate::domain::validate::BodyError;

/// What can go wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 (413 for too many events): the body as a whole was refused; names the field or the
    /// position.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// 413: the body exceeds the configured limit (bytes).
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 400: the body's Content-Encoding is gzip but the body is not valid gzip.
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// 415: a Content-Encoding other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}: send gzip or an uncompressed body")]
    UnsupportedEncoding(String),
    /// 429: a rate limit was hit; retry after the given seconds.
    #[error("too many requests for this {key}; retry after {retry_after_secs} s")]
    RateLimited {
        /// `client address` or `session token`.
        key: &'static str,
        /// Seconds until a request would be allowed (the `Retry-After` header).
        retry_after_secs: u64,
    },
    /// 503: the writer's queue is full.
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    /// 503: the database does not take writes (`/healthz`).
    #[error("database is not writable: {0}")]
    Unhealthy(String),
    /// 415: a Content-Type other than JSON or plain text.
    #[error("unsupported Content-Type {0:?}: send application/json (or text/plain, as beacons do)")]
    UnsupportedMediaType(String),
    /// 401: no or a wrong instructor token.
    #[error("missing or invalid instructor token: send 'Authorization: Bearer <token>'")]
    Unauthorized,
    /// 403: an instructor token where an admin token is required (deletion, when `--admin-token`
    /// is configured).
    #[error("this needs an admin token (--admin-token): instructor tokens may read but not delete")]
    Forbidden,
    /// 403: a helper token asked for what it does not cover (another room, or what its role may
    /// not do); names it.
    #[error("this token does not cover {0}")]
    OutOfScope(String),
    /// 408: the body did not arrive within `Config::body_timeout`.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// 403: `--allowed-origin` is set and the request's `Origin` is not among them.
    #[error("origin {0:?} is not allowed to send events here (--allowed-origin)")]
    OriginNotAllowed(String),
    /// 400: a query parameter is invalid; names the parameter.
    #[error("{name}: {reason}")]
    InvalidParameter {
        /// The parameter's name, e.g. `limit`.
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// 405: the path exists but not with this method; `allow` lists its methods (the `Allow` header).
    #[error("method {method} is not allowed here; use {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the path takes, e.g. `GET, POST`.
        allow: &'static str,
    },
    /// 404: no such route, room, workshop, token, student or alert; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// 503: the writer is gone (the server is shutting down).
    #[error("the server is shutting down; retry shortly")]
    ShuttingDown,
    /// 503: the database cannot be reached or refused the transaction; nothing was stored.
    #[error("{0}; retry shortly")]
    Unavailable(crate::storage::StoreError),
    /// 401 or 403: the batch's write key may not write ([`crate::domain::workshop::KeyError`]);
    /// nothing was stored.
    #[error(transparent)]
    WriteKey(#[from] crate::domain::workshop::KeyError),
    /// 409: the request conflicts with what is stored (a workshop slug that is taken).
    #[error("{0}")]
    Conflict(String),
    /// 500: the database failed. The body says only that (a driver's message can quote SQL);
    /// the server log has the detail.
    #[error("the database failed to answer this request; the server log has the detail")]
    Storage(crate::storage::StoreError),
}

impl ApiError {
    /// A short label for the `reason` of the refusal metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Body(BodyError::Empty) => "empty_body",
            ApiError::Body(BodyError::MalformedJson(_) | BodyError::NotAnObject) | ApiError::BadGzip(_) => "malformed",
            ApiError::Body(BodyError::InvalidEvent(_) | BodyError::NoValidEvents(_)) => "invalid_event",
            ApiError::BodyTooLarge { .. } | ApiError::Body(BodyError::TooManyEvents { .. }) => "too_large",
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => "unsupported_media_type",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::OutOfScope(_) => "out_of_scope",
            ApiError::WriteKey(_) => "write_key",
            ApiError::Conflict(_) => "conflict",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded => "overloaded",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Unhealthy(_) | ApiError::Unavailable(_) | ApiError::Storage(_) => "storage",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BodyTooLarge { .. } | ApiError::Body(BodyError::TooManyEvents { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Body(_) | ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::BadGzip(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded | ApiError::Unhealthy(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::OriginNotAllowed(_) | ApiError::OutOfScope(_) => StatusCode::FORBIDDEN,
            ApiError::WriteKey(crate::domain::workshop::KeyError::OriginNotAllowed { .. }) => StatusCode::FORBIDDEN,
            ApiError::WriteKey(_) => StatusCode::UNAUTHORIZED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Overload, shutdown or an unreachable database: the cause is logged where it
            // happens (the writer), once, not once per refused request.
            tracing::debug!(error = %self, "request refused: unavailable");
        } else if let ApiError::Storage(detail) = self {
            tracing::error!(error = %detail, "request failed");
        } else if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, %status, "request refused");
        }
        let rejected = match self {
            ApiError::Body(BodyError::NoValidEvents(rejected)) => rejected.clone(),
            _ => Vec::new(),
        };
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::RateLimited { retry_after_secs, .. } => {
                response.insert_header((actix_web::http::header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::ShuttingDown | ApiError::Overloaded | ApiError::Unavailable(_) => {
                response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((actix_web::http::header::ALLOW, *allow));
            }
            _ => {}
        }
        response.json(ErrorResponse { success: false, error: self.to_string(), rejected })
    }
}

/// A storage failure as an answer, the one place where they are mapped: a full write queue is
/// overload and an unreachable database unavailability (both 503 with `Retry-After`), a stopped
/// writer is shutdown (503), anything else a storage error (500).
/// A rate limit's refusal: 429 with `Retry-After`.
impl From<crate::rate_limits::Limited> for ApiError {
    fn from(limited: crate::rate_limits::Limited) -> Self {
        ApiError::RateLimited { key: limited.key, retry_after_secs: limited.retry_after_secs }
    }
}

impl From<crate::storage::StoreError> for ApiError {
    fn from(error: crate::storage::StoreError) -> Self {
        use crate::storage::StoreError;
        match error {
            StoreError::Overloaded => ApiError::Overloaded,
            StoreError::Stopped => ApiError::ShuttingDown,
            StoreError::Unavailable(_) => ApiError::Unavailable(error),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Invalid(_) | StoreError::Internal(_) => ApiError::Storage(error),
        }
    }
}
