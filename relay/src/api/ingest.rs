//! `POST /v1/ingest`: a device's batch of events. Each event is validated on its own; the
//! valid ones are written in one tenant-scoped transaction (one statement per table), with the
//! tenant and device taken from the token, never from the event.

use std::collections::HashSet;

use axum::extract::State;
use axum::Json;
use quint_policy::Event;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::auth::DeviceToken;
use crate::error::{ApiError, Body, CommonErrors, ErrorBody};
use crate::state::{AppState, Bus};
use crate::writer;

pub const MAX_EVENTS: usize = 500;

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Just enough of a rejected event to name it.
#[derive(Deserialize)]
struct EventId {
    event_id: Option<Value>,
}
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestReply {
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    pub event_id: Option<String>,
    pub error: String,
}

/// What `POST /v1/ingest` takes (documentation only: events are validated one by one).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct IngestBatch {
    /// At most 500 envelopes (schema_version 1).
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
}

/// Upload a batch of events (device token). Each event is accepted or rejected on its own.
#[utoipa::path(post, path = "/v1/ingest", tag = "devices", request_body = IngestBatch,
    security(("device_token" = [])),
    responses((status = 200, description = "Per-event outcome", body = IngestReply),
        (status = 413, description = "More than 500 events or over 10 MB", body = ErrorBody),
        CommonErrors))]
pub async fn ingest(
    State(state): State<AppState>,
    device: DeviceToken,
    Body(body): Body,
) -> Result<Json<IngestReply>, ApiError> {
    // Events stay raw until each is parsed on its own: one pass over the bytes per event.
    let items = match serde_json::from_slice::<RawBatch>(&body) {
        Ok(batch) => batch.events,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Err(ApiError::bad_request(format!("the body is not JSON: {e}")))
        }
        Err(_) => return Err(ApiError::bad_request("expected {\"events\": [...]}")),
    };
    if items.len() > MAX_EVENTS {
        return Err(ApiError::too_large(format!(
            "{} events in one batch; at most {MAX_EVENTS}",
            items.len()
        )));
    }
    let started = std::time::Instant::now();
    let (mut events, mut rejected) = validate(&items, &device);
    if matches!(state.bus, Bus::Sns(_)) {
        events.retain(|event| match crate::sns::Publisher::unpublishable(event) {
            Some(error) => {
                rejected.push(Rejected {
                    event_id: Some(event.event_id.to_string()),
                    error,
                });
                false
            }
            None => true,
        });
    }
    match &state.bus {
        Bus::Postgres => {
            let written =
                writer::write_events(&state.pool, device.tenant_id, device.device_id, &events)
                    .await?;
            if written.replayed {
                state.metrics.ingest_replayed_batches.inc();
            }
        }
        Bus::Sns(publisher) => publisher.publish(&events).await?,
    }
    let metrics = &state.metrics;
    metrics
        .ingest_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics
        .ingested
        .with_label_values(&["accepted"])
        .inc_by(events.len() as u64);
    metrics
        .ingested
        .with_label_values(&["rejected"])
        .inc_by(rejected.len() as u64);
    Ok(Json(IngestReply {
        accepted: events.len(),
        rejected,
    }))
}

/// Postgres text cannot hold NUL, and indexed columns have a size limit: such an event is
/// rejected on its own instead of failing the batch.
fn storable(event: &Event) -> Result<(), String> {
    let short = [
        ("session_id", Some(event.session_id.as_str()), 256),
        ("platform", Some(event.platform.as_str()), 64),
        ("tool_name", event.tool_name.as_deref(), 512),
        ("target", event.target.as_deref(), 64 * 1024),
    ];
    for (name, value, max) in short {
        let Some(value) = value else { continue };
        if value.len() > max {
            return Err(format!("{name} is longer than {max} bytes"));
        }
        if value.contains('\0') {
            return Err(format!("{name} contains a NUL character"));
        }
    }
    if event.session_id.is_empty() || event.platform.is_empty() {
        return Err("session_id and platform must not be empty".into());
    }
    if event
        .rule_ids
        .iter()
        .any(|r| r.is_empty() || r.len() > 256 || r.chars().any(char::is_control))
    {
        return Err("rule_ids must be 1 to 256 characters with no control characters".into());
    }
    Ok(())
}

/// Splits a batch into events to store (tenant and device stamped) and rejections.
fn validate(items: &[&RawValue], device: &DeviceToken) -> (Vec<Event>, Vec<Rejected>) {
    let mut seen = HashSet::new();
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for item in items {
        let reject = |error: String| Rejected {
            event_id: serde_json::from_str::<EventId>(item.get())
                .ok()
                .and_then(|e| e.event_id)
                .and_then(|id| id.as_str().map(str::to_string)),
            error,
        };
        match Event::from_json(item.get().as_bytes()) {
            Ok(mut event) => {
                if let Err(problem) = storable(&event) {
                    rejected.push(reject(problem));
                    continue;
                }
                if !seen.insert(event.event_id) {
                    rejected.push(reject("duplicate event_id in this batch".into()));
                    continue;
                }
                event.tenant_id = Some(device.tenant_id);
                event.device_id = Some(device.device_id);
                events.push(event);
            }
            Err(e) => rejected.push(reject(e.to_string())),
        }
    }
    (events, rejected)
}
