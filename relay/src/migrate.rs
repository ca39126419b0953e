//! Schema migrations (`migrations/*.sql`, compiled in), applied in order, each once, each in
//! its own transaction, under an advisory lock so two relays starting together do not race.

use anyhow::Context;

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_tenancy",
        include_str!("../../migrations/0001_tenancy.sql"),
    ),
    (
        2,
        "0002_ingest_indexes",
        include_str!("../../migrations/0002_ingest_indexes.sql"),
    ),
    (
        3,
        "0003_cache",
        include_str!("../../migrations/0003_cache.sql"),
    ),
    (
        4,
        "0004_device_health",
        include_str!("../../migrations/0004_device_health.sql"),
    ),
];

/// Applies what is missing; returns the names applied.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<Vec<&'static str>> {
    // Held for the whole run (the bookkeeping table included), released when the connection
    // closes or below.
    client
        .execute("SELECT pg_advisory_lock(7215002601)", &[])
        .await?;
    let result = apply(client).await;
    client
        .execute("SELECT pg_advisory_unlock(7215002601)", &[])
        .await?;
    result
}

async fn apply(client: &mut tokio_postgres::Client) -> anyhow::Result<Vec<&'static str>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS quint_schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .context("creating quint_schema_migrations")?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM quint_schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("applying migration {name}"))?;
        tx.execute(
            "INSERT INTO quint_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
        applied.push(*name);
    }
    Ok(applied)
}
