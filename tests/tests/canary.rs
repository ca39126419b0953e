//! Canary secrets through every hook format and tool type, with quintd up and with it down
//! (sealed spool, then ingestion), and with quintd never started (one-off-key redaction).
//! Afterwards no byte sequence of any canary may exist anywhere under the state dir
//! (SQLite main file, WAL, spool, keys) or in quintd's debug log.
//!
//! Canaries are the labelled corpus's secrets that the built-in rules find (recall itself is
//! the corpus test's job); this test checks that every write path scrubs.

use std::path::Path;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use quint_e2e::{claude_pre_tool_use, QuintEnv};
use quint_policy::redact::corpus::{parse_lines, Positive};
use quint_policy::redact::Redactor;
use serde_json::{json, Value};

fn canaries() -> Vec<Positive> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/redaction/positives.jsonl"
    );
    let all: Vec<Positive> = parse_lines(&std::fs::read_to_string(path).unwrap()).unwrap();
    let redactor = Redactor::builtin(b"canary selection").unwrap();
    let total = all.len();
    let found: Vec<Positive> = all
        .into_iter()
        .filter(|p| !redactor.redact(&p.text).0.contains(&p.secret))
        .collect();
    println!("{} of {total} corpus secrets are canaries", found.len());
    found
}

/// One hook call per (agent, tool) shape, with the canary's text in the fields that tool uses.
fn hook_input(shape: usize, text: &str, session: &str, cwd: &Path) -> (&'static str, Vec<u8>) {
    let claude = |tool: &str, input: Value| claude_pre_tool_use(session, tool, input, cwd);
    match shape % SHAPES {
        0 => ("claude-code", claude("Bash", json!({"command": text, "description": text}))),
        1 => ("claude-code", claude("Write", json!({"file_path": "/home/dev/p/.env", "content": text}))),
        2 => ("claude-code", claude("Edit", json!({"file_path": "/home/dev/p/a.py", "old_string": text, "new_string": text}))),
        3 => ("claude-code", claude("MultiEdit", json!({"file_path": "/home/dev/p/a.py", "edits": [{"old_string": "x", "new_string": text}]}))),
        4 => ("claude-code", claude("WebFetch", json!({"url": "https://docs.rs/tokio", "prompt": text}))),
        5 => ("claude-code", claude("WebSearch", json!({"query": text}))),
        6 => ("claude-code", claude("mcp__db__query", json!({"sql": text, "note": text}))),
        7 => ("claude-code", json!({"session_id": session, "cwd": cwd, "hook_event_name": "UserPromptSubmit", "prompt": text}).to_string().into_bytes()),
        8 => ("cursor", json!({"conversation_id": session, "generation_id": "g", "hook_event_name": "beforeShellExecution", "command": text, "cwd": cwd, "workspace_roots": [cwd]}).to_string().into_bytes()),
        9 => ("cursor", json!({"conversation_id": session, "generation_id": "g", "hook_event_name": "beforeReadFile", "file_path": "/home/dev/p/config.yaml", "content": text, "workspace_roots": [cwd]}).to_string().into_bytes()),
        10 => ("cursor", json!({"conversation_id": session, "generation_id": "g", "hook_event_name": "beforeMCPExecution", "tool_name": "query", "tool_input": json!({"sql": text}).to_string(), "command": "db-mcp", "workspace_roots": [cwd]}).to_string().into_bytes()),
        11 => ("cursor", json!({"conversation_id": session, "generation_id": "g", "hook_event_name": "beforeSubmitPrompt", "prompt": text, "workspace_roots": [cwd]}).to_string().into_bytes()),
        12 => ("gemini-cli", json!({"session_id": session, "cwd": cwd, "hook_event_name": "BeforeTool", "tool_name": "run_shell_command", "tool_input": {"command": text}}).to_string().into_bytes()),
        13 => ("gemini-cli", json!({"session_id": session, "cwd": cwd, "hook_event_name": "BeforeTool", "tool_name": "write_file", "tool_input": {"file_path": "/home/dev/p/s.txt", "content": text}}).to_string().into_bytes()),
        14 => ("gemini-cli", json!({"session_id": session, "cwd": cwd, "hook_event_name": "BeforeTool", "tool_name": "web_fetch", "tool_input": {"prompt": text}}).to_string().into_bytes()),
        15 => ("codex", json!({"session_id": session, "cwd": cwd, "hook_event_name": "PreToolUse", "tool_name": "shell", "tool_input": {"command": ["bash", "-lc", text]}}).to_string().into_bytes()),
        _ => unreachable!(),
    }
}

const SHAPES: usize = 16;
/// Shapes whose text lands in a kept field rather than a body.
const KEPT_TEXT_SHAPES: &[usize] = &[0, 5, 6, 8, 10, 12, 15];

/// The byte sequences that must not appear: the secret, its JSON-escaped form, and each of
/// its lines of 16 bytes or more (a PEM body line on its own is still a leak).
fn needles(canaries: &[Positive]) -> Vec<(usize, Vec<u8>)> {
    let mut needles = Vec::new();
    for (index, canary) in canaries.iter().enumerate() {
        let secret = &canary.secret;
        needles.push((index, secret.as_bytes().to_vec()));
        let escaped = serde_json::to_string(secret).unwrap();
        needles.push((index, escaped.as_bytes()[1..escaped.len() - 1].to_vec()));
        for line in secret.split(['\n', '\\']).filter(|l| l.len() >= 16) {
            needles.push((index, line.as_bytes().to_vec()));
        }
    }
    needles
}

