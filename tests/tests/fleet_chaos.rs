//! No loss, no duplicates, hook to Postgres: 20,000 events are recorded by a private quintd
//! while it is killed with `kill -9` ten times, the relay is down for 30 seconds and the
//! relay's Postgres (a server of the test's own) is restarted. Every event a quintd answered
//! ends up in Postgres exactly once.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quint_e2e::private_pg::PrivatePostgres;
use quint_e2e::relay::{event, Relay};
use quint_e2e::{stdout_json, wait_until, QuintEnv};
use serde_json::{json, Value};

const EVENTS: usize = 20_000;
const PER_REQUEST: usize = 50;
const KILLS: usize = 10;

/// One batch to quintd; `true` once it answered for every event (each then is on disk).
fn record(socket: &Path, events: &[Value]) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = json!({"op": "evaluate_batch", "events": events}).to_string();
    line.push('\n');
    if stream.write_all(line.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    if BufReader::new(stream).read_line(&mut reply).is_err() {
        return false;
    }
    serde_json::from_str::<Value>(&reply)
        .ok()
        .and_then(|r| r["result"].as_array().map(|a| a.len()))
        == Some(events.len())
}

/// A pause of 1 to 3.5 s that differs from run to run.
fn random_pause() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(1000 + u64::from(nanos % 2500))
}

#[test]
fn twenty_thousand_events_survive_kill_9_a_relay_outage_and_a_postgres_restart() {
    let postgres = PrivatePostgres::start();
    let mut relay = Relay::prepare_on(&postgres.url());
    relay.serve(&[]);
    let acme = relay.create_tenant("Acme");
    let token = relay.deploy_token(&acme);
    let env = QuintEnv::new();
    let mut daemon = env.start_daemon();
    let device_id = env.enroll(&relay.base_url, &token)["device_id"]
        .as_str()
        .unwrap()
        .to_string();

    let events: Vec<Value> = (0..EVENTS)
        .map(|n| {
            let mut e = event(
                &format!("chaos-{}", n % 20),
                "allow",
                &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            );
            e["arguments"] = json!({"command": format!("echo {n}")});
            e["target"] = json!(format!("echo {n}"));
            e
        })
        .collect();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();

    // The agent side: each batch is sent until a quintd answers it, as a hook would retry.
    let answered = Arc::new(AtomicUsize::new(0));
    let sender = std::thread::spawn({
        let socket = env.socket.clone();
        let answered = answered.clone();
        move || {
            for batch in events.chunks(PER_REQUEST) {
                while !record(&socket, batch) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                answered.fetch_add(batch.len(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(120));
            }
        }
    });

    let started = Instant::now();
    let kill = |daemon: quint_e2e::Daemon| {
        std::thread::sleep(random_pause());
        daemon.kill9();
        env.start_daemon()
    };
    for _ in 0..KILLS / 2 {
        daemon = kill(daemon);
    }
    relay.stop();
    std::thread::sleep(Duration::from_secs(30));
    let waiting = stdout_json(&env.ctl(&["status", "--json"]))["daemon"]["relay"].clone();
    assert!(
        waiting["pending"].as_u64() > Some(0) && waiting["reachable"] == false,
        "events wait while the relay is down: {waiting}"
    );
    relay.resume();
    postgres.restart();
    for _ in 0..KILLS / 2 {
        daemon = kill(daemon);
    }
    sender.join().unwrap();
    assert_eq!(answered.load(Ordering::SeqCst), EVENTS);
    eprintln!(
        "all {EVENTS} events answered after {:?}, through {KILLS} kills",
        started.elapsed()
    );

    let count = || -> (i64, i64) {
        postgres::Client::connect(&relay.owner_url, postgres::NoTls)
            .ok()
            .and_then(|mut db| {
                db.query_one(
                    "SELECT count(*), count(DISTINCT event_id) FROM actions WHERE device_id = $1::text::uuid",
                    &[&device_id],
                )
                .ok()
            })
            .map_or((-1, -1), |row| (row.get(0), row.get(1)))
    };
    let delivered = wait_until(Duration::from_secs(300), || count().0 >= EVENTS as i64);
    let status = stdout_json(&env.ctl(&["status", "--json"]));
    assert!(
        delivered,
        "{:?} of {EVENTS} in Postgres; relay link: {}\n{}",
        count(),
        status["daemon"]["relay"],
        relay.log_tail()
    );
    // Late duplicates would show as more rows.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(), (EVENTS as i64, EVENTS as i64), "exactly once each");
    let mut db = postgres::Client::connect(&relay.owner_url, postgres::NoTls).unwrap();
    let matching: i64 = db
        .query_one(
            "SELECT count(*) FROM actions WHERE event_id::text = ANY($1)",
            &[&ids],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        matching, EVENTS as i64,
        "the very events that were answered"
    );
    assert_eq!(status["daemon"]["relay"]["pending"], 0);
    drop(daemon);
}
