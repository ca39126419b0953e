//! The process collector against the real kernel: the proc connector (root) sees a stand-in
//! agent's descendants, quintd puts them in the agent's session and decides on each exec.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use quint_e2e::QuintEnv;
use serde_json::Value;

/// Root, or the reason printed: the proc connector needs CAP_NET_ADMIN.
fn permitted() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        eprintln!("SKIPPED: the process collector's proc connector needs root (CAP_NET_ADMIN)");
    }
    root
}

/// Each quintd here watches every process on the machine, so two at once would both act on
/// each other's stand-in agents (and race to stop them): these tests take turns.
static ONE_COLLECTOR_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn collector_env() -> QuintEnv {
    let env = QuintEnv::new();
    std::fs::write(
        &env.config,
        format!(
            "policy_dir: {}\nlog_level: debug\ncollectors:\n  process: on\n",
            env.policy_dir.display()
        ),
    )
    .unwrap();
    env
}

/// A stand-in agent: a copy of the shell under an agent's executable name.
fn stand_in(env: &QuintEnv, name: &str) -> PathBuf {
    let dir = env.dir.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::copy("/bin/bash", &path).unwrap();
    path
}

/// The process events of one agent session, by its root pid: every quintd on the machine
/// sees every process, including other tests' stand-in agents.
fn session_events(env: &QuintEnv, root_pid: u32) -> Vec<Value> {
    env.events(&[])
        .into_iter()
        .filter(|e| e["source"] == "process" && e["agent_pid"] == root_pid)
        .collect()
}

fn wait_for_events(env: &QuintEnv, root_pid: u32, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    env.wait_for(Duration::from_secs(15), || {
        events = session_events(env, root_pid);
        check(&events)
    });
    events
}

fn target(event: &Value) -> &str {
    event["target"].as_str().unwrap_or_default()
}

/// A private quintd running the process collector with the proc connector, its turn held:
/// `None` (the reason printed) where that cannot run.
fn collector_running() -> Option<(
    std::sync::MutexGuard<'static, ()>,
    QuintEnv,
    quint_e2e::Daemon,
)> {
    let (turn, env) = collector_turn()?;
    let daemon = env.start_daemon();
    connector_active(&env).then_some((turn, env, daemon))
}

/// This test's turn and a private installation configured for the collector, quintd not yet
/// started (the test sets up files or policy first): `None` without root.
fn collector_turn() -> Option<(std::sync::MutexGuard<'static, ()>, QuintEnv)> {
    if !permitted() {
        return None;
    }
    let turn = ONE_COLLECTOR_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Some((turn, collector_env()))
}

/// The stand-in agent with the private installation's environment, as a real agent's hooks
/// would find it.
fn agent_with_quint_env(env: &QuintEnv, agent: &std::path::Path) -> Command {
    let mut command = Command::new(agent);
    for (key, value) in env.quintctl().get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command
}