/// Every file under `roots`, and which canaries each holds.
fn leaks(roots: &[&Path], canaries: &[Positive]) -> Vec<String> {
    let needles = needles(canaries);
    let matcher = AhoCorasick::new(needles.iter().map(|(_, n)| n)).unwrap();
    let mut found = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let mut scanned = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        scanned += 1;
        for hit in matcher.find_iter(&bytes) {
            let canary = &canaries[needles[hit.pattern().as_usize()].0];
            found.push(format!(
                "{}: {} ({})",
                path.display(),
                canary.id,
                canary.family
            ));
        }
    }
    assert!(scanned >= 3, "scanned only {scanned} files under {roots:?}");
    found.sort();
    found.dedup();
    found
}

fn run_hooks(env: &QuintEnv, canaries: &[Positive], offset: usize) {
    let cwd = env.home.join("project");
    for (n, canary) in canaries.iter().enumerate() {
        let shape = n + offset;
        let (agent, input) =
            hook_input(shape, &canary.text, &format!("canary-{}", shape % 7), &cwd);
        let output = env.hook(agent, &input);
        assert!(
            output.status.code().is_some(),
            "hook for {} ({agent}, shape {}) was killed",
            canary.id,
            shape % SHAPES
        );
    }
}

#[test]
fn no_canary_byte_survives_anywhere_under_the_state_dir() {
    let canaries = canaries();
    let families: std::collections::BTreeSet<&str> =
        canaries.iter().map(|c| c.family.as_str()).collect();
    assert!(canaries.len() >= 200, "{} canaries", canaries.len());
    assert!(families.len() >= 40, "{} families", families.len());
    let (online, offline) = canaries.split_at(canaries.len() - 48);

    let env = QuintEnv::new();
    let daemon = env.start_daemon();
    run_hooks(&env, online, 0);
    let recorded = env.events(&[]);
    assert!(
        recorded.len() >= online.len(),
        "{} events for {} calls",
        recorded.len(),
        online.len()
    );
    // Where the text is kept (commands, queries, short MCP arguments) the secret must have
    // become a marker; elsewhere it went into a body summary.
    let kept = (0..online.len())
        .filter(|n| KEPT_TEXT_SHAPES.contains(&(n % SHAPES)))
        .count();
    let marked = recorded
        .iter()
        .filter(|e| e.to_string().contains("[REDACTED:"))
        .count();
    assert!(
        marked * 10 >= kept * 8,
        "only {marked} events carry a redaction marker; {kept} calls kept their text"
    );
    // quintd can say where a canary was seen, by fingerprint alone.
    let single_line = online
        .iter()
        .find(|c| !c.secret.contains('\n') && c.family == "github")
        .expect("a GitHub canary");
    let mut find = env
        .quintctl()
        .args(["audit", "find-secret", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    find.stdin
        .take()
        .unwrap()
        .write_all(single_line.secret.as_bytes())
        .unwrap();
    let found = find.wait_with_output().unwrap();
    let reply: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert!(
        !reply["sightings"].as_array().unwrap().is_empty(),
        "find-secret sees {}: {reply}",
        single_line.id
    );

    // While quintd runs the WAL holds recent pages: scan it too.
    let running = leaks(&[&env.state_dir], &canaries);
    assert!(
        running.is_empty(),
        "canaries on disk:\n{}",
        running.join("\n")
    );

    // quintd down: hooks decide with the snapshot and seal what they spool.
    assert_eq!(daemon.stop(), Some(0));
    run_hooks(&env, offline, online.len());
    assert!(
        env.spooled_files() >= offline.len(),
        "offline calls spooled"
    );
    let spooled = leaks(&[&env.state_dir.join("spool")], &canaries);
    assert!(
        spooled.is_empty(),
        "canaries in the spool:\n{}",
        spooled.join("\n")
    );

    let daemon = env.start_daemon();
    assert!(
        env.wait_for(Duration::from_secs(20), || env.spooled_files() == 0),
        "spool ingested"
    );
    assert!(env.events(&[]).len() >= canaries.len());
    assert_eq!(daemon.stop(), Some(0));
    let log = env.dir.path().join("quintd.log");
    assert!(
        std::fs::metadata(&log).unwrap().len() > 0,
        "quintd wrote a debug log"
    );
    let after = leaks(&[&env.state_dir, &log], &canaries);
    assert!(after.is_empty(), "canaries on disk:\n{}", after.join("\n"));
}

/// quintd has never run here, so no spool key is published: the hook redacts with a one-off
/// key before spooling.
#[test]
fn without_a_published_spool_key_the_hook_redacts_before_spooling() {
    let canaries: Vec<Positive> = canaries().into_iter().step_by(24).collect();
    let env = QuintEnv::new();
    run_hooks(&env, &canaries, 0);
    assert!(env.spooled_files() >= canaries.len());
    let found = leaks(&[&env.state_dir], &canaries);
    assert!(
        found.is_empty(),
        "canaries in the spool:\n{}",
        found.join("\n")
    );
}
