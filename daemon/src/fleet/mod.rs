//! The fleet link: a device enrolled with a relay uploads its outbox (`forwarder`), follows
//! its tenant's policy (`policy_sync`) and reports its health (`heartbeat`). Each is a loop
//! over the current enrollment; re-enrolling swaps it and the loops take the new one at once.

pub mod enrollment;
pub mod forwarder;
pub mod heartbeat;
pub mod policy_sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use enrollment::Enrollment;

/// What `quintctl status` shows of the link; the outbox numbers are filled in from SQLite.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkStatus {
    pub enrolled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<String>,
    /// The relay refused the device token: uploads stopped, everything kept, until re-enrolled.
    pub revoked: bool,
    /// Whether the last request reached the relay (any HTTP answer counts), and how long the
    /// last answered one took.
    pub reachable: Option<bool>,
    pub latency_ms: Option<u64>,
    pub last_upload_at: Option<String>,
    /// Events the relay accepted since quintd started.
    pub uploaded: u64,
    pub last_error: Option<String>,
    /// Events waiting for the relay, and how old the oldest is.
    pub pending: u64,
    pub oldest_pending_seconds: Option<u64>,
    /// Events the relay refused (kept locally, never retried).
    pub rejected: u64,
    /// Events the disk budget dropped (allow decisions only).
    pub dropped: u64,
    /// The tenant policy layer in force (its ETag) and when it was fetched.
    pub policy_etag: Option<String>,
    pub policy_fetched_at: Option<String>,
    /// Why the newest tenant policy was refused, if it was; the last good one stays.
    pub policy_error: Option<String>,
}

/// The link's state shared by its loops and `status`.
pub struct Link {
    enrollment: watch::Sender<Option<Arc<Enrollment>>>,
    state: Mutex<LinkStatus>,
    http: reqwest::Client,
}

impl Link {
    pub fn new(enrollment: Option<Enrollment>) -> Link {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("quintd/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with the built-in TLS settings");
        let link = Link {
            enrollment: watch::channel(None).0,
            state: Mutex::new(LinkStatus::default()),
            http,
        };
        if let Some(enrollment) = enrollment {
            link.replace(enrollment);
        }
        link
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn current(&self) -> Option<Arc<Enrollment>> {
        self.enrollment.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Enrollment>>> {
        self.enrollment.subscribe()
    }

    /// A new enrollment: the revoked state and errors of the old one go with it. The swap
    /// happens under the state's lock, as `revoke` checks and sets under it.
    pub fn replace(&self, enrollment: Enrollment) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        {
            let policy = (
                s.policy_etag.take(),
                s.policy_fetched_at.take(),
                s.policy_error.take(),
            );
            *s = LinkStatus {
                enrolled: true,
                relay: Some(enrollment.relay_url.clone()),
                tenant_id: Some(enrollment.tenant_id.clone()),
                device_id: Some(enrollment.device_id.clone()),
                enrolled_at: Some(enrollment.enrolled_at.clone()),
                policy_etag: policy.0,
                policy_fetched_at: policy.1,
                policy_error: policy.2,
                ..LinkStatus::default()
            };
        }
        self.enrollment.send_replace(Some(Arc::new(enrollment)));
    }

    pub fn revoked(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).revoked
    }

