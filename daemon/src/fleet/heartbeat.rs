//! Heartbeat: once a minute (and right after enrolling) the device's health goes to the
//! relay's `POST /v1/heartbeat`, where `GET /v1/devices` shows it: versions, collectors,
//! outbox depth, rejected and dropped counts, the last error.

use std::sync::Arc;
use std::time::Duration;

use super::{Link, RelayError};
use crate::server::Daemon;

const INTERVAL: Duration = Duration::from_secs(60);

pub async fn run(daemon: Arc<Daemon>) {
    let link = daemon.link();
    let mut enrollments = link.subscribe();
    loop {
        let enrollment = link.active(&mut enrollments).await;
        match daemon.health().await {
            Ok(health) => {
                let sent = link
                    .http()
                    .post(enrollment.endpoint("/v1/heartbeat"))
                    .bearer_auth(&enrollment.device_token)
                    .timeout(Duration::from_secs(30))
                    .json(&health)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => match RelayError::from_response(response).await {
                        RelayError::Unauthorized(message) => link.revoke(&enrollment, &message),
                        other => tracing::warn!(error = other.message(), "heartbeat refused"),
                    },
                    Err(e) => {
                        tracing::debug!(
                            error = RelayError::unreachable(e).message(),
                            "heartbeat not delivered"
                        )
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot gather the device's health"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = Link::enrollment_changed(&mut enrollments) => {}
        }
    }
}
