//! Per-tenant rate limits (429 with Retry-After, other tenants unaffected) and the Prometheus
//! metrics endpoint.

use quint_e2e::relay::{event, Relay};
use serde_json::json;

#[test]
fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let relay = Relay::start_with(&["--rate-limit", "1", "--rate-burst", "3"]);
    let busy = relay.create_tenant("Busy");
    let calm = relay.create_tenant("Calm");
    let answers: Vec<_> = (0..6)
        .map(|_| relay.call("GET", "/v1/devices", Some(&busy.api_key), None))
        .collect();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        !limited.is_empty(),
        "statuses: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        answers.iter().take(3).all(|a| a.status == 200),
        "the burst is allowed"
    );
    let first = limited[0];
    assert_eq!(first.json["error"]["code"], "rate_limited");
    let retry: u64 = first
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(
        relay
            .call("GET", "/v1/devices", Some(&calm.api_key), None)
            .status,
        200,
        "another tenant has its own budget"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100 * retry));
    assert_eq!(
        relay
            .call("GET", "/v1/devices", Some(&busy.api_key), None)
            .status,
        200
    );

    let metrics = relay.call("GET", "/metrics", None, None);
    assert!(
        metrics.text.contains("quint_relay_rate_limited_total"),
        "{}",
        metrics.text
    );
}

#[test]
fn metrics_count_requests_by_route_and_ingested_events() {
    let relay = Relay::start();
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    let mut bad = event("s", "allow", "2026-11-27T10:00:00Z");
    bad["schema_version"] = json!(99);
    let batch = json!({"events": [event("s", "allow", "2026-11-27T10:00:00Z"), event("s", "deny", "2026-11-27T10:00:01Z"), bad]});
    assert_eq!(
        relay
            .call("POST", "/v1/ingest", Some(&device.token), Some(&batch))
            .status,
        200
    );
    let metrics = relay.call("GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    assert!(
        text.contains(r#"quint_relay_requests_total{route="/v1/ingest",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"quint_relay_ingested_events_total{outcome="accepted"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"quint_relay_ingested_events_total{outcome="rejected"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("quint_relay_ingest_seconds_count 1"),
        "{text}"
    );
    assert!(
        !text.contains(&device.token) && !text.contains(&tenant.api_key),
        "no secrets in metrics"
    );
}

/// Guessing tokens: well-formed unknown tokens (the checksum is public) from one address are
/// refused with 429 once past the failure budget, before any database lookup.
#[test]
fn an_address_guessing_tokens_is_refused_for_a_while() {
    use quint_policy::redact::checksum::with_checksum;
    let relay = Relay::start();
    let tenant = relay.create_tenant("Acme");
    let mut statuses = Vec::new();
    for n in 0..130 {
        let guess = with_checksum("qdv_", &format!("{n:0>30}"));
        let answer = relay.call(
            "POST",
            "/v1/ingest",
            Some(&guess),
            Some(&json!({"events": []})),
        );
        statuses.push(answer.status);
        if answer.status == 429 {
            assert!(answer.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("failed authentications"));
            assert!(answer.retry_after.is_some());
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 401).count() >= 100,
        "the burst is answered normally"
    );
    let blocked = relay.call("GET", "/v1/devices", Some(&tenant.api_key), None);
    assert_eq!(blocked.status, 429, "the address is refused while blocked");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let again = relay.call("GET", "/v1/devices", Some(&tenant.api_key), None);
    assert_eq!(again.status, 200, "and served again once the block ends");
}
