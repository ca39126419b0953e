//! The tenant API (API key): devices, deploy tokens, actions, sessions, agents, alerts. Every
//! query runs in a tenant transaction and carries no tenant filter of its own: the database's
//! row level security is what keeps tenants apart, so another tenant's object is simply not
//! found (404, never 403).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::TenantKey;
use crate::db::tenant_transaction;
use crate::error::{parse_json, ApiError, Body, CommonErrors, ErrorBody, Path, Query};
use crate::state::AppState;
use crate::tokens::{self, Kind};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// A page of a list: `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit {n} is out of range 1..={MAX_LIMIT}"
        ))),
    }
}

/// Cursors are `<unix micros>_<uuid>` of the last item: stable under inserts.
fn parse_cursor(cursor: Option<&str>) -> Result<Option<(DateTime<Utc>, Uuid)>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request("invalid cursor; use next_cursor from the previous page");
    let (micros, id) = cursor.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let ts = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some((ts, id.parse().map_err(|_| bad())?)))
}

fn cursor_of(ts: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{id}", ts.timestamp_micros())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Runs a keyset-paginated listing: `rows` selects `(ts, id, item jsonb)`; the page is the rows
/// after `($1, $2)` (or from the start when null), newest first, at most `$3`. Extra parameters
/// start at `$4`.
async fn keyset_page(
    state: &AppState,
    tenant: Uuid,
    rows: &str,
    query: &ListQuery,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Page, ApiError> {
    let limit = limit(query.limit)?;
    let after = parse_cursor(query.cursor.as_deref())?;
    let (after_ts, after_id) = (after.map(|a| a.0), after.map(|a| a.1));
    let fetch = limit + 1;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&after_ts, &after_id, &fetch];
    params.extend_from_slice(extra);
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, tenant).await?;
    let sql = format!(
        "SELECT ts, id, item FROM ({rows}) page
         WHERE ($1::timestamptz IS NULL OR (ts, id) < ($1, $2::uuid))
         ORDER BY ts DESC, id DESC LIMIT $3"
    );
    let rows = tx.query(&sql, &params).await?;
    tx.commit().await?;
    let mut items: Vec<(DateTime<Utc>, Uuid, Value)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|(ts, id, _)| cursor_of(*ts, *id))
    } else {
        None
    };
    Ok(Page {
        items: items.into_iter().map(|(_, _, item)| item).collect(),
        next_cursor,
    })
}

/// Devices of the tenant.
#[utoipa::path(get, path = "/v1/devices", tag = "devices", params(ListQuery), security(("api_key" = [])),
    responses((status = 200, description = "A page, newest first", body = Page), CommonErrors))]
pub async fn list_devices(
    State(state): State<AppState>,
    key: TenantKey,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let sql = "SELECT enrolled_at AS ts, device_id AS id, jsonb_build_object(
                 'device_id', device_id, 'hostname', hostname, 'os', os, 'arch', arch,
                 'machine_id', machine_id, 'daemon_version', daemon_version,
                 'enrolled_at', enrolled_at, 'last_seen_at', last_seen_at,
                 'revoked', revoked_at IS NOT NULL, 'health', health,
                 'health_at', health_at) AS item
             FROM devices";
    Ok(Json(
        keyset_page(&state, key.tenant_id, sql, &query, &[]).await?,
    ))
}

