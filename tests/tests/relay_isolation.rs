//! Tenant isolation, end to end against a real Postgres: tenant A's credentials can neither
//! read nor change anything of tenant B through any endpoint; the service's database role sees
//! no rows of any table without a tenant set and only that tenant's with one; an ingest that
//! claims another tenant's or device's id is stored under the authenticated ones.

use quint_e2e::relay::{event, Relay};
use serde_json::{json, Value};

const TABLES: &[&str] = &[
    "tenants",
    "api_keys",
    "deploy_tokens",
    "devices",
    "agents",
    "sessions",
    "actions",
    "policies",
    "alerts",
];

fn ids(page: &Value, key: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|item| item[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn tenants_cannot_see_or_touch_each_other() {
    let relay = Relay::start();
    let a = relay.create_tenant("Acme");
    let b = relay.create_tenant("Globex");
    let device_a = relay.enroll(&a, "a-laptop");
    let device_b = relay.enroll(&b, "b-laptop");

    // A's device claims to be B's device in B's tenant; the relay stamps the token's identity.
    let mut forged = event("a-session", "deny", "2026-11-27T10:00:00Z");
    forged["tenant_id"] = json!(b.tenant_id);
    forged["device_id"] = json!(device_b.device_id);
    let sent = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device_a.token),
        Some(&json!({"events": [forged, event("a-session", "allow", "2026-11-27T10:00:01Z")]})),
    );
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(sent.json["accepted"], 2);
    let sent = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device_b.token),
        Some(&json!({"events": [event("b-session", "deny", "2026-11-27T11:00:00Z")]})),
    );
    assert_eq!(sent.json["accepted"], 1, "{}", sent.text);

    let forged_id = forged["event_id"].as_str().unwrap().to_string();
    let actions_a = relay.call("GET", "/v1/actions", Some(&a.api_key), None);
    let stored = actions_a.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == forged_id.as_str())
        .expect("the forged event is in A's actions");
    assert_eq!(stored["tenant_id"], a.tenant_id.as_str());
    assert_eq!(stored["device_id"], device_a.device_id.as_str());
    let actions_b = relay.call("GET", "/v1/actions", Some(&b.api_key), None);
    assert!(!ids(&actions_b.json, "event_id").contains(&forged_id));
    assert_eq!(ids(&actions_b.json, "event_id").len(), 1);

    // Every list shows each tenant only its own.
    for (path, key) in [
        ("/v1/devices", "device_id"),
        ("/v1/actions", "device_id"),
        ("/v1/sessions", "device_id"),
        ("/v1/agents", "device_id"),
        ("/v1/alerts", "device_id"),
    ] {
        let page_a = relay.call("GET", path, Some(&a.api_key), None);
        assert_eq!(page_a.status, 200, "{path}: {}", page_a.text);
        let seen = ids(&page_a.json, key);
        assert!(!seen.is_empty(), "{path} lists A's own items");
        assert!(
            seen.iter().all(|d| *d == device_a.device_id),
            "{path} as A shows {seen:?}"
        );
        let page_b = relay.call("GET", path, Some(&b.api_key), None);
        assert!(ids(&page_b.json, key)
            .iter()
            .all(|d| *d == device_b.device_id));
    }
    let tokens_a = relay.call("GET", "/v1/deploy-tokens", Some(&a.api_key), None);
    let tokens_b = relay.call("GET", "/v1/deploy-tokens", Some(&b.api_key), None);
    let (tokens_a, tokens_b) = (ids(&tokens_a.json, "id"), ids(&tokens_b.json, "id"));
    assert_eq!(tokens_a.len(), 1);
    assert!(tokens_a.iter().all(|t| !tokens_b.contains(t)));

    // Changing B's objects with A's key: not found, and B's objects are untouched.
    let alert_b = ids(
        &relay.call("GET", "/v1/alerts", Some(&b.api_key), None).json,
        "id",
    )[0]
    .clone();
    for (method, path, body) in [
        (
            "DELETE",
            format!("/v1/devices/{}", device_b.device_id),
            None,
        ),
        ("DELETE", format!("/v1/deploy-tokens/{}", tokens_b[0]), None),
        (
            "PATCH",
            format!("/v1/alerts/{alert_b}"),
            Some(json!({"status": "resolved"})),
        ),
    ] {
        let answer = relay.call(method, &path, Some(&a.api_key), body.as_ref());
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.text);
        assert_eq!(answer.json["error"]["code"], "not_found");
    }
    let devices_b = relay.call("GET", "/v1/devices", Some(&b.api_key), None);
    assert_eq!(devices_b.json["items"][0]["revoked"], false);
    let alerts_b = relay.call("GET", "/v1/alerts", Some(&b.api_key), None);
    assert_eq!(alerts_b.json["items"][0]["status"], "open");
    let still_works = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device_b.token),
        Some(&json!({"events": []})),
    );
    assert_eq!(still_works.status, 200, "B's device is not revoked");

    // A device token is not an API key, and an API key is not a device token.
    assert_eq!(
        relay
            .call("GET", "/v1/actions", Some(&device_a.token), None)
            .status,
        401
    );
    assert_eq!(
        relay
            .call(
                "POST",
                "/v1/ingest",
                Some(&a.api_key),
                Some(&json!({"events": []}))
            )
            .status,
        401
    );

    // The service's role: nothing without a tenant, only the tenant's rows with one.
    let mut app = relay.app();
    for table in TABLES {
        let count: i64 = app
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(count, 0, "{table} without a tenant");
    }
    for tenant in [&a, &b] {
        let mut tx = app.transaction().unwrap();
        tx.execute(
            "SELECT set_config('app.current_tenant_id', $1, true)",
            &[&tenant.tenant_id],
        )
        .unwrap();
        for table in TABLES {
            let row = tx
                .query_one(
                    &format!(
                        "SELECT count(*), count(*) FILTER (WHERE tenant_id::text <> $1) FROM {table}"
                    ),
                    &[&tenant.tenant_id],
                )
                .unwrap();
            let (all, foreign): (i64, i64) = (row.get(0), row.get(1));
            assert_eq!(foreign, 0, "{table} shows another tenant's rows");
            if !matches!(*table, "policies") {
                assert!(all > 0, "{table} shows the tenant its own rows");
            }
        }
        tx.rollback().unwrap();
    }
    // Nor can it write rows for a tenant other than the one set.
    let mut tx = app.transaction().unwrap();
    tx.execute(
        "SELECT set_config('app.current_tenant_id', $1, true)",
        &[&a.tenant_id],
    )
    .unwrap();
    let refused = tx.execute(
        "UPDATE devices SET revoked_at = now() WHERE device_id::text = $1",
        &[&device_b.device_id],
    );
    assert_eq!(
        refused.unwrap(),
        0,
        "B's device is invisible to an update as A"
    );
    let insert = tx.execute(
        "INSERT INTO agents (tenant_id, device_id, platform, first_seen_at, last_seen_at)
         VALUES ($1::text::uuid, $2::text::uuid, 'x', now(), now())",
        &[&b.tenant_id, &device_b.device_id],
    );
    let error = insert.expect_err("a row for B written as A");
    let error = error
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(error.contains("row-level security"), "{error}");
}