/// The collector is running with the proc connector, or the reason printed.
fn connector_active(env: &QuintEnv) -> bool {
    let status = env.ctl(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let process = status["daemon"]["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "process")
        .unwrap()
        .clone();
    if process["state"] != "active" {
        eprintln!("SKIPPED: the proc connector is unavailable here: {process}");
        return false;
    }
    true
}

/// Runs the stand-in agent with a shell script and returns its pid (the session's root).
fn run_agent(agent: &std::path::Path, script: &str) -> (u32, Duration) {
    let started = std::time::Instant::now();
    let mut child = Command::new(agent).args(["-c", script]).spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    (pid, started.elapsed())
}

#[test]
fn an_agents_descendants_share_its_session_and_a_denied_exec_is_stopped() {
    let Some((_turn, env, _daemon)) = collector_running() else {
        return;
    };
    let key = env.home.join(".ssh/id_rsa");
    let claude = stand_in(&env, "claude");

    // A denied program is stopped: this shell would read the key, then linger for 5 s.
    let (root, took) = run_agent(
        &claude,
        &format!("sh -c 'cat {}; sleep 5'; true", key.display()),
    );
    let events = wait_for_events(&env, root, |events| {
        events.iter().any(|e| target(e).starts_with("sh -c"))
    });
    let start = events
        .iter()
        .find(|e| e["action_type"] == "session.start")
        .unwrap_or_else(|| panic!("no session start in {events:#?}"));
    assert_eq!(start["platform"], "claude-code");
    let shell = events
        .iter()
        .find(|e| target(e).starts_with("sh -c"))
        .unwrap();
    assert_eq!(shell["session_id"], start["session_id"]);
    assert_eq!(shell["action_type"], "process.exec");
    assert_eq!(shell["decision"], "deny", "{shell}");
    assert!(shell["rule_ids"]
        .as_array()
        .unwrap()
        .contains(&Value::from("credentials.ssh-private-keys")));
    assert_eq!(shell["labels"]["enforcement"], "SIGKILL", "{shell}");
    assert!(
        took < Duration::from_secs(4),
        "the shell was not stopped: {took:?}"
    );

    // Grandchildren carry the session; one that exits at once is still recorded (with what
    // /proc still had), and nothing else is.
    let (root, _) = run_agent(&claude, "sh -c '/bin/sleep 0.2; /bin/true'; true");
    let events = wait_for_events(&env, root, |events| {
        events
            .iter()
            .filter(|e| e["action_type"] == "process.exec")
            .count()
            >= 3
    });
    let session = events
        .iter()
        .find(|e| e["action_type"] == "session.start")
        .unwrap()["session_id"]
        .clone();
    let execs: Vec<&Value> = events
        .iter()
        .filter(|e| e["action_type"] == "process.exec")
        .collect();
    assert_eq!(execs.len(), 3, "sh, sleep and true: {execs:#?}");
    assert!(execs.iter().all(|e| e["session_id"] == session));
    assert!(execs.iter().any(|e| target(e) == "/bin/sleep 0.2"));
    assert!(execs
        .iter()
        .any(|e| target(e) == "/bin/true" || e["labels"]["partial"].is_string()));

    // What the denied shell had started before the kill landed was stopped too.
    let denied_root = shell["agent_pid"].as_u64().unwrap() as u32;
    for sleeper in session_events(&env, denied_root)
        .iter()
        .filter(|e| target(e) == "sleep 5")
    {
        assert!(sleeper["labels"]["enforcement"].is_string(), "{sleeper}");
    }

    // The same read from a shell outside any agent works and leaves no record.
    let mut outside = Command::new("/bin/bash")
        .args(["-c", &format!("cat {}; true", key.display())])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let outside_pid = outside.id().to_string();
    let mut printed = String::new();
    std::io::Read::read_to_string(outside.stdout.as_mut().unwrap(), &mut printed).unwrap();
    outside.wait().unwrap();
    assert!(printed.contains("PRIVATE KEY"));
    std::thread::sleep(Duration::from_millis(500));
    let traced: Vec<Value> = env
        .events(&[])
        .into_iter()
        .filter(|e| {
            e["labels"]["pid"] == outside_pid.as_str()
                || e["labels"]["ppid"] == outside_pid.as_str()
        })
        .collect();
    assert!(
        traced.is_empty(),
        "the non-agent shell was recorded: {traced:#?}"
    );
}

#[test]
fn an_interpreter_launched_agent_is_recognised_by_its_entry_script() {
    let node = std::env::var("QUINT_TEST_NODE").unwrap_or_else(|_| "node".into());
    if Command::new(&node).arg("--version").output().is_err() {
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    let Some((_turn, env)) = collector_turn() else {
        return;
    };
    let _daemon = env.start_daemon();
    let package = env
        .dir
        .path()
        .join("lib/node_modules/@anthropic-ai/claude-code");
    std::fs::create_dir_all(&package).unwrap();
    let cli = package.join("cli.js");
    std::fs::write(
        &cli,
        "require('child_process').execFileSync('/bin/sleep', ['0.2']);\n",
    )
    .unwrap();
    let mut agent = Command::new(&node).arg(&cli).spawn().unwrap();
    let root_pid = agent.id();
    assert!(agent.wait().unwrap().success());
    let events = wait_for_events(&env, root_pid, |events| {
        events.iter().any(|e| target(e) == "/bin/sleep 0.2")
    });
    let child = events
        .iter()
        .find(|e| target(e) == "/bin/sleep 0.2")
        .unwrap_or_else(|| panic!("the agent's child not recorded: {events:#?}"));
    assert_eq!(child["platform"], "claude-code");
    let start = events
        .iter()
        .find(|e| e["action_type"] == "session.start")
        .unwrap_or_else(|| {
            panic!(
                "no session start: {:#?}\n{}",
                env.events(&[]),
                env.daemon_log()
            )
        });
    assert_eq!(child["session_id"], start["session_id"]);
    assert!(target(start).contains(&cli.display().to_string()));
}

#[test]
fn an_agent_gets_eperm_on_a_credential_file_and_a_killed_quintd_leaves_nothing_stuck() {
    let Some((_turn, env, daemon)) = collector_running() else {
        return;
    };
    let key = env.home.join(".ssh/id_rsa");
    let claude = stand_in(&env, "claude");
    // The agent stays alive while cat runs, so cat is known as its child when it opens.
    let read_by_agent = |agent: &std::path::Path| {
        Command::new(agent)
            .args(["-c", &format!("cat {}; true", key.display())])
            .output()
            .unwrap()
    };
    let refused = read_by_agent(&claude);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("PRIVATE KEY"));
    let mut open_events = Vec::new();
    env.wait_for(Duration::from_secs(10), || {
        open_events = env
            .events(&[])
            .into_iter()
            .filter(|e| e["source"] == "file" && target(e) == key.display().to_string())
            .collect();
        !open_events.is_empty()
    });
    let open = open_events.first().expect("the refused open is recorded");
    assert_eq!(open["action_type"], "file.read");
    assert_eq!(open["decision"], "deny");
    assert_eq!(open["platform"], "claude-code");
    assert_eq!(open["labels"]["enforcement"], "open refused (EPERM)");

    // Outside any agent the same read works.
    let outside = Command::new("/bin/bash")
        .args(["-c", &format!("cat {}", key.display())])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&outside.stdout).contains("PRIVATE KEY"));

    // quintd killed with its marks in place: the kernel drops them, nobody hangs in open().
    daemon.kill9();
    let started = std::time::Instant::now();
    let after = read_by_agent(&claude);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&after.stdout).contains("PRIVATE KEY"));
}

