//! The tenant-scoped writer: a batch of stamped events of one device into `actions`, with
//! sessions, agents and alerts, in one transaction under row level security. Both write paths
//! use it: ingest with `--bus postgres`, and `quint-relay sink` draining SQS.

use std::collections::HashSet;

use quint_policy::{Decision, Event};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::db::tenant_transaction;
use crate::error::ApiError;

/// Rule ids travel to Postgres as one string per event, split there (cheaper than a JSON
/// array per row); validation keeps the separator out of rule ids.
pub const RULE_SEPARATOR: &str = "\u{1f}";

/// What a write did.
pub struct Written {
    /// The batch held events already stored (a retry) and was written again skipping them.
    pub replayed: bool,
}

/// Writes a batch in one transaction. Almost every batch is new, so it is first inserted with a
/// plain INSERT; only when that meets an event already stored (a device retrying after a lost
/// answer) is the batch written again with conflicts skipped. The plain INSERT avoids
/// speculative insertion, which measurably slows every row (docs/performance.md).
pub async fn write_events(
    pool: &deadpool_postgres::Pool,
    tenant_id: Uuid,
    device_id: Uuid,
    events: &[Event],
) -> Result<Written, ApiError> {
    let mut client = pool.get().await?;
    let columns = ActionColumns::new(events);
    let owner = Owner {
        tenant_id,
        device_id,
    };
    match write_batch(&mut client, owner, events, &columns, Replays::Unexpected).await {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            write_batch(&mut client, owner, events, &columns, Replays::Skipped).await?;
            Ok(Written { replayed: true })
        }
        result => {
            result?;
            Ok(Written { replayed: false })
        }
    }
}

/// Whose events a batch holds: from the device token, or from the stamp SNS carried.
#[derive(Clone, Copy)]
struct Owner {
    tenant_id: Uuid,
    device_id: Uuid,
}

#[derive(Clone, Copy, PartialEq)]
enum Replays {
    /// Insert every event; a stored one fails the transaction.
    Unexpected,
    /// Skip stored events; only the new ones count towards sessions, agents and alerts.
    Skipped,
}

/// The batch as one array per column: one statement stores them all.
struct ActionColumns {
    ids: Vec<Uuid>,
    timestamps: Vec<chrono::DateTime<chrono::Utc>>,
    sessions: Vec<String>,
    platforms: Vec<String>,
    sources: Vec<&'static str>,
    action_types: Vec<&'static str>,
    tools: Vec<Option<String>>,
    targets: Vec<Option<String>>,
    decisions: Vec<&'static str>,
    rules: Vec<String>,
    risks: Vec<i16>,
    payloads: Vec<String>,
}

impl ActionColumns {
    fn new(events: &[Event]) -> ActionColumns {
        ActionColumns {
            ids: events.iter().map(|e| e.event_id).collect(),
            timestamps: events.iter().map(|e| e.timestamp).collect(),
            sessions: events.iter().map(|e| e.session_id.clone()).collect(),
            platforms: events.iter().map(|e| e.platform.clone()).collect(),
            sources: events.iter().map(|e| e.source.as_str()).collect(),
            action_types: events.iter().map(|e| e.action_type.as_str()).collect(),
            tools: events.iter().map(|e| e.tool_name.clone()).collect(),
            targets: events.iter().map(|e| e.target.clone()).collect(),
            decisions: events.iter().map(|e| e.decision.as_str()).collect(),
            rules: events
                .iter()
                .map(|e| e.rule_ids.join(RULE_SEPARATOR))
                .collect(),
            risks: events.iter().map(|e| i16::from(e.risk_score)).collect(),
            payloads: events.iter().map(payload_text).collect(),
        }
    }
}

/// What of an envelope has no column of its own (`actions.payload`): the arguments, labels,
/// agent pid and schema version. Everything else is stored once, in its column; the action
/// listing puts the envelope back together (`action_item!` in tenant.rs).
#[derive(Serialize)]
struct PayloadRest<'a> {
    schema_version: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_pid: Option<u32>,
    arguments: &'a Value,
    labels: &'a std::collections::BTreeMap<String, String>,
}

fn payload_text(event: &Event) -> String {
    let rest = PayloadRest {
        schema_version: event.schema_version,
        agent_pid: event.agent_pid,
        arguments: &event.arguments,
        labels: &event.labels,
    };
    serde_json::to_string(&rest).unwrap_or_else(|_| "{}".into())
}

/// One statement for the batch, from column arrays.
macro_rules! insert_actions {
    () => {
        "INSERT INTO actions (tenant_id, event_id, ts, device_id, session_id, platform, source,
                              action_type, tool_name, target, decision, rule_ids, risk_score, payload)
         SELECT $1, e.id, e.ts, $2, e.session, e.platform, e.source, e.action_type, e.tool,
                e.target, e.decision, string_to_array(e.rules, E'\\x1f'),
                e.risk, e.payload::json
         -- unnest() in the select list streams rows; UNNEST(a, b, …) in FROM would first
         -- copy the whole batch into a tuplestore.
         FROM (SELECT unnest($3::uuid[]) AS id, unnest($4::timestamptz[]) AS ts,
                      unnest($5::text[]) AS session, unnest($6::text[]) AS platform,
                      unnest($7::text[]) AS source, unnest($8::text[]) AS action_type,
                      unnest($9::text[]) AS tool, unnest($10::text[]) AS target,
                      unnest($11::text[]) AS decision, unnest($12::text[]) AS rules,
                      unnest($13::int2[]) AS risk, unnest($14::text[]) AS payload) AS e"
    };
}