    pub fn note(&self, change: impl FnOnce(&mut LinkStatus)) {
        change(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn status(&self) -> LinkStatus {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records how a request to the relay went, for status.
    fn answered(&self, started: std::time::Instant) {
        let latency = started.elapsed().as_millis() as u64;
        self.note(|s| {
            s.reachable = Some(true);
            s.latency_ms = Some(latency);
        });
    }

    /// The relay said the device token of `enrollment` is no good: every loop stops until
    /// re-enrollment. An answer about a token already replaced (a request in flight while
    /// `quintctl enroll` ran) says nothing about the new one and is ignored.
    fn revoke(&self, enrollment: &Arc<Enrollment>, message: &str) {
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let current = self
                .current()
                .is_some_and(|now| Arc::ptr_eq(&now, enrollment));
            if !current {
                return;
            }
            s.revoked = true;
            s.last_error = Some(format!("device revoked — re-enroll ({message})"));
        }
        tracing::error!(%message, "the relay refused this device's token: uploads stop until `quintctl enroll` runs again; events are kept");
    }

    /// The enrollment to work with: waits while there is none, or while it is revoked.
    async fn active(
        &self,
        receiver: &mut watch::Receiver<Option<Arc<Enrollment>>>,
    ) -> Arc<Enrollment> {
        loop {
            match self.current() {
                Some(enrollment) if !self.revoked() => return enrollment,
                _ => Link::enrollment_changed(receiver).await,
            }
        }
    }

    /// Waits until the enrollment is replaced (or forever without one).
    async fn enrollment_changed(receiver: &mut watch::Receiver<Option<Arc<Enrollment>>>) {
        if receiver.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// How a relay request failed.
#[derive(Debug)]
pub enum RelayError {
    /// 401: the device token is unknown or revoked.
    Unauthorized(String),
    /// 429 or 503: wait this long (the relay's Retry-After, else the backoff).
    RetryAfter(Option<Duration>, String),
    /// 413: the batch is too big for the relay.
    TooLarge(String),
    /// The relay could not be reached, or answered something else.
    Failed(String),
}

impl RelayError {
    /// A non-success answer, classified; the body's error message is kept for status.
    pub async fn from_response(response: reqwest::Response) -> RelayError {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let message = format!("{status}: {message}");
        match status.as_u16() {
            401 => RelayError::Unauthorized(message),
            413 => RelayError::TooLarge(message),
            429 | 503 => RelayError::RetryAfter(retry_after, message),
            _ => RelayError::Failed(message),
        }
    }

    pub fn unreachable(error: reqwest::Error) -> RelayError {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        RelayError::Failed(format!("relay unreachable: {text}"))
    }

    pub fn message(&self) -> &str {
        match self {
            RelayError::Unauthorized(m)
            | RelayError::RetryAfter(_, m)
            | RelayError::TooLarge(m)
            | RelayError::Failed(m) => m,
        }
    }
}

/// Exponential backoff with jitter: 1 s doubling to 5 minutes, each wait drawn from its upper
/// half, so a fleet coming back from a relay outage does not return in step.
#[derive(Default)]
pub struct Backoff {
    failures: u32,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Backoff {
    pub fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        // 1, 2, 4 … 256 s, then 512 s capped to 5 minutes.
        let ceiling =
            Duration::from_secs(1u64 << self.failures.min(10).saturating_sub(1)).min(MAX_BACKOFF);
        let jittered = ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0);
        // A Retry-After of 0 must not become a busy loop.
        retry_after.map_or(jittered, |asked| {
            asked.clamp(Duration::from_secs(1), MAX_BACKOFF)
        })
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Starts the link's loops; they idle until the device is enrolled.
pub fn start(daemon: &Arc<crate::server::Daemon>) {
    tokio::spawn(forwarder::run(daemon.clone()));
    tokio::spawn(policy_sync::run(daemon.clone()));
    tokio::spawn(heartbeat::run(daemon.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment(device: &str) -> Enrollment {
        Enrollment {
            relay_url: "https://relay.example.com".into(),
            tenant_id: "t".into(),
            device_id: device.into(),
            device_token: format!("qdv_{device}"),
            enrolled_at: "2026-11-27T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_401_for_a_replaced_token_does_not_revoke_the_new_enrollment() {
        let link = Link::new(Some(enrollment("old")));
        let old = link.current().unwrap();
        link.replace(enrollment("new"));
        link.revoke(&old, "unknown or revoked device token");
        assert!(!link.revoked(), "an answer about the old token");
        let new = link.current().unwrap();
        link.revoke(&new, "unknown or revoked device token");
        assert!(link.revoked());
        assert!(link.status().last_error.unwrap().contains("re-enroll"));
        link.replace(enrollment("newer"));
        assert!(!link.revoked(), "re-enrolling clears the revocation");
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_five_minutes_and_honours_retry_after() {
        // Jitter is random: many rounds, so a bound that holds only by luck fails here.
        for _ in 0..200 {
            let mut backoff = Backoff::default();
            let waits: Vec<Duration> = (0..12).map(|_| backoff.next(None)).collect();
            assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= Duration::from_secs(1));
            assert!(waits[3] >= Duration::from_secs(4) && waits[3] <= Duration::from_secs(8));
            assert!(waits[8] >= Duration::from_secs(128) && waits[8] <= Duration::from_secs(256));
            assert!(
                waits[11] >= MAX_BACKOFF / 2 && waits[11] <= MAX_BACKOFF,
                "{waits:?}"
            );
        }
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.next(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(backoff.next(Some(Duration::from_secs(86_400))), MAX_BACKOFF);
        assert_eq!(backoff.next(Some(Duration::ZERO)), Duration::from_secs(1));
        backoff.reset();
        assert!(backoff.next(None) <= Duration::from_secs(1));
    }
}
