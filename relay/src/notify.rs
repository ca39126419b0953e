//! Policy change notifications across relay processes: `PUT /v1/policy` runs
//! `pg_notify('quint_policy', tenant_id)` in its transaction; every `serve` process LISTENs on
//! one dedicated connection and fans the tenant ids out to its long-polling requests.

use std::future::poll_fn;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

pub const CHANNEL: &str = "quint_policy";

/// Starts the listener; reconnects after errors. Returns the sender requests subscribe to.
pub fn start(database_url: String) -> broadcast::Sender<Uuid> {
    let (sender, _) = broadcast::channel(1024);
    let out = sender.clone();
    tokio::spawn(async move {
        loop {
            if let Err(error) = listen(&database_url, &out).await {
                tracing::warn!(%error, "policy listener lost its connection; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    sender
}

async fn listen(database_url: &str, out: &broadcast::Sender<Uuid>) -> anyhow::Result<()> {
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
                    tracing::warn!(%error, "policy listener connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    while let Some(message) = received.recv().await {
        if let AsyncMessage::Notification(note) = message {
            if let Ok(tenant) = note.payload().parse::<Uuid>() {
                // No receivers is fine: nobody is waiting.
                let _ = out.send(tenant);
            }
        }
    }
    driver.abort();
    anyhow::bail!("notification stream ended")
}
