//! Scores the built-in redaction rules on a labelled corpus and measures single-thread
//! throughput, printing one JSON object (read by `scripts/bench/redaction_compare.py`).
//!
//! cargo run --release -p quint-policy --example redact_corpus -- POSITIVES NEGATIVES [REPEAT]
//!
//! With `QUINT_RULE_TIMES=1` it also prints the ten rules that cost the most on the corpus
//! (on stderr), which is where to look when a new rule slows redaction down.

use std::time::Instant;

use quint_policy::redact::corpus::{parse_lines, score, Negative, Positive};
use quint_policy::redact::Redactor;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: redact_corpus POSITIVES.jsonl NEGATIVES.jsonl [REPEAT]");
        std::process::exit(2);
    }
    let read = |path: &str| {
        std::fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        })
    };
    let positives: Vec<Positive> = parse_lines(&read(&args[0])).expect("positives");
    let negatives: Vec<Negative> = parse_lines(&read(&args[1])).expect("negatives");
    let repeat: usize = args
        .get(2)
        .map_or(3, |r| r.parse().expect("REPEAT is a number"));
    let redactor = Redactor::builtin(b"benchmark key").expect("built-in rules compile");

    let result = score(&redactor, &positives, &negatives);
    let texts: Vec<&str> = positives
        .iter()
        .map(|p| p.text.as_str())
        .chain(negatives.iter().map(|n| n.text.as_str()))
        .collect();
    let bytes: usize = texts.iter().map(|t| t.len()).sum::<usize>() * repeat;
    let started = Instant::now();
    let mut kept = 0;
    for _ in 0..repeat {
        for text in &texts {
            kept += std::hint::black_box(redactor.redact(text)).0.len();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(kept);
    if std::env::var_os("QUINT_RULE_TIMES").is_some() {
        print_rule_times(&redactor, &texts);
    }
    println!(
        "{}",
        serde_json::json!({
            "tool": "quint",
            "rules": redactor.rule_count(),
            "positives": result.positives,
            "found": result.found,
            "recall": result.recall(),
            "negatives": result.negatives,
            "unchanged": result.unchanged,
            "unchanged_ratio": result.unchanged_ratio(),
            "bytes": bytes,
            "seconds": seconds,
            "mb_per_s": bytes as f64 / seconds / 1e6,
            "per_family": result.per_family,
            "missed": result.missed,
            "changed": result.changed,
        })
    );
}

fn print_rule_times(redactor: &Redactor, texts: &[&str]) {
    let mut times: Vec<(f64, String)> = redactor
        .specs()
        .map(|spec| {
            let started = Instant::now();
            for text in texts {
                std::hint::black_box(redactor.find_with_rule(&spec.id, text));
            }
            (started.elapsed().as_secs_f64(), spec.id.clone())
        })
        .collect();
    // Every call also scans for keywords; the cheapest rule shows what that costs.
    let floor = times.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
    times.iter_mut().for_each(|t| t.0 -= floor);
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (seconds, id) in times.iter().take(10) {
        eprintln!("{:>9.3} ms  {id} (beyond the keyword scan)", seconds * 1e3);
    }
}
