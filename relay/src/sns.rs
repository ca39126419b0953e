//! `--bus sns`: ingest hands validated, stamped events to an SNS FIFO topic instead of writing
//! them. One message per event: the body is the stamped envelope; `MessageGroupId` is the
//! session (SNS and SQS FIFO keep order within a group), `MessageDeduplicationId` the event id
//! (a device's retry within SNS's five-minute window is dropped by SNS, later ones by the
//! writer); the attributes `org_id`, `device_id`, `action_type` and `decision` let
//! subscriptions filter without reading bodies.

use std::time::Duration;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use quint_policy::Event;
use sha2::{Digest, Sha256};

use crate::aws::describe;
use crate::error::ApiError;

/// SNS limits per `PublishBatch` call.
const ENTRIES_PER_CALL: usize = 10;
pub const BYTES_PER_CALL: usize = 256 * 1024;
/// Sessions are spread over this many lanes published side by side; within a lane, calls go
/// one after another, so a session's events reach SNS in the order the device sent them.
const LANES: usize = 8;
/// Attempts for entries SNS reports as failed (throttled, internal errors) before giving up.
const ATTEMPTS: u32 = 3;
/// What a device is told to wait after the bus failed.
const RETRY_AFTER_SECONDS: u64 = 5;

pub struct Publisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

/// One event ready to publish.
struct Message {
    group: String,
    dedup: String,
    body: String,
    attributes: [(&'static str, String); 4],
}

impl Message {
    fn new(event: &Event) -> Message {
        let stamp = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        Message {
            group: group_id(&event.session_id),
            dedup: event.event_id.to_string(),
            body: serde_json::to_string(event).unwrap_or_default(),
            attributes: [
                ("org_id", stamp(event.tenant_id)),
                ("device_id", stamp(event.device_id)),
                ("action_type", event.action_type.as_str().to_string()),
                ("decision", event.decision.as_str().to_string()),
            ],
        }
    }

    /// What SNS counts towards the 256 KB of a call: body and attributes.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }

    fn entry(&self, id: usize) -> PublishBatchRequestEntry {
        let mut entry = PublishBatchRequestEntry::builder()
            .id(id.to_string())
            .message(&self.body)
            .message_group_id(&self.group)
            .message_deduplication_id(&self.dedup);
        for (name, value) in &self.attributes {
            if let Ok(attribute) = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
            {
                entry = entry.message_attributes(*name, attribute);
            }
        }
        entry.build().expect("id and message are set")
    }
}

/// SNS takes group ids of up to 128 characters from ASCII letters, digits and punctuation.
/// Session ids are usually UUIDs and kept as they are; any other is replaced by its SHA-256,
/// which keeps one session in one group.
fn group_id(session_id: &str) -> String {
    let usable = !session_id.is_empty()
        && session_id.len() <= 128
        && session_id.bytes().all(|b| b.is_ascii_graphic());
    if usable {
        session_id.to_string()
    } else {
        hex::encode(Sha256::digest(session_id.as_bytes()))
    }
}

impl Publisher {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: String) -> Publisher {
        Publisher {
            client: aws_sdk_sns::Client::new(config),
            topic_arn,
        }
    }

    /// Why an event cannot go on the bus, if it cannot: SNS takes at most 256 KB a message.
    pub fn unpublishable(event: &Event) -> Option<String> {
        let size = Message::new(event).size();
        (size > BYTES_PER_CALL).then(|| {
            format!("the event is {size} bytes stamped; the SNS bus takes at most {BYTES_PER_CALL}")
        })
    }

    /// Publishes every event, or fails with a 503 the device retries. Returns only after SNS
    /// accepted each one: the device's acknowledgement depends on it.
    pub async fn publish(&self, events: &[Event]) -> Result<(), ApiError> {
        let mut lanes: Vec<Vec<Message>> = (0..LANES).map(|_| Vec::new()).collect();
        for event in events {
            let message = Message::new(event);
            let lane = Sha256::digest(message.group.as_bytes())[0] as usize % LANES;
            lanes[lane].push(message);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for lane in lanes.into_iter().filter(|l| !l.is_empty()) {
            let client = self.client.clone();
            let topic = self.topic_arn.clone();
            tasks.spawn(async move { publish_lane(&client, &topic, &lane).await });
        }
        let mut failure = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => failure = Some(reason),
                Err(e) => failure = Some(format!("publishing task failed: {e}")),
            }
        }
        match failure {
            None => Ok(()),
            Some(reason) => {
                tracing::warn!(%reason, topic = %self.topic_arn, "publishing to SNS failed; the device will retry");
                Err(ApiError {
                    retry_after: Some(RETRY_AFTER_SECONDS),
                    ..ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "bus_unavailable",
                        "the event bus did not accept the batch; retry after the given seconds",
                    )
                })
            }
        }
    }
}

/// A lane's messages in calls of at most 10 entries and 256 KB, one call after another; the
/// first call that cannot be completed stops the lane, so nothing of a session is published
/// ahead of an earlier event that was not.
async fn publish_lane(
    client: &aws_sdk_sns::Client,
    topic: &str,
    messages: &[Message],
) -> Result<(), String> {
    let mut start = 0;
    while start < messages.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < messages.len() && end - start < ENTRIES_PER_CALL {
            let size = messages[end].size();
            if end > start && bytes + size > BYTES_PER_CALL {
                break;
            }
            bytes += size;
            end += 1;
        }
        publish_call(client, topic, &messages[start..end]).await?;
        start = end;
    }
    Ok(())
}

/// One `PublishBatch`, retrying the entries SNS reports as failed.
async fn publish_call(
    client: &aws_sdk_sns::Client,
    topic: &str,
    messages: &[Message],
) -> Result<(), String> {
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    for attempt in 1..=ATTEMPTS {
        let entries = pending.iter().map(|&i| messages[i].entry(i)).collect();
        let answer = client
            .publish_batch()
            .topic_arn(topic)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let failed = answer.failed();
        if failed.is_empty() {
            return Ok(());
        }
        let reasons: Vec<String> = failed
            .iter()
            .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("")))
            .collect();
        // A fault of the request itself (too big, invalid) will not pass on a retry.
        if failed.iter().any(|f| f.sender_fault()) || attempt == ATTEMPTS {
            return Err(format!(
                "SNS refused {} of {} entries: {}",
                failed.len(),
                pending.len(),
                reasons.join("; ")
            ));
        }
        pending = failed.iter().filter_map(|f| f.id().parse().ok()).collect();
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_keep_usable_session_ids_and_hash_the_rest() {
        let uuid = "0196f0e4-1d2a-7c3b-9a10-5c2d3e4f5a6b";
        assert_eq!(group_id(uuid), uuid);
        let spaced = group_id("my session");
        assert_eq!(spaced.len(), 64);
        assert_eq!(spaced, group_id("my session"));
        assert_ne!(spaced, group_id("my session 2"));
        assert_eq!(group_id(&"x".repeat(129)).len(), 64);
    }
}
