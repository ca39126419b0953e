//! Load generator for `quint-relay serve`: N simulated devices (default 32) each upload
//! 500-event batches as fast as the relay answers, for a fixed time; reports events/s and batch
//! latency. `--row-by-row` instead makes the relay's writes for the same events one statement
//! at a time straight into Postgres (as the service's role, tenant set per transaction): the
//! obvious alternative to set-based statements per batch.
//!
//! quint-relay-load --relay http://127.0.0.1:8080 --api-key qk_… [--devices 32] [--seconds 20]
//!                  [--rate EVENTS_PER_S]   (open loop: each device sends on a fixed schedule)
//! quint-relay-load --row-by-row --database-url postgres://app@…/db --api-key qk_… --relay …

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Args {
    relay: String,
    api_key: String,
    devices: usize,
    seconds: u64,
    batch: usize,
    row_by_row: Option<String>,
    /// Total events per second to offer (open loop); 0 = as fast as answered (closed loop).
    rate: f64,
}

fn parse_args() -> Args {
    let mut args = Args {
        relay: "http://127.0.0.1:8080".into(),
        api_key: String::new(),
        devices: 32,
        seconds: 20,
        batch: 500,
        row_by_row: None,
        rate: 0.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--relay" => args.relay = value(),
            "--api-key" => args.api_key = value(),
            "--devices" => args.devices = value().parse().expect("--devices N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--batch" => args.batch = value().parse().expect("--batch N"),
            "--row-by-row" => {}
            "--rate" => args.rate = value().parse().expect("--rate EVENTS_PER_SECOND"),
            "--database-url" => args.row_by_row = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.api_key.is_empty(), "--api-key is required");
    args
}

/// Uploads and listings wait at most a minute.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

fn post(agent: &ureq::Agent, url: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut request = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = agent
        .run(request.body(body.to_vec()).unwrap())
        .expect("relay reachable");
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A realistic event: a shaped, redacted tool call as quintd uploads it (~700 bytes).
fn event(device: usize, n: u64) -> Value {
    let decision = if n.is_multiple_of(20) {
        "deny"
    } else {
        "allow"
    };
    let platform = ["claude-code", "cursor", "codex", "gemini-cli"][(n % 4) as usize];
    json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7().to_string(),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "source": "hook",
        "platform": platform,
        "action_type": "tool.call",
        "session_id": format!("device{device}-session{}", n / 200),
        "tool_name": "Bash",
        "arguments": {"command": format!("cd /home/dev/project && cargo test -p crate-{} -- --nocapture", n % 17), "description": "Run the tests"},
        "target": format!("cargo test -p crate-{}", n % 17),
        "decision": decision,
        "rule_ids": if decision == "deny" { vec!["download-exec.curl-pipe-shell"] } else { vec![] },
        "risk_score": if decision == "deny" { 80 } else { 5 },
        "labels": {"cwd": "/home/dev/project", "user": "dev", "peer_uid": "1000", "agent_pid": "4242"},
    })
}

fn enroll_devices(args: &Args) -> Vec<String> {
    let agent = quint_e2e::http_agent(HTTP_TIMEOUT);
    let (status, token) = post(
        &agent,
        &format!("{}/v1/deploy-tokens", args.relay),
        Some(&args.api_key),
        json!({"name": "load"}).to_string().as_bytes(),
    );
    assert_eq!(status, 201, "creating a deploy token: {token}");
    let deploy = token["token"].as_str().unwrap().to_string();
    (0..args.devices)
        .map(|n| {
            let body = json!({"deploy_token": deploy, "daemon_version": "load",
                "host": {"hostname": format!("load-{n}"), "os": "linux", "arch": "x86_64", "machine_id": format!("load-{n}")}});
            let (status, enrolled) = post(
                &agent,
                &format!("{}/v1/enroll", args.relay),
                None,
                body.to_string().as_bytes(),
            );
            assert_eq!(status, 201, "enrolling: {enrolled}");
            enrolled["device_token"].as_str().unwrap().to_string()
        })
        .collect()
}

use quint_e2e::percentile;

