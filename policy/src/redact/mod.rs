//! The secret redactor: finds secrets in text and replaces each with
//! `[REDACTED:<rule-id>:<fp>]`, where `fp` is a short keyed HMAC of the secret under a
//! per-device key, so a given secret can later be tested for ("was this key ever exposed?")
//! without any copy of it being kept.
//!
//! Rules are data (`policy/redact/rules/*.yaml`). Every rule names literal keywords; one
//! Aho-Corasick pass over the text decides which rules run at all, so text with no candidate
//! costs one scan.

pub mod checksum;
pub mod corpus;

/// (name, YAML) of the built-in redaction rule files, `policy/redact/rules/*.yaml`.
pub const BUILTIN_RULES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/redact_pack.rs"));

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use hmac::{Hmac, Mac};
use regex::Regex;
use regex_automata::meta;
use regex_automata::Input;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use checksum::Checksum;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RuleSpec>,
}

/// One detection rule as written in the YAML files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub family: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub regex: String,
    #[serde(default)]
    pub entropy: Option<f64>,
    #[serde(default)]
    pub checksum: Checksum,
    /// A candidate matching this regex in full is not a secret (references such as
    /// `$TOKEN`, code such as `os.environ[...]`); for rules keyed on names, not formats.
    #[serde(default)]
    pub reject: Option<String>,
    /// How far past a keyword a match may end, in bytes (default 1,024); long blocks such as
    /// PEM keys need more. Large texts are only searched near keywords.
    #[serde(default)]
    pub reach: Option<usize>,
    /// The candidate is an encoding of other text: it counts only if the decoded text holds a
    /// secret that another rule finds (a Kubernetes Secret's `data:` values, env blobs).
    #[serde(default)]
    pub decode: Option<Encoding>,
    /// Recognises secrets by where they appear (names, flags, headers), not by a provider's
    /// format; a provider rule wins when both find the same secret.
    #[serde(default)]
    pub generic: bool,
    #[serde(default)]
    pub examples: Examples,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(default)]
    pub positive: Vec<PositiveExample>,
    #[serde(default)]
    pub negative: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositiveExample {
    pub text: String,
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Base64 whose decoded text holds a secret another rule finds.
    Base64,
    /// Base64 of `user:password` (HTTP Basic credentials).
    #[serde(rename = "basic-auth")]
    BasicAuth,
}

/// A problem in a redaction rule file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleError {
    pub file: String,
    pub rule_id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule_id {
            Some(id) => write!(f, "{}: rule {id}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

struct Rule {
    spec: RuleSpec,
    /// Compiled when a text first holds one of the rule's keywords: most rules (a payment
    /// provider's keys, a CI system's tokens) never meet theirs on a given machine, and the 191
    /// compiled together hold ~6 MB. `compile` checks every pattern builds.
    regex: std::sync::OnceLock<meta::Regex>,
    reject: Option<Regex>,
}

impl Rule {
    fn regex(&self) -> &meta::Regex {
        self.regex.get_or_init(|| {
            build_rule_regex(&self.spec.regex).expect("checked when the rules were compiled")
        })
    }
}

/// Bytes with ASCII classes (`\w`, `\s`, `\d`, `\b`, `(?i)`): secrets are ASCII, and the
/// Unicode tables made the compiled rules several times larger. A match may then end inside a
/// multi-byte character; it is widened to whole characters where it is used.
fn build_rule_regex(pattern: &str) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false),
        )
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(32 << 20))
                .utf8_empty(false)
                .dfa(false)
                .onepass(false)
                // Per rule and per thread that redacts: the default (2 MB) times the rules
                // in use and quintd's threads was most of quintd's growth after start.
                .hybrid_cache_capacity(256 << 10),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

/// A secret found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule_id: String,
    /// Byte offsets of the secret in the text.
    pub start: usize,
    pub end: usize,
    pub fingerprint: String,
}