#[test]
fn a_hook_call_from_inside_an_agent_joins_its_declared_session_to_the_observed_one() {
    let Some((_turn, env, _daemon)) = collector_running() else {
        return;
    };
    let claude = stand_in(&env, "claude");
    let input = env.dir.path().join("hook-input.json");
    std::fs::write(
        &input,
        quint_e2e::claude_pre_tool_use(
            "declared-session-42",
            "Bash",
            serde_json::json!({"command": "ls"}),
            env.dir.path(),
        ),
    )
    .unwrap();
    let script = format!(
        "{} hook claude-code < {} > /dev/null; /bin/sleep 0.3; true",
        quint_e2e::bin("quintctl").display(),
        input.display()
    );
    // The agent runs with the private installation's environment, as a real one would.
    let mut agent = agent_with_quint_env(&env, &claude);
    let mut child = agent.args(["-c", &script]).spawn().unwrap();
    let root = child.id();
    child.wait().unwrap();
    let events = wait_for_events(&env, root, |events| {
        events.iter().any(|e| target(e) == "/bin/sleep 0.3")
    });
    let sleep = events
        .iter()
        .find(|e| target(e) == "/bin/sleep 0.3")
        .unwrap_or_else(|| panic!("sleep not recorded: {events:#?}"));
    assert_eq!(sleep["session_id"], "declared-session-42", "{sleep}");
    assert!(sleep["labels"]["observed_session"].is_string());
    let hook = env
        .events(&[])
        .into_iter()
        .find(|e| e["source"] == "hook" && e["session_id"] == "declared-session-42")
        .expect("the hook event");
    assert_eq!(
        hook["labels"]["observed_session"],
        sleep["labels"]["observed_session"]
    );
    assert_eq!(hook["agent_pid"], root);
}

