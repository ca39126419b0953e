//! Extractors that authenticate a request and name its tenant. A token is checked for shape
//! and checksum first (no database work for garbage), then looked up by hash in the cache
//! (cache.rs) or through the narrow SECURITY DEFINER functions, the only way to read token
//! tables before the tenant is known.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::cache;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{self, Kind};

/// A request made with a tenant API key (`qk_…`).
pub struct TenantKey {
    pub tenant_id: Uuid,
}

/// A request made by an enrolled device (`qdv_…`).
pub struct DeviceToken {
    pub tenant_id: Uuid,
    pub device_id: Uuid,
}

/// The peer's address (the service is served with connect info); `None` in-process.
pub fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

fn bearer(parts: &Parts, kind: Kind) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?
        .trim();
    if !tokens::well_formed(kind, token) {
        return Err(ApiError::unauthorized(format!(
            "not a valid {} token",
            kind.prefix()
        )));
    }
    Ok(token)
}

/// The bearer token of `kind`, looked up in the cache or else with `sql` (a definer function,
/// hash in; tenant and the key's or device's id out): the peer is refused first if it has
/// failed too often, a miss counts against it, and a hit counts against the tenant's rate.
async fn look_up(
    parts: &Parts,
    state: &AppState,
    kind: Kind,
    sql: &str,
    unknown: &str,
) -> Result<(Uuid, Uuid), ApiError> {
    let token = bearer(parts, kind)?;
    state.refuse_blocked_peer(peer(parts))?;
    let hash = tokens::hash(token);
    let key = cache::token_key(&hash);
    let cache_counter = |result: &str| state.metrics.token_cache.with_label_values(&[result]);
    if let Some(ids) = state.cache.get(&key).await.and_then(|v| parse_ids(&v)) {
        cache_counter("hit").inc();
        state.admit(ids.0)?;
        return Ok(ids);
    }
    cache_counter("miss").inc();
    let generation = state.cache.generation().await;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(&client.prepare_cached(sql).await?, &[&hash])
        .await?
        .ok_or_else(|| {
            state.note_failed_lookup(peer(parts));
            ApiError::unauthorized(unknown)
        })?;
    let ids: (Uuid, Uuid) = (row.get(0), row.get(1));
    state
        .cache
        .fill(&key, ids.0, &format!("{} {}", ids.0, ids.1), generation)
        .await;
    state.admit(ids.0)?;
    Ok(ids)
}

fn parse_ids(value: &str) -> Option<(Uuid, Uuid)> {
    let (tenant, id) = value.split_once(' ')?;
    Some((tenant.parse().ok()?, id.parse().ok()?))
}

impl FromRequestParts<AppState> for TenantKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant_id, _key_id) = look_up(
            parts,
            state,
            Kind::ApiKey,
            "SELECT tenant_id, key_id FROM quint_auth_api_key($1)",
            "unknown or revoked API key",
        )
        .await?;
        Ok(TenantKey { tenant_id })
    }
}

impl FromRequestParts<AppState> for DeviceToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant_id, device_id) = look_up(
            parts,
            state,
            Kind::Device,
            "SELECT tenant_id, device_id FROM quint_auth_device($1)",
            "unknown or revoked device token; enroll again",
        )
        .await?;
        Ok(DeviceToken {
            tenant_id,
            device_id,
        })
    }
}

/// Either kind of caller, for the endpoints both a tenant and its devices read.
pub enum Caller {
    Tenant(TenantKey),
    Device(DeviceToken),
}

impl Caller {
    pub fn tenant_id(&self) -> Uuid {
        match self {
            Caller::Tenant(key) => key.tenant_id,
            Caller::Device(device) => device.tenant_id,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let is_device = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(&format!("Bearer {}", Kind::Device.prefix())));
        if is_device {
            Ok(Caller::Device(
                DeviceToken::from_request_parts(parts, state).await?,
            ))
        } else {
            Ok(Caller::Tenant(
                TenantKey::from_request_parts(parts, state).await?,
            ))
        }
    }
}

/// The caller's address, for endpoints that authenticate in the handler (enrollment).
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer(parts)))
    }
}
