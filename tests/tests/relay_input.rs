//! Bad input at the relay: each gets the right status and a clear message, and nothing valid
//! in the same batch is lost. Also partitions: events across a month boundary and in a month
//! with no partition yet are stored and listed.

use std::io::Write;

use quint_e2e::relay::{enroll_body, event, Relay};
use serde_json::{json, Value};

fn message(answer: &quint_e2e::relay::Answer) -> String {
    answer.json["error"]["message"]
        .as_str()
        .unwrap_or(&answer.text)
        .to_string()
}

#[test]
fn bad_batches_are_refused_clearly_and_valid_events_survive() {
    let relay = Relay::start();
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    let ingest = |body: Vec<u8>, encoding: Option<&str>| {
        relay.call_raw(
            "POST",
            "/v1/ingest",
            Some(&device.token),
            Some(body),
            encoding,
        )
    };

    let too_many: Vec<Value> = (0..501)
        .map(|_| event("s", "allow", "2026-11-27T10:00:00Z"))
        .collect();
    let answer = ingest(json!({"events": too_many}).to_string().into_bytes(), None);
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(message(&answer).contains("at most 500"), "{}", answer.text);

    // Well past the limit: the relay reads the rest before answering, so a client still
    // sending gets the 413 and its reason, not a reset connection.
    let huge = format!(r#"{{"events": [], "pad": "{}"}}"#, "x".repeat(24 << 20));
    let answer = ingest(huge.into_bytes(), None);
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(message(&answer).contains("10 MB"), "{}", answer.text);

    // A gzip bomb is limited after decompression.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(format!(r#"{{"events": [], "pad": "{}"}}"#, "x".repeat(11 << 20)).as_bytes())
        .unwrap();
    let answer = ingest(gz.finish().unwrap(), Some("gzip"));
    assert_eq!(answer.status, 413, "{}", answer.text);

    let answer = ingest(b"{\"events\": [".to_vec(), None);
    assert_eq!(answer.status, 400);
    assert!(message(&answer).contains("not JSON"), "{}", answer.text);
    let answer = ingest(b"[1, 2]".to_vec(), None);
    assert_eq!(answer.status, 400);
    assert!(message(&answer).contains("{\"events\""), "{}", answer.text);

    // One batch: good events, an unknown schema version, wrong types, a duplicate.
    let good = event("s1", "deny", "2026-11-27T10:00:00Z");
    let also_good = event("s1", "allow", "2026-11-27T10:00:01Z");
    let mut future = event("s1", "allow", "2026-11-27T10:00:02Z");
    future["schema_version"] = json!(7);
    let mut wrong = event("s1", "allow", "2026-11-27T10:00:03Z");
    wrong["risk_score"] = json!("high");
    let batch = json!({"events": [good, future, wrong, also_good, good]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(batch.to_string().as_bytes()).unwrap();
    let answer = ingest(gz.finish().unwrap(), Some("gzip"));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["accepted"], 2, "{}", answer.text);
    let rejected = answer.json["rejected"].as_array().unwrap();
    let errors: Vec<&str> = rejected
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("schema_version 7"), "{errors:?}");
    assert!(
        errors[1].contains("risk_score") || errors[1].contains("invalid type"),
        "{errors:?}"
    );
    assert!(errors[2].contains("duplicate event_id"), "{errors:?}");
    assert_eq!(rejected[0]["event_id"], future["event_id"]);

    // Text Postgres cannot store is refused per event, not by failing the batch.
    let mut nul = event("s1", "allow", "2026-11-27T10:00:04Z");
    nul["session_id"] = json!("bad\u{0}session");
    let mut long = event(&"x".repeat(3000), "allow", "2026-11-27T10:00:05Z");
    long["target"] = json!("t");
    let fine = event("s2", "allow", "2026-11-27T10:00:06Z");
    let answer = ingest(
        json!({"events": [nul, long, fine]})
            .to_string()
            .into_bytes(),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["accepted"], 1, "{}", answer.text);
    assert_eq!(
        answer.json["rejected"].as_array().unwrap().len(),
        2,
        "{}",
        answer.text
    );

    // Idempotent: the same batch again stores nothing twice.
    let again = ingest(
        json!({"events": [good, also_good]})
            .to_string()
            .into_bytes(),
        None,
    );
    assert_eq!(again.json["accepted"], 2);
    // A retried batch that also carries a new event: the new one is stored and counted once.
    let newer = event("s1", "allow", "2026-11-27T10:00:07Z");
    let mixed = ingest(
        json!({"events": [good, newer]}).to_string().into_bytes(),
        None,
    );
    assert_eq!(mixed.json["accepted"], 2, "{}", mixed.text);
    let actions = relay.call("GET", "/v1/actions", Some(&tenant.api_key), None);
    assert_eq!(
        actions.json["items"].as_array().unwrap().len(),
        4,
        "{}",
        actions.text
    );
    // The listing gives back the envelope as sent (timestamps in milliseconds), stamped with
    // the device's tenant and id.
    let mut sent = event("s3", "allow", "2026-11-27T11:00:00.250Z");
    sent["labels"] = json!({"cwd": "/home/dev/x"});
    sent["agent_pid"] = json!(4242);
    // Left out on purpose: an optional field the device did not send is not listed as null.
    sent.as_object_mut().unwrap().remove("target");
    let answer = ingest(json!({"events": [sent]}).to_string().into_bytes(), None);
    assert_eq!(answer.json["accepted"], 1, "{}", answer.text);
    let listed = relay.call("GET", "/v1/actions?limit=1", Some(&tenant.api_key), None);
    let item = &listed.json["items"][0];
    let mut expected = sent.clone();
    expected["tenant_id"] = json!(tenant.tenant_id);
    expected["device_id"] = json!(device.device_id);
    assert_eq!(item, &expected, "{}", listed.text);
    let metrics = relay.call("GET", "/metrics", None, None);
    assert!(
        metrics
            .text
            .contains("quint_relay_ingest_replayed_batches_total 2"),
        "both retries counted: {}",
        metrics.text
    );
    let alerts = relay.call("GET", "/v1/alerts", Some(&tenant.api_key), None);
    assert_eq!(
        alerts.json["items"].as_array().unwrap().len(),
        1,
        "one deny, one alert"
    );
    let sessions = relay.call("GET", "/v1/sessions?limit=10", Some(&tenant.api_key), None);
    let s1 = sessions.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == "s1")
        .expect("session s1");
    assert_eq!(s1["actions"], 3);
    assert_eq!(s1["denied"], 1);
}

