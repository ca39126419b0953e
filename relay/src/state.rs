//! What every handler gets, passed explicitly as axum state: the database pool, the cache, the
//! per-tenant rate limiter and the metrics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use crate::cache::Cache;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Where ingest puts accepted events: straight into Postgres, or onto SNS for sink workers.
#[derive(Clone)]
pub enum Bus {
    Postgres,
    Sns(Arc<crate::sns::Publisher>),
}

#[derive(Clone)]
pub struct AppState {
    pub pool: deadpool_postgres::Pool,
    pub limiter: Arc<DefaultKeyedRateLimiter<Uuid>>,
    pub metrics: Arc<Metrics>,
    /// Tenants whose policy just changed (from every relay process, via Postgres NOTIFY).
    pub policy_changes: tokio::sync::broadcast::Sender<Uuid>,
    /// Token lookups and policy documents (cache.rs).
    pub cache: Arc<Cache>,
    /// Where ingest puts accepted events.
    pub bus: Bus,
    /// Failed token lookups per peer address: past the budget the address is refused before
    /// any database work, so guessing tokens cannot load Postgres.
    failed_lookups: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

/// Failed lookups a peer address may make per second, and in a burst.
const FAILED_LOOKUPS_PER_SECOND: u32 = 20;
const FAILED_LOOKUPS_BURST: u32 = 100;

impl AppState {
    pub fn new(
        pool: deadpool_postgres::Pool,
        per_second: u32,
        burst: u32,
        policy_changes: tokio::sync::broadcast::Sender<Uuid>,
        cache: Arc<Cache>,
        bus: Bus,
    ) -> AppState {
        let quota = Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap())
            .allow_burst(NonZeroU32::new(burst.max(1)).unwrap());
        AppState {
            pool,
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            metrics: Arc::new(Metrics::new()),
            policy_changes,
            cache,
            bus,
            failed_lookups: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(NonZeroU32::new(FAILED_LOOKUPS_PER_SECOND).unwrap())
                    .allow_burst(NonZeroU32::new(FAILED_LOOKUPS_BURST).unwrap()),
            )),
            blocked: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Refuses a peer address that has failed too many token lookups, before any lookup.
    pub fn refuse_blocked_peer(&self, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(peer) = peer else { return Ok(()) };
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        blocked.retain(|_, until| *until > now);
        match blocked.get(&peer) {
            Some(until) => Err(too_many_failures(*until - now)),
            None => Ok(()),
        }
    }

    /// Counts a failed token lookup from `peer`; past the budget the peer is blocked for a while.
    pub fn note_failed_lookup(&self, peer: Option<IpAddr>) {
        let Some(peer) = peer else { return };
        if let Err(not_until) = self.failed_lookups.check_key(&peer) {
            let wait = not_until
                .wait_time_from(DefaultClock::default().now())
                .max(Duration::from_secs(1));
            self.blocked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(peer, Instant::now() + wait);
            tracing::warn!(%peer, "too many failed token lookups; address refused for a while");
        }
    }

    /// Counts a request against its tenant's budget; over it, 429 with `Retry-After`. Per
    /// relay process: N processes allow N times the rate.
    pub fn admit(&self, tenant_id: Uuid) -> Result<(), ApiError> {
        match self.limiter.check_key(&tenant_id) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(DefaultClock::default().now());
                self.metrics.rate_limited.inc();
                Err(ApiError {
                    retry_after: Some(wait.as_secs().max(1)),
                    ..ApiError::new(
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        "too many requests for this tenant; retry after the given seconds",
                    )
                })
            }
        }
    }
}

fn too_many_failures(wait: Duration) -> ApiError {
    ApiError {
        retry_after: Some(wait.as_secs().max(1)),
        ..ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentications from this address; retry later",
        )
    }
}
