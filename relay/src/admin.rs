//! Operator commands run with the owner's connection: tenants and maintenance.

use serde::Serialize;
use uuid::Uuid;

use crate::tokens::{self, Kind};

#[derive(Debug, Serialize)]
pub struct NewTenant {
    pub tenant_id: Uuid,
    pub name: String,
    pub api_key: String,
}

/// Creates a tenant and its first API key. The inserts run with the new tenant set, so they
/// pass the forced row level security even when the owner is not a superuser.
pub async fn create_tenant(
    client: &mut tokio_postgres::Client,
    name: &str,
) -> anyhow::Result<NewTenant> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        anyhow::bail!("a tenant name is 1 to 200 characters");
    }
    let tenant_id = Uuid::now_v7();
    let api_key = tokens::generate(Kind::ApiKey);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT set_config('app.current_tenant_id', $1, true)",
        &[&tenant_id.to_string()],
    )
    .await?;
    tx.execute(
        "INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)",
        &[&tenant_id, &name],
    )
    .await?;
    tx.execute(
        "INSERT INTO api_keys (tenant_id, key_id, token_hash, name) VALUES ($1, $2, $3, 'first key')",
        &[&tenant_id, &Uuid::now_v7(), &tokens::hash(&api_key)],
    )
    .await?;
    tx.commit().await?;
    Ok(NewTenant {
        tenant_id,
        name: name.to_string(),
        api_key,
    })
}

#[derive(Debug, Serialize)]
pub struct TenantSummary {
    pub tenant_id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub deleted: bool,
}

/// Every tenant. Needs an owner that bypasses row level security (a superuser), because the
/// listing spans tenants by definition.
pub async fn list_tenants(client: &tokio_postgres::Client) -> anyhow::Result<Vec<TenantSummary>> {
    let rows = client
        .query(
            "SELECT tenant_id, name, created_at, deleted_at IS NOT NULL FROM tenants ORDER BY created_at",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TenantSummary {
            tenant_id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
            deleted: r.get(3),
        })
        .collect())
}

/// Monthly action partitions from two months back to three ahead; returns how many were new.
pub async fn ensure_partitions(client: &tokio_postgres::Client) -> anyhow::Result<i32> {
    Ok(client
        .query_one("SELECT quint_ensure_partitions(2, 3)", &[])
        .await?
        .get(0))
}

/// Partitions ahead, and retention: partitions whose whole month is older than
/// `retention_months` are dropped. Returns (created, dropped).
pub async fn maintain(
    client: &tokio_postgres::Client,
    retention_months: i32,
) -> anyhow::Result<(i32, Vec<String>)> {
    if !(1..=1200).contains(&retention_months) {
        anyhow::bail!("--retention-months must be 1 to 1200");
    }
    let created = ensure_partitions(client).await?;
    let old = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = 'actions' AND c.relname ~ '^actions_y[0-9]{4}m[0-9]{2}$'
               AND to_date(substr(c.relname, 10, 4) || substr(c.relname, 15, 2), 'YYYYMM')
                   < date_trunc('month', now()) - make_interval(months => $1)",
            &[&retention_months],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in old {
        let name: String = row.get(0);
        client
            .batch_execute(&format!("DROP TABLE \"{name}\""))
            .await?;
        dropped.push(name);
    }
    Ok((created, dropped))
}