#[test]
fn an_undeclared_read_of_a_protected_file_or_exec_raises_a_divergence_alert() {
    let Some((_turn, env, _daemon)) = collector_running() else {
        return;
    };
    let ssh = env.home.join(".ssh");
    std::fs::write(ssh.join("known_hosts"), "github.com ssh-ed25519 AAAA\n").unwrap();
    std::fs::write(ssh.join("config"), "Host *\n").unwrap();
    let claude = stand_in(&env, "claude");
    // The agent declares (through its hook) that it reads known_hosts, reads it, then reads
    // config without declaring anything. Both reads are allowed by policy. Then it runs `cat`
    // (a program its declaration names) and `sleep` (which nothing names).
    let input = env.dir.path().join("hook-input.json");
    let declared = format!("cat {}", ssh.join("known_hosts").display());
    std::fs::write(
        &input,
        quint_e2e::claude_pre_tool_use(
            "declared-session-7",
            "Bash",
            serde_json::json!({ "command": declared }),
            env.dir.path(),
        ),
    )
    .unwrap();
    // The agent's own shell opens the files (`read` redirections): a process placed long
    // before, not a fresh `cat` the collector may not have placed yet on a busy machine
    // (docs/collectors.md, "How an open is answered").
    let script = format!(
        "{quintctl} hook claude-code < {input} > /dev/null; read -r k < {known}; read -r c < {config}; /bin/cat /dev/null; /bin/sleep 0.1; echo \"$c\"",
        quintctl = quint_e2e::bin("quintctl").display(),
        input = input.display(),
        known = ssh.join("known_hosts").display(),
        config = ssh.join("config").display(),
    );
    let mut agent = agent_with_quint_env(&env, &claude);
    // Without SHELL, bash looks its user up and reads /etc/passwd: guarded (writing it is
    // refused) but not a sensitive read, so neither recorded nor an alert.
    agent.env_remove("SHELL");
    let output = agent.args(["-c", &script]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Host *"),
        "{output:?}"
    );
    let mut alerts = Vec::new();
    env.wait_for(Duration::from_secs(10), || {
        alerts = env
            .events(&[])
            .into_iter()
            .filter(|e| {
                e["rule_ids"]
                    .as_array()
                    .is_some_and(|r| r.contains(&Value::from("quint.divergence")))
            })
            .collect();
        alerts.len() >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let alerts: Vec<Value> = env
        .events(&[])
        .into_iter()
        .filter(|e| {
            e["session_id"] == "declared-session-7"
                && e["rule_ids"]
                    .as_array()
                    .is_some_and(|r| r.contains(&Value::from("quint.divergence")))
        })
        .collect();
    assert_eq!(alerts.len(), 2, "the undeclared read and exec: {alerts:#?}");
    assert!(
        !env.events(&[]).iter().any(|e| target(e) == "/etc/passwd"),
        "a user lookup's read of /etc/passwd is not recorded"
    );
    let read = alerts
        .iter()
        .find(|a| a["action_type"] == "file.read")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert_eq!(read["target"], ssh.join("config").display().to_string());
    let exec = alerts
        .iter()
        .find(|a| a["action_type"] == "process.exec")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert_eq!(exec["target"], "/bin/sleep 0.1");
    for alert in &alerts {
        assert_eq!(alert["decision"], "alert");
        assert_eq!(alert["session_id"], "declared-session-7");
    }
}

#[test]
fn an_agent_cannot_modify_its_hook_settings_and_the_attempt_is_a_tamper_event() {
    let Some((_turn, env)) = collector_turn() else {
        return;
    };
    let settings = env.home.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let original = "{\"hooks\": {\"PreToolUse\": []}}\n";
    std::fs::write(&settings, original).unwrap();
    let _daemon = env.start_daemon();
    if !connector_active(&env) {
        return;
    }
    let claude = stand_in(&env, "claude");
    let attempt = Command::new(&claude)
        // A moment first: an agent edits its settings long after it started, and the collector
        // must have placed it by then (docs/collectors.md, "How an open is answered").
        .args([
            "-c",
            &format!("sleep 0.3; echo '{{}}' > {}; true", settings.display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&attempt.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), original);
    // Reading the file is fine.
    let read = Command::new(&claude)
        .args(["-c", &format!("cat {}; true", settings.display())])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&read.stdout), original);

    let mut tamper = Vec::new();
    env.wait_for(Duration::from_secs(10), || {
        tamper = env
            .events(&[])
            .into_iter()
            .filter(|e| e["action_type"] == "policy.tamper")
            .collect();
        !tamper.is_empty()
    });
    let event = tamper.first().expect("a policy.tamper event");
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["target"], settings.display().to_string());
    assert_eq!(event["source"], "file");
    // Outside any agent, the user edits their settings as always.
    std::process::Command::new("/bin/bash")
        .args(["-c", &format!("echo '{{}}' > {}", settings.display())])
        .status()
        .unwrap();
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{}\n");
}

