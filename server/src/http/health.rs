//! Operations: `GET /healthz` (does the database take writes) and `GET /metrics` (Prometheus).

use actix_web::{web, HttpResponse};

use crate::http::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: `{"success": true, "status": "ok", "database": "writable"}` when the writer
/// takes a write lock on the database and the last write went through. Errors: 503 when it cannot
/// (permissions, shutdown), or when writes are refused (a full disk: the error says why, and that
/// reads still answer).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{\"success\": true, \"status\": \"ok\", \"database\": \"writable\"}`"),
               (status = 503, description = "The database does not take writes.", body = session_log_protocol::ErrorResponse)))]
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.storage.ping().await.map_err(|e| ApiError::Unhealthy(e.to_string()))?;
    // An empty transaction can pass while every real write fails (a full disk): say so.
    if let Some(reason) = state.storage.write_refused() {
        return Err(ApiError::Unhealthy(format!("writes are refused ({reason}); reads still answer")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"success": true, "status": "ok", "database": "writable"})))
}

/// `GET /metrics`: Prometheus text format (see [`crate::metrics::Metrics`]).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format.", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.storage.observe_queue_depth();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
