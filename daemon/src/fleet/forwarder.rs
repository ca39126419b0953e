//! The forwarder: drains the SQLite outbox to the relay's `POST /v1/ingest` in batches of up
//! to 500 events / 10 MB, gzip-compressed, oldest first. An event is marked acknowledged only
//! after the relay accepted it; one the relay rejects is marked rejected (kept, counted, never
//! sent again). Anything else (no answer, 5xx, 429) leaves the batch pending for a retry
//! after the relay's Retry-After or an exponential backoff with jitter.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::Deserialize;

use super::{Backoff, Enrollment, Link, RelayError};
use crate::server::Daemon;

pub const MAX_EVENTS: usize = 500;
/// The relay takes 10 MB of decompressed body; the envelope around the events is small.
pub const MAX_BYTES: usize = 10 * 1024 * 1024 - 1024;
/// With nothing new, the outbox is looked at again this often anyway.
const IDLE_CHECK: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One stored event waiting for the relay.
struct Pending {
    seq: u64,
    event_id: String,
    payload: String,
}

/// What the relay decided, by outbox position.
#[derive(Debug, Default)]
pub struct UploadOutcome {
    pub acknowledged: Vec<u64>,
    pub rejected: Vec<(u64, String)>,
}

#[derive(Deserialize)]
struct IngestReply {
    accepted: usize,
    rejected: Vec<Rejected>,
}

#[derive(Deserialize)]
struct Rejected {
    event_id: Option<String>,
    error: String,
}

pub async fn run(daemon: Arc<Daemon>) {
    let link = daemon.link();
    let mut enrollments = link.subscribe();
    let mut head = daemon.head_changes();
    let reader = match crate::store::open_reader(&daemon.config().database_path()) {
        Ok(conn) => Arc::new(Mutex::new(conn)),
        Err(e) => {
            tracing::error!(error = %e, "the forwarder cannot read the outbox; nothing will be uploaded");
            return;
        }
    };
    let mut backoff = Backoff::default();
    // Halved after a 413, back to the full size after a success.
    let mut max_events = MAX_EVENTS;
    loop {
        let enrollment = link.active(&mut enrollments).await;
        let batch = {
            let reader = reader.clone();
            tokio::task::spawn_blocking(move || {
                read_batch(
                    &reader.lock().unwrap_or_else(|e| e.into_inner()),
                    max_events,
                )
            })
            .await
        };
        let batch = match batch {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading the outbox failed");
                tokio::time::sleep(IDLE_CHECK).await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox panicked");
                tokio::time::sleep(IDLE_CHECK).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
                _ = Link::enrollment_changed(&mut enrollments) => {}
            }
            continue;
        }
        let wait = match upload(link, &enrollment, &batch).await {
            Ok(outcome) => {
                let accepted = outcome.acknowledged.len() as u64;
                if !outcome.rejected.is_empty() {
                    tracing::warn!(count = outcome.rejected.len(), first = %outcome.rejected[0].1, "the relay rejected events; they are kept and not sent again");
                }
                match daemon.record_upload(outcome).await {
                    Ok(()) => {
                        backoff.reset();
                        max_events = MAX_EVENTS;
                        link.note(|s| {
                            s.uploaded += accepted;
                            s.last_upload_at = Some(now());
                            s.last_error = None;
                        });
                        continue;
                    }
                    // Sent again later: the relay skips what it already has.
                    Err(e) => {
                        tracing::error!(error = %e, "cannot mark uploaded events");
                        backoff.next(None)
                    }
                }
            }
            Err(RelayError::Unauthorized(message)) => {
                link.revoke(&enrollment, &message);
                continue;
            }
            Err(RelayError::TooLarge(message)) if batch.len() > 1 => {
                max_events = (batch.len() / 2).max(1);
                tracing::warn!(%message, next = max_events, "batch too large for the relay; sending smaller ones");
                continue;
            }
            Err(RelayError::TooLarge(message)) => {
                let outcome = UploadOutcome {
                    rejected: vec![(batch[0].seq, format!("too large for the relay: {message}"))],
                    ..UploadOutcome::default()
                };
                if let Err(e) = daemon.record_upload(outcome).await {
                    tracing::error!(error = %e, "cannot mark an oversized event rejected");
                }
                continue;
            }
            Err(RelayError::RetryAfter(after, message)) => {
                link.note(|s| s.last_error = Some(message.clone()));
                backoff.next(after)
            }
            Err(RelayError::Failed(message)) => {
                tracing::warn!(%message, pending = batch.len(), "upload failed; retrying later");
                link.note(|s| s.last_error = Some(message.clone()));
                backoff.next(None)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = Link::enrollment_changed(&mut enrollments) => {}
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The oldest pending events, at most `max_events` and `MAX_BYTES` (at least one).
fn read_batch(conn: &Connection, max_events: usize) -> rusqlite::Result<Vec<Pending>> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, event_id, payload FROM actions WHERE upload_state = 0 ORDER BY seq LIMIT ?1",
    )?;
    let mut rows = statement.query([max_events as i64])?;
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let payload: String = row.get(2)?;
        if !batch.is_empty() && bytes + payload.len() + 1 > MAX_BYTES {
            break;
        }
        bytes += payload.len() + 1;
        batch.push(Pending {
            seq: row.get::<_, i64>(0)? as u64,
            event_id: row.get(1)?,
            payload,
        });
    }
    Ok(batch)
}

