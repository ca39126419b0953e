//! The SNS bus end to end against moto_server: `serve --bus sns` publishes, `sink` writes to
//! Postgres under row level security. Exactly once per event, per-session order, retries
//! stored once, crashes and two sinks losing and duplicating nothing, an unreachable SNS
//! answered 503, the alert-only queue, unparseable messages left for the dead-letter queue, and
//! events sent to an idle sink written at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quint_e2e::bus::{Moto, Resources, Sink};
use quint_e2e::relay::{event, Device, Relay};
use quint_e2e::wait_until;
use serde_json::{json, Value};

static NAMES: AtomicUsize = AtomicUsize::new(0);

struct Bus {
    moto: Moto,
    resources: Resources,
    relay: Relay,
}

/// Fresh topic and queues, and a relay publishing to them; `None` without moto_server.
fn bus() -> Option<Bus> {
    let moto = Moto::from_env()?;
    let name = format!(
        "q{}n{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    );
    let resources = moto.bootstrap(&name);
    let mut relay = Relay::prepare();
    relay.serve_with_env(
        &["--bus", "sns", "--sns-topic-arn", &resources.topic_arn],
        &moto.env(),
    );
    Some(Bus {
        moto,
        resources,
        relay,
    })
}

/// `sessions` sessions of `per_session` events each, interleaved as a device would send them;
/// every 50th is a deny and every 75th an alert. (Few: moto's queues slow down as they fill.)
fn session_events(prefix: &str, sessions: usize, per_session: usize) -> Vec<Value> {
    let start = chrono::Utc::now() - chrono::Duration::minutes(30);
    let mut events = Vec::new();
    for _ in 0..per_session {
        for s in 0..sessions {
            let n = events.len();
            let decision = if n % 50 == 0 {
                "deny"
            } else if n % 75 == 0 {
                "alert"
            } else {
                "allow"
            };
            let at = start + chrono::Duration::milliseconds(n as i64);
            events.push(event(
                &format!("{prefix}-{s}"),
                decision,
                &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ));
        }
    }
    events
}

/// Uploads in batches of 500 as quintd does, resending a batch the relay answered 503 (moto
/// can be slow enough on a loaded machine for a publish attempt to time out).
fn ingest(relay: &Relay, device: &Device, events: &[Value]) {
    for batch in events.chunks(500) {
        let mut answer = relay.call(
            "POST",
            "/v1/ingest",
            Some(&device.token),
            Some(&json!({ "events": batch })),
        );
        for _ in 0..5 {
            if answer.status != 503 {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            answer = relay.call(
                "POST",
                "/v1/ingest",
                Some(&device.token),
                Some(&json!({ "events": batch })),
            );
        }
        assert_eq!(answer.status, 200, "{}\n{}", answer.text, relay.log_tail());
        assert_eq!(answer.json["accepted"], batch.len(), "{}", answer.text);
    }
}

/// (rows, distinct event ids, sum of the sessions' action counts).
fn stored(relay: &Relay) -> (i64, i64, i64) {
    let row = relay
        .owner()
        .query_one(
            "SELECT (SELECT count(*) FROM actions), (SELECT count(DISTINCT event_id) FROM actions),
                    (SELECT coalesce(sum(actions), 0)::int8 FROM sessions)",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn wait_stored(bus: &Bus, expected: i64, sinks: &[&Sink]) {
    let done = wait_until(Duration::from_secs(300), || {
        stored(&bus.relay).0 >= expected && bus.moto.depth(&bus.resources.sink_queue_url) == (0, 0)
    });
    assert!(
        done,
        "stored {:?} of {expected}; queue {:?}; sink log:\n{}",
        stored(&bus.relay),
        bus.moto.depth(&bus.resources.sink_queue_url),
        sinks
            .iter()
            .map(|s| s
                .log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n"))
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    assert_eq!(stored(&bus.relay), (expected, expected, expected));
}

#[test]
fn events_reach_postgres_through_the_sink_once_each_in_session_order() {
    let Some(bus) = bus() else { return };
    let relay = &bus.relay;
    let acme = relay.create_tenant("Acme");
    let globex = relay.create_tenant("Globex");
    let acme_laptop = relay.enroll(&acme, "acme-laptop");
    let globex_laptop = relay.enroll(&globex, "globex-laptop");
    // 5,000 events over 50 sessions: 25 sessions on each tenant's device.
    let acme_events = session_events("acme", 25, 100);
    let globex_events = session_events("globex", 25, 100);
    let sink = Sink::start(relay, &bus.moto, &bus.resources.sink_queue_url, &[]);
    ingest(relay, &acme_laptop, &acme_events);
    ingest(relay, &globex_laptop, &globex_events);
    wait_stored(&bus, 5000, &[&sink]);

    // Under the right tenants and devices.
    let rows = relay
        .owner()
        .query(
            "SELECT tenant_id::text, device_id::text, count(*) FROM actions GROUP BY 1, 2 ORDER BY 3",
            &[],
        )
        .unwrap();
    let mut owners: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    owners.sort();
    let mut expected = vec![
        (acme.tenant_id.clone(), acme_laptop.device_id.clone(), 2500),
        (
            globex.tenant_id.clone(),
            globex_laptop.device_id.clone(),
            2500,
        ),
    ];
    expected.sort();
    assert_eq!(owners, expected);
    // The tenant API sees its own only.
    let listed = relay.call("GET", "/v1/sessions?limit=100", Some(&acme.api_key), None);
    let sessions = listed.json["items"].as_array().unwrap();
    assert_eq!(sessions.len(), 25, "{}", listed.text);
    assert!(sessions.iter().all(|s| s["actions"] == 100));

    // Each session's events were written in the order they were published.
    let written = sink.written();
    assert_eq!(written.len(), 5000, "the sink's log names every write");
    let position: HashMap<&str, usize> = written
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut by_session: HashMap<&str, Vec<usize>> = HashMap::new();
    for e in acme_events.iter().chain(&globex_events) {
        by_session
            .entry(e["session_id"].as_str().unwrap())
            .or_default()
            .push(position[e["event_id"].as_str().unwrap()]);
    }
    for (session, positions) in &by_session {
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "session {session} was written out of order"
        );
    }

    // The alert-only queue got the denials and alerts, and nothing else.
    let alerting = acme_events
        .iter()
        .chain(&globex_events)
        .filter(|e| e["decision"] != "allow")
        .count();
    let alerts = bus.moto.drain(&bus.resources.alert_queue_url);
    assert_eq!(alerts.len(), alerting);
    assert!(alerts.iter().all(|m| {
        let decision = m["MessageAttributes"]["decision"]["StringValue"].as_str();
        let body: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
        matches!(decision, Some("deny" | "alert")) && body["decision"] == decision.unwrap()
    }));

    // A device retrying a batch (its answer lost) is stored once.
    ingest(relay, &acme_laptop, &acme_events[..500]);
    wait_stored(&bus, 5000, &[&sink]);

    let metrics = ureq::get(&sink.metrics_url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("quint_sink_messages_total{outcome=\"written\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("quint_sink_lag_seconds"), "{metrics}");
}

#[test]
fn a_sink_killed_mid_batch_and_two_sinks_lose_and_duplicate_nothing() {
    let Some(bus) = bus() else { return };
    let relay = &bus.relay;
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    // Hold the sink inside its transaction: its sessions update waits on this lock.
    let mut owner = relay.owner();
    let mut blocker = owner.transaction().unwrap();
    blocker
        .batch_execute("LOCK TABLE sessions IN EXCLUSIVE MODE")
        .unwrap();
    let mut first = Sink::start(
        relay,
        &bus.moto,
        &bus.resources.sink_queue_url,
        &["--visibility-timeout", "5"],
    );
    ingest(relay, &device, &session_events("crash", 5, 100));
    let waiting = wait_until(Duration::from_secs(30), || {
        relay
            .app()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user
                   AND wait_event_type = 'Lock'",
                &[],
            )
            .map(|r| r.get::<_, i64>(0) > 0)
            .unwrap_or(false)
    });
    assert!(waiting, "the sink never reached its write: {}", first.log());
    first.kill();
    blocker.rollback().unwrap();
    assert_eq!(stored(relay).0, 0, "nothing of the killed write was kept");

    // Two sinks on the queue: the killed one's messages come back, and more arrive.
    let second = Sink::start(
        relay,
        &bus.moto,
        &bus.resources.sink_queue_url,
        &["--visibility-timeout", "5"],
    );
    let mut third = Sink::start(
        relay,
        &bus.moto,
        &bus.resources.sink_queue_url,
        &["--visibility-timeout", "5"],
    );
    ingest(relay, &device, &session_events("pair", 15, 100));
    wait_stored(&bus, 2000, &[&second, &third]);
    // Between them the sinks wrote every event (a message whose visibility ran out while moto
    // was slow may be written by both: the second write skips it, as the counts above show).
    let mut ids = second.written();
    ids.extend(third.written());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "the killed sink's 500 and the 1,500 after");
    // SIGTERM stops a sink cleanly.
    assert!(third.terminate().success(), "{}", third.log());
}

#[test]
fn an_unreachable_sns_answers_503_with_retry_after_and_acknowledges_nothing() {
    // Nothing listens on the endpoint.
    let closed = quint_e2e::relay::free_port();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut relay = Relay::prepare();
    relay.serve_with_env(
        &[
            "--bus",
            "sns",
            "--sns-topic-arn",
            "arn:aws:sns:us-east-1:123456789012:quint-events.fifo",
        ],
        &env,
    );
    let tenant = relay.create_tenant("Acme");
    let device = relay.enroll(&tenant, "laptop");
    let answer = relay.call(
        "POST",
        "/v1/ingest",
        Some(&device.token),
        Some(&json!({ "events": session_events("down", 2, 5) })),
    );
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert_eq!(
        answer.json["error"]["code"], "bus_unavailable",
        "{}",
        answer.text
    );
    assert!(answer.json.get("accepted").is_none());
    assert!(
        relay.log().contains("publishing to SNS failed"),
        "{}",
        relay.log_tail()
    );
}

#[test]
fn an_unparseable_message_is_logged_once_and_left_for_the_dead_letter_queue() {
    let Some(bus) = bus() else { return };
    let sink = Sink::start(
        &bus.relay,
        &bus.moto,
        &bus.resources.sink_queue_url,
        &["--visibility-timeout", "2"],
    );
    let sent = bus.moto.send(
        &bus.resources.sink_queue_url,
        "{\"not\": \"an event\"}",
        "garbage-group",
    );
    // The queue redrives it after 5 receives, 2 s apart.
    let moved = wait_until(Duration::from_secs(60), || {
        bus.moto.depth(&bus.resources.dead_letter_queue_url).0 == 1
    });
    assert!(moved, "{}", sink.log());
    let logged = sink
        .log()
        .lines()
        .filter(|l| l.contains("unparseable message") && l.contains(&sent))
        .count();
    assert_eq!(logged, 1, "{}", sink.log());
    assert_eq!(stored(&bus.relay).0, 0);
}

#[test]
fn events_published_while_the_sink_long_polls_are_written_within_seconds() {
    let Some(bus) = bus() else { return };
    let relay = &bus.relay;
    let acme = relay.create_tenant("Acme");
    let laptop = relay.enroll(&acme, "acme-laptop");
    let sink = Sink::start(relay, &bus.moto, &bus.resources.sink_queue_url, &[]);
    // Sent one by one, 6 to 9 s apart, so each lands late in one of the sink's 10 s polls: a
    // receive its client abandoned mid-poll would hide what it took for the whole 60 s
    // visibility timeout.
    let events: Vec<Value> = (0..4)
        .map(|i| {
            event(
                &format!("idle-{i}"),
                "allow",
                &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
        .collect();
    for (gap, e) in [6, 7, 8, 9].into_iter().zip(&events) {
        std::thread::sleep(Duration::from_secs(gap));
        ingest(relay, &laptop, std::slice::from_ref(e));
    }
    let written = wait_until(Duration::from_secs(15), || stored(relay).0 == 4);
    assert!(
        written,
        "stored {:?} of 4 within 15 s; queue {:?}; sink log:\n{}",
        stored(relay),
        bus.moto.depth(&bus.resources.sink_queue_url),
        sink.log()
    );
}
