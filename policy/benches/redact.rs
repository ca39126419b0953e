//! Redaction throughput on a mixed corpus: source code, service logs and agent tool calls as
//! JSON, with a few real-format secrets in it (about one per 4 KB). Criterion reports
//! bytes/second; the target is at least 100 MB/s on one core.
//!
//! cargo bench -p quint-policy --bench redact

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use quint_policy::redact::{checksum, Redactor};
use serde_json::json;

const CODE: &[&str] = &[
    include_str!("../src/rules/compile.rs"),
    include_str!("../src/rules/matchers.rs"),
    include_str!("../src/shape.rs"),
    include_str!("../../daemon/src/server/mod.rs"),
    include_str!("../../docs/architecture.md"),
];

/// A deterministic pseudo-random source so the corpus is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % 62) as usize] as char)
            .collect()
    }
}

fn logs(rng: &mut Lcg, lines: usize) -> String {
    let mut out = String::new();
    for n in 0..lines {
        let ip = format!(
            "10.{}.{}.{}",
            rng.next() % 256,
            rng.next() % 256,
            rng.next() % 256
        );
        let line = match n % 5 {
            0 => format!("2026-11-27T02:{:02}:{:02}.{:03}Z INFO http: GET /v1/users/{} 200 {}ms client={ip} request_id={}\n", n % 60, n % 60, n % 1000, rng.next() % 100000, rng.next() % 900, rng.token(16)),
            1 => format!("2026-11-27T02:{:02}:10Z WARN pool: connection to db-{} slow ({} ms), retrying attempt={}\n", n % 60, rng.next() % 8, rng.next() % 5000, n % 4),
            2 => format!("[{n}] worker-{} finished job {} in {}.{}s (queue depth {})\n", rng.next() % 16, rng.token(12), rng.next() % 60, rng.next() % 1000, rng.next() % 400),
            3 => format!("Nov 27 02:14:{:02} host sshd[{}]: Accepted publickey for deploy from {ip} port {} ssh2\n", n % 60, rng.next() % 65535, rng.next() % 65535),
            _ => format!("   Compiling crate-{} v0.{}.{} (/home/dev/project/crates/c{})\n", rng.token(6).to_lowercase(), n % 20, n % 7, n % 50),
        };
        out.push_str(&line);
    }
    out
}

fn tool_calls(rng: &mut Lcg, calls: usize) -> String {
    let mut out = String::new();
    for n in 0..calls {
        let call = match n % 4 {
            0 => {
                json!({"session_id": rng.token(32), "hook_event_name": "PreToolUse", "tool_name": "Bash",
                "tool_input": {"command": format!("cd /home/dev/project && cargo test -p crate-{} -- --nocapture 2>&1 | tail -{}", n % 9, n % 50), "description": "Run the tests"}})
            }
            1 => {
                json!({"session_id": rng.token(32), "hook_event_name": "PreToolUse", "tool_name": "Read",
                "tool_input": {"file_path": format!("/home/dev/project/src/module_{}/mod.rs", n % 40), "offset": n % 300, "limit": 200}})
            }
            2 => {
                json!({"session_id": rng.token(32), "hook_event_name": "PreToolUse", "tool_name": "WebFetch",
                "tool_input": {"url": format!("https://docs.rs/tokio/1.{}.0/tokio/sync/index.html", n % 40), "prompt": "Summarise the channel types"}})
            }
            _ => {
                json!({"session_id": rng.token(32), "hook_event_name": "PreToolUse", "tool_name": "mcp__github__create_issue",
                "tool_input": {"owner": "acme", "repo": "api", "title": format!("Flaky test {}", rng.token(8)), "labels": ["bug", "ci"]}})
            }
        };
        out.push_str(&call.to_string());
        out.push('\n');
    }
    out
}

fn corpus() -> Vec<String> {
    let mut rng = Lcg(20261127);
    let mut records: Vec<String> = Vec::new();
    for file in CODE {
        records.extend(file.split("\n\n").map(str::to_string));
    }
    records.extend(logs(&mut rng, 6000).lines().map(str::to_string));
    records.extend(tool_calls(&mut rng, 3000).lines().map(str::to_string));
    // Sprinkle secrets so the rules that match do their full work, not just the prefilter.
    let total: usize = records.iter().map(String::len).sum();
    let secrets = total / 4096;
    let len = records.len();
    for n in 0..secrets {
        let secret = match n % 4 {
            0 => format!(
                "export GITHUB_TOKEN={}",
                checksum::with_checksum("ghp_", &rng.token(30))
            ),
            1 => format!("AWS_SECRET_ACCESS_KEY={}", rng.token(40)),
            2 => format!("psql postgres://app:{}@db:5432/app", rng.token(18)),
            _ => format!(
                "curl -H 'Authorization: Bearer {}' https://api",
                rng.token(40)
            ),
        };
        let at = (rng.next() as usize) % len;
        records[at].push(' ');
        records[at].push_str(&secret);
    }
    records
}

fn main() {
    let redactor = Redactor::builtin(b"bench key").expect("built-in rules compile");
    let records = corpus();
    let bytes: usize = records.iter().map(String::len).sum();
    let blob = records.join("\n");
    let found: usize = records.iter().map(|r| redactor.find(r).len()).sum();
    println!(
        "mixed corpus: {} records, {:.1} MB, {} rules, {found} secrets found",
        records.len(),
        bytes as f64 / 1e6,
        redactor.rule_count()
    );

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("redact");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("mixed corpus, record by record", |b| {
        b.iter(|| {
            for record in &records {
                black_box(redactor.redact(black_box(record)));
            }
        })
    });
    group.throughput(Throughput::Bytes(blob.len() as u64));
    group.bench_function("mixed corpus, one text", |b| {
        b.iter(|| black_box(redactor.redact(black_box(&blob))))
    });
    group.finish();
    criterion.final_summary();
}
