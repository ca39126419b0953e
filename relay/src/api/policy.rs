//! The tenant's policy layer: `PUT /v1/policy` (API key) validates it with the same compiler
//! quintd uses, on top of the built-in pack, and refuses a broken one with file, line and rule;
//! `GET /v1/policy` serves it to the tenant (API key) and to its devices (device token), with
//! an ETag so an unchanged policy costs a 304.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quint_policy::default_pack::default_sources;
use quint_policy::{Policy, PolicySource};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::auth::TenantKey;
use crate::cache;
use crate::db::tenant_transaction;
use crate::error::{parse_json, ApiError, Body, CommonErrors, ErrorBody, Query};
use crate::state::AppState;

/// The name a tenant's layer has in error messages.
const LAYER_NAME: &str = "tenant.yaml";
const MAX_POLICY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    pub yaml: String,
}

/// What a device sends as If-None-Match while no layer is set: its long poll then waits for
/// the first one like any other change, and gets 304 if none comes.
pub const NO_POLICY_ETAG: &str = "\"none\"";

/// Below the server-wide 30 s request timeout, with room for the lookups around the wait.
const MAX_WAIT_SECONDS: u64 = 25;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// With If-None-Match: hold the request up to this many seconds (at most 25) until the
    /// policy changes; 304 if it does not. While no layer is set, `"none"` is the ETag to send.
    #[param(maximum = 25)]
    pub wait: Option<u64>,
}

/// The tenant's layer, from the cache when it holds it (`null` caches "none set").
async fn read_policy(
    state: &AppState,
    tenant: uuid::Uuid,
) -> Result<Option<PolicyDocument>, ApiError> {
    let key = cache::policy_key(tenant);
    if let Some(cached) = state.cache.get(&key).await {
        if let Ok(document) = serde_json::from_str(&cached) {
            return Ok(document);
        }
    }
    let generation = state.cache.generation().await;
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, tenant).await?;
    let document = tx
        .query_opt("SELECT yaml, etag, updated_at FROM policies", &[])
        .await?
        .map(|row| PolicyDocument {
            yaml: row.get(0),
            etag: row.get(1),
            updated_at: row.get(2),
        });
    tx.commit().await?;
    if let Ok(text) = serde_json::to_string(&document) {
        state.cache.fill(&key, tenant, &text, generation).await;
    }
    Ok(document)
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PolicyStored {
    pub etag: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PolicyDocument {
    pub yaml: String,
    pub etag: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Set the tenant's policy layer (validated on top of the built-in pack).
#[utoipa::path(put, path = "/v1/policy", tag = "policy", request_body = PolicyUpdate,
    security(("api_key" = [])),
    responses((status = 200, description = "Stored", body = PolicyStored),
        (status = 413, description = "Layer over 1 MB", body = ErrorBody),
        (status = 422, description = "Invalid policy: file, line and rule", body = ErrorBody),
        CommonErrors))]
pub async fn put_policy(
    State(state): State<AppState>,
    key: TenantKey,
    Body(body): Body,
) -> Result<Json<PolicyStored>, ApiError> {
    let update: PolicyUpdate = parse_json(&body, "expected {\"yaml\": \"…\"}")?;
    if update.yaml.len() > MAX_POLICY_BYTES {
        return Err(ApiError::too_large("a policy layer is at most 1 MB"));
    }
    let mut sources = default_sources();
    sources.push(PolicySource {
        name: LAYER_NAME.into(),
        text: update.yaml.clone(),
    });
    if let Err(errors) = Policy::compile(&sources) {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            listed.join("; "),
        ));
    }
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(update.yaml.as_bytes())[..16])
    );
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, key.tenant_id).await?;
    tx.execute(
        "INSERT INTO policies (tenant_id, yaml, etag) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET yaml = excluded.yaml, etag = excluded.etag,
             updated_at = now()",
        &[&key.tenant_id, &update.yaml, &etag],
    )
    .await?;
    // A trigger notifies every relay process at commit (migration 0003).
    tx.commit().await?;
    Ok(Json(PolicyStored { etag }))
}

/// The tenant's policy layer, for the tenant (API key) or its devices (device token).
#[utoipa::path(get, path = "/v1/policy", tag = "policy", params(PolicyQuery),
    security(("api_key" = []), ("device_token" = [])),
    responses((status = 200, description = "The layer", body = PolicyDocument),
        (status = 304, description = "Unchanged since If-None-Match"),
        (status = 404, description = "No layer set", body = ErrorBody),
        CommonErrors))]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<PolicyQuery>,
) -> Result<Response, ApiError> {
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::bad_request(format!(
            "wait is at most {MAX_WAIT_SECONDS} seconds"
        )));
    }
    let tenant = caller.tenant_id();
    let known = headers
        .get(header::IF_NONE_MATCH)
        .map(|v| v.as_bytes().to_vec());
    // Subscribe before reading, so a change between the read and the wait is not missed.
    let mut changes = state.policy_changes.subscribe();
    let mut row = read_policy(&state, tenant).await?;
    let unchanged = |document: &Option<PolicyDocument>| {
        let current = document
            .as_ref()
            .map_or(NO_POLICY_ETAG, |d| d.etag.as_str());
        known.as_deref() == Some(current.as_bytes())
    };
    if wait > 0 && unchanged(&row) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(changed)) if changed != tenant => continue,
                // A change for this tenant, or missed messages: read again.
                Ok(_) => {
                    row = read_policy(&state, tenant).await?;
                    if !unchanged(&row) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    let Some(document) = row else {
        if unchanged(&row) {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        return Err(ApiError::not_found(
            "policy (none set: the built-in pack applies)",
        ));
    };
    let etag_header = HeaderValue::from_str(&document.etag).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "bad stored etag",
        )
    })?;
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == document.etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    Ok(([(header::ETAG, etag_header)], Json(document)).into_response())
}
