//! What every handler gets, passed explicitly as axum state: the database pool, the per-tenant
//! rate limiter and the metrics.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use crate::error::ApiError;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: deadpool_postgres::Pool,
    pub limiter: Arc<DefaultKeyedRateLimiter<Uuid>>,
    pub metrics: Arc<Metrics>,
    /// Tenants whose policy just changed (from every relay process, via Postgres NOTIFY).
    pub policy_changes: tokio::sync::broadcast::Sender<Uuid>,
}

impl AppState {
    pub fn new(
        pool: deadpool_postgres::Pool,
        per_second: u32,
        burst: u32,
        policy_changes: tokio::sync::broadcast::Sender<Uuid>,
    ) -> AppState {
        let quota = Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap())
            .allow_burst(NonZeroU32::new(burst.max(1)).unwrap());
        AppState {
            pool,
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            metrics: Arc::new(Metrics::new()),
            policy_changes,
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
