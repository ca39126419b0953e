//! `quintctl mcp wrap` with real MCP software from npm (tests/mcp, installed by scripts/test.sh):
//! the official SDK's client, @modelcontextprotocol/server-filesystem and server-everything, plus
//! small SDK servers for rug pulls and crashes. Raw JSON-RPC sessions cover what a well-behaved
//! SDK client never sends.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quint_e2e::{bin, QuintEnv};
use serde_json::{json, Value};

fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp")
}

/// Node and the npm packages, or `None` (with the reason printed) when they are not installed.
fn node() -> Option<String> {
    let node = std::env::var("QUINT_TEST_NODE").unwrap_or_else(|_| "node".into());
    let installed = mcp_dir()
        .join("node_modules/@modelcontextprotocol/sdk")
        .is_dir();
    let runs = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && runs {
        Some(node)
    } else if std::env::var_os("QUINT_TEST_NODE").is_some() {
        // scripts/test.sh installed them: their absence is a failure, not a reason to skip.
        panic!("QUINT_TEST_NODE is set but node or tests/mcp/node_modules does not work");
    } else {
        eprintln!("SKIPPED: node or tests/mcp/node_modules missing; scripts/test.sh installs them (npm ci --prefix tests/mcp)");
        None
    }
}

fn filesystem_server(node: &str, root: &Path) -> Vec<String> {
    vec![
        node.into(),
        mcp_dir()
            .join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
            .display()
            .to_string(),
        root.display().to_string(),
    ]
}

fn everything_server(node: &str) -> Vec<String> {
    vec![
        node.into(),
        mcp_dir()
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
            .display()
            .to_string(),
        "stdio".into(),
    ]
}

fn script(node: &str, name: &str) -> Vec<String> {
    vec![node.into(), mcp_dir().join(name).display().to_string()]
}

fn wrapped(name: &str, server: &[String]) -> Vec<String> {
    let mut command = vec![
        bin("quintctl").display().to_string(),
        "mcp".into(),
        "wrap".into(),
        "--name".into(),
        name.into(),
        "--agent".into(),
        "claude-code".into(),
        "--".into(),
    ];
    command.extend(server.iter().cloned());
    command
}

