//! The fleet link end to end: a private quintd enrolled with a real relay on real Postgres.
//! Hook events reach the tenant API shaped and redacted under this device; a revoked device
//! keeps everything and delivers it after re-enrolling; a tenant policy change reaches hook
//! decisions within seconds, and one that does not compile on the device is refused.

use std::time::{Duration, Instant};

use quint_e2e::relay::Relay;
use quint_e2e::{claude_pre_tool_use, stdout_json, QuintEnv};
use serde_json::{json, Value};

fn status(env: &QuintEnv) -> Value {
    stdout_json(&env.ctl(&["status", "--json"]))["daemon"]["relay"].clone()
}

/// A Bash call through the Claude Code hook; returns the decision.
fn bash(env: &QuintEnv, session: &str, command: &str) -> String {
    let output = env.hook(
        "claude-code",
        &claude_pre_tool_use(session, "Bash", json!({"command": command}), &env.home),
    );
    assert!(output.status.success() || output.status.code() == Some(2));
    let reply = String::from_utf8_lossy(&output.stdout);
    if reply.trim().is_empty() {
        return "allow".into();
    }
    stdout_json(&output)["hookSpecificOutput"]["permissionDecision"]
        .as_str()
        .unwrap_or("allow")
        .to_string()
}

/// The tenant's stored actions for a device: (event_id, target).
fn stored_actions(relay: &Relay, device_id: &str) -> Vec<(String, Option<String>)> {
    relay
        .owner()
        .query(
            "SELECT event_id::text, target FROM actions WHERE device_id = $1::text::uuid ORDER BY ts",
            &[&device_id],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn hook_events_reach_the_tenant_api_under_this_device_shaped_and_redacted() {
    let relay = Relay::start();
    let acme = relay.create_tenant("Acme");
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();

    // Bad tokens are refused with the relay's reason, and nothing is stored.
    let refused = env.ctl(&[
        "enroll",
        "--relay",
        &relay.base_url,
        "--token",
        "qdt_not-a-real-token",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("refused the deploy token"), "{message}");
    assert!(
        !message.contains("qdt_not-a-real-token"),
        "the token is not echoed: {message}"
    );
    assert_eq!(status(&env)["enrolled"], false);
    let plain = env.ctl(&[
        "enroll",
        "--relay",
        "http://relay.example.com",
        "--token",
        "qdt_x",
    ]);
    assert!(String::from_utf8_lossy(&plain.stderr).contains("use https"));

    let token = relay.deploy_token(&acme);
    let enrolled = env.enroll(&relay.base_url, &token);
    assert_eq!(enrolled["tenant_id"], acme.tenant_id.as_str());
    let device_id = enrolled["device_id"].as_str().unwrap().to_string();
    let stored = std::fs::metadata(env.state_dir.join("enrollment.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        stored.permissions().mode() & 0o777,
        0o600,
        "the device token is owner-only"
    );

    let secret = "Bearer abcdef0123456789abcdef0123456789abcdef";
    assert_eq!(
        bash(
            &env,
            "sess-fleet-1",
            &format!("curl -H 'Authorization: {secret}' https://api.example.com")
        ),
        "allow"
    );
    let write = env.hook(
        "claude-code",
        &claude_pre_tool_use(
            "sess-fleet-1",
            "Write",
            json!({"file_path": env.home.join("notes.txt"), "content": "line one\nline two\n"}),
            &env.home,
        ),
    );
    assert!(write.status.success());

    let arrived = env.wait_for(Duration::from_secs(15), || {
        stored_actions(&relay, &device_id).len() == 2
    });
    assert!(arrived, "{:?}\n{}", status(&env), env.daemon_log());
    let listed = relay.call(
        "GET",
        &format!("/v1/actions?device={device_id}&limit=10"),
        Some(&acme.api_key),
        None,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items
        .iter()
        .all(|i| i["tenant_id"] == acme.tenant_id.as_str()));
    let text = listed.text.clone();
    assert!(
        !text.contains("abcdef0123456789abcdef0123456789"),
        "secret left the device: {text}"
    );
    assert!(text.contains("[REDACTED:"), "{text}");
    assert!(
        !text.contains("line two"),
        "file contents left the device: {text}"
    );
    let write_item = items.iter().find(|i| i["tool_name"] == "Write").unwrap();
    assert_eq!(
        write_item["arguments"]["content"]["lines"], 2,
        "{write_item}"
    );

    // Status: enrolled, nothing pending, uploaded; the heartbeat reached the device list.
    let link = status(&env);
    assert_eq!(link["enrolled"], true);
    assert_eq!(link["device_id"], device_id.as_str());
    assert_eq!(link["pending"], 0);
    assert!(link["last_upload_at"].is_string(), "{link}");
    assert_eq!(link["reachable"], true);
    let reported = env.wait_for(Duration::from_secs(10), || {
        let devices = relay.call("GET", "/v1/devices", Some(&acme.api_key), None);
        devices.json["items"][0]["health"]["daemon_version"].is_string()
    });
    assert!(reported, "the heartbeat reaches GET /v1/devices");

    // An event the relay refuses (a session id longer than it stores) is kept, counted, and
    // not sent again; the events after it still go.
    let long_session = "s".repeat(300);
    bash(&env, &long_session, "echo refused by the relay");
    bash(&env, "sess-fleet-1", "echo after the refused one");
    let counted = env.wait_for(Duration::from_secs(15), || {
        let link = status(&env);
        link["rejected"] == 1 && link["pending"] == 0
    });
    assert!(counted, "{}", status(&env));
    assert_eq!(stored_actions(&relay, &device_id).len(), 3);
    let rejected: i64 = env
        .database()
        .query_row(
            "SELECT count(*) FROM upload_rejections WHERE reason LIKE '%session_id%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rejected, 1, "the relay's reason is kept");

    // A revoked deploy token (read from a file this time) is refused with the relay's reason.
    let second = relay.deploy_token(&acme);
    let tokens = relay.call("GET", "/v1/deploy-tokens", Some(&acme.api_key), None);
    let id = tokens.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["revoked"] == false && t["uses"] == 0)
        .map(|t| t["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{}", tokens.text));
    let revoke = relay.call(
        "DELETE",
        &format!("/v1/deploy-tokens/{id}"),
        Some(&acme.api_key),
        None,
    );
    assert_eq!(revoke.status, 204, "{}", revoke.text);
    let file = env.dir.path().join("deploy-token");
    std::fs::write(&file, format!("{second}\n")).unwrap();
    let refused = env.ctl(&[
        "enroll",
        "--relay",
        &relay.base_url,
        "--token-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        status(&env)["device_id"],
        device_id.as_str(),
        "a refused enrollment changes nothing"
    );
}

#[test]
fn a_revoked_device_keeps_its_events_and_delivers_them_after_re_enrolling() {
    let relay = Relay::start();
    let acme = relay.create_tenant("Acme");
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let token = relay.deploy_token(&acme);
    let first = env.enroll(&relay.base_url, &token)["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    bash(&env, "sess-revoke", "echo before");
    assert!(
        env.wait_for(Duration::from_secs(15), || stored_actions(&relay, &first)
            .len()
            == 1)
    );

    let revoked = relay.call(
        "DELETE",
        &format!("/v1/devices/{first}"),
        Some(&acme.api_key),
        None,
    );
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    for n in 0..5 {
        bash(&env, "sess-revoke", &format!("echo while revoked {n}"));
    }
    let stopped = env.wait_for(Duration::from_secs(15), || status(&env)["revoked"] == true);
    assert!(stopped, "{}\n{}", status(&env), env.daemon_log());
    let human = String::from_utf8_lossy(&env.ctl(&["status"]).stdout).to_string();
    assert!(human.contains("device revoked — re-enroll"), "{human}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        status(&env)["pending"],
        5,
        "everything is kept while revoked"
    );
    assert_eq!(stored_actions(&relay, &first).len(), 1);

    let second = env.enroll(&relay.base_url, &token)["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let delivered = env.wait_for(Duration::from_secs(15), || {
        stored_actions(&relay, &second).len() == 5
    });
    assert!(delivered, "{}\n{}", status(&env), env.daemon_log());
    let link = status(&env);
    assert_eq!(link["revoked"], false);
    assert_eq!(link["pending"], 0);
}

#[test]
fn a_tenant_policy_change_reaches_hook_decisions_within_5_seconds() {
    let relay = Relay::start();
    let acme = relay.create_tenant("Acme");
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let token = relay.deploy_token(&acme);
    env.enroll(&relay.base_url, &token);
    assert_eq!(bash(&env, "sess-policy", "echo fleet-forbidden"), "allow");
    // Let the policy poll settle into its long wait.
    std::thread::sleep(Duration::from_secs(1));

    let put = relay.call(
        "PUT",
        "/v1/policy",
        Some(&acme.api_key),
        Some(&json!({"yaml": "rules:\n  - id: tenant.no-fleet-forbidden\n    description: Not on this fleet\n    match:\n      command: ['fleet-forbidden']\n    verdict: deny\n    severity: high\n"})),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    let etag = put.json["etag"].as_str().unwrap().to_string();
    let changed = Instant::now();
    let mut denied = false;
    while changed.elapsed() < Duration::from_secs(5) {
        if bash(&env, "sess-policy", "echo fleet-forbidden") == "deny" {
            denied = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        denied,
        "not in force within 5 s: {}\n{}",
        status(&env),
        env.daemon_log()
    );
    let link = status(&env);
    assert_eq!(link["policy_etag"], etag.as_str());
    let sources =
        stdout_json(&env.ctl(&["status", "--json"]))["daemon"]["policy"]["sources"].clone();
    assert!(
        sources.to_string().contains("tenant policy (relay)"),
        "{sources}"
    );

    // A layer that does not compile here (edited behind the API's validation) is refused by
    // quintd too: the last good one stays in force and status says why.
    relay
        .owner()
        .execute(
            "UPDATE policies SET yaml = $2, etag = '\"broken\"' WHERE tenant_id = $1::text::uuid",
            &[&acme.tenant_id, &"rules:\n  - id: tenant.broken\n    description: bad regex\n    match:\n      command: ['(unclosed']\n    verdict: deny\n    severity: low\n"],
        )
        .unwrap();
    let refused = env.wait_for(Duration::from_secs(10), || {
        status(&env)["policy_error"].is_string()
    });
    assert!(refused, "{}", status(&env));
    let link = status(&env);
    assert!(
        link["policy_error"]
            .as_str()
            .unwrap()
            .contains("tenant.broken"),
        "{link}"
    );
    assert_eq!(
        link["policy_etag"],
        etag.as_str(),
        "the last good layer stays"
    );
    assert_eq!(bash(&env, "sess-policy", "echo fleet-forbidden"), "deny");

    // Removing the layer puts the device back on its own policy.
    relay
        .owner()
        .execute(
            "DELETE FROM policies WHERE tenant_id = $1::text::uuid",
            &[&acme.tenant_id],
        )
        .unwrap();
    let back = env.wait_for(Duration::from_secs(5), || {
        bash(&env, "sess-policy", "echo fleet-forbidden") == "allow"
    });
    assert!(back, "{}", status(&env));
}

#[test]
fn past_the_disk_budget_only_allow_decisions_are_dropped_and_status_and_relay_count_them() {
    let relay = Relay::start();
    let acme = relay.create_tenant("Acme");
    let env = QuintEnv::new();
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str("storage:\n  outbox_budget_mb: 1\n");
    std::fs::write(&env.config, config).unwrap();
    std::fs::write(
        env.policy_dir.join("budget.yaml"),
        "rules:\n  - id: local.budget-deny\n    description: denied for the test\n    match:\n      command: ['budget-deny']\n    verdict: deny\n    severity: high\n",
    )
    .unwrap();
    let _daemon = env.start_daemon();

    // Not enrolled yet: everything stays in the outbox, about 4 MB against a 1 MB budget.
    let padding = "p".repeat(1500);
    let (batches, per_batch) = (40, 50);
    let mut denials = 0;
    for b in 0..batches {
        let events: Vec<Value> = (0..per_batch)
            .map(|i| {
                let n = b * per_batch + i;
                let word = if n % 10 == 0 { "budget-deny" } else { "fine" };
                let mut event = quint_e2e::relay::event(
                    "sess-budget",
                    "allow",
                    &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                );
                let command = format!("echo {word} {n} {padding}");
                event["arguments"] = json!({ "command": command });
                event["target"] = json!(command);
                event
            })
            .collect();
        let replies = env.request(&json!({"op": "evaluate_batch", "events": events}));
        denials += replies
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["decision"] == "deny")
            .count();
    }
    let sent = batches * per_batch;
    assert_eq!(denials, sent / 10);
    let dropped_settled = env.wait_for(Duration::from_secs(15), || {
        let first = status(&env)["dropped"].as_u64().unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        first > 0 && status(&env)["dropped"].as_u64() == Some(first)
    });
    assert!(dropped_settled, "{}\n{}", status(&env), env.daemon_log());
    let dropped = status(&env)["dropped"].as_u64().unwrap() as usize;
    let human = String::from_utf8_lossy(&env.ctl(&["status"]).stdout).to_string();
    assert!(
        human.contains(&format!("{dropped} allow-decision event(s) dropped")),
        "{human}"
    );

    let device_id = env.enroll(&relay.base_url, &relay.deploy_token(&acme))["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    let uploaded = env.wait_for(Duration::from_secs(30), || status(&env)["pending"] == 0);
    assert!(uploaded, "{}", status(&env));
    let count = |decision: &str| -> i64 {
        relay
            .owner()
            .query_one(
                "SELECT count(*) FROM actions WHERE device_id = $1::text::uuid AND decision = $2",
                &[&device_id, &decision],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(count("deny") as usize, denials, "no denial was dropped");
    assert_eq!(
        count("allow") as usize + dropped,
        sent - denials,
        "the dropped count is exactly the allow decisions missing at the relay"
    );
    let reported = env.wait_for(Duration::from_secs(10), || {
        let devices = relay.call("GET", "/v1/devices", Some(&acme.api_key), None);
        devices.json["items"][0]["health"]["outbox"]["dropped"].as_u64() == Some(dropped as u64)
    });
    assert!(reported, "the relay shows the device's drops");
    let verify = env.ctl(&["audit", "verify", "--json"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// `quintctl doctor --json` as (name, outcome) pairs, with its exit code.
fn doctor(env: &QuintEnv) -> (i32, Vec<(String, String)>, Value) {
    let output = env.ctl(&["doctor", "--json"]);
    let checks = stdout_json(&output);
    let pairs = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (output.status.code().unwrap(), pairs, checks)
}

fn outcome_of(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, o)| o.clone())
        .unwrap_or_default()
}

#[test]
fn doctor_names_each_problem_with_its_fix() {
    let mut relay = Relay::start();
    let acme = relay.create_tenant("Acme");
    let env = QuintEnv::new();
    std::fs::create_dir_all(env.home.join(".claude")).unwrap();

    let (code, pairs, checks) = doctor(&env);
    assert_eq!(code, 1);
    assert_eq!(outcome_of(&pairs, "daemon"), "fail");
    assert!(
        checks[0]["fix"].as_str().unwrap().contains("systemctl"),
        "{checks}"
    );
    assert_eq!(outcome_of(&pairs, "enrollment"), "skip");

    let _daemon = env.start_daemon();
    let (code, pairs, checks) = doctor(&env);
    assert_eq!(code, 1, "{checks}");
    assert_eq!(outcome_of(&pairs, "daemon"), "pass");
    assert_eq!(outcome_of(&pairs, "socket"), "pass");
    assert_eq!(outcome_of(&pairs, "enrollment"), "warn");
    let hooks = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hooks")
        .unwrap();
    assert_eq!(hooks["outcome"], "fail", "{checks}");
    assert!(hooks["fix"]
        .as_str()
        .unwrap()
        .contains("hooks install --agent claude-code"));

    let installed = env.ctl(&["hooks", "install", "--agent", "claude-code"]);
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    env.enroll(&relay.base_url, &relay.deploy_token(&acme));
    let (code, pairs, checks) = doctor(&env);
    assert_eq!(code, 0, "{checks}");
    for name in [
        "daemon",
        "socket",
        "policy",
        "enrollment",
        "relay",
        "clock",
        "hooks",
    ] {
        assert_eq!(outcome_of(&pairs, name), "pass", "{name}: {checks}");
    }
    // The tests run quintd without collectors: a warning with the fix, not a failure.
    assert_eq!(outcome_of(&pairs, "collectors"), "warn");
    let human = String::from_utf8_lossy(&env.ctl(&["doctor"]).stdout).to_string();
    assert!(human.contains("[ok  ] relay"), "{human}");

    relay.stop();
    let (code, pairs, _) = doctor(&env);
    assert_eq!(code, 1);
    assert_eq!(outcome_of(&pairs, "relay"), "fail");
    assert_eq!(outcome_of(&pairs, "clock"), "skip");
}