#[test]
fn expired_used_up_and_revoked_credentials_are_refused() {
    let relay = Relay::start();
    let tenant = relay.create_tenant("Acme");
    let create = |body: Value| {
        let answer = relay.call(
            "POST",
            "/v1/deploy-tokens",
            Some(&tenant.api_key),
            Some(&body),
        );
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.json
    };
    let enroll =
        |token: &str| relay.call("POST", "/v1/enroll", None, Some(&enroll_body(token, "h")));

    let once = create(json!({"max_uses": 1}));
    assert_eq!(enroll(once["token"].as_str().unwrap()).status, 201);
    let used = enroll(once["token"].as_str().unwrap());
    assert_eq!(used.status, 401);
    assert!(
        message(&used).contains("used as many times"),
        "{}",
        used.text
    );

    // Redemptions are counted under a row lock: racing enrollments get one device per use.
    let racing = create(json!({"max_uses": 1}));
    let token = racing["token"].as_str().unwrap().to_string();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| enroll(&token).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 401),
        "{statuses:?}"
    );

    let expiring = create(json!({"expires_in_hours": 1}));
    relay
        .owner()
        .execute(
            "UPDATE deploy_tokens SET expires_at = now() - interval '1 second' WHERE token_id::text = $1",
            &[&expiring["id"].as_str().unwrap()],
        )
        .unwrap();
    let expired = enroll(expiring["token"].as_str().unwrap());
    assert_eq!(expired.status, 401);
    assert!(message(&expired).contains("expired"), "{}", expired.text);

    let revoking = create(json!({}));
    let path = format!("/v1/deploy-tokens/{}", revoking["id"].as_str().unwrap());
    assert_eq!(
        relay
            .call("DELETE", &path, Some(&tenant.api_key), None)
            .status,
        204
    );
    let revoked = enroll(revoking["token"].as_str().unwrap());
    assert_eq!(revoked.status, 401);
    assert!(message(&revoked).contains("revoked"), "{}", revoked.text);

    let typo = enroll("qdt_not-a-real-token");
    assert_eq!(typo.status, 401);
    let bad_request = relay.call(
        "POST",
        "/v1/enroll",
        None,
        Some(&json!({"deploy_token": 5})),
    );
    assert_eq!(bad_request.status, 400);

    // A revoked device is refused at once.
    let device = relay.enroll(&tenant, "laptop");
    let ok = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device.token),
        Some(&json!({"events": []})),
    );
    assert_eq!(ok.status, 200);
    let path = format!("/v1/devices/{}", device.device_id);
    assert_eq!(
        relay
            .call("DELETE", &path, Some(&tenant.api_key), None)
            .status,
        204
    );
    let refused = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device.token),
        Some(&json!({"events": []})),
    );
    assert_eq!(refused.status, 401);
    assert!(message(&refused).contains("revoked"), "{}", refused.text);

    // The API key of a deleted tenant no longer works.
    relay
        .owner()
        .execute(
            "UPDATE tenants SET deleted_at = now() WHERE tenant_id::text = $1",
            &[&tenant.tenant_id],
        )
        .unwrap();
    let gone = relay.call("GET", "/v1/devices", Some(&tenant.api_key), None);
    assert_eq!(gone.status, 401);
    assert!(message(&gone).contains("API key"), "{}", gone.text);
    let missing = relay.call("GET", "/v1/devices", None, None);
    assert_eq!(missing.status, 401);
    assert!(message(&missing).contains("Authorization"));
}