/// Runs the SDK client scenario against `server` and returns its JSON output.
fn sdk_client(env: &QuintEnv, node: &str, scenario: &[&str], server: &[String]) -> Value {
    let mut command = Command::new(node);
    // The client passes its environment on to the server it spawns (quintctl needs QUINT_*).
    for (key, value) in env.quintctl().get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
        .arg(mcp_dir().join("client.mjs"))
        .args(scenario)
        .arg("--")
        .args(server);
    let output = command.output().expect("run the SDK client");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn policy(env: &QuintEnv, name: &str, yaml: &str) {
    std::fs::write(env.policy_dir.join(name), yaml).unwrap();
}

const DENIED_DIR_RULE: &str = r#"rules:
  - id: test.mcp-denied-dir
    description: Files under denied/ are off limits to agents
    match:
      action: [mcp.call]
      path: ["**/denied/**"]
    verdict: deny
    severity: high
"#;

fn data_dir(env: &QuintEnv) -> PathBuf {
    let root = env.dir.path().join("data");
    std::fs::create_dir_all(root.join("denied")).unwrap();
    std::fs::write(root.join("ok.txt"), "hello allowed\n").unwrap();
    std::fs::write(root.join("denied/secret.txt"), "TOP SECRET\n").unwrap();
    root
}

#[test]
fn filesystem_server_works_as_without_the_wrapper_and_never_sees_a_denied_read() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    policy(&env, "test.yaml", DENIED_DIR_RULE);
    let _daemon = env.start_daemon();
    let root = data_dir(&env);
    let (allowed, denied) = (root.join("ok.txt"), root.join("denied/secret.txt"));
    let scenario = [
        "filesystem",
        allowed.to_str().unwrap(),
        denied.to_str().unwrap(),
    ];
    let direct = sdk_client(&env, &node, &scenario, &filesystem_server(&node, &root));
    // What reached the server, line by line, through a recording shim behind the wrapper.
    let received = env.dir.path().join("server-stdin.log");
    let mut recorded = script(&node, "record-stdin.mjs");
    recorded.push(received.display().to_string());
    recorded.push("--".into());
    recorded.extend(filesystem_server(&node, &root));
    let through = sdk_client(&env, &node, &scenario, &wrapped("fs", &recorded));

    for field in ["tools", "read_tool", "allowed_dirs_result", "allowed_read"] {
        assert_eq!(
            through[field], direct[field],
            "{field} differs through the wrapper"
        );
    }
    assert_eq!(direct["denied_read"]["content"][0]["text"], "TOP SECRET\n");
    let refusal = &through["denied_read"];
    assert_eq!(refusal["isError"], true, "{refusal}");
    let text = refusal["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("test.mcp-denied-dir"), "{text}");
    assert!(!text.contains("TOP SECRET"));

    let seen_by_server = std::fs::read_to_string(&received).unwrap();
    assert!(
        seen_by_server.contains("ok.txt"),
        "the recorder saw the traffic"
    );
    assert!(
        !seen_by_server.contains("secret.txt"),
        "the server received the denied call:\n{seen_by_server}"
    );

    let events = env.events(&[]);
    let denial = events
        .iter()
        .find(|e| e["decision"] == "deny")
        .expect("the denial is recorded");
    assert_eq!(denial["action_type"], "mcp.call");
    assert_eq!(denial["source"], "mcp");
    assert_eq!(denial["platform"], "claude-code");
    assert_eq!(denial["tool_name"], "mcp__fs__read_text_file");
    assert_eq!(denial["rule_ids"], json!(["test.mcp-denied-dir"]));
    assert_eq!(denial["labels"]["mcp_server"], "fs");
    assert!(events
        .iter()
        .any(|e| e["decision"] == "allow" && e["tool_name"] == "mcp__fs__read_text_file"));
}

#[test]
fn default_policy_stops_an_mcp_server_reading_ssh_keys_even_with_quintd_down() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    // No quintd: the wrapper decides with the built-in pack, as the hook does.
    let key = env.home.join(".ssh/id_rsa");
    let home = env.home.display().to_string();
    let mut session = RawSession::start(&env, "fs", &filesystem_server(&node, &env.home));
    session.initialize();
    let reply = session.request(
        "tools/call",
        json!({"name": "read_text_file", "arguments": {"path": key}}),
    );
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("credentials.ssh-private-keys"), "{text}");
    assert!(text.contains("quintd unreachable"), "{text}");
    assert!(!text.contains("fake"), "key contents leaked: {text}");
    // A harmless read in the same home still works.
    std::fs::write(env.home.join("notes.txt"), "notes\n").unwrap();
    let reply = session.request(
        "tools/call",
        json!({"name": "read_text_file", "arguments": {"path": format!("{home}/notes.txt")}}),
    );
    assert_eq!(reply["result"]["content"][0]["text"], "notes\n", "{reply}");
    let (code, _) = session.finish();
    assert_eq!(code, Some(0));
    assert!(env.spooled_files() >= 2, "decisions spooled for quintd");
}

#[test]
fn everything_server_passes_through_unchanged() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let server = everything_server(&node);
    let direct = sdk_client(&env, &node, &["everything"], &server);
    let through = sdk_client(
        &env,
        &node,
        &["everything"],
        &wrapped("everything", &server),
    );
    for (key, value) in direct.as_object().unwrap() {
        assert_eq!(&through[key], value, "`{key}` differs through the wrapper");
    }
    assert_eq!(through, direct);
    // Every tool call was decided and recorded.
    let calls = env
        .events(&[])
        .into_iter()
        .filter(|e| e["action_type"] == "mcp.call" && e["labels"]["mcp_server"] == "everything")
        .count();
    assert!(calls >= 5, "only {calls} calls recorded");
}

