//! The built-in redaction rules against the project's labelled corpora
//! (`tests/fixtures/redaction/` and `tests/fixtures/redaction/holdout/`, each made by the
//! `generate.py` beside it, written independently of each other and of the rules): recall of
//! at least 95 % and at least 98 % of hard negatives unchanged on each, or the test fails and
//! lists what went wrong.

use std::collections::BTreeSet;

use quint_policy::redact::corpus::{parse_lines, score, Negative, Positive};
use quint_policy::redact::Redactor;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../tests/fixtures/redaction/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn labelled_corpus_recall_and_untouched_negatives() {
    check_corpus("");
}

#[test]
fn second_labelled_corpus_recall_and_untouched_negatives() {
    check_corpus("holdout/");
}

fn check_corpus(dir: &str) {
    let positives: Vec<Positive> = parse_lines(&fixture(&format!("{dir}positives.jsonl"))).unwrap();
    let negatives: Vec<Negative> = parse_lines(&fixture(&format!("{dir}negatives.jsonl"))).unwrap();
    let families: BTreeSet<&str> = positives.iter().map(|p| p.family.as_str()).collect();
    assert!(positives.len() >= 300, "{} positives", positives.len());
    assert!(negatives.len() >= 300, "{} negatives", negatives.len());
    assert!(families.len() >= 40, "{} families", families.len());

    let redactor = Redactor::builtin(b"corpus test").unwrap();
    let result = score(&redactor, &positives, &negatives);
    let report = format!(
        "recall {:.3} ({}/{}), negatives unchanged {:.3} ({}/{})\nmissed: {:?}\nchanged: {:?}",
        result.recall(),
        result.found,
        result.positives,
        result.unchanged_ratio(),
        result.unchanged,
        result.negatives,
        result.missed,
        result.changed
    );
    println!("{report}");
    assert!(result.recall() >= 0.95, "{report}");
    assert!(result.unchanged_ratio() >= 0.98, "{report}");
}
