//! The HTTP API: thin handlers over the database, state passed explicitly, one error type.

pub mod enroll;
pub mod heartbeat;
pub mod ingest;
pub mod openapi;
pub mod policy;
pub mod tenant;

use std::time::Duration;

use axum::extract::State;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::serve_metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/ingest", post(ingest::ingest))
        .route("/v1/heartbeat", post(heartbeat::heartbeat))
        .route("/v1/devices", get(tenant::list_devices))
        .route("/v1/devices/{id}", delete(tenant::revoke_device))
        .route(
            "/v1/deploy-tokens",
            post(tenant::create_deploy_token).get(tenant::list_deploy_tokens),
        )
        .route(
            "/v1/deploy-tokens/{id}",
            delete(tenant::revoke_deploy_token),
        )
        .route("/v1/actions", get(tenant::list_actions))
        .route("/v1/sessions", get(tenant::list_sessions))
        .route("/v1/agents", get(tenant::list_agents))
        .route("/v1/alerts", get(tenant::list_alerts))
        .route("/v1/alerts/{id}", patch(tenant::update_alert))
        .route(
            "/v1/policy",
            get(policy::get_policy).put(policy::put_policy),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::count_requests,
        ))
        // Bodies are read decompressed (error::Body), so a gzip bomb stops at 10 MB too.
        .layer(RequestDecompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Status {
    pub status: String,
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process runs", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Ready when the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The database answers", body = Status),
        (status = 503, description = "Database unavailable", body = crate::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let client = state.pool.get().await?;
    client.query_one("SELECT 1", &[]).await?;
    Ok(Json(Status {
        status: "ready".into(),
    }))
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    Json(openapi::ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::not_found("endpoint")
}
