//! `POST /v1/enroll`: a deploy token (fleet-wide, expiring, revocable, optionally limited in
//! uses) buys one device its own revocable device token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Peer;
use crate::error::{parse_json, ApiError, Body, ErrorBody};
use crate::state::AppState;
use crate::tokens::{self, Kind};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub deploy_token: String,
    pub host: Host,
    pub daemon_version: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub machine_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollReply {
    pub device_id: Uuid,
    pub device_token: String,
    pub tenant_id: Uuid,
}

const MAX_FIELD: usize = 256;

/// Enroll a device with a deploy token; returns its device token (shown once).
#[utoipa::path(post, path = "/v1/enroll", tag = "devices", request_body = EnrollRequest,
    responses((status = 201, description = "Enrolled", body = EnrollReply),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Unknown, expired, used-up or revoked deploy token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 413, description = "Body over 10 MB", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Body(body): Body,
) -> Result<(StatusCode, Json<EnrollReply>), ApiError> {
    let request: EnrollRequest = parse_json(&body, "invalid enrollment request")?;
    for (name, value) in [
        ("host.hostname", &request.host.hostname),
        ("host.os", &request.host.os),
        ("host.arch", &request.host.arch),
        ("host.machine_id", &request.host.machine_id),
        ("daemon_version", &request.daemon_version),
    ] {
        if value.is_empty() || value.len() > MAX_FIELD || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "{name} must be 1 to {MAX_FIELD} characters with no control characters"
            )));
        }
    }
    if !tokens::well_formed(Kind::Deploy, &request.deploy_token) {
        return Err(ApiError::unauthorized("not a valid qdt_ deploy token"));
    }
    state.refuse_blocked_peer(peer)?;
    // Redeeming a use and creating the device commit together: a failed enrollment does not
    // spend a use of the token.
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "SELECT status, tenant_id, token_id FROM quint_redeem_deploy_token($1)",
            &[&tokens::hash(&request.deploy_token)],
        )
        .await?;
    let status: String = row.get(0);
    let message = match status.as_str() {
        "ok" => None,
        "expired" => Some("this deploy token has expired; ask for a new one"),
        "used_up" => Some("this deploy token has been used as many times as it allows"),
        "revoked" => Some("this deploy token has been revoked"),
        _ => Some("unknown deploy token"),
    };
    if let Some(message) = message {
        state.note_failed_lookup(peer);
        return Err(ApiError::unauthorized(message));
    }
    let tenant_id: Uuid = row.get(1);
    let token_id: Uuid = row.get(2);
    let device_id = Uuid::now_v7();
    let device_token = tokens::generate(Kind::Device);
    tx.execute(
        "SELECT set_config('app.current_tenant_id', $1, true)",
        &[&tenant_id.to_string()],
    )
    .await?;
    tx.execute(
        "INSERT INTO devices (tenant_id, device_id, token_hash, hostname, os, arch, machine_id,
                              daemon_version, deploy_token_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &tenant_id,
            &device_id,
            &tokens::hash(&device_token),
            &request.host.hostname,
            &request.host.os,
            &request.host.arch,
            &request.host.machine_id,
            &request.daemon_version,
            &token_id,
        ],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%tenant_id, %device_id, hostname = %request.host.hostname, "device enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollReply {
            device_id,
            device_token,
            tenant_id,
        }),
    ))
}
