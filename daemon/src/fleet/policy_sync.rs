//! Policy sync: long-polls the relay's `GET /v1/policy?wait=25` with the ETag in force, so a
//! tenant policy edited through the API is in force here within seconds. A layer that does not
//! compile here (on this device's built-in pack and local files) is refused and the last good
//! one kept; status shows which ETag is in force and why a newer one was refused.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Backoff, Link, RelayError};
use crate::policy_layers::TenantLayer;
use crate::server::Daemon;

/// The relay holds a poll at most 25 s (under its 30 s request timeout).
const WAIT_SECONDS: u64 = 25;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(WAIT_SECONDS + 15);
/// The ETag to send while no tenant layer is set (the relay's `NO_POLICY_ETAG`).
const NO_POLICY_ETAG: &str = "\"none\"";

#[derive(Deserialize)]
struct PolicyDocument {
    yaml: String,
    etag: String,
}

pub async fn run(daemon: Arc<Daemon>) {
    let link = daemon.link();
    let mut enrollments = link.subscribe();
    let mut backoff = Backoff::default();
    // The ETag last seen, in force or refused: the poll waits for the next change from it.
    let mut known = daemon.tenant_policy_etag();
    loop {
        let enrollment = link.active(&mut enrollments).await;
        let url = enrollment.endpoint(&format!("/v1/policy?wait={WAIT_SECONDS}"));
        let polled = tokio::select! {
            polled = poll(link, &url, &enrollment.device_token, known.as_deref()) => polled,
            _ = Link::enrollment_changed(&mut enrollments) => continue,
        };
        let wait = match polled {
            Ok(Polled::Unchanged) => {
                backoff.reset();
                continue;
            }
            Ok(Polled::Layer(layer)) => {
                let etag = layer.etag.clone();
                if apply(&daemon, Some(layer)).await {
                    backoff.reset();
                    known = Some(etag);
                    continue;
                }
                backoff.next(None)
            }
            Ok(Polled::NoLayer) => {
                if apply(&daemon, None).await {
                    backoff.reset();
                    known = Some(NO_POLICY_ETAG.into());
                    continue;
                }
                backoff.next(None)
            }
            Err(RelayError::Unauthorized(message)) => {
                link.revoke(&enrollment, &message);
                continue;
            }
            Err(RelayError::RetryAfter(after, message)) => {
                tracing::warn!(%message, "policy poll refused for now");
                backoff.next(after)
            }
            Err(e) => {
                tracing::warn!(error = e.message(), "policy poll failed; retrying later");
                backoff.next(None)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = Link::enrollment_changed(&mut enrollments) => {}
        }
    }
}

enum Polled {
    Unchanged,
    Layer(TenantLayer),
    NoLayer,
}

async fn poll(
    link: &Link,
    url: &str,
    token: &str,
    known: Option<&str>,
) -> Result<Polled, RelayError> {
    let mut request = link
        .http()
        .get(url)
        .bearer_auth(token)
        .timeout(REQUEST_TIMEOUT);
    if let Some(etag) = known {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let response = request.send().await.map_err(|e| {
        link.note(|s| s.reachable = Some(false));
        RelayError::unreachable(e)
    })?;
    link.note(|s| s.reachable = Some(true));
    match response.status().as_u16() {
        304 => Ok(Polled::Unchanged),
        // Only the relay's own answer means "no layer": a 404 from a proxy or an older relay
        // must not wipe the fleet's rules.
        404 => {
            let body = response.text().await.unwrap_or_default();
            let code = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
            if code.as_deref() == Some("not_found") && body.contains("policy") {
                Ok(Polled::NoLayer)
            } else {
                Err(RelayError::Failed(format!(
                    "404 from {url} that is not the relay's \"no policy\": {}",
                    body.chars().take(200).collect::<String>()
                )))
            }
        }
        200 => {
            let document: PolicyDocument = response.json().await.map_err(|e| {
                RelayError::Failed(format!("the relay's policy is not a policy document: {e}"))
            })?;
            Ok(Polled::Layer(TenantLayer {
                yaml: document.yaml,
                etag: document.etag,
                fetched_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }))
        }
        _ => Err(RelayError::from_response(response).await),
    }
}

/// Why a tenant layer is not in force.
pub enum ApplyError {
    /// It does not compile here: refused for good (until it changes).
    Invalid(Vec<quint_policy::PolicyError>),
    /// It could not be stored: tried again.
    Storage(String),
}

/// Puts a layer (or none) in force, or records why it was refused. False when it should be
/// tried again (storage failed): the poll then asks for the same layer after a backoff
/// instead of waiting for the next change.
async fn apply(daemon: &Arc<Daemon>, layer: Option<TenantLayer>) -> bool {
    let etag = layer.as_ref().map(|l| l.etag.clone());
    let applied = {
        let daemon = daemon.clone();
        tokio::task::spawn_blocking(move || daemon.apply_tenant_policy(layer)).await
    };
    match applied {
        Ok(Ok(())) => {
            tracing::info!(
                etag = etag.as_deref().unwrap_or("none"),
                "tenant policy in force"
            );
            true
        }
        Ok(Err(ApplyError::Invalid(errors))) => {
            let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let message = format!(
                "tenant policy {} refused, the last good one stays: {}",
                etag.as_deref().unwrap_or("?"),
                listed.join("; ")
            );
            tracing::error!(%message);
            daemon.link().note(|s| s.policy_error = Some(message));
            true
        }
        Ok(Err(ApplyError::Storage(message))) => {
            tracing::error!(%message, "cannot store the tenant policy; trying again");
            daemon.link().note(|s| s.policy_error = Some(message));
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "applying the tenant policy panicked");
            false
        }
    }
}