fn main() {
    let args = parse_args();
    let tokens = enroll_devices(&args);
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let started = Instant::now();
    let mode = if args.row_by_row.is_some() {
        "row-by-row INSERTs"
    } else {
        "POST /v1/ingest"
    };
    let threads: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(device, token)| {
            let (stop, events, latencies) = (stop.clone(), events.clone(), latencies.clone());
            let relay = args.relay.clone();
            let database = args.row_by_row.clone();
            let batch = args.batch;
            let (rate, devices) = (args.rate, args.devices);
            std::thread::spawn(move || {
                let agent = quint_e2e::http_agent(HTTP_TIMEOUT);
                let mut db = database.map(|url| {
                    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    // The device's tenant, found the way the relay does.
                    let hash = sha256(&token);
                    let row = client
                        .query_one(
                            "SELECT tenant_id, device_id FROM quint_auth_device($1)",
                            &[&hash],
                        )
                        .unwrap();
                    let ids: (uuid::Uuid, uuid::Uuid) = (row.get(0), row.get(1));
                    (client, ids)
                });
                let mut n = 0u64;
                // One batch rendered once; each send writes fresh event ids into it, so the
                // generator's own cost stays small next to the relay's.
                let template: Vec<Value> = (0..batch).map(|i| event(device, i as u64)).collect();
                let mut body = json!({"events": template}).to_string().into_bytes();
                let id_offsets: Vec<usize> = template_offsets(&body, &template);
                let interval = (rate > 0.0)
                    .then(|| Duration::from_secs_f64(devices as f64 * batch as f64 / rate));
                // Devices are spread evenly over one interval, as a fleet's upload times are:
                // all 32 in phase would arrive as one burst per interval.
                let mut next_send = Instant::now()
                    + interval.map_or(Duration::ZERO, |i| i * device as u32 / devices as u32);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(interval) = interval {
                        let now = Instant::now();
                        if next_send > now {
                            std::thread::sleep(next_send - now);
                        }
                        next_send += interval;
                    }
                    let mut batch_events = Vec::new();
                    for &at in &id_offsets {
                        n += 1;
                        let id = format!(
                            "{:08x}-{:04x}-7000-8000-{:012x}",
                            device,
                            (n >> 48) & 0xffff,
                            n & 0xffff_ffff_ffff
                        );
                        body[at..at + 36].copy_from_slice(id.as_bytes());
                    }
                    if db.is_some() {
                        let parsed: Value = serde_json::from_slice(&body).unwrap();
                        batch_events = parsed["events"].as_array().unwrap().clone();
                    }
                    let at = Instant::now();
                    match db.as_mut() {
                        None => {
                            let (status, answer) =
                                post(&agent, &format!("{relay}/v1/ingest"), Some(&token), &body);
                            assert_eq!(status, 200, "{answer}");
                            assert_eq!(answer["accepted"], batch as u64, "{answer}");
                        }
                        Some((client, (tenant, device_id))) => {
                            insert_row_by_row(client, *tenant, *device_id, &batch_events)
                        }
                    }
                    latencies
                        .lock()
                        .unwrap()
                        .push(at.elapsed().as_secs_f64() * 1e3);
                    events.fetch_add(batch as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Warm-up is included in neither number: measure the last `seconds` after 2 s.
    std::thread::sleep(Duration::from_secs(2));
    let base_events = events.load(Ordering::Relaxed);
    latencies.lock().unwrap().clear();
    let measure = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let counted = events.load(Ordering::Relaxed) - base_events;
    let elapsed = measure.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut sorted = latencies.lock().unwrap().clone();
    for thread in threads {
        thread.join().unwrap();
    }
    sorted.sort_by(f64::total_cmp);
    let result = json!({
        "mode": mode,
        "devices": args.devices,
        "batch": args.batch,
        "offered_rate": args.rate,
        "seconds": elapsed,
        "events": counted,
        "events_per_s": counted as f64 / elapsed,
        "batches": sorted.len(),
        "batch_ms_p50": percentile(&sorted, 0.5),
        "batch_ms_p99": percentile(&sorted, 0.99),
        "total_runtime_s": started.elapsed().as_secs_f64(),
    });
    println!("{result}");
}

/// Byte offsets of each event's id in the rendered batch.
fn template_offsets(body: &[u8], events: &[Value]) -> Vec<usize> {
    let text = std::str::from_utf8(body).unwrap();
    events
        .iter()
        .map(|e| {
            text.find(e["event_id"].as_str().unwrap())
                .expect("event id in body")
        })
        .collect()
}

fn sha256(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// What the relay keeps in `actions.payload`: the envelope's fields without a column.
fn stored_payload(e: &Value) -> Value {
    json!({"schema_version": e["schema_version"], "arguments": e["arguments"], "labels": e["labels"]})
}

/// The alternative: the same writes the relay makes, one statement at a time: each event's
/// action (a replay skipped), then its session and agent counted and, for a denial or alert,
/// an alert opened; the batch one transaction.
fn insert_row_by_row(
    client: &mut postgres::Client,
    tenant: uuid::Uuid,
    device: uuid::Uuid,
    events: &[Value],
) {
    let mut tx = client.transaction().unwrap();
    tx.execute(
        "SELECT set_config('app.current_tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .unwrap();
    tx.execute(
        "UPDATE devices SET last_seen_at = now() WHERE device_id = $1",
        &[&device],
    )
    .unwrap();
    let action = tx
        .prepare(
            "INSERT INTO actions (tenant_id, event_id, ts, device_id, session_id, platform, source,
                                  action_type, tool_name, target, decision, rule_ids, risk_score, payload)
             VALUES ($1, $2::text::uuid, $3::text::timestamptz, $4, $5, $6, $7, $8, $9, $10, $11,
                     ARRAY(SELECT jsonb_array_elements_text($12::jsonb)), $13::int2, $14)
             ON CONFLICT DO NOTHING",
        )
        .unwrap();
    let session = tx
        .prepare(
            "INSERT INTO sessions (tenant_id, device_id, session_id, platform, started_at, last_seen_at, actions, denied)
             VALUES ($1, $2, $3, $4, $5::text::timestamptz, $5::text::timestamptz, 1, $6)
             ON CONFLICT (tenant_id, device_id, session_id) DO UPDATE SET
                 started_at = least(sessions.started_at, excluded.started_at),
                 last_seen_at = greatest(sessions.last_seen_at, excluded.last_seen_at),
                 actions = sessions.actions + 1,
                 denied = sessions.denied + excluded.denied",
        )
        .unwrap();
    let agent = tx
        .prepare(
            "INSERT INTO agents (tenant_id, device_id, platform, first_seen_at, last_seen_at, actions)
             VALUES ($1, $2, $3, $4::text::timestamptz, $4::text::timestamptz, 1)
             ON CONFLICT (tenant_id, device_id, platform) DO UPDATE SET
                 first_seen_at = least(agents.first_seen_at, excluded.first_seen_at),
                 last_seen_at = greatest(agents.last_seen_at, excluded.last_seen_at),
                 actions = agents.actions + 1",
        )
        .unwrap();
    let alert = tx
        .prepare(
            "INSERT INTO alerts (tenant_id, alert_id, event_id, ts, device_id, session_id, decision, rule_ids)
             VALUES ($1, $2, $3::text::uuid, $4::text::timestamptz, $5, $6, $7,
                     ARRAY(SELECT jsonb_array_elements_text($8::jsonb)))
             ON CONFLICT (tenant_id, event_id) DO NOTHING",
        )
        .unwrap();
    for e in events {
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        let (id, ts, session_id, platform, decision) = (
            s("event_id"),
            s("timestamp"),
            s("session_id"),
            s("platform"),
            s("decision"),
        );
        let stored = tx
            .execute(
                &action,
                &[
                    &tenant,
                    &id,
                    &ts,
                    &device,
                    &session_id,
                    &platform,
                    &s("source"),
                    &s("action_type"),
                    &s("tool_name"),
                    &s("target"),
                    &decision,
                    &e["rule_ids"],
                    &(e["risk_score"].as_i64().unwrap_or(0) as i16),
                    &stored_payload(e),
                ],
            )
            .unwrap();
        if stored == 0 {
            continue;
        }
        let denied = i64::from(decision == "deny");
        tx.execute(
            &session,
            &[&tenant, &device, &session_id, &platform, &ts, &denied],
        )
        .unwrap();
        tx.execute(&agent, &[&tenant, &device, &platform, &ts])
            .unwrap();
        if decision == "deny" || decision == "alert" {
            tx.execute(
                &alert,
                &[
                    &tenant,
                    &uuid::Uuid::now_v7(),
                    &id,
                    &ts,
                    &device,
                    &session_id,
                    &decision,
                    &e["rule_ids"],
                ],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}
