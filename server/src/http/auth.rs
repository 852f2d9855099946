//! Instructor authentication: the `Authorization: Bearer <token>` extractor.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::AppState;

/// Proof that the request carries a configured instructor token (`Authorization: Bearer <token>`),
/// compared in constant time. Rejects with [`ApiError::Unauthorized`].
pub struct Instructor;

impl FromRequest for Instructor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Instructor, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let tokens = req.app_data::<web::Data<AppState>>().map(|s| &s.config.instructor_tokens);
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = match (tokens, presented) {
            (Some(tokens), Some(presented)) => tokens
                .iter()
                .fold(false, |found, token| found | bool::from(token.as_bytes().ct_eq(presented.as_bytes()))),
            _ => false,
        };
        std::future::ready(if ok { Ok(Instructor) } else { Err(ApiError::Unauthorized) })
    }
}