#[test]
fn serve_refuses_roles_that_could_bypass_row_level_security() {
    let relay = Relay::prepare();
    let output = std::process::Command::new(quint_e2e::bin("quint-relay"))
        .args([
            "serve",
            "--database-url",
            &relay.owner_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("superuser"), "{said}");

    let mut owner = relay.owner();
    let bypass = format!("{}_bypass", relay.database);
    owner
        .batch_execute(&format!(
            "CREATE ROLE {bypass} LOGIN BYPASSRLS IN ROLE quint_app"
        ))
        .unwrap();
    let url = relay.app_url.replace(&relay.app_role, &bypass);
    let output = std::process::Command::new(quint_e2e::bin("quint-relay"))
        .args(["serve", "--database-url", &url, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    owner.batch_execute(&format!("DROP ROLE {bypass}")).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("BYPASSRLS"));
}

/// The database-level guards the isolation depends on, checked directly: definer functions pin
/// their search path, the service cannot call the owner-only partition function or create in
/// the schema, and every partition carries the tenant policy with no grant to the service.
#[test]
fn definer_functions_partitions_and_schema_are_locked_down() {
    let relay = Relay::prepare();
    let mut owner = relay.owner();
    let definers = owner
        .query(
            "SELECT proname::text, coalesce(array_to_string(proconfig, ','), '') FROM pg_proc
             WHERE prosecdef AND pronamespace = 'public'::regnamespace",
            &[],
        )
        .unwrap();
    assert!(definers.len() >= 5, "{} definer functions", definers.len());
    for row in &definers {
        let (name, config): (String, String) = (row.get(0), row.get(1));
        assert!(
            config.contains("search_path=pg_catalog, pg_temp"),
            "{name} runs with search_path {config:?}"
        );
    }
    let role = &relay.app_role;
    let check = |sql: &str| -> bool { relay.owner().query_one(sql, &[role]).unwrap().get(0) };
    assert!(!check(
        "SELECT has_function_privilege($1, 'quint_ensure_partitions(integer, integer)', 'EXECUTE')"
    ));
    assert!(check(
        "SELECT has_function_privilege($1, 'quint_ensure_partitions_ahead()', 'EXECUTE')"
    ));
    assert!(!check(
        "SELECT has_schema_privilege($1, 'public', 'CREATE')"
    ));
    let partitions = owner
        .query(
            "SELECT c.relname::text, c.relrowsecurity,
                    has_table_privilege($1, c.oid, 'SELECT') OR has_table_privilege($1, c.oid, 'INSERT')
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'actions'::regclass",
            &[role],
        )
        .unwrap();
    assert!(partitions.len() >= 5, "{} partitions", partitions.len());
    for row in &partitions {
        let (name, rls, granted): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        assert!(rls, "{name} has row level security enabled");
        assert!(!granted, "{name} is not granted to the service");
    }
}