#[test]
fn events_across_a_month_boundary_and_in_an_unpartitioned_month_are_kept() {
    let relay = Relay::start();
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    // The boundary between this month and the next (both partitioned at start), and a month
    // five years on, which has no partition: the default one takes it.
    use chrono::{Datelike, TimeZone, Utc};
    let now = Utc::now();
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next_month = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap();
    let last_instant = next_month - chrono::Duration::milliseconds(1);
    let far = Utc
        .with_ymd_and_hms(now.year() + 5, 6, 15, 12, 0, 0)
        .unwrap();
    let stamp = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let events = [
        event("s", "allow", &stamp(last_instant)),
        event("s", "allow", &stamp(next_month)),
        event("s", "allow", &stamp(far)),
    ];
    let partition = |t: chrono::DateTime<Utc>| format!("actions_y{}m{:02}", t.year(), t.month());
    let answer = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device.token),
        Some(&json!({"events": events})),
    );
    assert_eq!(answer.json["accepted"], 3, "{}", answer.text);
    let mut owner = relay.owner();
    let placed: Vec<(String, String)> = owner
        .query(
            "SELECT event_id::text, tableoid::regclass::text FROM actions ORDER BY ts",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        placed.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
        [
            partition(last_instant),
            partition(next_month),
            "actions_default".to_string()
        ]
    );
    let listed = relay.call("GET", "/v1/actions?limit=2", Some(&tenant.api_key), None);
    assert_eq!(listed.json["items"][0]["event_id"], events[2]["event_id"]);
    let cursor = listed.json["next_cursor"].as_str().expect("a next page");
    let rest = relay.call(
        "GET",
        &format!("/v1/actions?limit=2&cursor={cursor}"),
        Some(&tenant.api_key),
        None,
    );
    assert_eq!(rest.json["items"].as_array().unwrap().len(), 1);
    assert!(rest.json["next_cursor"].is_null());
    let since = relay.call(
        "GET",
        &format!(
            "/v1/actions?since={}&until={}",
            stamp(next_month),
            stamp(next_month + chrono::Duration::days(1))
        ),
        Some(&tenant.api_key),
        None,
    );
    assert_eq!(
        since.json["items"].as_array().unwrap().len(),
        1,
        "{}",
        since.text
    );
}