/// The file events (source `file`) of one agent session, by its root pid.
fn file_events(env: &QuintEnv, root_pid: u32) -> Vec<Value> {
    env.events(&[])
        .into_iter()
        .filter(|e| e["source"] == "file" && e["agent_pid"] == root_pid)
        .collect()
}

#[test]
fn an_agents_creates_writes_renames_and_deletes_are_recorded_in_its_session() {
    let Some((_turn, env, _daemon)) = collector_running() else {
        return;
    };
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("README"), "hello\n").unwrap();
    let claude = stand_in(&env, "claude");
    let mut agent = Command::new(&claude)
        .args([
            "-c",
            "sleep 0.3; echo more >> README; echo draft > notes.txt; mv notes.txt final.txt; mkdir build; rm final.txt; true",
        ])
        .current_dir(&work)
        .spawn()
        .unwrap();
    let pid = agent.id();
    agent.wait().unwrap();
    // The user doing the same outside any agent leaves no record.
    Command::new("/bin/bash")
        .args([
            "-c",
            "echo x > mine.txt; mv mine.txt mine2.txt; rm mine2.txt",
        ])
        .current_dir(&work)
        .status()
        .unwrap();
    let path = |name: &str| work.join(name).display().to_string();
    let has = |events: &[Value], action: &str, change: &str, name: &str| {
        events.iter().any(|e| {
            e["action_type"] == action && e["labels"]["change"] == change && target(e) == path(name)
        })
    };
    let mut events = Vec::new();
    env.wait_for(Duration::from_secs(15), || {
        events = file_events(&env, pid);
        has(&events, "file.delete", "deleted", "final.txt")
    });
    assert!(
        has(&events, "file.write", "created", "notes.txt"),
        "{events:#?}"
    );
    assert!(
        has(&events, "file.write", "written", "README"),
        "{events:#?}"
    );
    let renamed = events
        .iter()
        .find(|e| e["action_type"] == "file.rename")
        .unwrap_or_else(|| panic!("a rename: {events:#?}"));
    assert_eq!(target(renamed), path("final.txt"));
    assert_eq!(renamed["labels"]["from"], path("notes.txt").as_str());
    let build = events
        .iter()
        .find(|e| target(e) == path("build"))
        .unwrap_or_else(|| panic!("the mkdir: {events:#?}"));
    assert_eq!(build["labels"]["directory"], "true");
    assert!(
        has(&events, "file.delete", "deleted", "final.txt"),
        "{events:#?}"
    );
    // Every change carries the session the agent's process events have.
    let session = &session_events(&env, pid)[0]["session_id"];
    assert!(
        events.iter().all(|e| &e["session_id"] == session),
        "{events:#?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let everything = env.events(&[]);
    assert!(
        !everything.iter().any(|e| target(e).contains("mine")),
        "the user's own changes were recorded"
    );
}

