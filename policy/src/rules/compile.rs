//! Rule files → one compiled `Policy`.
//!
//! Layers are given lowest precedence first (built-in pack, local files, tenant policy); a rule
//! in a later layer replaces the rule with the same id, and `disabled: true` removes it. Errors
//! name the file, the line and the rule, because the person fixing them has the file open.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::facts::Facts;
use super::matchers::{AtomField, AtomId, AtomKind, Fired, Matchers, MatchersBuilder};
use super::spec::{Condition, RuleFile, RuleSpec};
use crate::envelope::{Decision, Event, Severity};
use crate::risk;

/// One policy file's text and the name errors should show for it.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

/// A problem in a policy file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicyError {
    pub file: String,
    pub line: Option<usize>,
    pub rule_id: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(id) = &self.rule_id {
            write!(f, ": rule {id}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A parsed rule with where it came from.
#[derive(Debug, Clone)]
pub struct LocatedRule {
    pub spec: RuleSpec,
    pub file: String,
    pub line: Option<usize>,
}

impl LocatedRule {
    fn error(&self, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.clone(),
            line: self.line,
            rule_id: Some(self.spec.id.clone()),
            message: message.into(),
        }
    }
}

/// Parses every source and merges the layers; disabled rules are dropped.
pub fn parse_layers(sources: &[PolicySource]) -> Result<Vec<LocatedRule>, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut merged: Vec<LocatedRule> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for source in sources {
        let rules = match parse_source(source) {
            Ok(rules) => rules,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        for rule in rules {
            match by_id.get(&rule.spec.id) {
                Some(&index) => merged[index] = rule,
                None => {
                    by_id.insert(rule.spec.id.clone(), merged.len());
                    merged.push(rule);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    merged.retain(|rule| !rule.spec.disabled);
    Ok(merged)
}

/// Parses one file and checks what serde cannot: ids, duplicates, empty conditions.
pub fn parse_source(source: &PolicySource) -> Result<Vec<LocatedRule>, Vec<PolicyError>> {
    let file: RuleFile = serde_yaml::from_str(&source.text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        vec![PolicyError {
            file: source.name.clone(),
            line,
            rule_id: line.and_then(|l| rule_id_before_line(&source.text, l)),
            message: e.to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let mut seen = HashMap::new();
    let mut rules = Vec::new();
    for spec in file.rules {
        let rule = LocatedRule {
            line: rule_line(&source.text, &spec.id),
            file: source.name.clone(),
            spec,
        };
        if let Some(problem) = check_rule(&rule.spec) {
            errors.push(rule.error(problem));
        }
        if seen.insert(rule.spec.id.clone(), ()).is_some() {
            errors.push(rule.error("duplicate rule id in this file"));
        }
        rules.push(rule);
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn check_rule(spec: &RuleSpec) -> Option<String> {
    let id_ok = !spec.id.is_empty()
        && spec.id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if !id_ok {
        return Some("rule id must be non-empty lowercase letters, digits, `.`, `-` or `_`".into());
    }
    if spec.description.trim().is_empty() {
        return Some("description must not be empty".into());
    }
    check_condition(&spec.condition)
}

fn check_condition(condition: &Condition) -> Option<String> {
    if condition.is_empty() {
        return Some(
            "`match` (or a nested any/all/not) has no matchers; it would match everything".into(),
        );
    }
    condition
        .any
        .iter()
        .chain(condition.all.iter())
        .chain(condition.not.as_deref())
        .find_map(check_condition)
}

/// Finds the line of `id: <id>` so errors found after parsing still point into the file.
fn rule_line(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|line| declared_id(line) == Some(id))
        .map(|index| index + 1)
}

fn rule_id_before_line(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(declared_id)
        .last()
        .map(str::to_string)
}

fn declared_id(line: &str) -> Option<&str> {
    let trimmed = line.trim_start().trim_start_matches('-').trim_start();
    let value = trimmed.strip_prefix("id:")?;
    Some(value.trim().trim_matches(|c| c == '"' || c == '\''))
}

/// A rule's condition as a boolean expression over atoms.
#[derive(Debug, Clone)]
enum Expr {
    Actions(u32),
    Atom(AtomId, AtomKind),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    fn holds(&self, fired: &Fired, actions: u32) -> bool {
        match self {
            Expr::Actions(mask) => mask & actions != 0,
            Expr::Atom(atom, _) => fired.get(*atom),
            Expr::All(children) => children.iter().all(|c| c.holds(fired, actions)),
            Expr::Any(children) => children.iter().any(|c| c.holds(fired, actions)),
            Expr::Not(child) => !child.holds(fired, actions),
        }
    }

    /// Atoms of which at least one must fire for this expression to hold, choosing the most
    /// selective branch of a conjunction. `None` when no such set exists (negations, action-only).
    fn trigger(&self) -> Option<(AtomKind, Vec<AtomId>)> {
        match self {
            Expr::Atom(atom, kind) => Some((*kind, vec![*atom])),
            Expr::Actions(_) | Expr::Not(_) => None,
            Expr::All(children) => children
                .iter()
                .filter_map(Expr::trigger)
                .min_by_key(|(kind, atoms)| (*kind, atoms.len())),
            Expr::Any(children) => {
                let mut kind = AtomKind::Command;
                let mut atoms = Vec::new();
                for child in children {
                    let (child_kind, mut child_atoms) = child.trigger()?;
                    kind = kind.max(child_kind);
                    atoms.append(&mut child_atoms);
                }
                Some((kind, atoms))
            }
        }
    }

    /// Actions the expression can hold for (a superset).
    fn action_mask(&self) -> u32 {
        match self {
            Expr::Actions(mask) => *mask,
            Expr::Atom(..) | Expr::Not(_) => u32::MAX,
            Expr::All(children) => children.iter().fold(u32::MAX, |m, c| m & c.action_mask()),
            Expr::Any(children) => children.iter().fold(0, |m, c| m | c.action_mask()),
        }
    }
}

fn compile_condition(condition: &Condition, builder: &mut MatchersBuilder) -> Result<Expr, String> {
    let mut parts = Vec::new();
    if !condition.action.is_empty() {
        parts.push(Expr::Actions(
            condition.action.iter().fold(0, |m, a| m | a.bit()),
        ));
    }
    let fields: [(AtomField, &Vec<String>); 10] = [
        (AtomField::Platform, &condition.platform),
        (AtomField::Tool, &condition.tool),
        (AtomField::Path, &condition.path),
        (AtomField::Command, &condition.command),
        (AtomField::CommandWords, &condition.command_words),
        (AtomField::Host, &condition.host),
        (AtomField::McpServer, &condition.mcp_server),
        (AtomField::McpTool, &condition.mcp_tool),
        (AtomField::McpToolPin, &condition.mcp_tool_pin),
        (AtomField::Sql, &condition.sql),
    ];
    for (field, patterns) in fields {
        if !patterns.is_empty() {
            parts.push(Expr::Atom(builder.add(field, patterns)?, field.kind()));
        }
    }
    if !condition.any.is_empty() {
        let children = condition
            .any
            .iter()
            .map(|c| compile_condition(c, builder))
            .collect::<Result<_, _>>()?;
        parts.push(Expr::Any(children));
    }
    for child in &condition.all {
        parts.push(compile_condition(child, builder)?);
    }
    if let Some(child) = &condition.not {
        parts.push(Expr::Not(Box::new(compile_condition(child, builder)?)));
    }
    Ok(if parts.len() == 1 {
        parts.pop().unwrap()
    } else {
        Expr::All(parts)
    })
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub verdict: Decision,
    pub severity: Severity,
    pub tags: Vec<String>,
    pub file: String,
    pub line: Option<usize>,
    expr: Expr,
}

/// The outcome of evaluating one event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// Matching rules, strongest first.
    pub rule_ids: Vec<String>,
    pub severity: Option<Severity>,
    pub risk_score: u8,
    /// The deciding rule's description, for the agent and the user.
    pub reason: Option<String>,
    /// Tags of every matching rule (sorted, once each): `redact-response` asks the MCP gateway
    /// to redact the tool's answer before the agent sees it.
    pub tags: Vec<String>,
}

impl Verdict {
    /// Writes the verdict into the event's decision fields.
    pub fn apply_to(&self, event: &mut Event) {
        event.decision = self.decision;
        event.rule_ids = self.rule_ids.clone();
        event.risk_score = self.risk_score;
    }
}

/// All rules of all layers, compiled into set matchers.
pub struct Policy {
    rules: Vec<Rule>,
    matchers: Matchers,
    /// For each atom, the rules that can only hold when it fires.
    triggered_by: Vec<Vec<u32>>,
    /// Rules with no trigger atom, with the actions they can hold for.
    untriggered: Vec<(u32, u32)>,
    hash: String,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules.len())
            .field("hash", &self.hash)
            .finish()
    }
}

impl Policy {
    /// Parses, merges and compiles the given layers (lowest precedence first).
    pub fn compile(sources: &[PolicySource]) -> Result<Policy, Vec<PolicyError>> {
        let rules = parse_layers(sources)?;
        Policy::from_rules(&rules, content_hash(sources))
    }

    pub fn from_rules(located: &[LocatedRule], hash: String) -> Result<Policy, Vec<PolicyError>> {
        let mut builder = MatchersBuilder::default();
        let mut rules = Vec::with_capacity(located.len());
        let mut errors = Vec::new();
        for rule in located {
            match compile_condition(&rule.spec.condition, &mut builder) {
                Ok(expr) => rules.push(Rule {
                    id: rule.spec.id.clone(),
                    description: rule.spec.description.clone(),
                    verdict: rule.spec.verdict,
                    severity: rule.spec.severity,
                    tags: rule.spec.tags.clone(),
                    file: rule.file.clone(),
                    line: rule.line,
                    expr,
                }),
                Err(message) => errors.push(rule.error(message)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let atom_count = builder.atom_count();
        let matchers = builder.build().map_err(|message| {
            vec![PolicyError {
                file: "(policy)".into(),
                line: None,
                rule_id: None,
                message,
            }]
        })?;
        let mut triggered_by = vec![Vec::new(); atom_count];
        let mut untriggered = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            match rule.expr.trigger() {
                Some((_, atoms)) => {
                    for atom in atoms {
                        triggered_by[atom as usize].push(index as u32);
                    }
                }
                None => untriggered.push((rule.expr.action_mask(), index as u32)),
            }
        }
        Ok(Policy {
            rules,
            matchers,
            triggered_by,
            untriggered,
            hash,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A short content hash of the sources, to tell policy versions apart.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn evaluate(&self, event: &Event) -> Verdict {
        self.evaluate_facts(&Facts::from_event(event))
    }

    pub fn evaluate_facts(&self, facts: &Facts) -> Verdict {
        let fired = self.matchers.fire(facts);
        let mut candidates: Vec<u32> = fired
            .iter()
            .flat_map(|atom| self.triggered_by[atom as usize].iter().copied())
            .collect();
        candidates.extend(
            self.untriggered
                .iter()
                .filter(|(mask, _)| mask & facts.actions != 0)
                .map(|(_, rule)| *rule),
        );
        candidates.sort_unstable();
        candidates.dedup();
        let mut matched: Vec<&Rule> = candidates
            .into_iter()
            .map(|index| &self.rules[index as usize])
            .filter(|rule| rule.expr.holds(&fired, facts.actions))
            .collect();
        matched.sort_by(|a, b| {
            (b.verdict, b.severity)
                .cmp(&(a.verdict, a.severity))
                .then_with(|| a.id.cmp(&b.id))
        });
        let top = matched.first();
        let mut verdict = Verdict {
            decision: top.map_or(Decision::Allow, |r| r.verdict),
            severity: top.map(|r| r.severity),
            reason: top.map(|r| r.description.clone()),
            risk_score: risk::score(matched.iter().map(|r| (r.verdict, r.severity)), facts),
            rule_ids: matched.iter().map(|r| r.id.clone()).collect(),
            tags: {
                let mut tags: Vec<String> = matched
                    .iter()
                    .flat_map(|r| r.tags.iter().cloned())
                    .collect();
                tags.sort_unstable();
                tags.dedup();
                tags
            },
        };
        // What could not be inspected is not clean: padding a command past the limits must not
        // be a way around a deny.
        if facts.truncated && verdict.decision < Decision::Ask {
            verdict.decision = Decision::Ask;
            verdict.rule_ids.insert(0, TOO_LARGE_RULE.into());
            verdict.reason = Some("the action is too large for Quint to inspect in full".into());
            verdict.severity = verdict.severity.max(Some(Severity::Medium));
            verdict.risk_score = verdict.risk_score.max(40);
        }
        verdict
    }
}

/// The rule id recorded when an action exceeded what policy inspects.
pub const TOO_LARGE_RULE: &str = "quint.input-too-large";

fn content_hash(sources: &[PolicySource]) -> String {
    let mut hasher = Sha256::new();
    for source in sources {
        hasher.update(source.name.as_bytes());
        hasher.update([0]);
        hasher.update(source.text.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{ActionType, Source};

    fn source(name: &str, text: &str) -> PolicySource {
        PolicySource {
            name: name.into(),
            text: text.into(),
        }
    }

    fn read(path: &str) -> Event {
        let mut event = Event::new(Source::Hook, "claude-code", ActionType::ToolCall, "s");
        event.tool_name = Some("Read".into());
        event.arguments = serde_json::json!({ "file_path": path });
        event.labels.insert("home".into(), "/home/ana".into());
        event
    }

    const SSH: &str = r#"
rules:
  - id: credentials.ssh
    description: no ssh keys
    match:
      action: file.read
      path: ["~/.ssh/id_*"]
      not: { path: "**/*.pub" }
    verdict: deny
    severity: critical
  - id: files.alert-etc
    description: reading /etc is noted
    match: { action: [file.read], path: "/etc/**" }
    verdict: alert
    severity: low
"#;

    #[test]
    fn command_patterns_use_ascii_classes_unless_a_pattern_asks_for_unicode() {
        let rules = r#"
rules:
  - id: words.ascii
    description: a word after rm
    match: {action: process.exec, command: '^rm\s+\w+$'}
    verdict: deny
    severity: low
  - id: words.unicode
    description: a word after shred, any script
    match: {action: process.exec, command: '^shred\s+(?u:\w)+$'}
    verdict: deny
    severity: low
"#;
        let policy = Policy::compile(&[source("w.yaml", rules)]).unwrap();
        let exec = |command: &str| {
            let mut event =
                Event::new(Source::Process, "claude-code", ActionType::ProcessExec, "s");
            event.target = Some(command.into());
            policy.evaluate(&event).decision
        };
        assert_eq!(exec("rm notes"), Decision::Deny);
        // `\w` is ASCII: a Cyrillic name is not a word to it…
        assert_eq!(exec("rm заметки"), Decision::Allow);
        // …unless the pattern turns Unicode on.
        assert_eq!(exec("shred заметки"), Decision::Deny);
        // `\s` is ASCII whitespace, as for shells: a no-break space does not separate words.
        assert_eq!(exec("rm\u{a0}notes"), Decision::Allow);
    }

    #[test]
    fn strongest_verdict_wins_and_home_expands() {
        let policy = Policy::compile(&[source("a.yaml", SSH)]).unwrap();
        let verdict = policy.evaluate(&read("/home/ana/.ssh/id_rsa"));
        assert_eq!(verdict.decision, Decision::Deny);
        assert_eq!(verdict.rule_ids, vec!["credentials.ssh"]);
        assert!(verdict.risk_score > 80);
        assert_eq!(
            policy.evaluate(&read("/home/ana/.ssh/id_rsa.pub")).decision,
            Decision::Allow
        );
        assert_eq!(
            policy.evaluate(&read("/etc/hosts")).decision,
            Decision::Alert
        );
    }

    #[test]
    fn later_layer_overrides_and_disables() {
        let local = "rules:\n  - id: credentials.ssh\n    description: off\n    match: {action: file.read}\n    verdict: deny\n    severity: low\n    disabled: true\n";
        let policy = Policy::compile(&[source("a.yaml", SSH), source("b.yaml", local)]).unwrap();
        assert_eq!(policy.rules().len(), 1);
        assert_eq!(
            policy.evaluate(&read("/home/ana/.ssh/id_rsa")).decision,
            Decision::Allow
        );
    }

    #[test]
    fn errors_name_file_line_and_rule() {
        let bad_regex = "rules:\n  - id: a.ok\n    description: x\n    match: {command: ['fine']}\n    verdict: deny\n    severity: low\n  - id: b.broken\n    description: x\n    match: {command: ['(unclosed']}\n    verdict: deny\n    severity: low\n";
        let errors =
            Policy::compile(&[source("/etc/quint/policy.d/x.yaml", bad_regex)]).unwrap_err();
        assert_eq!(errors[0].line, Some(7));
        assert_eq!(errors[0].rule_id.as_deref(), Some("b.broken"));
        assert!(errors[0]
            .to_string()
            .starts_with("/etc/quint/policy.d/x.yaml:7: rule b.broken: invalid command regex"));

        let bad_verdict = "rules:\n  - id: c.bad\n    description: x\n    match: {action: file.read}\n    verdict: block\n    severity: low\n";
        let errors = Policy::compile(&[source("y.yaml", bad_verdict)]).unwrap_err();
        assert_eq!(errors[0].rule_id.as_deref(), Some("c.bad"));
        assert!(
            errors[0].message.contains("unknown Decision `block`"),
            "{}",
            errors[0]
        );
        assert!(errors[0].line.is_some());

        let empty = "rules:\n  - id: d.empty\n    description: x\n    match: {}\n    verdict: deny\n    severity: low\n";
        let errors = Policy::compile(&[source("z.yaml", empty)]).unwrap_err();
        assert!(errors[0].message.contains("would match everything"));
    }

    #[test]
    fn padding_a_command_past_the_limits_asks_instead_of_allowing() {
        let policy = Policy::compile(&[source("a.yaml", SSH)]).unwrap();
        let mut event = Event::new(Source::Hook, "claude-code", ActionType::ProcessExec, "s");
        event.target = Some(format!("true{};cat ~/.ssh/id_rsa", " ".repeat(70_000)));
        let verdict = policy.evaluate(&event);
        assert_eq!(verdict.decision, Decision::Ask);
        assert_eq!(verdict.rule_ids[0], TOO_LARGE_RULE);
        event.target = Some(format!("cat {} ~/.aws/credentials", "./x ".repeat(600)));
        assert_eq!(policy.evaluate(&event).decision, Decision::Ask);
    }

    #[test]
    fn words_respect_boundaries_and_hosts_cover_subdomains() {
        let text = "rules:\n  - id: x.words\n    description: x\n    match: {command_words: [mkfs]}\n    verdict: deny\n    severity: high\n  - id: x.host\n    description: x\n    match: {host: [paste.ee]}\n    verdict: alert\n    severity: low\n";
        let policy = Policy::compile(&[source("w.yaml", text)]).unwrap();
        let shell = |command: &str| {
            let mut event = Event::new(Source::Hook, "codex", ActionType::ProcessExec, "s");
            event.target = Some(command.into());
            policy.evaluate(&event)
        };
        assert_eq!(shell("sudo MKFS /dev/sda").decision, Decision::Deny);
        assert_eq!(shell("echo mkfsx").decision, Decision::Allow);
        assert_eq!(
            shell("curl https://api.paste.ee/v1").decision,
            Decision::Alert
        );
        assert_eq!(shell("curl https://notpaste.ee/").decision, Decision::Allow);
    }
}
