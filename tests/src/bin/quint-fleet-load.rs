//! Load generator for the whole fleet path, hook to Postgres. Simulated hooks send one event per
//! call, as agents do, either to a quintd enrolled with a relay (`--socket`: quintd records the
//! event, answers, and its forwarder uploads in batches) or, the obvious alternative, straight
//! to the relay (`--direct`: each hook call is an HTTP upload of its one event, answered when
//! Postgres has it). Reports:
//! - throughput: `--hooks` concurrent hooks send `--events` events; events/s from the first send
//!   until the tenant API counts them all;
//! - latency: one hook sends `--latency-events` events at `--latency-rate`/s; per event, the
//!   hook's answer time and the time from answer until the row is listed by the tenant API
//!   (`GET /v1/actions`, polled every 5 ms).
//!
//! quint-fleet-load --relay URL --api-key qk_… (--socket PATH | --direct --device-token qdv_…)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quint_e2e::percentile;
use serde_json::{json, Value};

#[derive(clap::Parser)]
struct Args {
    #[arg(long)]
    relay: String,
    #[arg(long)]
    api_key: String,
    /// Through quintd: the socket of a quintd enrolled with the relay.
    #[arg(long, required_unless_present = "direct", conflicts_with = "direct")]
    socket: Option<String>,
    /// Straight to the relay: each hook call uploads its event with `--device-token`.
    #[arg(long, requires = "device_token")]
    direct: bool,
    #[arg(long)]
    device_token: Option<String>,
    /// Concurrent hooks in the throughput run.
    #[arg(long, default_value_t = 8)]
    hooks: usize,
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events of the paced latency run, and their rate per second.
    #[arg(long, default_value_t = 400)]
    latency_events: usize,
    #[arg(long, default_value_t = 20.0)]
    latency_rate: f64,
    /// Printed before the results.
    #[arg(long, default_value = "")]
    label: String,
}

/// Uploads and listings wait at most a minute.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