/// Revoke a device: its token stops working at once.
#[utoipa::path(delete, path = "/v1/devices/{id}", tag = "devices", params(("id" = Uuid, Path, description = "device id")),
    security(("api_key" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such device", body = ErrorBody), CommonErrors))]
pub async fn revoke_device(
    State(state): State<AppState>,
    key: TenantKey,
    Path(device_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    revoke(
        &state,
        key.tenant_id,
        "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE device_id = $1",
        device_id,
        "device",
    )
    .await
}

/// Marks one of the tenant's objects revoked (`sql` takes its id); 404 when the tenant has no
/// such object, whoever else might.
async fn revoke(
    state: &AppState,
    tenant: Uuid,
    sql: &str,
    id: Uuid,
    what: &str,
) -> Result<StatusCode, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, tenant).await?;
    let changed = tx.execute(sql, &[&id]).await?;
    tx.commit().await?;
    if changed == 0 {
        return Err(ApiError::not_found(what));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployToken {
    #[serde(default)]
    pub name: String,
    /// Lifetime in hours (default 30 days, at most a year).
    pub expires_in_hours: Option<i64>,
    pub max_uses: Option<i32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeployTokenCreated {
    pub id: Uuid,
    /// The token itself, shown this once.
    pub token: String,
    pub name: String,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<i32>,
}

/// Create a deploy token (returned once).
#[utoipa::path(post, path = "/v1/deploy-tokens", tag = "deploy tokens", request_body = NewDeployToken,
    security(("api_key" = [])),
    responses((status = 201, description = "Created", body = DeployTokenCreated), (status = 413, description = "Body over 10 MB", body = ErrorBody), CommonErrors))]
pub async fn create_deploy_token(
    State(state): State<AppState>,
    key: TenantKey,
    Body(body): Body,
) -> Result<(StatusCode, Json<DeployTokenCreated>), ApiError> {
    let request: NewDeployToken = if body.is_empty() {
        NewDeployToken {
            name: String::new(),
            expires_in_hours: None,
            max_uses: None,
        }
    } else {
        parse_json(&body, "invalid deploy token request")?
    };
    let hours = request.expires_in_hours.unwrap_or(24 * 30);
    if !(1..=24 * 366).contains(&hours) {
        return Err(ApiError::bad_request(
            "expires_in_hours must be 1 to 8784 (a year)",
        ));
    }
    if request.max_uses.is_some_and(|n| n < 1) {
        return Err(ApiError::bad_request("max_uses must be at least 1"));
    }
    if request.name.len() > 200 {
        return Err(ApiError::bad_request("name is at most 200 characters"));
    }
    let token = tokens::generate(Kind::Deploy);
    let token_id = Uuid::now_v7();
    let expires_at = Utc::now() + chrono::Duration::hours(hours);
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, key.tenant_id).await?;
    tx.execute(
        "INSERT INTO deploy_tokens (tenant_id, token_id, token_hash, name, expires_at, max_uses)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &key.tenant_id,
            &token_id,
            &tokens::hash(&token),
            &request.name,
            &expires_at,
            &request.max_uses,
        ],
    )
    .await?;
    tx.commit().await?;
    // The token itself is shown here once and never again.
    Ok((
        StatusCode::CREATED,
        Json(DeployTokenCreated {
            id: token_id,
            token,
            name: request.name,
            expires_at,
            max_uses: request.max_uses,
        }),
    ))
}

/// Deploy tokens of the tenant (never the tokens themselves).
#[utoipa::path(get, path = "/v1/deploy-tokens", tag = "deploy tokens", params(ListQuery), security(("api_key" = [])),
    responses((status = 200, description = "A page, newest first", body = Page), CommonErrors))]
pub async fn list_deploy_tokens(
    State(state): State<AppState>,
    key: TenantKey,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let sql = "SELECT created_at AS ts, token_id AS id, jsonb_build_object(
                 'id', token_id, 'name', name, 'created_at', created_at,
                 'expires_at', expires_at, 'max_uses', max_uses, 'uses', uses,
                 'revoked', revoked_at IS NOT NULL) AS item
             FROM deploy_tokens";
    Ok(Json(
        keyset_page(&state, key.tenant_id, sql, &query, &[]).await?,
    ))
}

/// Revoke a deploy token.
#[utoipa::path(delete, path = "/v1/deploy-tokens/{id}", tag = "deploy tokens", params(("id" = Uuid, Path, description = "deploy token id")),
    security(("api_key" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such deploy token", body = ErrorBody), CommonErrors))]
pub async fn revoke_deploy_token(
    State(state): State<AppState>,
    key: TenantKey,
    Path(token_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    revoke(
        &state,
        key.tenant_id,
        "UPDATE deploy_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = $1",
        token_id,
        "deploy token",
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub session: Option<String>,
    pub device: Option<Uuid>,
    pub platform: Option<String>,
    pub decision: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A stored action as the envelope the device sent (schema v1, key order kept): the columns
/// with the rest of the envelope from `payload` (ingest::PayloadRest).
macro_rules! action_item {
    () => {
        "json_build_object(
            'schema_version', payload->'schema_version', 'event_id', event_id,
            'timestamp', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
            'source', source, 'platform', platform, 'action_type', action_type,
            'session_id', session_id, 'agent_pid', payload->'agent_pid', 'tool_name', tool_name,
            'arguments', payload->'arguments', 'target', target, 'decision', decision,
            'rule_ids', rule_ids, 'risk_score', risk_score, 'labels', payload->'labels',
            'device_id', device_id, 'tenant_id', tenant_id)"
    };
}

/// Actions, filtered by session, device, platform, decision and time.
#[utoipa::path(get, path = "/v1/actions", tag = "actions", params(ActionsQuery), security(("api_key" = [])),
    responses((status = 200, description = "A page, newest first", body = Page), CommonErrors))]
pub async fn list_actions(
    State(state): State<AppState>,
    key: TenantKey,
    Query(query): Query<ActionsQuery>,
) -> Result<Json<Page>, ApiError> {
    if let Some(decision) = &query.decision {
        decision
            .parse::<quint_policy::Decision>()
            .map_err(ApiError::bad_request)?;
    }
    let sql = concat!(
        "SELECT ts, event_id AS id, ",
        action_item!(),
        " AS item, session_id, device_id, platform, decision
             FROM actions
             WHERE ($4::text IS NULL OR session_id = $4)
               AND ($5::uuid IS NULL OR device_id = $5)
               AND ($6::text IS NULL OR platform = $6)
               AND ($7::text IS NULL OR decision = $7)
               AND ($8::timestamptz IS NULL OR ts >= $8)
               AND ($9::timestamptz IS NULL OR ts < $9)"
    );
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let mut page = keyset_page(
        &state,
        key.tenant_id,
        sql,
        &page,
        &[
            &query.session,
            &query.device,
            &query.platform,
            &query.decision,
            &query.since,
            &query.until,
        ],
    )
    .await?;
    // Optional fields the device left out stay out, as in the envelope it sent.
    for item in &mut page.items {
        if let Some(fields) = item.as_object_mut() {
            for optional in ["agent_pid", "tool_name", "target"] {
                if fields.get(optional).is_some_and(Value::is_null) {
                    fields.shift_remove(optional);
                }
            }
        }
    }
    Ok(Json(page))
}

/// Agent sessions.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(ListQuery), security(("api_key" = [])),
    responses((status = 200, description = "A page, newest first", body = Page), CommonErrors))]
