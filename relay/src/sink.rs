//! `quint-relay sink`: drains an SQS FIFO queue subscribed (raw delivery) to the bus topic into
//! Postgres through the same tenant-scoped writer as `--bus postgres`, so row level security
//! holds for it too. A message is deleted only after the transaction holding its event has
//! committed; anything that fails stays in the queue and comes back (the writer skips what is
//! already stored), and what can never be parsed goes to the dead-letter queue by the queue's
//! redrive policy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use prometheus::{Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use quint_policy::Event;
use uuid::Uuid;

use crate::aws::describe;

#[derive(clap::Args)]
pub struct SinkArgs {
    /// The SQS FIFO queue to drain (AWS_ENDPOINT_URL, AWS_REGION and the usual AWS
    /// credentials apply).
    #[arg(long, env = "QUINT_SINK_QUEUE_URL")]
    queue_url: String,
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Where `GET /metrics` answers.
    #[arg(
        long,
        env = "QUINT_SINK_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    metrics_listen: String,
    /// Messages gathered into one round of writes.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Seconds a received message stays hidden from other sinks; extended while a slow
    /// write is under way.
    #[arg(long, default_value_t = 60)]
    visibility_timeout: i32,
    /// Database connections.
    #[arg(long, default_value_t = 4)]
    pool_size: usize,
}

/// How long more messages are gathered into a batch once the first has arrived.
const GATHER: Duration = Duration::from_millis(200);
/// The long poll for the first message of a batch.
const WAIT_SECONDS: i32 = 10;
/// A group whose write failed comes back this soon, not after the whole visibility timeout.
const RETRY_VISIBILITY_SECONDS: i32 = 5;

struct SinkMetrics {
    registry: Registry,
    messages: IntCounterVec,
    batch_messages: Histogram,
    write_seconds: Histogram,
    lag_seconds: Gauge,
    queue_errors: IntCounterVec,
}