fn event(session: &str, n: usize) -> Value {
    let mut e = quint_e2e::relay::event(
        session,
        "allow",
        &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    e["arguments"] = json!({"command": format!("cargo test --package p{n}")});
    e["target"] = json!(format!("cargo test --package p{n}"));
    e
}

/// One hook call; returns when the event is answered (recorded by quintd, or stored by the relay).
enum Hook {
    Quintd(String),
    Direct(ureq::Agent, String, String),
}

impl Hook {
    fn new(args: &Args) -> Hook {
        match (&args.socket, &args.device_token) {
            (Some(socket), _) => Hook::Quintd(socket.clone()),
            (None, Some(token)) => Hook::Direct(
                quint_e2e::http_agent(HTTP_TIMEOUT),
                format!("{}/v1/ingest", args.relay),
                token.clone(),
            ),
            _ => unreachable!("clap requires --socket or --direct --device-token"),
        }
    }

    fn call(&self, event: &Value) {
        match self {
            Hook::Quintd(socket) => {
                let mut stream = UnixStream::connect(socket).expect("quintd's socket");
                let mut line = json!({"op": "evaluate", "event": event}).to_string();
                line.push('\n');
                stream.write_all(line.as_bytes()).unwrap();
                let mut reply = String::new();
                BufReader::new(stream).read_line(&mut reply).unwrap();
                assert!(reply.contains("\"ok\":true"), "{reply}");
            }
            Hook::Direct(agent, url, token) => {
                let answer = agent
                    .post(url)
                    .header("Authorization", &format!("Bearer {token}"))
                    .header("Content-Type", "application/json")
                    .send(json!({"events": [event]}).to_string())
                    .unwrap();
                assert_eq!(answer.status().as_u16(), 200);
            }
        }
    }
}

fn get(agent: &ureq::Agent, url: &str, key: &str) -> Value {
    let mut answer = agent
        .get(url)
        .header("Authorization", &format!("Bearer {key}"))
        .call()
        .unwrap();
    answer.body_mut().read_json().unwrap_or(Value::Null)
}

/// Actions the tenant API counts for sessions whose id starts with `prefix`.
fn counted(agent: &ureq::Agent, args: &Args, prefix: &str) -> u64 {
    let sessions = get(
        agent,
        &format!("{}/v1/sessions?limit=100", args.relay),
        &args.api_key,
    );
    sessions["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["session_id"]
                .as_str()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .map(|s| s["actions"].as_u64().unwrap_or(0))
        .sum()
}

fn millis(values: &mut [f64]) -> String {
    values.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(values, 0.5),
        percentile(values, 0.99),
        values.last().copied().unwrap_or(0.0)
    )
}

fn main() {
    let args = Arc::new(<Args as clap::Parser>::parse());
    let mode = if args.socket.is_some() {
        "quintd"
    } else {
        "direct"
    };
    let run = format!("{mode}-{}", std::process::id());

    // Throughput: concurrent hooks, then wait until the tenant API counts everything.
    let http = quint_e2e::http_agent(HTTP_TIMEOUT);
    let started = Instant::now();
    let answers = Arc::new(Mutex::new(Vec::with_capacity(args.events)));
    let threads: Vec<_> = (0..args.hooks)
        .map(|h| {
            let (args, answers, session) = (args.clone(), answers.clone(), format!("{run}-t{h}"));
            std::thread::spawn(move || {
                let hook = Hook::new(&args);
                let mut mine = Vec::new();
                for n in (h..args.events).step_by(args.hooks) {
                    let e = event(&session, n);
                    let sent = Instant::now();
                    hook.call(&e);
                    mine.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                answers.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let answered_after = started.elapsed();
    while counted(&http, &args, &format!("{run}-t")) < args.events as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not all events arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stored_after = started.elapsed();
    let throughput = args.events as f64 / stored_after.as_secs_f64();
    let mut answers = answers.lock().unwrap().clone();

    // Latency: a paced hook, and a poller that notes when each event is listed.
    let session = format!("{run}-latency");
    let seen: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let poller = std::thread::spawn({
        let (args, seen, done, session) =
            (args.clone(), seen.clone(), done.clone(), session.clone());
        move || {
            let http = quint_e2e::http_agent(HTTP_TIMEOUT);
            let url = format!("{}/v1/actions?session={session}&limit=100", args.relay);
            while !done.load(Ordering::SeqCst) {
                let listed = get(&http, &url, &args.api_key);
                let now = Instant::now();
                let mut seen = seen.lock().unwrap();
                for item in listed["items"].as_array().into_iter().flatten() {
                    if let Some(id) = item["event_id"].as_str() {
                        seen.entry(id.to_string()).or_insert(now);
                    }
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let hook = Hook::new(&args);
    let interval = Duration::from_secs_f64(1.0 / args.latency_rate);
    let mut answered_at = Vec::new();
    let mut latency_answers = Vec::new();
    for n in 0..args.latency_events {
        let due = Instant::now() + interval;
        let e = event(&session, n);
        let sent = Instant::now();
        hook.call(&e);
        let at = Instant::now();
        latency_answers.push((at - sent).as_secs_f64() * 1000.0);
        answered_at.push((e["event_id"].as_str().unwrap().to_string(), at));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < args.latency_events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    let seen = seen.lock().unwrap();
    let mut visible: Vec<f64> = answered_at
        .iter()
        .filter_map(|(id, at)| {
            seen.get(id)
                .map(|s| s.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    assert_eq!(
        visible.len(),
        args.latency_events,
        "every latency event was listed"
    );

    println!(
        "{} {mode}: {} events from {} hooks stored in {:.1} s (all answered after {:.1} s): {:.0} events/s",
        args.label,
        args.events,
        args.hooks,
        stored_after.as_secs_f64(),
        answered_after.as_secs_f64(),
        throughput
    );
    println!("  hook answer under load: {}", millis(&mut answers));
    println!(
        "  paced at {}/s: hook answer {}; answer → listed by the tenant API {}",
        args.latency_rate,
        millis(&mut latency_answers),
        millis(&mut visible)
    );
}
