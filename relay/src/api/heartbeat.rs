//! `POST /v1/heartbeat`: a device's health as it sees it (versions, collectors, outbox depth,
//! events its disk budget dropped, last error), kept on the device row for `GET /v1/devices`.
//! The relay keeps the document as sent: it is the device's word, shown, never acted on.

use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::DeviceToken;
use crate::db::tenant_transaction;
use crate::error::{parse_json, ApiError, Body, CommonErrors};
use crate::state::AppState;

/// A health document is small; anything bigger is not one.
const MAX_HEALTH_BYTES: usize = 64 * 1024;

/// Report the device's health (device token).
#[utoipa::path(post, path = "/v1/heartbeat", tag = "devices",
    request_body(content = Object, description = "The device's health document (a JSON object, at most 64 KB)"),
    security(("device_token" = [])),
    responses((status = 204, description = "Stored"),
        (status = 413, description = "Over 64 KB", body = crate::error::ErrorBody),
        CommonErrors))]
pub async fn heartbeat(
    State(state): State<AppState>,
    device: DeviceToken,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    if body.len() > MAX_HEALTH_BYTES {
        return Err(ApiError::too_large("a health document is at most 64 KB"));
    }
    let health: serde_json::Value = parse_json(&body, "expected a JSON object")?;
    if !health.is_object() {
        return Err(ApiError::bad_request("expected a JSON object"));
    }
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, device.tenant_id).await?;
    tx.execute(
        "UPDATE devices SET health = $2, health_at = now(), last_seen_at = now()
         WHERE device_id = $1",
        &[&device.device_id, &health],
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