#[test]
fn a_changed_tool_description_raises_the_rug_pull_alert_and_blocks_until_approved() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let server = wrapped("weather", &script(&node, "rugpull-server.mjs"));
    let first = sdk_client(&env, &node, &["rugpull"], &server);
    assert!(first
        .to_string()
        .contains("Returns the weather for a city."));
    assert!(
        env.events(&[]).iter().all(|e| e["decision"] == "allow"),
        "the first listing only pins"
    );

    let mut session = RawSession::start_with(
        &env,
        "weather",
        &script(&node, "rugpull-server.mjs"),
        &[("RUGPULL_VERSION", "2")],
    );
    session.initialize();
    let listing = session.request("tools/list", json!({}));
    assert!(
        listing.to_string().contains("id_rsa"),
        "the client still gets the listing"
    );
    let alert = env
        .events(&["--decision", "alert"])
        .into_iter()
        .find(|e| {
            e["rule_ids"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("mcp.tool-definition-changed")))
        })
        .expect("rug-pull alert recorded");
    assert_eq!(alert["arguments"]["changed"], json!(["fetch_weather"]));
    assert!(session
        .stderr_so_far()
        .contains("quintctl mcp approve weather"));

    let call = json!({"name": "fetch_weather", "arguments": {"city": "Oslo"}});
    let blocked = session.request("tools/call", call.clone());
    assert_eq!(blocked["result"]["isError"], true, "{blocked}");
    assert!(blocked.to_string().contains("mcp.unapproved-tool"));
    let untouched = session.request(
        "tools/call",
        json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
    );
    assert_eq!(
        untouched["result"]["content"][0]["text"], "5",
        "{untouched}"
    );

    let listed = env.ctl(&["mcp", "list", "--json"]);
    let servers: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let weather = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "weather")
        .unwrap();
    assert!(weather["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "fetch_weather" && t["state"] == "changed"));

    let status = env.ctl(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let weather_state = status["mcp_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "weather")
        .unwrap();
    assert_eq!(weather_state["awaiting_approval"], json!(["fetch_weather"]));
    assert!(status["problems"]
        .to_string()
        .contains("quintctl mcp approve weather"));

    let approved = env.ctl(&["mcp", "approve", "weather"]);
    assert!(approved.status.success(), "{approved:?}");
    session.request("tools/list", json!({}));
    let allowed = session.request("tools/call", call);
    assert_ne!(allowed["result"]["isError"], true, "{allowed}");
    session.finish();

    let unknown = env.ctl(&["mcp", "approve", "nonesuch"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nonesuch"));
}

#[test]
fn malformed_lines_from_either_side_get_a_clear_message_and_nothing_hangs() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let mut session = RawSession::start(&env, "everything", &everything_server(&node));
    session.initialize();
    session.send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\": \n");
    let error = session.next_message();
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert_eq!(error["id"], Value::Null);
    assert!(session
        .stderr_so_far()
        .contains("malformed line from the client"));
    let pong = session.request("ping", json!({}));
    assert!(pong.get("result").is_some(), "still working: {pong}");
    let (code, _) = session.finish();
    assert_eq!(code, Some(0));

    // A server that prints garbage: passed on, and said so.
    let garbage = vec![
        "sh".to_string(),
        "-c".into(),
        "echo 'this is not json'; read line; echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}'"
            .into(),
    ];
    let mut session = RawSession::start(&env, "garbage", &garbage);
    assert_eq!(session.next_line(), "this is not json\n");
    let reply = session.request("ping", json!({}));
    assert_eq!(reply["id"], 1);
    let (code, stderr) = session.finish();
    assert_eq!(code, Some(0));
    assert!(stderr.contains("not JSON-RPC"), "{stderr}");
}

#[test]
fn a_server_that_crashes_mid_call_gets_the_call_answered_and_its_status_passed_on() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let mut session = RawSession::start(&env, "crashy", &script(&node, "crash-server.mjs"));
    session.initialize();
    let fine = session.request("tools/call", json!({"name": "ok", "arguments": {}}));
    assert_eq!(fine["result"]["content"][0]["text"], "fine");
    let crashed = session.request("tools/call", json!({"name": "crash", "arguments": {}}));
    assert_eq!(crashed["error"]["code"], -32000, "{crashed}");
    assert!(
        crashed.to_string().contains("exited (status 3)"),
        "{crashed}"
    );
    let (code, stderr) = session.finish();
    assert_eq!(code, Some(3), "the server's exit status is the wrapper's");
    assert!(stderr.contains("unanswered"), "{stderr}");
}

#[test]
fn a_client_that_disconnects_or_signals_stops_the_server() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    // Closing stdin: the server exits on its own and the wrapper with it.
    let mut session = RawSession::start(&env, "everything", &everything_server(&node));
    session.initialize();
    let started = Instant::now();
    let (code, _) = session.finish();
    assert_eq!(code, Some(0));
    assert!(started.elapsed() < Duration::from_secs(4));

    // A server that ignores its closed input is stopped with SIGTERM after the grace period.
    let stubborn = vec!["sleep".to_string(), "60".into()];
    let session = RawSession::start(&env, "stubborn", &stubborn);
    let started = Instant::now();
    let (code, stderr) = session.finish();
    assert_eq!(code, Some(128 + 15));
    assert!(started.elapsed() < Duration::from_secs(12));
    assert!(stderr.contains("did not exit"), "{stderr}");

    // SIGTERM to the wrapper reaches the server.
    let mut session = RawSession::start(&env, "everything", &everything_server(&node));
    session.initialize();
    let status = Command::new("kill")
        .args(["-TERM", &session.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let code = session.wait();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(
        matches!(code, Some(0) | Some(143)),
        "the server's own exit status after SIGTERM: {code:?}"
    );
}

const ASK_ECHO_RULE: &str = r#"rules:
  - id: test.ask-before-echo
    description: Echoing needs a person's approval
    match:
      action: [mcp.call]
      mcp_tool: echo
    verdict: ask
    severity: medium
"#;

#[test]
fn ask_becomes_a_question_to_the_user_when_the_client_can_ask_and_a_refusal_otherwise() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    policy(&env, "ask.yaml", ASK_ECHO_RULE);
    let _daemon = env.start_daemon();
    let echo = json!({"name": "echo", "arguments": {"message": "hi"}});

    // A client without elicitation: blocked, and told why.
    let mut plain = RawSession::start(&env, "everything", &everything_server(&node));
    plain.initialize();
    let refused = plain.request("tools/call", echo.clone());
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("test.ask-before-echo") && text.contains("cannot ask the user"),
        "{text}"
    );
    plain.finish();

    // A client that can ask: the question comes first; the answer decides.
    let mut asking = RawSession::start(&env, "everything", &everything_server(&node));
    asking.initialize_with(json!({"elicitation": {}}));
    for (answer, allowed) in [
        (
            json!({"action": "accept", "content": {"allow": true}}),
            true,
        ),
        (
            json!({"action": "accept", "content": {"allow": false}}),
            false,
        ),
        (json!({"action": "decline"}), false),
    ] {
        let id = asking.send_request("tools/call", echo.clone());
        // The server may announce things first (its tool list changes with our capabilities).
        let question = loop {
            let message = asking.next_message();
            if message.get("id").is_some() && message.get("method").is_some() {
                break message;
            }
        };
        assert_eq!(question["method"], "elicitation/create", "{question}");
        assert!(question["params"]["message"]
            .as_str()
            .unwrap()
            .contains("Echoing needs a person's approval"));
        let reply = json!({"jsonrpc": "2.0", "id": question["id"], "result": answer});
        asking.send_raw(format!("{reply}\n").as_bytes());
        let reply = asking.response_to(id);
        if allowed {
            assert_eq!(reply["result"]["content"][0]["text"], "Echo: hi", "{reply}");
        } else {
            assert_eq!(reply["result"]["isError"], true, "{reply}");
        }
    }
    asking.finish();
}

fn echo_through(env: &QuintEnv, node: &str, call: &Value) -> Value {
    let mut session = RawSession::start(env, "everything", &everything_server(node));
    session.initialize();
    let reply = session.request("tools/call", call.clone());
    session.finish();
    reply
}

#[test]
fn secrets_in_tool_answers_are_recorded_as_kinds_only_and_redacted_when_policy_says_so() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    let _daemon = env.start_daemon();
    let secret = "AKIAZ3MTQ7XPLE4WV2NB";
    let echo =
        json!({"name": "echo", "arguments": {"message": format!("aws_access_key_id = {secret}")}});
    let reply = echo_through(&env, &node, &echo);
    assert!(
        reply.to_string().contains(secret),
        "unchanged by default: {reply}"
    );

    policy(
        &env,
        "redact.yaml",
        r#"rules:
  - id: test.redact-everything-answers
    description: Answers from the everything server are redacted before the agent sees them
    match:
      action: [mcp.call]
      mcp_server: everything
    verdict: alert
    severity: low
    tags: [redact-response]
"#,
    );
    // quintd reloads policy files within seconds.
    let mut redacted = Value::Null;
    assert!(
        env.wait_for(Duration::from_secs(20), || {
            redacted = echo_through(&env, &node, &echo);
            !redacted.to_string().contains(secret)
        }),
        "the redact-response rule took effect"
    );
    let text = redacted["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("[REDACTED:"), "{text}");

    let responses: Vec<Value> = env
        .events(&[])
        .into_iter()
        .filter(|e| e["labels"]["mcp_phase"] == "response")
        .collect();
    assert!(
        !responses.is_empty(),
        "the secret in the answer is recorded"
    );
    assert!(responses[0]["arguments"]["response"]["secret_kinds"]
        .as_array()
        .is_some_and(|kinds| !kinds.is_empty()));
    let stored: String = env
        .database()
        .query_row("SELECT group_concat(payload, '') FROM actions", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!stored.contains(secret), "the secret reached quint.db");
}

#[test]
fn batches_are_split_only_around_a_denial_and_large_messages_pass_intact() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    policy(&env, "test.yaml", DENIED_DIR_RULE);
    let _daemon = env.start_daemon();
    let received = env.dir.path().join("server-stdin.log");
    let mut server = script(&node, "record-stdin.mjs");
    server.push(received.display().to_string());
    server.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        "cat > /dev/null".into(),
    ]);
    let mut session = RawSession::start(&env, "fs", &server);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "read_text_file", "arguments": {"path": "/srv/denied/x"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "read_text_file", "arguments": {"path": "/srv/open/y"}}},
        {"jsonrpc": "2.0", "method": "notifications/progress",
         "params": {"progressToken": 1, "progress": 1}}
    ]);
    session.send_raw(format!("{batch}\n").as_bytes());
    let refusal = session.next_message();
    assert_eq!(refusal["id"], 1);
    assert_eq!(refusal["result"]["isError"], true);
    assert!(env.wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&received).is_ok_and(|log| log.contains("/srv/open/y"))
    }));
    let log = std::fs::read_to_string(&received).unwrap();
    let forwarded: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        forwarded,
        json!([batch[1], batch[2]]),
        "the rest of the batch, as sent"
    );
    // A tools/call sent as a notification (no id) cannot be answered with a refusal, and a
    // lenient server might still run it: it is not forwarded at all.
    let sneaky = json!({"jsonrpc": "2.0", "method": "tools/call",
        "params": {"name": "read_text_file", "arguments": {"path": "/srv/open/sneaky"}}});
    session.send_raw(format!("{sneaky}\n").as_bytes());
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    session.send_raw(format!("{ping}\n").as_bytes());
    assert!(env.wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&received).is_ok_and(|log| log.contains("\"ping\""))
    }));
    assert!(!std::fs::read_to_string(&received)
        .unwrap()
        .contains("sneaky"));
    let (_, stderr) = session.finish();
    assert!(stderr.contains("without an id"), "{stderr}");

    // 6 MB through the wrapper and back.
    let mut session = RawSession::start(&env, "everything", &everything_server(&node));
    session.initialize();
    let big = "x".repeat(6 << 20);
    let reply = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"message": big}}),
    );
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.len(), big.len() + "Echo: ".len());
    assert!(text.ends_with(&big[big.len() - 10..]));
    session.finish();
}

