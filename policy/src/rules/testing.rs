//! Runs the `tests:` embedded in rule files: each rule in isolation, so a rule's examples
//! document that rule alone.

use serde::Serialize;

use super::compile::{parse_layers, LocatedRule, Policy, PolicyError, PolicySource};
use super::spec::TestCase;
use crate::envelope::{ActionType, Decision, Event, Source};

/// Home directory test cases are evaluated under; `~/…` paths in tests match as written.
pub const TEST_HOME: &str = "/home/user";

impl TestCase {
    /// Builds the event this compact description stands for.
    pub fn to_event(&self) -> Event {
        let action = self.action.unwrap_or(if self.command.is_some() {
            ActionType::ProcessExec
        } else if self.path.is_some() {
            ActionType::FileRead
        } else if self.mcp_server.is_some()
            || self.mcp_tool.is_some()
            || self.mcp_tool_pin.is_some()
            || self.sql.is_some()
        {
            ActionType::McpCall
        } else {
            ActionType::ToolCall
        });
        let platform = self.platform.as_deref().unwrap_or("unknown");
        let source = if action == ActionType::McpCall {
            Source::Mcp
        } else {
            Source::Hook
        };
        let mut event = Event::new(source, platform, action, "policy-test");
        let mut arguments = serde_json::Map::new();
        event.tool_name = self.tool.clone();
        if let Some(command) = &self.command {
            if action == ActionType::ProcessExec && self.tool.is_none() {
                event.target = Some(command.clone());
            } else {
                event.tool_name.get_or_insert_with(|| "Bash".into());
                arguments.insert("command".into(), command.clone().into());
            }
        }
        if let Some(path) = &self.path {
            match action {
                ActionType::FileRead
                | ActionType::FileWrite
                | ActionType::FileDelete
                | ActionType::FileRename
                | ActionType::PolicyTamper => event.target = Some(path.clone()),
                _ => {
                    arguments.insert("file_path".into(), path.clone().into());
                }
            }
        }
        if let Some(url) = &self.url {
            arguments.insert("url".into(), url.clone().into());
        }
        if let Some(server) = &self.mcp_server {
            event.labels.insert("mcp_server".into(), server.clone());
        }
        if let Some(tool) = &self.mcp_tool {
            event.labels.insert("mcp_tool".into(), tool.clone());
        }
        if let Some(state) = &self.mcp_tool_pin {
            event.labels.insert("mcp_tool_pin".into(), state.clone());
        }
        if let Some(sql) = &self.sql {
            arguments.insert("sql".into(), sql.clone().into());
        }
        event.arguments = arguments.into();
        event.labels.insert("home".into(), TEST_HOME.into());
        let cwd = self
            .cwd
            .clone()
            .unwrap_or_else(|| format!("{TEST_HOME}/project"));
        event.labels.insert("cwd".into(), cwd);
        event
    }
}

#[derive(Debug, Serialize)]
pub struct TestFailure {
    pub rule_id: String,
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
pub struct TestReport {
    pub rules: usize,
    pub cases: usize,
    pub failures: Vec<TestFailure>,
    /// Rules lacking a must-match or a must-not-match example.
    pub incomplete: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every rule's embedded tests; policy errors come back as `Err`.
pub fn run_rule_tests(sources: &[PolicySource]) -> Result<TestReport, Vec<PolicyError>> {
    let rules = parse_layers(sources)?;
    let mut report = TestReport {
        rules: rules.len(),
        ..TestReport::default()
    };
    for rule in &rules {
        test_rule(rule, &mut report)?;
    }
    Ok(report)
}

fn test_rule(rule: &LocatedRule, report: &mut TestReport) -> Result<(), Vec<PolicyError>> {
    let policy = Policy::from_rules(std::slice::from_ref(rule), String::new())?;
    let spec = &rule.spec;
    let fail = |message: String| TestFailure {
        rule_id: spec.id.clone(),
        file: rule.file.clone(),
        line: rule.line,
        message,
    };
    for verdict in [Decision::Deny, Decision::Ask, Decision::Alert] {
        if verdict != spec.verdict && !spec.tests.expecting(verdict).is_empty() {
            report.failures.push(fail(format!(
                "tests.{verdict} given but the rule's verdict is {}",
                spec.verdict
            )));
        }
    }
    let must_match = spec.tests.expecting(spec.verdict);
    if must_match.is_empty() || spec.tests.allow.is_empty() {
        report.incomplete.push(spec.id.clone());
    }
    for (expect_match, cases) in [(true, must_match), (false, spec.tests.allow.as_slice())] {
        for case in cases {
            report.cases += 1;
            let matched = policy
                .evaluate(&case.to_event())
                .rule_ids
                .contains(&spec.id);
            if matched != expect_match {
                let case_text = serde_json::to_string(case).unwrap_or_default();
                report.failures.push(fail(if expect_match {
                    format!(
                        "expected {} but the rule did not match {case_text}",
                        spec.verdict
                    )
                } else {
                    format!("expected allow but the rule matched {case_text}")
                }));
            }
        }
    }
    Ok(())
}
