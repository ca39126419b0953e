//! Change notifications across relay processes, from Postgres triggers (migration 0003):
//! `quint_policy` when a tenant's policy changes, `quint_tenant` when a tenant is deleted or
//! one of its API keys or devices is revoked. Every `serve` process LISTENs on one dedicated
//! connection, drops the tenant's cached entries first, then wakes its long-polling requests.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use crate::cache::Cache;

pub const POLICY_CHANNEL: &str = "quint_policy";
pub const TENANT_CHANNEL: &str = "quint_tenant";
/// How often the listening connection proves it is alive (and how long it may take).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Starts the listener; reconnects after errors. Returns the sender policy long-polls
/// subscribe to.
pub fn start(database_url: String, cache: Arc<Cache>) -> broadcast::Sender<Uuid> {
    let (sender, _) = broadcast::channel(1024);
    let out = sender.clone();
    tokio::spawn(async move {
        loop {
            if let Err(error) = listen(&database_url, &cache, &out).await {
                tracing::warn!(%error, "change listener lost its connection; reconnecting");
            }
            // Until it listens again, notes can be missed: the cache stands aside.
            cache.set_listening(false).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    sender
}

async fn listen(
    database_url: &str,
    cache: &Cache,
    out: &broadcast::Sender<Uuid>,
) -> anyhow::Result<()> {
    let (client, mut connection) =
        tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(message) => {
                    if messages.send(message).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "change listener connection failed");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {POLICY_CHANNEL}; LISTEN {TENANT_CHANNEL}"))
        .await?;
    cache.set_listening(true).await;
    // A connection a NAT or load balancer dropped silently would never error, and every note
    // would be lost while the cache went on serving: ask for an answer every few seconds.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let message = tokio::select! {
            message = received.recv() => message,
            _ = heartbeat.tick() => {
                tokio::time::timeout(HEARTBEAT, client.simple_query("SELECT 1"))
                    .await
                    .map_err(|_| anyhow::anyhow!("no answer to the heartbeat in {HEARTBEAT:?}"))??;
                continue;
            }
        };
        let Some(message) = message else { break };
        if let AsyncMessage::Notification(note) = message {
            let Ok(tenant) = note.payload().parse::<Uuid>() else {
                continue;
            };
            cache.invalidate_tenant(tenant).await;
            if note.channel() == POLICY_CHANNEL {
                // No receivers is fine: nobody is waiting.
                let _ = out.send(tenant);
            }
        }
    }
    driver.abort();
    anyhow::bail!("notification stream ended")
}