impl SinkMetrics {
    fn new() -> SinkMetrics {
        let registry = Registry::new();
        let messages = IntCounterVec::new(
            Opts::new(
                "quint_sink_messages_total",
                "Messages by outcome: written (and deleted), unparseable (left for the \
                 dead-letter queue), write_failed (left to come back)",
            ),
            &["outcome"],
        )
        .unwrap();
        let batch_messages = Histogram::with_opts(
            HistogramOpts::new("quint_sink_batch_messages", "Messages per batch")
                .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
        )
        .unwrap();
        let write_seconds = Histogram::with_opts(
            HistogramOpts::new("quint_sink_write_seconds", "Time to write one batch")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
        )
        .unwrap();
        let lag_seconds = Gauge::new(
            "quint_sink_lag_seconds",
            "Age of the oldest message of the last batch when it was received",
        )
        .unwrap();
        let queue_errors = IntCounterVec::new(
            Opts::new(
                "quint_sink_queue_errors_total",
                "Failed SQS calls by operation",
            ),
            &["operation"],
        )
        .unwrap();
        for metric in [
            Box::new(messages.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(batch_messages.clone()),
            Box::new(write_seconds.clone()),
            Box::new(lag_seconds.clone()),
            Box::new(queue_errors.clone()),
        ] {
            registry.register(metric).unwrap();
        }
        SinkMetrics {
            registry,
            messages,
            batch_messages,
            write_seconds,
            lag_seconds,
            queue_errors,
        }
    }

    fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A message's id and receipt handle.
type Handle = (String, String);
/// Tenant and device of a group of events.
type Owner = (Uuid, Uuid);

/// A received message: its event, or why it has none.
struct Received {
    message_id: String,
    receipt: String,
    parsed: Result<Event, String>,
}

struct Sink {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    pool: deadpool_postgres::Pool,
    metrics: Arc<SinkMetrics>,
    visibility_timeout: i32,
    batch_size: usize,
    /// Unparseable messages already logged: each is logged once however often it returns.
    logged: HashSet<String>,
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let pool = crate::db::pool(&args.database_url, args.pool_size)?;
    {
        let client = pool.get().await.context("connecting to the database")?;
        crate::db::check_service_role(&client).await?;
    }
    let metrics = Arc::new(SinkMetrics::new());
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let listener = tokio::net::TcpListener::bind(&args.metrics_listen)
        .await
        .with_context(|| format!("listening on {}", args.metrics_listen))?;
    let served = metrics.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { served.render() }),
    );
    let mut metrics_stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = metrics_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    let mut sink = Sink {
        sqs: aws_sdk_sqs::Client::new(
            &crate::aws::sdk_config(Duration::from_secs(WAIT_SECONDS as u64 + 10)).await,
        ),
        queue_url: args.queue_url,
        pool,
        metrics,
        visibility_timeout: args.visibility_timeout.max(2),
        batch_size: args.batch_size.clamp(1, 10_000),
        logged: HashSet::new(),
    };
    tracing::info!(queue = %sink.queue_url, metrics = %args.metrics_listen, "quint-relay sink draining");
    loop {
        // Waiting for the first message is the only step a stop interrupts: once messages are
        // received, their batch is written and deleted before the sink exits.
        let first = tokio::select! {
            received = sink.receive(WAIT_SECONDS, 10) => received,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(mut batch) = first else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if batch.is_empty() {
            continue;
        }
        let gathering = Instant::now();
        while batch.len() < sink.batch_size && gathering.elapsed() < GATHER {
            match sink
                .receive(0, (sink.batch_size - batch.len()).min(10))
                .await
            {
                Some(more) if !more.is_empty() => batch.extend(more),
                _ => break,
            }
        }
        sink.process(batch).await;
        if *stop.borrow() {
            break;
        }
    }
    tracing::info!("quint-relay sink stopped");
    Ok(())
}

impl Sink {
    /// Up to `max` messages; `None` when SQS could not be asked (logged and counted).
    async fn receive(&mut self, wait_seconds: i32, max: usize) -> Option<Vec<Received>> {
        let answer = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(self.visibility_timeout)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                self.metrics
                    .queue_errors
                    .with_label_values(&["receive"])
                    .inc();
                tracing::warn!(error = %describe(&e), "receiving from SQS failed");
                return None;
            }
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut oldest = now_ms;
        let received = answer
            .messages()
            .iter()
            .filter_map(|message| {
                if let Some(sent) = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    oldest = oldest.min(sent);
                }
                let org_id = message
                    .message_attributes()
                    .and_then(|a| a.get("org_id"))
                    .and_then(|v| v.string_value())
                    .map(str::to_string);
                Some(Received {
                    message_id: message.message_id()?.to_string(),
                    receipt: message.receipt_handle()?.to_string(),
                    parsed: parse(message.body().unwrap_or_default(), org_id.as_deref()),
                })
            })
            .collect::<Vec<_>>();
        if !received.is_empty() {
            self.metrics
                .lag_seconds
                .set(now_ms.saturating_sub(oldest) as f64 / 1000.0);
        }
        Some(received)
    }

    /// Writes a batch per tenant and device in arrival order, deleting each group's messages
    /// after its commit; visibility is extended while the writes run.
    async fn process(&mut self, batch: Vec<Received>) {
        self.metrics.batch_messages.observe(batch.len() as f64);
        let handles: Vec<(String, String)> = batch
            .iter()
            .map(|r| (r.message_id.clone(), r.receipt.clone()))
            .collect();
        let mut groups: Vec<(Owner, Vec<Event>, Vec<Handle>)> = Vec::new();
        let mut index: HashMap<Owner, usize> = HashMap::new();
        for received in batch {
            match received.parsed {
                Ok(event) => {
                    let key = (
                        event.tenant_id.unwrap_or_default(),
                        event.device_id.unwrap_or_default(),
                    );
                    let at = *index.entry(key).or_insert_with(|| {
                        groups.push((key, Vec::new(), Vec::new()));
                        groups.len() - 1
                    });
                    groups[at].1.push(event);
                    groups[at].2.push((received.message_id, received.receipt));
                }
                Err(reason) => {
                    self.metrics
                        .messages
                        .with_label_values(&["unparseable"])
                        .inc();
                    if self.logged.len() > 100_000 {
                        self.logged.clear();
                    }
                    if self.logged.insert(received.message_id.clone()) {
                        tracing::error!(message_id = %received.message_id, %reason, "unparseable message left in the queue for its dead-letter queue");
                    }
                }
            }
        }
        let started = Instant::now();
        let writes = async {
            for ((tenant, device), events, messages) in &groups {
                self.write_group(*tenant, *device, events, messages).await;
            }
        };
        tokio::select! {
            () = writes => {}
            () = keep_hidden(&self.sqs, &self.queue_url, &handles, self.visibility_timeout) => {}
        }
        self.metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    async fn write_group(
        &self,
        tenant: Uuid,
        device: Uuid,
        events: &[Event],
        messages: &[(String, String)],
    ) {
        match crate::writer::write_events(&self.pool, tenant, device, events).await {
            Ok(_) => {
                tracing::debug!(%tenant, %device, count = events.len(),
                    events = %events.iter().map(|e| e.event_id.to_string()).collect::<Vec<_>>().join(","),
                    "events written");
                self.metrics
                    .messages
                    .with_label_values(&["written"])
                    .inc_by(events.len() as u64);
                self.delete(messages).await;
            }
            Err(e) => {
                self.metrics
                    .messages
                    .with_label_values(&["write_failed"])
                    .inc_by(events.len() as u64);
                tracing::warn!(%tenant, %device, count = events.len(), error = %e.message, "writing events failed; they come back from the queue");
                change_visibility(
                    &self.sqs,
                    &self.queue_url,
                    messages,
                    RETRY_VISIBILITY_SECONDS,
                )
                .await;
            }
        }
    }

    async fn delete(&self, messages: &[(String, String)]) {
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .ok()
                })
                .collect();
            let answer = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            let failed = match answer {
                Ok(answer) => answer.failed().len(),
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "deleting written messages failed");
                    chunk.len()
                }
            };
            if failed > 0 {
                // They come back and are skipped as stored: duplicates cost a write, not a row.
                self.metrics
                    .queue_errors
                    .with_label_values(&["delete"])
                    .inc_by(failed as u64);
            }
        }
    }
}

