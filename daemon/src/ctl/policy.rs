//! `quintctl policy lint|test|eval`: policy work offline, with the same compiler quintd uses.

use std::path::PathBuf;

use quint_policy::default_pack::default_sources;
use quint_policy::rules::spec::TestCase;
use quint_policy::rules::testing::run_rule_tests;
use quint_policy::{Event, Policy, PolicyError, PolicySource};
use serde_json::json;

use super::output::print_json;
use crate::config::Config;
use crate::policy_layers::read_policy_dir;

/// The files a command works on: the ones named (files or directories), else the policy dir.
fn local_sources(
    config: &Config,
    paths: &[PathBuf],
) -> Result<Vec<PolicySource>, Vec<PolicyError>> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    let named: Vec<PathBuf> = if paths.is_empty() {
        vec![config.policy_dir.clone()]
    } else {
        paths.to_vec()
    };
    for path in named {
        // The configured directory may not exist (no local rules); a named path must.
        if path.is_dir() || (paths.is_empty() && !path.exists()) {
            let (mut found, mut failed) = read_policy_dir(&path);
            sources.append(&mut found);
            errors.append(&mut failed);
        } else {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push(PolicySource {
                    name: path.display().to_string(),
                    text,
                }),
                Err(e) => errors.push(PolicyError {
                    file: path.display().to_string(),
                    line: None,
                    rule_id: None,
                    message: e.to_string(),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(errors)
    }
}

fn layered(config: &Config, paths: &[PathBuf]) -> Result<Vec<PolicySource>, Vec<PolicyError>> {
    let mut sources = default_sources();
    sources.extend(local_sources(config, paths)?);
    Ok(sources)
}

fn report_errors(errors: &[PolicyError], json_output: bool) -> i32 {
    if json_output {
        print_json(&json!({ "ok": false, "errors": errors }));
    } else {
        for error in errors {
            eprintln!("{error}");
        }
        eprintln!("{} error(s)", errors.len());
    }
    1
}

pub fn lint(config: &Config, paths: &[PathBuf], json_output: bool) -> i32 {
    let sources = match layered(config, paths) {
        Ok(sources) => sources,
        Err(errors) => return report_errors(&errors, json_output),
    };
    match Policy::compile(&sources) {
        Ok(policy) => {
            if json_output {
                print_json(
                    &json!({ "ok": true, "rules": policy.rules().len(), "files": sources.len(), "hash": policy.hash() }),
                );
            } else {
                println!(
                    "policy OK: {} rules from {} files (hash {})",
                    policy.rules().len(),
                    sources.len(),
                    policy.hash()
                );
            }
            0
        }
        Err(errors) => report_errors(&errors, json_output),
    }
}

pub fn test(config: &Config, paths: &[PathBuf], json_output: bool) -> i32 {
    // Named files are tested on their own; with none, everything in force is tested.
    let sources = if paths.is_empty() {
        layered(config, paths)
    } else {
        local_sources(config, paths)
    };
    let report = match sources.and_then(|s| run_rule_tests(&s)) {
        Ok(report) => report,
        Err(errors) => return report_errors(&errors, json_output),
    };
    if json_output {
        print_json(&report);
    } else {
        for failure in &report.failures {
            let line = failure.line.map(|l| format!(":{l}")).unwrap_or_default();
            println!(
                "FAIL {}{line}: rule {}: {}",
                failure.file, failure.rule_id, failure.message
            );
        }
        for id in &report.incomplete {
            println!("note: rule {id} lacks a must-match or a must-not-match test case");
        }
        println!(
            "{} rules, {} cases: {} passed, {} failed",
            report.rules,
            report.cases,
            report.cases - report.failures.len().min(report.cases),
            report.failures.len()
        );
    }
    if report.passed() {
        0
    } else {
        1
    }
}

/// Where `policy eval` takes its event from.
pub enum EvalInput {
    /// An envelope (JSON) from a file or `-` for stdin.
    Envelope(String),
    Flags(Box<TestCase>),
}

pub fn eval(config: &Config, policy_paths: &[PathBuf], input: EvalInput, json_output: bool) -> i32 {
    let event = match input {
        EvalInput::Flags(case) => {
            // Flags describe an action on this machine: use the real home and working dir.
            let mut event = case.to_event();
            if let Ok(home) = std::env::var("HOME") {
                event.labels.insert("home".into(), home);
            }
            if case.cwd.is_none() {
                if let Ok(cwd) = std::env::current_dir() {
                    event.labels.insert("cwd".into(), cwd.display().to_string());
                }
            }
            event
        }
        EvalInput::Envelope(from) => {
            let bytes = if from == "-" {
                let mut buffer = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map(|_| buffer)
            } else {
                std::fs::read(&from)
            };
            match bytes
                .map_err(|e| e.to_string())
                .and_then(|b| Event::from_json(&b).map_err(|e| e.to_string()))
            {
                // As quintd would see it: bodies summarised, nothing else cut.
                Ok(mut event) => {
                    event.arguments = quint_policy::shape::summarize_bodies(&event.arguments);
                    event
                }
                Err(e) => {
                    eprintln!("quintctl: cannot read the event from {from}: {e}");
                    return 2;
                }
            }
        }
    };
    let policy = match layered(config, policy_paths).and_then(|s| Policy::compile(&s)) {
        Ok(policy) => policy,
        Err(errors) => return report_errors(&errors, json_output),
    };
    let verdict = policy.evaluate(&event);
    if json_output {
        print_json(&verdict);
    } else {
        println!("decision: {}", verdict.decision);
        println!(
            "risk:     {} ({})",
            verdict.risk_score,
            quint_policy::risk::band(verdict.risk_score)
        );
        if !verdict.rule_ids.is_empty() {
            println!("rules:    {}", verdict.rule_ids.join(", "));
        }
        if let Some(reason) = &verdict.reason {
            println!("reason:   {reason}");
        }
    }
    0
}
