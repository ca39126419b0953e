//! Scores a rule pack against a labelled corpus (`tests/fixtures/redaction/`): how many
//! labelled secrets it removes and how many hard negatives it leaves alone. The corpus test
//! and the side-by-side benchmark both use this, so they count the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Redactor;

/// A text holding one labelled secret.
#[derive(Debug, Clone, Deserialize)]
pub struct Positive {
    pub id: String,
    pub family: String,
    pub text: String,
    pub secret: String,
}

/// A text that holds no secret and must come back unchanged.
#[derive(Debug, Clone, Deserialize)]
pub struct Negative {
    pub id: String,
    pub kind: String,
    pub text: String,
}

/// Parses JSON lines, naming the line of the first bad one.
pub fn parse_lines<T: serde::de::DeserializeOwned>(jsonl: &str) -> Result<Vec<T>, String> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

#[derive(Debug, Default, Serialize)]
pub struct Score {
    pub positives: usize,
    /// Positives whose secret no longer appears after redaction.
    pub found: usize,
    pub negatives: usize,
    pub unchanged: usize,
    /// family → (found, total)
    pub per_family: BTreeMap<String, (usize, usize)>,
    /// Ids of positives whose secret survived.
    pub missed: Vec<String>,
    /// Negatives that were changed, with the rules that fired.
    pub changed: Vec<(String, Vec<String>)>,
}

impl Score {
    pub fn recall(&self) -> f64 {
        ratio(self.found, self.positives)
    }

    pub fn unchanged_ratio(&self) -> f64 {
        ratio(self.unchanged, self.negatives)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 / whole as f64
}

pub fn score(redactor: &Redactor, positives: &[Positive], negatives: &[Negative]) -> Score {
    let mut score = Score {
        positives: positives.len(),
        negatives: negatives.len(),
        ..Score::default()
    };
    for positive in positives {
        let (redacted, _) = redactor.redact(&positive.text);
        let removed = !redacted.contains(&positive.secret);
        let family = score.per_family.entry(positive.family.clone()).or_default();
        family.1 += 1;
        if removed {
            family.0 += 1;
            score.found += 1;
        } else {
            score.missed.push(positive.id.clone());
        }
    }
    for negative in negatives {
        let findings = redactor.find(&negative.text);
        if findings.is_empty() {
            score.unchanged += 1;
        } else {
            score.changed.push((
                negative.id.clone(),
                findings.into_iter().map(|f| f.rule_id).collect(),
            ));
        }
    }
    score
}
