//! Security headers on every response (the dashboard shares an origin with the demo page and
//! `/pkg/`, so each path gets what it can bear):
//! - everywhere: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and with TLS
//!   `Strict-Transport-Security` (one year, RFC 6797);
//! - `/dashboard/`: a strict Content-Security-Policy (its own scripts, styles and API only; no
//!   inline script, no framing: `frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older
//!   browsers), so nothing a student posts can run there or frame it;
//! - `/api/`, `/healthz`, `/metrics`: `default-src 'none'; frame-ancestors 'none'` (JSON and
//!   text are never a document to run).
//!
//! The demo workshop (`/`) and the package (`/pkg/`) get no CSP: a workshop page's own policy is
//! its author's (it must allow `'wasm-unsafe-eval'` for the client).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::state::AppState;

/// The dashboard's Content-Security-Policy.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The API's Content-Security-Policy.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The middleware (`actix_web::middleware::from_fn`): adds the headers above to the response.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path().to_owned();
    let tls = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.tls.is_some());
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if path == "/dashboard" || path.starts_with("/dashboard/") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DASHBOARD_CSP));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    } else if path.starts_with("/api/") || path == "/healthz" || path == "/metrics" {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP));
    }
    Ok(response)
}
