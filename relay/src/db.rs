//! Postgres access: the pool, tenant-scoped transactions, and the start-up checks on the
//! service's role.

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use uuid::Uuid;

pub fn pool(database_url: &str, size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = database_url
        .parse()
        .context("DATABASE_URL is not a valid Postgres connection string")?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(size).build()?)
}

/// Opens a transaction whose first statement names the tenant (transaction-local, so a pooled
/// connection never carries it into someone else's request). Every query a handler makes runs
/// inside one of these; none adds its own tenant filter.
pub async fn tenant_transaction(
    client: &mut deadpool_postgres::Object,
    tenant_id: Uuid,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT set_config('app.current_tenant_id', $1, true)",
        &[&tenant_id.to_string()],
    )
    .await?;
    Ok(tx)
}

/// The key Redis cache entries are signed with (migration 0003), shared by every relay process
/// through the database, so it needs no configuration and never leaves the relay's side.
pub async fn cache_signing_key(pool: &Pool) -> anyhow::Result<Vec<u8>> {
    let client = pool
        .get()
        .await
        .context("connecting to the database for the cache signing key")?;
    let row = client
        .query_one("SELECT quint_cache_key()", &[])
        .await
        .context("reading the cache signing key (run `quint-relay migrate`)")?;
    Ok(row.get(0))
}

/// Refuses to serve as a role that could see past row level security.
pub async fn check_service_role(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                    (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
                       AND pg_has_role(current_user, tableowner, 'member')),
                    pg_has_role(current_user, 'quint_app', 'member'),
                    pg_has_role(current_user, 'quint_auth', 'member')
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .context("checking the database role (has `quint-relay migrate` run?)")?;
    let (user, superuser, bypass, owned, member, auth): (String, bool, bool, i64, bool, bool) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    if superuser {
        anyhow::bail!("refusing to serve as {user}: it is a superuser, which ignores row level security; connect as a login role IN ROLE quint_app");
    }
    if bypass {
        anyhow::bail!("refusing to serve as {user}: it has BYPASSRLS; connect as a login role IN ROLE quint_app without it");
    }
    if owned > 0 {
        anyhow::bail!("refusing to serve as {user}: it owns (or is a member of the owner of) {owned} table(s), and owners can switch row level security off; connect as a role that owns nothing");
    }
    if auth {
        anyhow::bail!("refusing to serve as {user}: it is a member of quint_auth, which reads every tenant's token tables; connect as a role in quint_app only");
    }
    if !member {
        anyhow::bail!("refusing to serve as {user}: it is not a member of quint_app (CREATE ROLE … LOGIN IN ROLE quint_app)");
    }
    Ok(())
}