#[test]
fn mcp_install_routes_an_agents_server_through_the_wrapper_and_uninstall_restores_the_file() {
    let Some(node) = node() else { return };
    let env = QuintEnv::new();
    policy(&env, "test.yaml", DENIED_DIR_RULE);
    let _daemon = env.start_daemon();
    let root = data_dir(&env);
    let server = filesystem_server(&node, &root);
    let config = env.home.join(".cursor/mcp.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let original = serde_json::to_string_pretty(&json!({"mcpServers": {
        "files": {"command": server[0], "args": server[1..], "env": {"LOG": "1"}},
        "remote": {"url": "https://mcp.example.com/sse"}
    }}))
    .unwrap();
    std::fs::write(&config, &original).unwrap();

    let dry = env.ctl(&["mcp", "install", "--agent", "cursor", "--dry-run"]);
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        original,
        "dry run wrote"
    );
    let installed = env.ctl(&["mcp", "install", "--agent", "cursor", "--json"]);
    assert!(installed.status.success(), "{installed:?}");
    let again = env.ctl(&["mcp", "install", "--agent", "cursor"]);
    assert!(again.status.success());
    let rewritten: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let entry = &rewritten["mcpServers"]["files"];
    assert_eq!(entry["env"], json!({"LOG": "1"}));
    assert_eq!(
        rewritten["mcpServers"]["remote"],
        json!({"url": "https://mcp.example.com/sse"})
    );
    let args: Vec<&str> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        &args[..7],
        ["mcp", "wrap", "--name", "files", "--agent", "cursor", "--"],
        "wrapped once"
    );

    // Start the server exactly as Cursor would, from the rewritten entry.
    let mut command = vec![entry["command"].as_str().unwrap().to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    let (allowed, denied) = (root.join("ok.txt"), root.join("denied/secret.txt"));
    let result = sdk_client(
        &env,
        &node,
        &[
            "filesystem",
            allowed.to_str().unwrap(),
            denied.to_str().unwrap(),
        ],
        &command,
    );
    assert_eq!(
        result["allowed_read"]["content"][0]["text"],
        "hello allowed\n"
    );
    assert_eq!(result["denied_read"]["isError"], true);
    let events = env.events(&["--decision", "deny"]);
    assert_eq!(events[0]["platform"], "cursor");
    assert_eq!(events[0]["labels"]["mcp_server"], "files");

    let removed = env.ctl(&["mcp", "uninstall", "--agent", "cursor"]);
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        original,
        "restored byte for byte"
    );
}