#[test]
fn paths_a_local_rule_protects_are_guarded_at_any_depth_and_quints_own_files_are_refused() {
    let Some((_turn, env)) = collector_turn() else {
        return;
    };
    let vault = env.home.join("vault/team/deep");
    std::fs::create_dir_all(&vault).unwrap();
    std::fs::write(vault.join("token"), "vault-token\n").unwrap();
    std::fs::write(
        env.policy_dir.join("vault.yaml"),
        r#"rules:
  - id: local.vault
    description: The team vault is not for agents
    match: {action: [file.read, file.write], path: "VAULT/**"}
    verdict: deny
    severity: high
"#
        .replace("VAULT", &env.home.join("vault").display().to_string()),
    )
    .unwrap();
    let _daemon = env.start_daemon();
    if !connector_active(&env) {
        return;
    }
    let claude = stand_in(&env, "claude");
    let token = vault.join("token");
    let key = env.state_dir.join("redaction.key");
    let snapshot = env.state_dir.join("policy-snapshot.json");
    let planted = env.policy_dir.join("allow-all.yaml");
    // The agent's own shell opens the files (builtins): a fresh `cat` can open before the
    // collector has placed it (docs/collectors.md, "How an open is answered").
    let attempt = agent_with_quint_env(&env, &claude)
        .args([
            "-c",
            &format!(
                "sleep 0.3; read -r line < {token}; echo \"$line\"; read -r line < {key}; echo rules: [] > {planted}; exec 3< {snapshot} && echo snapshot-read; true",
                token = token.display(),
                key = key.display(),
                planted = planted.display(),
                snapshot = snapshot.display(),
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&attempt.stdout);
    let stderr = String::from_utf8_lossy(&attempt.stderr);
    assert!(!stdout.contains("vault-token"), "{stdout}");
    assert_eq!(
        stderr.matches("Operation not permitted").count(),
        3,
        "{stderr}"
    );
    // The refused open had already created the file (fanotify holds opens, not creates); the
    // empty file is removed again.
    assert!(
        env.wait_for(Duration::from_secs(5), || !planted.exists()),
        "the agent planted a policy file"
    );
    // The snapshot hooks and the MCP gateway read is readable.
    assert!(stdout.contains("snapshot-read"), "{stdout} {stderr}");
    // Outside any agent the vault is the user's.
    let user = Command::new("/bin/cat").arg(&token).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&user.stdout), "vault-token\n");

    let mut refused = Vec::new();
    env.wait_for(Duration::from_secs(10), || {
        refused = env
            .events(&[])
            .into_iter()
            .filter(|e| e["source"] == "file" && e["decision"] == "deny")
            .collect();
        refused.len() >= 3
    });
    let rule_of = |path: &std::path::Path| {
        refused
            .iter()
            .find(|e| target(e) == path.display().to_string())
            .map(|e| (e["action_type"].clone(), e["rule_ids"][0].clone()))
    };
    assert_eq!(
        rule_of(&token),
        Some(("file.read".into(), "local.vault".into()))
    );
    assert_eq!(
        rule_of(&key),
        Some(("policy.tamper".into(), "tamper.quint-state-access".into()))
    );
    assert_eq!(
        rule_of(&planted),
        Some(("policy.tamper".into(), "tamper.quint-files-write".into()))
    );
    assert!(
        refused
            .iter()
            .any(|e| target(e) == planted.display().to_string()
                && e["labels"]["enforcement"] == "removed the empty file the refused open left"),
        "{refused:#?}"
    );
}

