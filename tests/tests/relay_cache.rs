//! The token and policy cache, in each relay process or shared in Redis: requests are answered
//! from it, and a revocation or policy change made anywhere (another relay process, plain SQL)
//! is in force within one second. Redis comes from `QUINT_TEST_REDIS` (scripts/test.sh starts
//! one when none answers on 127.0.0.1:6379).

use std::time::{Duration, Instant};

use quint_e2e::relay::{Answer, Relay};
use serde_json::json;

fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("QUINT_TEST_REDIS") {
        return Some(url);
    }
    std::net::TcpStream::connect(("127.0.0.1", 6379))
        .is_ok()
        .then(|| "redis://127.0.0.1:6379".to_string())
}

/// Polls until `in_force` holds, and asserts it took under a second.
fn in_force_within_a_second(what: &str, mut in_force: impl FnMut() -> bool) {
    let started = Instant::now();
    while !in_force() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not after 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{what} after {took:?}");
}

fn cache_hits(relay: &Relay) -> u64 {
    let metrics = relay.call("GET", "/metrics", None, None).text;
    metrics
        .lines()
        .find(|l| l.starts_with("quint_relay_token_cache_total{result=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn upload(relay: &Relay, token: &str) -> Answer {
    relay.call(
        "POST",
        "/v1/ingest",
        Some(token),
        Some(&json!({"events": []})),
    )
}

/// Two relay processes with the same cache flags; revocations through one, or in SQL, reach
/// the other within a second although it had the tokens cached.
fn revocations_and_policy_changes_are_in_force_within_a_second(flags: &[&str]) {
    let first = Relay::start_with(flags);
    let second = first.another_process(flags);
    let tenant = first.create_tenant("Acme");
    let device = first.enroll(&tenant, "laptop");
    // Redis entries from lookups begun in a process's first 2 s of listening are not trusted
    // (notes from before may have been missed; relay hosts' clocks may differ by that much).
    std::thread::sleep(Duration::from_millis(2100));

    for _ in 0..3 {
        assert_eq!(upload(&first, &device.token).status, 200);
        assert_eq!(
            first
                .call("GET", "/v1/devices", Some(&tenant.api_key), None)
                .status,
            200
        );
    }
    assert!(
        cache_hits(&first) >= 4,
        "repeated requests are answered from the cache"
    );

    // Revoked through the other process.
    let revoked = second.call(
        "DELETE",
        &format!("/v1/devices/{}", device.device_id),
        Some(&tenant.api_key),
        None,
    );
    assert!(revoked.status < 300, "{}", revoked.text);
    in_force_within_a_second("device refused", || {
        upload(&first, &device.token).status == 401
    });

    // An API key revoked in plain SQL.
    first
        .owner()
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1::text::uuid",
            &[&tenant.tenant_id],
        )
        .unwrap();
    in_force_within_a_second("API key refused", || {
        first
            .call("GET", "/v1/devices", Some(&tenant.api_key), None)
            .status
            == 401
    });

    // A policy changed in SQL is what the next read returns (the cached copy is dropped).
    let other = first.create_tenant("Other");
    let laptop = first.enroll(&other, "laptop-2");
    let put = second.call(
        "PUT",
        "/v1/policy",
        Some(&other.api_key),
        Some(&json!({"yaml": "rules: []\n"})),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    let read = first.call("GET", "/v1/policy", Some(&laptop.token), None);
    assert_eq!(read.json["etag"], put.json["etag"], "{}", read.text);
    first
        .owner()
        .execute(
            "UPDATE policies SET yaml = '# edited in SQL', etag = '\"sql\"' WHERE tenant_id = $1::text::uuid",
            &[&other.tenant_id],
        )
        .unwrap();
    in_force_within_a_second("policy seen", || {
        first
            .call("GET", "/v1/policy", Some(&laptop.token), None)
            .json["etag"]
            == "\"sql\""
    });
}

#[test]
fn in_process_cache_is_invalidated_across_processes() {
    revocations_and_policy_changes_are_in_force_within_a_second(&[]);
}

#[test]
fn redis_cache_is_invalidated_across_processes() {
    let Some(url) = redis_url() else {
        eprintln!("SKIPPED: no Redis (set QUINT_TEST_REDIS; scripts/test.sh starts one)");
        return;
    };
    revocations_and_policy_changes_are_in_force_within_a_second(&["--redis-url", &url]);

    // The entries are Redis's, under the tenant's keys.
    let relay = Relay::start_with(&["--redis-url", &url]);
    let tenant = relay.create_tenant("Shared");
    let device = relay.enroll(&tenant, "laptop");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(upload(&relay, &device.token).status, 200);
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let listed: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("tenant:{}:keys", tenant.tenant_id))
        .query(&mut redis)
        .unwrap();
    assert!(
        listed.iter().any(|k| k.starts_with("quint:token:")),
        "the device's lookup is cached in Redis under its tenant: {listed:?}"
    );

    // Whoever can write to Redis still cannot authenticate: entries are signed with their
    // tenant and age, so neither a forged entry nor the genuine one written back after the
    // revocation is used; Postgres answers 401.
    let key = {
        use sha2::Digest;
        format!(
            "quint:token:{}",
            hex::encode(sha2::Sha256::digest(device.token.as_bytes()))
        )
    };
    let genuine: String = redis::cmd("GET").arg(&key).query(&mut redis).unwrap();
    let revoked = relay.call(
        "DELETE",
        &format!("/v1/devices/{}", device.device_id),
        Some(&tenant.api_key),
        None,
    );
    assert!(revoked.status < 300, "{}", revoked.text);
    in_force_within_a_second("device refused", || {
        upload(&relay, &device.token).status == 401
    });
    let claim = format!("{} {}", tenant.tenant_id, device.device_id);
    for forged in [
        claim.clone(),
        format!("{claim}\t{}", "ab".repeat(32)),
        genuine,
    ] {
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&forged)
            .query(&mut redis)
            .unwrap();
        assert_eq!(
            upload(&relay, &device.token).status,
            401,
            "a forged cache entry ({forged}) does not authenticate"
        );
    }
}

#[test]
fn an_unreachable_redis_leaves_the_relay_serving() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("redis://127.0.0.1:{port}");
    let relay = Relay::start_with(&["--redis-url", &url]);
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    assert_eq!(upload(&relay, &device.token).status, 200);
    assert!(
        relay.log().contains("Redis unreachable"),
        "the outage is said in the log: {}",
        relay.log()
    );
}