/// Sends one batch; on success, which events the relay took and which it refused.
async fn upload(
    link: &Link,
    enrollment: &Enrollment,
    batch: &[Pending],
) -> Result<UploadOutcome, RelayError> {
    let body = gzip_batch(batch).map_err(|e| RelayError::Failed(format!("compressing: {e}")))?;
    let started = Instant::now();
    let sent = link
        .http()
        .post(enrollment.endpoint("/v1/ingest"))
        .bearer_auth(&enrollment.device_token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::CONTENT_ENCODING, "gzip")
        .timeout(REQUEST_TIMEOUT)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            link.note(|s| s.reachable = Some(false));
            return Err(RelayError::unreachable(e));
        }
    };
    link.answered(started);
    if !response.status().is_success() {
        return Err(RelayError::from_response(response).await);
    }
    let reply: IngestReply = response.json().await.map_err(|e| {
        RelayError::Failed(format!("the relay's answer is not an ingest reply: {e}"))
    })?;
    outcome(batch, reply)
}

/// Every event not named in the rejections was accepted. Acknowledged means accepted: when the
/// counts disagree (a rejection the reply could not tie to an event), the whole batch stays
/// pending rather than a refused event being marked delivered.
fn outcome(batch: &[Pending], reply: IngestReply) -> Result<UploadOutcome, RelayError> {
    let accepted = reply.accepted;
    let mut reasons: std::collections::HashMap<String, String> = reply
        .rejected
        .into_iter()
        .filter_map(|r| Some((r.event_id?, r.error)))
        .collect();
    let mut outcome = UploadOutcome::default();
    for pending in batch {
        match reasons.remove(&pending.event_id) {
            Some(reason) => outcome.rejected.push((pending.seq, reason)),
            None => outcome.acknowledged.push(pending.seq),
        }
    }
    if outcome.acknowledged.len() != accepted {
        return Err(RelayError::Failed(format!(
            "the relay accepted {accepted} of {} events but named only {} rejections",
            batch.len(),
            outcome.rejected.len()
        )));
    }
    Ok(outcome)
}

/// `{"events":[…]}` around the stored payloads as they are, gzip-compressed.
fn gzip_batch(batch: &[Pending]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"{\"events\":[")?;
    for (i, pending) in batch.iter().enumerate() {
        if i > 0 {
            encoder.write_all(b",")?;
        }
        encoder.write_all(pending.payload.as_bytes())?;
    }
    encoder.write_all(b"]}")?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: u64, id: &str) -> Pending {
        Pending {
            seq,
            event_id: id.into(),
            payload: format!("{{\"event_id\":\"{id}\"}}"),
        }
    }

    #[test]
    fn events_the_relay_did_not_reject_are_acknowledged() {
        let batch = [pending(1, "a"), pending(2, "b"), pending(3, "c")];
        let reply: IngestReply = serde_json::from_str(
            r#"{"accepted":2,"rejected":[{"event_id":"b","error":"bad timestamp"}]}"#,
        )
        .unwrap();
        let marked = outcome(&batch, reply).unwrap();
        assert_eq!(marked.acknowledged, vec![1, 3]);
        assert_eq!(marked.rejected, vec![(2, "bad timestamp".to_string())]);
        // A rejection without an id: which event it was is unknown, so none is acknowledged.
        let unnamed: IngestReply = serde_json::from_str(
            r#"{"accepted":1,"rejected":[{"event_id":"b","error":"x"},{"event_id":null,"error":"y"}]}"#,
        )
        .unwrap();
        assert!(outcome(&batch, unnamed).is_err());
    }

    #[test]
    fn a_batch_is_the_stored_payloads_in_one_gzip_json_document() {
        let batch = [pending(1, "a"), pending(2, "b")];
        let compressed = gzip_batch(&batch).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(compressed.as_slice()),
            &mut text,
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["events"][1]["event_id"], "b");
    }
}