#[test]
fn a_decision_past_the_deadline_lets_the_open_through_and_is_counted() {
    let Some((_turn, env)) = collector_turn() else {
        return;
    };
    let ssh = env.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_rsa"), "KEY\n").unwrap();
    // Every decision takes longer than the guard waits.
    let _daemon = env.start_daemon_with(&[("QUINTD_TEST_DECISION_DELAY_MS", "600")]);
    if !connector_active(&env) {
        return;
    }
    let claude = stand_in(&env, "claude");
    let started = std::time::Instant::now();
    let read = Command::new(&claude)
        // The shell's own read: a `cat` naming the key would be stopped as an exec first.
        .args([
            "-c",
            &format!(
                "sleep 0.3; read -r l < {}; echo \"$l\"",
                ssh.join("id_rsa").display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&read.stdout), "KEY\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the open was held too long"
    );
    // The shell may open other guarded files on its way (bash reads /etc/passwd when SHELL is
    // unset), each late too and counted, though only opens policy has something to say about
    // are recorded: status counts at least what is on record as late.
    let late_opens = |env: &QuintEnv| -> Option<usize> {
        let status: Value = serde_json::from_slice(&env.ctl(&["status", "--json"]).stdout).unwrap();
        let file = status["daemon"]["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "file")
            .unwrap()
            .clone();
        let detail = file["detail"].as_str().unwrap();
        let before = detail
            .split(" opens allowed because the decision was late")
            .next()?;
        (before.len() < detail.len()).then(|| before.rsplit(' ').next()?.parse().ok())?
    };
    const LATE: &str = "none: decided after the deadline, the open went ahead";
    let mut recorded = Vec::new();
    let mut counted = None;
    env.wait_for(Duration::from_secs(10), || {
        recorded = env
            .events(&[])
            .into_iter()
            .filter(|e| e["source"] == "file" && e["labels"]["enforcement"] == LATE)
            .collect();
        counted = late_opens(&env);
        counted.is_some_and(|n| n >= recorded.len())
            && recorded.iter().any(|e| target(e).ends_with("id_rsa"))
    });
    assert!(
        recorded.iter().any(|e| target(e).ends_with("id_rsa")),
        "{recorded:#?}"
    );
    assert!(counted >= Some(recorded.len()), "{counted:?} {recorded:#?}");
}

#[test]
fn quintctl_sessions_shows_a_running_agents_process_tree() {
    let Some((_turn, env, _daemon)) = collector_running() else {
        return;
    };
    let claude = stand_in(&env, "claude");
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // agent → bash → sleep, running while we look.
    let mut agent = Command::new(&claude)
        .args(["-c", "/bin/bash -c '/bin/sleep 4; true'; true"])
        .current_dir(&work)
        .spawn()
        .unwrap();
    let root = agent.id();
    let mut mine = None;
    env.wait_for(Duration::from_secs(10), || {
        let listed: Value =
            serde_json::from_slice(&env.ctl(&["sessions", "--json"]).stdout).unwrap();
        mine = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["root_pid"] == root)
            .cloned();
        mine.as_ref().is_some_and(|s| {
            s["processes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["command"] == "/bin/sleep 4")
        })
    });
    let session = mine.expect("the stand-in's session is listed");
    assert_eq!(session["platform"], "claude-code");
    assert_eq!(session["workspace"], work.display().to_string());
    assert!(session["age_seconds"].as_u64().unwrap() < 60, "{session}");
    let processes = session["processes"].as_array().unwrap();
    let pid_of = |command: &str| {
        processes
            .iter()
            .find(|p| p["command"] == command)
            .unwrap_or_else(|| panic!("{command} in {processes:#?}"))["pid"]
            .clone()
    };
    let bash = pid_of("/bin/bash -c /bin/sleep 4; true");
    let sleep = processes
        .iter()
        .find(|p| p["command"] == "/bin/sleep 4")
        .unwrap();
    assert_eq!(sleep["ppid"], bash);
    // The same as a tree, and one session asked for by id.
    let text = env.ctl(&["sessions", session["session_id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains(&format!("root pid {root}")), "{text}");
    assert!(
        text.contains(&format!(
            "\n    {bash} /bin/bash -c /bin/sleep 4; true\n      {} /bin/sleep 4",
            sleep["pid"]
        )),
        "{text}"
    );
    let status = String::from_utf8_lossy(&env.ctl(&["status"]).stdout).to_string();
    assert!(status.contains(&format!("root pid {root}")), "{status}");
    let _ = agent.kill();
    let _ = agent.wait();
    let unknown = env.ctl(&["sessions", "no-such-session"]);
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn without_root_the_scan_and_notify_fallbacks_still_see_an_agent_and_its_changes() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: setpriv (util-linux) is needed to run quintd as another user");
        return;
    }
    let Some((_turn, env)) = collector_turn() else {
        return;
    };
    const NOBODY: u32 = 65534;
    // The scan, as where the proc connector is refused (the kernel here lets any user in).
    std::fs::write(
        &env.config,
        format!(
            "policy_dir: {}\nlog_level: debug\ncollectors:\n  process: scan\n",
            env.policy_dir.display()
        ),
    )
    .unwrap();
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let claude = stand_in(&env, "claude");
    // Everything of this installation belongs to the unprivileged user.
    let chowned = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(chowned.success());
    let _daemon = env.start_daemon_as(NOBODY);
    let status: Value = serde_json::from_slice(&env.ctl(&["status", "--json"]).stdout).unwrap();
    let state = |name: &str| {
        status["daemon"]["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(state("process")["state"], "fallback", "{status}");
    assert_eq!(state("file")["state"], "off", "{status}");
    assert_eq!(state("file-changes")["state"], "fallback", "{status}");

    // The agent lives past one scan (every 2 s), then changes its workspace.
    let mut agent = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(&claude)
        .args([
            "-c",
            "sleep 3; echo draft > notes.txt; mv notes.txt final.txt; mkdir build; rm final.txt; sleep 1",
        ])
        .current_dir(&work)
        .spawn()
        .unwrap();
    let setpriv_pid = agent.id();
    agent.wait().unwrap();
    let path = |name: &str| work.join(name).display().to_string();
    let mut changes = Vec::new();
    env.wait_for(Duration::from_secs(10), || {
        changes = env
            .events(&[])
            .into_iter()
            .filter(|e| e["source"] == "file")
            .collect();
        changes
            .iter()
            .any(|e| e["action_type"] == "file.delete" && target(e) == path("final.txt"))
    });
    let find = |action: &str, name: &str| {
        changes
            .iter()
            .find(|e| e["action_type"] == action && target(e) == path(name))
            .unwrap_or_else(|| panic!("{action} {name}: {changes:#?}"))
            .clone()
    };
    let created = find("file.write", "notes.txt");
    let renamed = find("file.rename", "final.txt");
    find("file.delete", "final.txt");
    assert_eq!(renamed["labels"]["from"], path("notes.txt").as_str());
    assert_eq!(find("file.write", "build")["labels"]["directory"], "true");
    // Placed by workspace: the agent's session (setpriv execs the agent in the same process).
    assert_eq!(created["agent_pid"], setpriv_pid, "{created}");
    assert_eq!(created["platform"], "claude-code");
    assert!(created["labels"]["attribution"]
        .as_str()
        .unwrap()
        .starts_with("workspace"));
}

#[test]
fn the_guard_never_holds_opens_of_quintds_database_even_where_policy_protects_it() {
    let Some((_turn, env)) = collector_turn() else {
        return;
    };
    // As the default pack's tamper rules do for /var/lib/quint in an installation.
    std::fs::write(
        env.policy_dir.join("state.yaml"),
        format!(
            r#"rules:
  - id: local.quint-state
    description: Quint's state is not for agents
    match: {{action: [file.read, file.write], path: "{}/**"}}
    verdict: deny
    severity: high
"#,
            env.state_dir.display()
        ),
    )
    .unwrap();
    let mut daemon = env.start_daemon();
    if !connector_active(&env) {
        return;
    }
    // Were the state directory marked, every open of the database's files (by anyone) would
    // hand quintd a descriptor, and closing it drops the POSIX locks SQLite holds on them in
    // quintd: the next connection from outside would then truncate the shared-memory index
    // under quintd's writer (a SIGBUS, seen in the throughput benchmark before this was
    // fixed). So the database is never held, only its secrets are, one by one: the agent opens
    // the database unhindered (it is owner-only; the stand-in runs as root) and no event is
    // recorded for it, while its read of the redaction key is refused.
    let claude = stand_in(&env, "claude");
    let database = env.state_dir.join("quint.db");
    let key = env.state_dir.join("redaction.key");
    let attempt = Command::new(&claude)
        .args([
            "-c",
            &format!(
                "sleep 0.3; exec 3< {} && echo database-opened; read -r k < {}; true",
                database.display(),
                key.display()
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&attempt.stdout);
    let stderr = String::from_utf8_lossy(&attempt.stderr);
    assert!(stdout.contains("database-opened"), "{stdout} {stderr}");
    assert_eq!(
        stderr.matches("Operation not permitted").count(),
        1,
        "{stderr}"
    );
    let mut refused = Vec::new();
    env.wait_for(Duration::from_secs(10), || {
        refused = env
            .events(&[])
            .into_iter()
            .filter(|e| e["source"] == "file")
            .collect();
        !refused.is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let guarded: Vec<String> = env
        .events(&[])
        .into_iter()
        .filter(|e| e["source"] == "file")
        .map(|e| target(&e).to_string())
        .collect();
    assert_eq!(
        guarded,
        [key.display().to_string()],
        "{:#?}",
        env.events(&[])
    );
    // And readers from outside come and go while quintd writes.
    for _ in 0..50 {
        let _: i64 = env
            .database()
            .query_row("SELECT count(*) FROM actions", [], |row| row.get(0))
            .unwrap();
    }
    assert_eq!(daemon.exited(), None, "quintd died:\n{}", env.daemon_log());
}