async fn write_batch(
    client: &mut deadpool_postgres::Object,
    device: Owner,
    events: &[Event],
    columns: &ActionColumns,
    replays: Replays,
) -> Result<(), tokio_postgres::Error> {
    let tx = tenant_transaction(client, device.tenant_id).await?;
    tx.execute(
        // To the second is enough for "last seen"; a device uploading every second would
        // otherwise rewrite its row (and log it) on every batch.
        &tx.prepare_cached(
            "UPDATE devices SET last_seen_at = now() WHERE device_id = $1
                 AND (last_seen_at IS NULL OR last_seen_at < now() - interval '1 second')",
        )
        .await?,
        &[&device.device_id],
    )
    .await?;
    if events.is_empty() {
        return tx.commit().await;
    }
    let tenant = device.tenant_id;
    let device_id = device.device_id;
    let c = columns;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
        &tenant,
        &device_id,
        &c.ids,
        &c.timestamps,
        &c.sessions,
        &c.platforms,
        &c.sources,
        &c.action_types,
        &c.tools,
        &c.targets,
        &c.decisions,
        &c.rules,
        &c.risks,
        &c.payloads,
    ];
    let fresh: Vec<&Event> = match replays {
        Replays::Unexpected => {
            tx.execute(&tx.prepare_cached(insert_actions!()).await?, &params)
                .await?;
            events.iter().collect()
        }
        Replays::Skipped => {
            let statement = concat!(
                insert_actions!(),
                " ON CONFLICT DO NOTHING RETURNING event_id"
            );
            let inserted = tx
                .query(&tx.prepare_cached(statement).await?, &params)
                .await?;
            let new: HashSet<Uuid> = inserted.iter().map(|r| r.get(0)).collect();
            events
                .iter()
                .filter(|e| new.contains(&e.event_id))
                .collect()
        }
    };
    if !fresh.is_empty() {
        upsert_sessions_agents_alerts(&tx, tenant, device_id, &fresh).await?;
    }
    tx.commit().await
}

/// Sessions and agents count newly stored actions; denials and alerts open an alert each.
async fn upsert_sessions_agents_alerts(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: Uuid,
    device_id: Uuid,
    fresh: &[&Event],
) -> Result<(), tokio_postgres::Error> {
    let sessions: Vec<String> = fresh.iter().map(|e| e.session_id.clone()).collect();
    let platforms: Vec<String> = fresh.iter().map(|e| e.platform.clone()).collect();
    let timestamps: Vec<chrono::DateTime<chrono::Utc>> =
        fresh.iter().map(|e| e.timestamp).collect();
    let denied: Vec<i64> = fresh
        .iter()
        .map(|e| i64::from(e.decision == Decision::Deny))
        .collect();
    tx.execute(
        &tx.prepare_cached("INSERT INTO sessions (tenant_id, device_id, session_id, platform, started_at, last_seen_at, actions, denied)
         SELECT $1, $2, session, min(platform), min(ts), max(ts), count(*), sum(denied)
         FROM UNNEST($3::text[], $4::text[], $5::timestamptz[], $6::int8[]) AS e(session, platform, ts, denied)
         GROUP BY session
         ON CONFLICT (tenant_id, device_id, session_id) DO UPDATE SET
             started_at = least(sessions.started_at, excluded.started_at),
             last_seen_at = greatest(sessions.last_seen_at, excluded.last_seen_at),
             actions = sessions.actions + excluded.actions,
             denied = sessions.denied + excluded.denied").await?,
        &[&tenant, &device_id, &sessions, &platforms, &timestamps, &denied],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("INSERT INTO agents (tenant_id, device_id, platform, first_seen_at, last_seen_at, actions)
         SELECT $1, $2, platform, min(ts), max(ts), count(*)
         FROM UNNEST($3::text[], $4::timestamptz[]) AS e(platform, ts)
         GROUP BY platform
         ON CONFLICT (tenant_id, device_id, platform) DO UPDATE SET
             first_seen_at = least(agents.first_seen_at, excluded.first_seen_at),
             last_seen_at = greatest(agents.last_seen_at, excluded.last_seen_at),
             actions = agents.actions + excluded.actions").await?,
        &[&tenant, &device_id, &platforms, &timestamps],
    )
    .await?;
    let alerting: Vec<&&Event> = fresh
        .iter()
        .filter(|e| matches!(e.decision, Decision::Deny | Decision::Alert))
        .collect();
    if !alerting.is_empty() {
        let alert_ids: Vec<Uuid> = alerting.iter().map(|_| Uuid::now_v7()).collect();
        let event_ids: Vec<Uuid> = alerting.iter().map(|e| e.event_id).collect();
        let ts: Vec<chrono::DateTime<chrono::Utc>> = alerting.iter().map(|e| e.timestamp).collect();
        let sessions: Vec<String> = alerting.iter().map(|e| e.session_id.clone()).collect();
        let decisions: Vec<String> = alerting
            .iter()
            .map(|e| e.decision.as_str().to_string())
            .collect();
        let rules: Vec<Value> = alerting
            .iter()
            .map(|e| serde_json::json!(e.rule_ids))
            .collect();
        tx.execute(
            &tx.prepare_cached("INSERT INTO alerts (tenant_id, alert_id, event_id, ts, device_id, session_id, decision, rule_ids)
             SELECT $1, a.alert_id, a.event_id, a.ts, $2, a.session, a.decision,
                    ARRAY(SELECT jsonb_array_elements_text(a.rules))
             FROM UNNEST($3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[], $7::text[], $8::jsonb[])
                  AS a(alert_id, event_id, ts, session, decision, rules)
             ON CONFLICT (tenant_id, event_id) DO NOTHING").await?,
            &[&tenant, &device_id, &alert_ids, &event_ids, &ts, &sessions, &decisions, &rules],
        )
        .await?;
    }
    Ok(())
}