/// Compiled rules plus the device's fingerprint key.
pub struct Redactor {
    rules: Vec<Rule>,
    keywords: AhoCorasick,
    keyword_rules: Vec<Vec<usize>>,
    key: Vec<u8>,
}

/// Substrings that mark a value as a placeholder, not a secret.
const PLACEHOLDERS: &[&str] = &[
    "example",
    "your_",
    "your-",
    "yourkey",
    "xxxx",
    "changeme",
    "placeholder",
    "dummy",
    "<",
    ">",
    "${",
    "****",
    "redacted",
];

impl Redactor {
    /// Compiles rule files given as (name, YAML text).
    pub fn compile(files: &[(&str, &str)], key: &[u8]) -> Result<Redactor, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut ids = HashSet::new();
        for (file, text) in files {
            let parsed: RuleFile = match serde_yaml::from_str(text) {
                Ok(parsed) => parsed,
                Err(e) => {
                    errors.push(RuleError {
                        file: file.to_string(),
                        rule_id: None,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            for spec in parsed.rules {
                let error = |message: String| RuleError {
                    file: file.to_string(),
                    rule_id: Some(spec.id.clone()),
                    message,
                };
                if !ids.insert(spec.id.clone()) {
                    errors.push(error("duplicate rule id".into()));
                    continue;
                }
                if spec.keywords.is_empty()
                    || spec
                        .keywords
                        .iter()
                        .any(|k| k.is_empty() || *k != k.to_lowercase())
                {
                    errors.push(error(
                        "keywords must be a non-empty list of lowercase literals".into(),
                    ));
                    continue;
                }
                // Built once to check it, then dropped: see `Rule::regex`.
                let regex = match build_rule_regex(&spec.regex) {
                    Ok(_) => std::sync::OnceLock::new(),
                    Err(e) => {
                        errors.push(error(format!("invalid regex: {e}")));
                        continue;
                    }
                };
                // Anchored here, so a reject pattern always means "the whole candidate is …".
                let reject = match spec
                    .reject
                    .as_deref()
                    .map(|r| Regex::new(&format!("^(?:{r})$")))
                    .transpose()
                {
                    Ok(reject) => reject,
                    Err(e) => {
                        errors.push(error(format!("invalid reject regex: {e}")));
                        continue;
                    }
                };
                rules.push(Rule {
                    spec,
                    regex,
                    reject,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut keyword_index: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for keyword in &rule.spec.keywords {
                match keyword_index.iter().position(|k| k == keyword) {
                    Some(at) => keyword_rules[at].push(index),
                    None => {
                        keyword_index.push(keyword.clone());
                        keyword_rules.push(vec![index]);
                    }
                }
            }
        }
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            // The keyword scan touches every byte of every text; a DFA makes it several
            // times faster than the default NFA for a few hundred keywords.
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keyword_index)
            .map_err(|e| {
                vec![RuleError {
                    file: "(keywords)".into(),
                    rule_id: None,
                    message: e.to_string(),
                }]
            })?;
        Ok(Redactor {
            rules,
            keywords,
            keyword_rules,
            key: key.to_vec(),
        })
    }

    /// The built-in rules under a device key.
    pub fn builtin(key: &[u8]) -> Result<Redactor, Vec<RuleError>> {
        Redactor::compile(BUILTIN_RULES, key)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The rules as written, with their examples (for rule tests).
    pub fn specs(&self) -> impl Iterator<Item = &RuleSpec> {
        self.rules.iter().map(|r| &r.spec)
    }

    /// Short keyed fingerprint of a secret: the first 6 bytes of HMAC-SHA256, hex.
    pub fn fingerprint(&self, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..6])
    }

    /// Secrets in `text`, in order, not overlapping (the longer of two overlapping wins).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        self.find_with(text, None, 0)
    }

    /// What one rule alone finds in `text` (its keywords still gate it), so a rule's
    /// examples test that rule and not whichever rule happens to win an overlap.
    pub fn find_with_rule(&self, rule_id: &str, text: &str) -> Option<Vec<Finding>> {
        let index = self.rules.iter().position(|r| r.spec.id == rule_id)?;
        Some(self.find_with(text, Some(index), 0))
    }

    /// `depth` > 0 when searching text decoded from a candidate (decoding does not nest).
    fn find_with(&self, text: &str, only: Option<usize>, depth: usize) -> Vec<Finding> {
        // Per candidate rule, the spans to search: the whole text when it is small, otherwise
        // windows around the keyword hits, so a rule whose keyword is common costs little.
        let windowed = text.len() > WHOLE_TEXT_BYTES;
        // (rule, spans) for the rules whose keywords appear, in first-hit order.
        let mut windows: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
        let mut slot_of_rule: Vec<u32> = Vec::new();
        for found in self.keywords.find_overlapping_iter(text) {
            for &rule in &self.keyword_rules[found.pattern().as_usize()] {
                if only.is_some_and(|only| only != rule) {
                    continue;
                }
                if slot_of_rule.is_empty() {
                    slot_of_rule = vec![u32::MAX; self.rules.len()];
                }
                if slot_of_rule[rule] == u32::MAX {
                    slot_of_rule[rule] = windows.len() as u32;
                    windows.push((rule, Vec::new()));
                } else if !windowed {
                    continue;
                }
                let spans = &mut windows[slot_of_rule[rule] as usize].1;
                if !windowed {
                    spans.push((0, text.len()));
                    continue;
                }
                let reach = self.rules[rule].spec.reach.unwrap_or(DEFAULT_REACH);
                let start = floor_char_boundary(text, found.start().saturating_sub(LOOK_BACK));
                let end = ceil_char_boundary(text, found.end().saturating_add(reach));
                match spans.last_mut() {
                    Some(last) if start <= last.1 => {
                        last.0 = last.0.min(start);
                        last.1 = last.1.max(end);
                    }
                    _ => spans.push((start, end)),
                }
            }
        }
        if windows.is_empty() {
            return Vec::new();
        }
        let mut findings: Vec<(usize, usize, usize)> = Vec::new();
        for (index, spans) in &windows {
            let (index, rule) = (*index, &self.rules[*index]);
            for &(start, end) in spans {
                let input = Input::new(text).span(start..end);
                for captures in rule.regex().captures_iter(input) {
                    // The secret is the first group that took part (rules may offer
                    // alternatives, each with its own group), or the whole match.
                    let Some(span) = (1..captures.group_len())
                        .find_map(|group| captures.get_group(group))
                        .or_else(|| captures.get_match().map(|m| m.span()))
                    else {
                        continue;
                    };
                    let span =
                        floor_char_boundary(text, span.start)..ceil_char_boundary(text, span.end);
                    let secret = &text[span.clone()];
                    if span.is_empty()
                        || !plausible(rule, secret)
                        || !self.decodes_to_secret(rule, secret, depth)
                    {
                        continue;
                    }
                    findings.push((span.start, span.end, index));
                }
            }
        }
        findings.dedup();
        // By start, longer first, and a provider rule before a generic one on the same span,
        // so the marker names the provider ("github-pat", not "secret-assignment").
        let generic = |index: usize| self.rules[index].spec.generic;
        findings.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then(generic(a.2).cmp(&generic(b.2)))
        });
        let mut kept: Vec<(usize, usize, usize)> = Vec::new();
        // Overlapping findings become one: their union (so no part of either stays in clear),
        // named after the longer.
        for finding in findings {
            match kept.last_mut() {
                Some(last) if finding.0 < last.1 => {
                    if finding.1 - finding.0 > last.1 - last.0 {
                        last.2 = finding.2;
                    }
                    last.1 = last.1.max(finding.1);
                }
                _ => kept.push(finding),
            }
        }
        kept.into_iter()
            .map(|(start, end, index)| Finding {
                rule_id: self.rules[index].spec.id.clone(),
                start,
                end,
                fingerprint: self.fingerprint(&text[start..end]),
            })
            .collect()
    }

    fn decodes_to_secret(&self, rule: &Rule, candidate: &str, depth: usize) -> bool {
        use base64::Engine;
        let Some(encoding) = rule.spec.decode else {
            return true;
        };
        if depth > 0 {
            return false;
        }
        let engine = &base64::engine::general_purpose::STANDARD_NO_PAD;
        let Ok(Ok(decoded)) = engine
            .decode(candidate.trim_end_matches('='))
            .map(String::from_utf8)
        else {
            return false;
        };
        match encoding {
            Encoding::Base64 => !self.find_with(&decoded, None, depth + 1).is_empty(),
            Encoding::BasicAuth => decoded.split_once(':').is_some_and(|(user, password)| {
                !user.is_empty() && !password.is_empty() && !decoded.chars().any(char::is_control)
            }),
        }
    }

    /// The text with every secret replaced, and what was found.
    pub fn redact(&self, text: &str) -> (String, Vec<Finding>) {
        let findings = self.find(text);
        if findings.is_empty() {
            return (text.to_string(), findings);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for finding in &findings {
            out.push_str(&text[at..finding.start]);
            out.push_str(&format!(
                "[REDACTED:{}:{}]",
                finding.rule_id, finding.fingerprint
            ));
            at = finding.end;
        }
        out.push_str(&text[at..]);
        (out, findings)
    }

    /// Redacts every string (keys and values) of a JSON value; returns it and the number of
    /// secrets replaced.
    pub fn redact_json(&self, value: &serde_json::Value) -> (serde_json::Value, usize) {
        let mut found = 0;
        let redacted = self.redact_json_into(value, &mut found);
        (redacted, found)
    }

    /// The text redacted, adding the number of secrets replaced to `found`.
    pub fn redact_counted(&self, text: &str, found: &mut usize) -> String {
        let (redacted, findings) = self.redact(text);
        *found += findings.len();
        redacted
    }

    fn redact_json_into(&self, value: &serde_json::Value, found: &mut usize) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(t) => Value::String(self.redact_counted(t, found)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.redact_json_into(v, found))
                    .collect(),
            ),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| {
                        let key = self.redact_counted(k, found);
                        (key, self.redact_json_into(v, found))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Texts up to this size are searched whole by every candidate rule.
const WHOLE_TEXT_BYTES: usize = 4096;
/// How far before its keyword a match may start (names before `=`, schemes before `://`).
const LOOK_BACK: usize = 256;
const DEFAULT_REACH: usize = 1024;

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

fn plausible(rule: &Rule, secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return false;
    }
    if rule.reject.as_ref().is_some_and(|r| r.is_match(secret)) {
        return false;
    }
    if let Some(minimum) = rule.spec.entropy {
        if shannon_entropy(secret) < minimum {
            return false;
        }
    }
    checksum::valid(rule.spec.checksum, secret)
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(text: &str) -> f64 {
    let mut counts = [0u32; 256];
    for byte in text.bytes() {
        counts[byte as usize] += 1;
    }
    let length = text.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / length;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
rules:
  - id: github-pat-classic
    family: github
    description: GitHub personal access token
    keywords: ["ghp_"]
    regex: '\b(ghp_[A-Za-z0-9]{36})\b'
    checksum: github
  - id: generic-password-assignment
    family: generic
    description: password assigned in config or code
    keywords: ["password"]
    regex: '(?i)password\s*[:=]\s*["'']?([^\s"'']{8,})'
    entropy: 2.5
"#;

    fn redactor() -> Redactor {
        Redactor::compile(&[("test.yaml", RULES)], b"device-key").unwrap()
    }

    #[test]
    fn redacts_with_rule_id_and_keyed_fingerprint() {
        let token = checksum::with_checksum("ghp_", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1");
        let text = format!("export GITHUB_TOKEN=\"{token}\"\npassword: \"s3cr3t-Pa55word\"");
        let (redacted, findings) = redactor().redact(&text);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(
            !redacted.contains(&token) && !redacted.contains("s3cr3t-Pa55word"),
            "{redacted}"
        );
        let fp = redactor().fingerprint(&token);
        assert!(
            redacted.contains(&format!("[REDACTED:github-pat-classic:{fp}]")),
            "{redacted}"
        );
        let other_device = Redactor::compile(&[("test.yaml", RULES)], b"another-key").unwrap();
        assert_ne!(
            other_device.fingerprint(&token),
            fp,
            "fingerprints are keyed per device"
        );
    }

    #[test]
    fn checksums_entropy_and_placeholders_reject_lookalikes() {
        let redactor = redactor();
        assert!(
            redactor
                .find("ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1000000")
                .is_empty(),
            "bad checksum"
        );
        assert!(
            redactor.find("password = YOUR_PASSWORD_HERE").is_empty(),
            "placeholder"
        );
        assert!(
            redactor.find("password: aaaaaaaaaaaa").is_empty(),
            "low entropy"
        );
        assert!(
            redactor.find("cargo build --release").is_empty(),
            "no keyword, no work"
        );
    }

    /// Every built-in rule finds each of its positive examples by itself (keywords included),
    /// the whole pack removes the secret, and no rule fires on any rule's negatives.
    #[test]
    fn every_builtin_rule_passes_its_own_examples() {
        let redactor = Redactor::builtin(b"pack-test").unwrap_or_else(|errors| {
            panic!(
                "{}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let families: HashSet<&str> = redactor.specs().map(|s| s.family.as_str()).collect();
        assert!(
            redactor.rule_count() >= 150,
            "{} rules",
            redactor.rule_count()
        );
        assert!(families.len() >= 40, "{} families", families.len());
        let mut failures = Vec::new();
        for spec in redactor.specs() {
            if spec.examples.positive.is_empty() {
                failures.push(format!("{}: no positive example", spec.id));
            }
            for example in &spec.examples.positive {
                let Some(start) = example.text.find(&example.secret) else {
                    failures.push(format!("{}: secret not in its text", spec.id));
                    continue;
                };
                let end = start + example.secret.len();
                let alone = redactor.find_with_rule(&spec.id, &example.text).unwrap();
                if !alone.iter().any(|f| f.start <= start && f.end >= end) {
                    failures.push(format!(
                        "{}: misses {:?} (found {alone:?})",
                        spec.id, example.text
                    ));
                }
                let (redacted, _) = redactor.redact(&example.text);
                if redacted.contains(&example.secret) {
                    failures.push(format!(
                        "{}: pack leaves the secret in {redacted:?}",
                        spec.id
                    ));
                }
            }
            for negative in &spec.examples.negative {
                let found = redactor.find(negative);
                if !found.is_empty() {
                    let rules: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
                    failures.push(format!(
                        "{}: negative {negative:?} matched by {rules:?}",
                        spec.id
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Large texts are searched only near keyword hits; secrets anywhere in them, including
    /// blocks longer than the default reach, must still be found whole.
    #[test]
    fn large_texts_are_searched_near_keywords_without_losing_secrets() {
        let redactor = Redactor::builtin(b"window test").unwrap();
        let token = checksum::with_checksum("ghp_", "Zq7Rb4b1jhK7OCy7hb4JFEJSd4YeSS");
        let body: String = (0..60)
            .map(|n| format!("{:064}\n", n * 7919).replace('0', "A"))
            .collect();
        let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
        let filler = "let value = compute(input, 42); // ordinary code line\n".repeat(4000);
        let text = format!("{filler}export GITHUB_TOKEN={token}\n{filler}{pem}\n{filler}");
        assert!(text.len() > 400_000);
        let (redacted, findings) = redactor.redact(&text);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule_id.as_str()).collect();
        assert_eq!(rules, ["github-pat", "private-key-block"], "{findings:?}");
        assert!(!redacted.contains(&token));
        assert!(
            !redacted.contains(&body[..64]),
            "the whole 3.9 KB block is gone"
        );
        assert_eq!(
            redacted.len(),
            text.len() - token.len() - pem.len()
                + findings
                    .iter()
                    .map(|f| format!("[REDACTED:{}:{}]", f.rule_id, f.fingerprint).len())
                    .sum::<usize>()
        );
    }

    #[test]
    fn overlapping_findings_are_redacted_as_their_union() {
        let rules = r#"
rules:
  - id: left
    family: t
    description: d
    keywords: ["lefttok"]
    regex: '(lefttok[0-9]{6})'
  - id: right-longer
    family: t
    description: d
    keywords: ["rt"]
    regex: '([0-9]{4}rt[A-Z]{8})'
"#;
        let redactor = Redactor::compile(&[("t.yaml", rules)], b"k").unwrap();
        let (redacted, findings) = redactor.redact("x lefttok123456rtABCDEFGH y");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule_id, "right-longer");
        assert!(redacted.starts_with("x [REDACTED:right-longer:") && redacted.ends_with("] y"));
        assert!(!redacted.contains("lefttok") && !redacted.contains("ABCDEFGH"));
    }

    #[test]
    fn a_secret_with_multibyte_characters_is_redacted_whole() {
        let redactor = Redactor::builtin(b"device-key").unwrap();
        let text = "export DB_PASSWORD=\"pässwörd-ünïcode-9f3Kq2\" # ok";
        let (redacted, findings) = redactor.redact(text);
        assert_eq!(findings.len(), 1, "{redacted}");
        assert!(
            !redacted.contains("wörd") && !redacted.contains("9f3Kq2"),
            "{redacted}"
        );
        assert!(redacted.ends_with("\" # ok"), "{redacted}");
    }

    /// The hard negatives the issue names, each in a context that mentions secrets.
    #[test]
    fn hard_negatives_come_back_unchanged() {
        let redactor = Redactor::builtin(b"negatives").unwrap();
        let png = format!(
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk{}",
            "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        );
        let negatives = [
            "git checkout 4f8c2b1d9e7a6f5c3b2a1d0e9f8c7b6a5d4e3f2a  # token rotation commit",
            "secret_id = 123e4567-e89b-12d3-a456-426614174000",
            "sha256sum token.tar.gz\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  token.tar.gz",
            "sha512: cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            r#""integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==""#,
            &png,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci # public key",
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ7k2Vn9xR4tLpZ8mYc3HsJ6dFg1NaEwDQYJKoZIhvcNAQEL\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEabcdefghijklmnopqrstuvwxyz012345\n-----END PUBLIC KEY-----",
            "api_key: YOUR_API_KEY",
            "Authorization: Bearer ${TOKEN}",
            "export GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}",
            "password = os.environ[\"DB_PASSWORD\"]",
            "cat ~/.ssh/id_rsa",
            "chmod 600 ~/.aws/credentials ~/.ssh/id_ed25519",
        ];
        for text in negatives {
            let (redacted, findings) = redactor.redact(text);
            assert_eq!(redacted, text, "{findings:?}");
        }
    }

    #[test]
    fn bad_rules_are_reported_with_file_and_id() {
        let bad = "rules:\n  - id: x\n    family: f\n    description: d\n    keywords: [X]\n    regex: 'a'\n";
        let errors = Redactor::compile(&[("bad.yaml", bad)], b"k").err().unwrap();
        assert_eq!(
            errors[0].to_string(),
            "bad.yaml: rule x: keywords must be a non-empty list of lowercase literals"
        );
    }
}