/// Extends the batch's visibility every half timeout, for as long as the writes take.
async fn keep_hidden(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[(String, String)],
    seconds: i32,
) {
    let half = Duration::from_secs((seconds / 2).max(1) as u64);
    loop {
        tokio::time::sleep(half).await;
        tracing::debug!(
            count = messages.len(),
            seconds,
            "slow batch: extending visibility"
        );
        change_visibility(sqs, queue_url, messages, seconds).await;
    }
}

async fn change_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[(String, String)],
    seconds: i32,
) {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (_, receipt))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            tracing::warn!(error = %describe(&e), "changing message visibility failed");
        }
    }
}

/// A message body as the relay published it: a stamped envelope whose tenant matches the
/// `org_id` attribute when there is one.
fn parse(body: &str, org_id: Option<&str>) -> Result<Event, String> {
    let event = Event::from_json(body.as_bytes()).map_err(|e| e.to_string())?;
    let (Some(tenant), Some(_)) = (event.tenant_id, event.device_id) else {
        return Err("the event carries no tenant_id and device_id stamp".into());
    };
    if let Some(org_id) = org_id {
        if org_id != tenant.to_string() {
            return Err(format!(
                "the org_id attribute {org_id} differs from the event's tenant {tenant}"
            ));
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stamped_envelopes_whose_tenant_matches_org_id_parse() {
        let mut event = Event::new(
            quint_policy::Source::Hook,
            "claude-code",
            quint_policy::ActionType::ToolCall,
            "s1",
        );
        let unstamped = serde_json::to_string(&event).unwrap();
        assert!(parse(&unstamped, None).unwrap_err().contains("stamp"));
        let tenant = Uuid::now_v7();
        event.tenant_id = Some(tenant);
        event.device_id = Some(Uuid::now_v7());
        let stamped = serde_json::to_string(&event).unwrap();
        assert!(parse(&stamped, Some(&tenant.to_string())).is_ok());
        assert!(parse(&stamped, Some(&Uuid::now_v7().to_string()))
            .unwrap_err()
            .contains("differs"));
        assert!(parse("{not json", None).is_err());
    }
}
