//! `quintctl redact [--json]` and `quintctl audit find-secret` as a user runs them.

use std::io::Write;
use std::process::{Output, Stdio};

use quint_e2e::{claude_pre_tool_use, QuintEnv};
use serde_json::{json, Value};

fn with_stdin(env: &QuintEnv, args: &[&str], input: &str) -> Output {
    let mut child = env
        .quintctl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

const TEXT: &str = "deploy with STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc9 and postgres://app:Wq9Lm4zT2xRt@db:5432/app\n";

#[test]
fn redact_prints_the_text_quint_would_keep_and_its_findings() {
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();

    let text = with_stdin(&env, &["redact"], TEXT);
    assert!(text.status.success());
    let redacted = String::from_utf8(text.stdout).unwrap();
    assert!(
        redacted.starts_with("deploy with STRIPE_KEY=[REDACTED:stripe-secret-key:"),
        "{redacted}"
    );
    assert!(
        redacted.contains("postgres://app:[REDACTED:url-credentials:"),
        "{redacted}"
    );
    assert!(!redacted.contains("sk_live_4eC39") && !redacted.contains("Wq9Lm4zT2xRt"));

    let json = with_stdin(&env, &["redact", "--json"], TEXT);
    let findings: Value = serde_json::from_slice(&json.stdout).unwrap();
    let findings = findings.as_array().unwrap();
    assert_eq!(findings.len(), 2, "{findings:?}");
    let start = findings[0]["start"].as_u64().unwrap() as usize;
    let end = findings[0]["end"].as_u64().unwrap() as usize;
    assert_eq!(&TEXT[start..end], "sk_live_4eC39HqLyjWDarjtT1zdp7dc9");
    // The fingerprint is the device's: the same one find-secret computes.
    let device_fp = findings[0]["fingerprint"].as_str().unwrap().to_string();
    assert!(redacted.contains(&device_fp));

    // A secret that went through a hook is found by fingerprint; an unseen one is not.
    let cwd = env.home.join("project");
    env.hook(
        "claude-code",
        &claude_pre_tool_use("s1", "Bash", json!({"command": TEXT.trim()}), &cwd),
    );
    let seen = with_stdin(
        &env,
        &["audit", "find-secret"],
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc9\n",
    );
    let said = String::from_utf8_lossy(&seen.stdout);
    assert_eq!(seen.status.code(), Some(0), "{said}");
    assert!(
        said.starts_with("SEEN in 1 action(s)") && said.contains(&device_fp),
        "{said}"
    );
    let unseen = with_stdin(
        &env,
        &["audit", "find-secret"],
        "sk_live_neverUsedAnywhere0000000\n",
    );
    assert_eq!(unseen.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unseen.stdout).starts_with("not seen"));
}

#[test]
fn redact_without_quintd_says_its_fingerprints_are_not_the_devices() {
    let env = QuintEnv::new();
    let output = with_stdin(&env, &["redact"], TEXT);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("one-off key"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("sk_live_4eC39"));
    let find = with_stdin(
        &env,
        &["audit", "find-secret"],
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc9",
    );
    assert_eq!(find.status.code(), Some(2), "needs quintd and says so");
    assert!(String::from_utf8_lossy(&find.stderr).contains("must be running"));
}
