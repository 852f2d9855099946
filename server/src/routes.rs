//! The route table of the HTTP API: which handler answers which path (static files are added by
//! `run`, after these). The one module that knows every handler module.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::{api, instructor, openapi};

/// Registers the API routes (static files are added by `run`, after these).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(api::healthz)).route("/metrics", web::get().to(api::metrics)).service(
        web::scope("/api")
            .configure(instructor::routes)
            .route("/openapi.json", web::get().to(openapi::openapi_json))
            .service(
                web::resource("/session-log")
                    .route(web::post().to(api::post_events))
                    .route(web::get().to(instructor::get_events))
                    .default_service(web::to(|req: HttpRequest| async move {
                        Err::<HttpResponse, _>(ApiError::NotFound(format!(
                            "{} {} (use GET or POST)",
                            req.method(),
                            req.path()
                        )))
                    })),
            )
            .default_service(web::to(|req: HttpRequest| async move {
                Err::<HttpResponse, _>(ApiError::NotFound(req.path().to_owned()))
            })),
    );
}
