//! Prometheus metrics, served at `GET /metrics`: requests by route and status, ingested events
//! by outcome, ingest batch latency, replayed batches, token cache hits, rate-limited requests.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub ingested: IntCounterVec,
    pub ingest_seconds: Histogram,
    pub rate_limited: IntCounter,
    pub ingest_replayed_batches: IntCounter,
    pub token_cache: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "quint_relay_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .unwrap();
        let ingested = IntCounterVec::new(
            Opts::new(
                "quint_relay_ingested_events_total",
                "Events received in ingest batches",
            ),
            &["outcome"],
        )
        .unwrap();
        let ingest_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "quint_relay_ingest_seconds",
                "Time to validate and store one batch",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .unwrap();
        let rate_limited = IntCounter::new(
            "quint_relay_rate_limited_total",
            "Requests refused by the per-tenant rate limit",
        )
        .unwrap();
        let ingest_replayed_batches = IntCounter::new(
            "quint_relay_ingest_replayed_batches_total",
            "Batches that held already stored events (a device retrying) and were written again \
             skipping those",
        )
        .unwrap();
        let token_cache = IntCounterVec::new(
            Opts::new(
                "quint_relay_token_cache_total",
                "Token lookups answered by the cache (hit) or by Postgres (miss)",
            ),
            &["result"],
        )
        .unwrap();
        registry.register(Box::new(token_cache.clone())).unwrap();
        registry.register(Box::new(requests.clone())).unwrap();
        registry.register(Box::new(ingested.clone())).unwrap();
        registry.register(Box::new(ingest_seconds.clone())).unwrap();
        registry.register(Box::new(rate_limited.clone())).unwrap();
        registry
            .register(Box::new(ingest_replayed_batches.clone()))
            .unwrap();
        Metrics {
            registry,
            requests,
            ingested,
            ingest_seconds,
            rate_limited,
            ingest_replayed_batches,
            token_cache,
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts every request by its route pattern (not the raw path: ids would explode the labels).
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}

pub async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