/// A JSON-RPC session with `quintctl mcp wrap`, line by line.
struct RawSession {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    stderr_seen: String,
    next_id: u64,
}

impl RawSession {
    fn start(env: &QuintEnv, name: &str, server: &[String]) -> RawSession {
        RawSession::start_with(env, name, server, &[])
    }

    fn start_with(
        env: &QuintEnv,
        name: &str,
        server: &[String],
        vars: &[(&str, &str)],
    ) -> RawSession {
        let mut child = env
            .quintctl()
            .args(["mcp", "wrap", "--name", name, "--"])
            .args(server)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quintctl mcp wrap");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = etx.send(line + "\n");
            }
        });
        RawSession {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stderr_seen: String::new(),
            next_id: 1,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line within 20 s; stderr: {}", self.stderr_so_far()))
    }

    fn next_message(&mut self) -> Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(format!("{line}\n").as_bytes());
        id
    }

    /// Reads until the response to `id`, skipping what the server sends meanwhile.
    fn response_to(&mut self, id: u64) -> Value {
        loop {
            let message = self.next_message();
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response_to(id)
    }

    fn initialize(&mut self) {
        self.initialize_with(json!({}));
    }

    fn initialize_with(&mut self, capabilities: Value) {
        let reply = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": capabilities,
                   "clientInfo": {"name": "quint-e2e", "version": "1"}}),
        );
        assert!(reply.get("result").is_some(), "initialize failed: {reply}");
        self.send_raw(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
    }

    fn stderr_so_far(&mut self) -> String {
        // Give the wrapper a moment to finish a line it is writing.
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push_str(&line);
        }
        self.stderr_seen.clone()
    }

    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the wrapper did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the client side and returns the wrapper's exit code and its whole stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let code = self.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => self.stderr_seen.push_str(&line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        (code, std::mem::take(&mut self.stderr_seen))
    }
}

impl Drop for RawSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
