//! The tenant's policy layer at the relay: validated with the same compiler quintd uses (a bad
//! one is refused with file, line and rule), served to the tenant and its devices with an ETag,
//! and never to another tenant.

use quint_e2e::relay::Relay;
use serde_json::json;

const GOOD: &str = "rules:\n  - id: acme.no-prod-db\n    description: no prod database from agents\n    verdict: deny\n    severity: high\n    match:\n      command: 'psql .*prod'\n";

#[test]
fn policy_layers_are_validated_versioned_and_kept_per_tenant() {
    let relay = Relay::start();
    let a = relay.create_tenant("Acme");
    let b = relay.create_tenant("Globex");
    let device_a = relay.enroll(&a, "a-laptop");

    let none = relay.call("GET", "/v1/policy", Some(&a.api_key), None);
    assert_eq!(none.status, 404, "{}", none.text);

    let broken = "rules:\n  - id: acme.broken\n    description: x\n    verdict: deny\n    severity: high\n    match:\n      command: '(unclosed'\n";
    let refused = relay.call(
        "PUT",
        "/v1/policy",
        Some(&a.api_key),
        Some(&json!({"yaml": broken})),
    );
    assert_eq!(refused.status, 422, "{}", refused.text);
    let message = refused.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tenant.yaml:")
            && message.contains("acme.broken")
            && message.contains("regex"),
        "{message}"
    );

    let stored = relay.call(
        "PUT",
        "/v1/policy",
        Some(&a.api_key),
        Some(&json!({"yaml": GOOD})),
    );
    assert_eq!(stored.status, 200, "{}", stored.text);
    let etag = stored.json["etag"].as_str().unwrap().to_string();

    let as_tenant = relay.call("GET", "/v1/policy", Some(&a.api_key), None);
    assert_eq!(as_tenant.json["yaml"], GOOD);
    let as_device = relay.call("GET", "/v1/policy", Some(&device_a.token), None);
    assert_eq!(as_device.status, 200, "{}", as_device.text);
    assert_eq!(as_device.json["etag"], etag.as_str());

    let other = relay.call("GET", "/v1/policy", Some(&b.api_key), None);
    assert_eq!(other.status, 404, "B sees no policy of A's");
}

#[test]
fn devices_long_poll_for_policy_changes() {
    let relay = Relay::start();
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    let first = relay.call(
        "PUT",
        "/v1/policy",
        Some(&tenant.api_key),
        Some(&json!({"yaml": GOOD})),
    );
    let etag = first.json["etag"].as_str().unwrap().to_string();

    // Unchanged: held for the wait, then 304.
    let started = std::time::Instant::now();
    let unchanged = relay.call_with_headers(
        "GET",
        "/v1/policy?wait=1",
        Some(&device.token),
        None,
        &[("If-None-Match", &etag)],
    );
    assert_eq!(unchanged.status, 304);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // Changed while waiting: answered at once with the new layer.
    let changed = GOOD.replace("no prod database", "no production database");
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = std::time::Instant::now();
            let answer = relay.call_with_headers(
                "GET",
                "/v1/policy?wait=25",
                Some(&device.token),
                None,
                &[("If-None-Match", &etag)],
            );
            (answer, started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        let put = relay.call(
            "PUT",
            "/v1/policy",
            Some(&tenant.api_key),
            Some(&json!({"yaml": changed})),
        );
        assert_eq!(put.status, 200, "{}", put.text);
        let (answer, took) = waiting.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json["yaml"], changed.as_str());
        assert!(
            took < std::time::Duration::from_secs(5),
            "answered on the change, took {took:?}"
        );
    });
    let too_long = relay.call("GET", "/v1/policy?wait=26", Some(&device.token), None);
    assert_eq!(too_long.status, 400);
}