pub async fn list_sessions(
    State(state): State<AppState>,
    key: TenantKey,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    // Sessions are keyed by text ids; the page key is (started_at, a UUID derived from the
    // row's identity) so the cursor format stays the same everywhere. started_at, not
    // last_seen_at: a key that ingest keeps moving would skip or repeat rows across pages.
    let sql = "SELECT started_at AS ts,
                    md5(device_id::text || '/' || session_id)::uuid AS id,
                    jsonb_build_object('session_id', session_id, 'device_id', device_id,
                        'platform', platform, 'started_at', started_at,
                        'last_seen_at', last_seen_at, 'actions', actions, 'denied', denied) AS item
             FROM sessions";
    Ok(Json(
        keyset_page(&state, key.tenant_id, sql, &query, &[]).await?,
    ))
}

/// Agents seen per device.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(ListQuery), security(("api_key" = [])),
    responses((status = 200, description = "A page, newest first", body = Page), CommonErrors))]
pub async fn list_agents(
    State(state): State<AppState>,
    key: TenantKey,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let sql = "SELECT first_seen_at AS ts, md5(device_id::text || '/' || platform)::uuid AS id,
                    jsonb_build_object('device_id', device_id, 'platform', platform,
                        'first_seen_at', first_seen_at, 'last_seen_at', last_seen_at,
                        'actions', actions) AS item
             FROM agents";
    Ok(Json(
        keyset_page(&state, key.tenant_id, sql, &query, &[]).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub status: Option<String>,
}

const ALERT_STATUSES: &[&str] = &["open", "acknowledged", "resolved"];

/// Alerts (denials and alert verdicts).
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertsQuery), security(("api_key" = [])),
    responses((status = 200, description = "A page, newest first", body = Page), CommonErrors))]
pub async fn list_alerts(
    State(state): State<AppState>,
    key: TenantKey,
    Query(query): Query<AlertsQuery>,
) -> Result<Json<Page>, ApiError> {
    if let Some(status) = &query.status {
        if !ALERT_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::bad_request(format!(
                "status must be one of {ALERT_STATUSES:?}"
            )));
        }
    }
    let sql = "SELECT created_at AS ts, alert_id AS id, jsonb_build_object(
                 'id', alert_id, 'event_id', event_id, 'timestamp', ts, 'device_id', device_id,
                 'session_id', session_id, 'decision', decision, 'rule_ids', rule_ids,
                 'status', status, 'created_at', created_at, 'updated_at', updated_at) AS item
             FROM alerts WHERE ($4::text IS NULL OR status = $4)";
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    Ok(Json(
        keyset_page(&state, key.tenant_id, sql, &page, &[&query.status]).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertChange {
    pub status: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertState {
    pub id: Uuid,
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

/// Acknowledge or resolve an alert.
#[utoipa::path(patch, path = "/v1/alerts/{id}", tag = "alerts", params(("id" = Uuid, Path, description = "alert id")),
    request_body = AlertChange, security(("api_key" = [])),
    responses((status = 200, description = "Changed", body = AlertState), (status = 404, description = "No such alert", body = ErrorBody), (status = 413, description = "Body over 10 MB", body = ErrorBody), CommonErrors))]
pub async fn update_alert(
    State(state): State<AppState>,
    key: TenantKey,
    Path(alert_id): Path<Uuid>,
    Body(body): Body,
) -> Result<Json<AlertState>, ApiError> {
    let change: AlertChange = parse_json(&body, "expected {\"status\": …}")?;
    if !["acknowledged", "resolved"].contains(&change.status.as_str()) {
        return Err(ApiError::bad_request(
            "status must be \"acknowledged\" or \"resolved\"",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = tenant_transaction(&mut client, key.tenant_id).await?;
    let row = tx
        .query_opt(
            "UPDATE alerts SET status = $2, updated_at = now() WHERE alert_id = $1
             RETURNING alert_id, status, updated_at",
            &[&alert_id, &change.status],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("alert"))?;
    tx.commit().await?;
    Ok(Json(AlertState {
        id: row.get(0),
        status: row.get(1),
        updated_at: row.get(2),
    }))
}
