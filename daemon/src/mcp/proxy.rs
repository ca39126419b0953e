//! The stdio proxy: the agent (client) on our stdin/stdout, the MCP server as our child.
//!
//! One thread carries client → server and decides on every `tools/call` before it is written
//! to the server; the main thread carries server → client and looks at the answers to the
//! requests it remembered (`tools/list` for pinning, `tools/call` for secrets). stderr is the
//! child's own, untouched. Lines the gateway does not inspect are forwarded byte for byte.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quint_policy::{ActionType, Decision, Event, Source};
use serde_json::value::RawValue;
use serde_json::Value;

use super::decide::Decider;
use super::message::{self, Line, Peek};
use crate::client::DaemonClient;
use crate::config::Config;
use crate::hook::{HookContext, Outcome};
use crate::protocol::Request;
use crate::store::mcp_pins::{ListingReply, PinState, ToolDefinition};

/// After the client hangs up, the server gets this long to exit on its own before SIGTERM,
/// and as long again before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// JSON-RPC's "server error" range: the server is gone or the gateway could not decide.
const SERVER_GONE: i64 = -32000;
const PARSE_ERROR: i64 = -32700;

pub struct WrapOptions {
    pub name: String,
    pub agent: Option<String>,
    pub command: Vec<OsString>,
}

/// What a forwarded request is waiting for.
enum Pending {
    /// `continued`: the request named a cursor (a later page of a listing).
    ToolsList {
        continued: bool,
    },
    ToolsCall {
        tool: String,
        redact: bool,
    },
    Other,
}

struct Shared {
    options: WrapOptions,
    decider: Decider,
    context: HookContext,
    /// The agent session the calls belong to (its process, looked up once).
    session_id: String,
    /// The directory the agent started the server in (relative paths resolve against it).
    cwd: Option<String>,
    /// Tools of a paginated listing, gathered until its last page.
    listing: Mutex<Vec<Value>>,
    pending: Mutex<HashMap<String, Pending>>,
    pins: Mutex<HashMap<String, PinState>>,
    stdout: Mutex<std::io::Stdout>,
    server_gone: AtomicBool,
    /// The client said it can ask its user questions (MCP elicitation).
    client_elicits: AtomicBool,
    /// Calls waiting for the user's answer, by the id of our question.
    held: Mutex<HashMap<String, Held>>,
    /// Built on first need: scanning answers for secrets (fingerprints stay quintd's).
    redactor: std::sync::OnceLock<Option<quint_policy::redact::Redactor>>,
}

impl Shared {
    fn to_client(&self, bytes: &[u8]) {
        let mut out = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
        // The client may be gone; there is nobody left to tell.
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }

    /// A tool's pin state: from this session's listing, else from quintd (a client may call a
    /// tool it listed in an earlier session), else `unlisted`.
    fn pin_state(&self, tool: &str) -> PinState {
        if let Some(state) = self
            .pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tool)
        {
            return *state;
        }
        let state = self
            .daemon()
            .and_then(|client| {
                client
                    .call::<PinState>(&Request::McpToolState {
                        server: self.options.name.clone(),
                        tool: tool.to_string(),
                    })
                    .ok()
            })
            .unwrap_or(PinState::Unlisted);
        self.pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tool.to_string(), state);
        state
    }

    fn remember(&self, id: String, pending: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, pending);
    }

    fn take_held(&self, question_id: &str) -> Option<Held> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(question_id)
    }

    /// Asks the user, through the client, whether a call policy flagged may go ahead. The
    /// question's id is a string the server never uses, so its answer is recognised as ours.
    fn ask_user(&self, why: &str, held: Held) {
        // 74 random bits: unguessable, so a server cannot answer (or pre-empt) the question in the user's name.
        let token = format!("quint-approval-{}", uuid::Uuid::now_v7());
        let id = message::id_key(&Value::String(token.clone()).to_string());
        let question = serde_json::json!({
            "jsonrpc": "2.0",
            "id": token,
            "method": "elicitation/create",
            "params": {
                "message": format!("{why}\n\nAllow this call to the MCP server {:?}?", self.options.name),
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "allow": {
                            "type": "boolean",
                            "title": "Allow this call",
                            "description": "Quint policy asks a person to approve this tool call"
                        }
                    },
                    "required": ["allow"]
                }
            }
        });
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, held);
        let mut line = question.to_string().into_bytes();
        line.push(b'\n');
        self.to_client(&line);
    }

    fn warn(&self, message: &str) {
        eprintln!("quint mcp[{}]: {message}", self.options.name);
    }

    fn redactor(&self) -> Option<&quint_policy::redact::Redactor> {
        self.redactor
            .get_or_init(|| match crate::redaction::one_off_redactor() {
                Ok(redactor) => Some(redactor),
                Err(e) => {
                    self.warn(&format!("cannot scan tool answers for secrets: {e}"));
                    None
                }
            })
            .as_ref()
    }

    fn base_event(&self, tool: Option<&str>) -> Event {
        let session_id = self.session_id.clone();
        let mut event = Event::new(
            Source::Mcp,
            self.options.agent.as_deref().unwrap_or("unknown"),
            ActionType::McpCall,
            "",
        );
        event.session_id = session_id;
        event.agent_pid = self.context.parent_pid;
        let server = &self.options.name;
        event.labels.insert("mcp_server".into(), server.clone());
        if let Some(tool) = tool {
            event.tool_name = Some(format!("mcp__{server}__{tool}"));
            event.target = Some(format!("{server}/{tool}"));
            event.labels.insert("mcp_tool".into(), tool.into());
        }
        if let Some(home) = &self.context.home {
            event.labels.insert("home".into(), home.clone());
        }
        if let Some(user) = &self.context.user {
            event.labels.insert("user".into(), user.clone());
        }
        if let Some(cwd) = &self.cwd {
            event.labels.insert("cwd".into(), cwd.clone());
        }
        event
    }

    fn decide(&self, event: Event) -> Outcome {
        self.decider.decide(event)
    }

    fn daemon(&self) -> Option<DaemonClient> {
        let config = self.decider.config()?;
        Some(DaemonClient::new(&config.socket, config.hook_timeout()))
    }
}

/// Runs the proxy until the server exits; returns the exit code to leave with (the server's).
pub fn run(options: WrapOptions, config: Option<Config>) -> i32 {
    let Some((program, args)) = options.command.split_first() else {
        eprintln!("quint mcp: no server command given (quintctl mcp wrap -- CMD ARGS…)");
        return 2;
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "quint mcp[{}]: cannot start {}: {e}",
                options.name,
                program.to_string_lossy()
            );
            return 127;
        }
    };
    let child_pid = child.id() as i32;
    // Spawned before the mask: the server must receive signals normally.
    forward_signals(child_pid);
    let server_in = child.stdin.take().expect("piped stdin");
    let server_out = child.stdout.take().expect("piped stdout");
    let context = HookContext {
        home: std::env::var("HOME").ok(),
        user: std::env::var("USER").ok(),
        parent_pid: Some(std::os::unix::process::parent_id()),
        parent_start_ms: None,
    };
    let shared = Arc::new(Shared {
        session_id: context.fallback_session_id(),
        cwd: std::env::current_dir()
            .ok()
            .map(|dir| dir.display().to_string()),
        context,
        decider: Decider::new(config, options.name.clone()),
        listing: Mutex::new(Vec::new()),
        options,
        pending: Mutex::new(HashMap::new()),
        pins: Mutex::new(HashMap::new()),
        stdout: Mutex::new(std::io::stdout()),
        server_gone: AtomicBool::new(false),
        client_elicits: AtomicBool::new(false),
        held: Mutex::new(HashMap::new()),
        redactor: std::sync::OnceLock::new(),
    });
    // Compiling the policy and the secret rules takes a while: done now, off the path of the
    // first call and the first answer.
    std::thread::Builder::new()
        .name("mcp-prepare".into())
        .spawn({
            let shared = shared.clone();
            move || {
                shared.decider.local_policy();
                shared.redactor();
            }
        })
        .expect("spawn the policy and redactor builder");
    let exited = Arc::new(AtomicBool::new(false));
    std::thread::Builder::new()
        .name("mcp-client-to-server".into())
        .spawn({
            let (shared, exited) = (shared.clone(), exited.clone());
            move || {
                client_to_server(&shared, server_in);
                shut_down_when_idle(child_pid, &exited);
            }
        })
        .expect("spawn the client reader");

    let mut reader = BufReader::new(server_out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => server_line(&shared, &line),
            Err(e) => {
                shared.warn(&format!("reading from the server failed: {e}"));
                break;
            }
        }
    }
    shared.server_gone.store(true, Ordering::SeqCst);
    let status = wait(&mut child);
    exited.store(true, Ordering::SeqCst);
    let code = exit_code(status);
    answer_abandoned(&shared, code);
    shared.decider.flush();
    code
}

fn wait(child: &mut Child) -> Option<std::process::ExitStatus> {
    child.wait().ok()
}

fn exit_code(status: Option<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        None => 1,
    }
}

/// Requests the server never answered get an error, so the client does not wait forever.
fn answer_abandoned(shared: &Shared, code: i32) {
    let abandoned: Vec<String> = shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(id, _)| id)
        .collect();
    let held: Vec<String> = shared
        .held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, held)| held.call_id)
        .collect();
    let abandoned: Vec<String> = abandoned.into_iter().chain(held).collect();
    if abandoned.is_empty() {
        return;
    }
    shared.warn(&format!(
        "the server exited (status {code}) with {} request(s) unanswered; answering them with an error",
        abandoned.len()
    ));
    for id in abandoned {
        shared.to_client(&message::error_line(
            &id,
            SERVER_GONE,
            &format!("the MCP server exited (status {code}) before answering"),
        ));
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this process and passes each on to the server, which
/// then exits; the proxy follows with its status.
fn forward_signals(child_pid: i32) {
    // SAFETY: sigset operations on a local set; the mask is set before other threads start, so
    // they inherit it and only the forwarding thread receives these signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let set = set;
        let _ = std::thread::Builder::new()
            .name("mcp-signals".into())
            .spawn(move || loop {
                let mut signal = 0;
                if libc::sigwait(&set, &mut signal) == 0 {
                    libc::kill(child_pid, signal);
                }
            });
    }
}

/// The client hung up and the server's stdin is closed: a well-behaved server exits now. One
/// that does not gets SIGTERM, then SIGKILL, so the proxy never outlives its client for long.
fn shut_down_when_idle(child_pid: i32, exited: &AtomicBool) {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        while std::time::Instant::now() < deadline {
            if exited.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited.load(Ordering::SeqCst) {
            eprintln!("quint mcp: the server did not exit after its input closed; sending signal {signal}");
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child_pid, signal) };
        }
    }
}

fn client_to_server(shared: &Shared, server_in: ChildStdin) {
    let mut server_in = Some(server_in);
    let stdin = std::io::stdin();
    let mut reader = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                shared.warn(&format!("reading from the client failed: {e}"));
                break;
            }
        }
        for bytes in client_line(shared, &line) {
            let written = match server_in.as_mut() {
                Some(pipe) => pipe.write_all(&bytes).and_then(|()| pipe.flush()),
                None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
            };
            if let Err(e) = written {
                if server_in.take().is_some() {
                    shared.warn(&format!("the server stopped reading its input: {e}"));
                }
                refuse_unsent(shared, &bytes);
            }
        }
    }
    // Closing the server's stdin is how MCP asks a stdio server to exit.
    drop(server_in);
}

/// What could not be written to a dead server is answered here rather than left hanging.
fn refuse_unsent(shared: &Shared, bytes: &[u8]) {
    let ids: Vec<String> = match message::parse(bytes) {
        Line::Single(peek) if peek.is_request() => peek.id_key().into_iter().collect(),
        Line::Batch(items) => items
            .iter()
            .filter_map(|item| message::peek_raw(item))
            .filter(Peek::is_request)
            .filter_map(|peek| peek.id_key())
            .collect(),
        _ => Vec::new(),
    };
    let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
    for id in ids {
        pending.remove(&id);
        shared.to_client(&message::error_line(
            &id,
            SERVER_GONE,
            "the MCP server is no longer running",
        ));
    }
}

/// Decides what of one client line goes to the server: the writes to make, in order (none
/// when the gateway answered everything itself).
fn client_line(shared: &Shared, line: &[u8]) -> Vec<Vec<u8>> {
    match message::parse(line) {
        Line::Blank => vec![line.to_vec()],
        Line::Malformed(problem) => {
            shared.warn(&format!(
                "a malformed line from the client ({} bytes) was not forwarded: {problem}",
                line.len()
            ));
            shared.to_client(&message::error_line(
                "null",
                PARSE_ERROR,
                &format!("Quint MCP gateway: not JSON-RPC: {problem}"),
            ));
            Vec::new()
        }
        Line::Single(peek) => match client_message(shared, &peek, line) {
            Verdict::Forward => vec![line.to_vec()],
            Verdict::Answered => Vec::new(),
            Verdict::Release(held) => vec![held],
        },
        Line::Batch(items) => {
            let mut kept: Vec<&RawValue> = Vec::with_capacity(items.len());
            let mut released = Vec::new();
            for item in &items {
                let verdict = match message::peek_raw(item) {
                    Some(peek) => client_message(shared, &peek, item.get().as_bytes()),
                    None => Verdict::Forward,
                };
                match verdict {
                    Verdict::Forward => kept.push(item),
                    Verdict::Answered => {}
                    Verdict::Release(held) => released.push(held),
                }
            }
            let mut writes = Vec::new();
            if kept.len() == items.len() {
                writes.push(line.to_vec());
            } else if !kept.is_empty() {
                let joined: Vec<&str> = kept.iter().map(|item| item.get()).collect();
                writes.push(format!("[{}]\n", joined.join(",")).into_bytes());
            }
            writes.extend(released);
            writes
        }
    }
}

enum Verdict {
    Forward,
    /// The gateway answered the client itself; the server never sees the message.
    Answered,
    /// The user approved a held call: send it (instead of the approval, which is ours).
    Release(Vec<u8>),
}

/// A call policy said to ask about, waiting for the user's answer to our elicitation.
struct Held {
    call_id: String,
    /// The call as the client sent it, newline-terminated.
    bytes: Vec<u8>,
    pending: Pending,
}

fn client_message(shared: &Shared, peek: &Peek, raw: &[u8]) -> Verdict {
    if peek.is_response() {
        return match peek.id_key().and_then(|id| shared.take_held(&id)) {
            Some(held) => user_answer(shared, peek, held),
            None => Verdict::Forward,
        };
    }
    if !peek.is_request() {
        if peek.method.as_deref() == Some("tools/call") {
            // A call without an id could still run on a lenient server, undecided: refuse it.
            shared.warn("a tools/call without an id (a notification) was not forwarded");
            return Verdict::Answered;
        }
        return Verdict::Forward;
    }
    let Some(id) = peek.id_key() else {
        return Verdict::Forward;
    };
    if shared.server_gone.load(Ordering::SeqCst) {
        shared.to_client(&message::error_line(
            &id,
            SERVER_GONE,
            "the MCP server is no longer running",
        ));
        return Verdict::Answered;
    }
    let method = peek.method.as_deref().unwrap_or_default();
    let pending = match method {
        "initialize" => {
            let elicits = peek
                .params
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .is_some_and(|p| p["capabilities"].get("elicitation").is_some());
            shared.client_elicits.store(elicits, Ordering::SeqCst);
            Pending::Other
        }
        "tools/list" => Pending::ToolsList {
            continued: peek
                .params
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .is_some_and(|p| p.get("cursor").is_some_and(|c| !c.is_null())),
        },
        "tools/call" => match call_decision(shared, peek) {
            Ok(pending) => pending,
            Err(Refusal::Ask { question, pending })
                if shared.client_elicits.load(Ordering::SeqCst) =>
            {
                let mut bytes = raw.trim_ascii_end().to_vec();
                bytes.push(b'\n');
                shared.ask_user(
                    &question,
                    Held {
                        call_id: id,
                        bytes,
                        pending,
                    },
                );
                return Verdict::Answered;
            }
            Err(refusal) => {
                shared.to_client(&message::result_line(
                    &id,
                    &message::tool_error_result(&refusal.text()),
                ));
                return Verdict::Answered;
            }
        },
        _ => Pending::Other,
    };
    if !matches!(pending, Pending::Other) {
        shared.remember(id, pending);
    }
    Verdict::Forward
}

/// The user's answer to "allow this call?": the call goes to the server only on an explicit
/// accept with `allow: true`.
fn user_answer(shared: &Shared, answer: &Peek, held: Held) -> Verdict {
    let result: Value = answer
        .result
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null);
    let approved = result["action"] == "accept" && result["content"]["allow"] == true;
    if approved {
        shared.remember(held.call_id, held.pending);
        return Verdict::Release(held.bytes);
    }
    let how = match result["action"].as_str() {
        Some("accept") => "the user did not allow it",
        Some("decline") => "the user declined",
        Some("cancel") => "the user dismissed the question",
        _ => "the client could not ask the user",
    };
    shared.to_client(&message::result_line(
        &held.call_id,
        &message::tool_error_result(&format!(
            "Quint policy: blocked: {how}, so the call was not made"
        )),
    ));
    Verdict::Answered
}

enum Refusal {
    Deny(String),
    /// Policy wants a person to decide; `question` explains why.
    Ask {
        question: String,
        pending: Pending,
    },
}

impl Refusal {
    fn text(&self) -> String {
        match self {
            Refusal::Deny(text) => text.clone(),
            Refusal::Ask { question, .. } => format!(
                "{question} — this client cannot ask the user to approve it, so the call was not made"
            ),
        }
    }
}

/// Evaluates a `tools/call`: `Ok` to forward it, `Err` to answer it (or ask the user first).
fn call_decision(shared: &Shared, peek: &Peek) -> Result<Pending, Refusal> {
    let mut params: Value = peek
        .params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null);
    let Some(tool) = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        // The server will refuse it; nothing to evaluate.
        return Ok(Pending::Other);
    };
    let tool = tool.as_str();
    let mut event = shared.base_event(Some(tool));
    // Taken, not copied: the call's bytes go to the server as they came.
    let arguments = match params.get_mut("arguments").map(Value::take) {
        Some(arguments @ Value::Object(_)) => arguments,
        Some(other) => serde_json::json!({ "value": other }),
        None => serde_json::json!({}),
    };
    // As the hook does: file bodies become summaries, so a large write stays under quintd's
    // request limit and is decided on what matters (paths, commands, URLs).
    event.arguments = quint_policy::shape::summarize_bodies(&arguments);
    let state = shared.pin_state(tool);
    event
        .labels
        .insert("mcp_tool_pin".into(), state.as_str().into());
    let outcome = shared.decider.decide_call(event);
    let pending = Pending::ToolsCall {
        tool: tool.to_string(),
        redact: outcome.tags.iter().any(|t| t == "redact-response"),
    };
    match outcome.decision {
        Decision::Allow | Decision::Alert => Ok(pending),
        Decision::Ask => Err(Refusal::Ask {
            question: outcome.message,
            pending,
        }),
        Decision::Deny => Err(Refusal::Deny(outcome.message)),
    }
}

fn server_line(shared: &Shared, line: &[u8]) {
    match message::parse(line) {
        Line::Single(peek) if peek.is_response() => {
            let replacement = answer(shared, &peek);
            match replacement {
                Some(result) => {
                    let id = peek.id.map(|id| id.get()).unwrap_or("null");
                    shared.to_client(&message::result_line(id, &result));
                }
                None => shared.to_client(line),
            }
        }
        Line::Batch(items) => {
            let mut changed = false;
            let mut rebuilt: Vec<String> = Vec::with_capacity(items.len());
            for item in &items {
                let replacement =
                    message::peek_raw(item)
                        .filter(Peek::is_response)
                        .and_then(|peek| {
                            let id = peek.id.map(|id| id.get().to_string());
                            answer(shared, &peek).map(|result| (id, result))
                        });
                match replacement {
                    Some((id, result)) => {
                        changed = true;
                        let id = id.unwrap_or_else(|| "null".into());
                        rebuilt.push(format!(
                            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}"
                        ));
                    }
                    None => rebuilt.push(item.get().to_string()),
                }
            }
            if changed {
                shared.to_client(format!("[{}]\n", rebuilt.join(",")).as_bytes());
            } else {
                shared.to_client(line);
            }
        }
        Line::Malformed(problem) => {
            shared.warn(&format!(
                "the server sent a line that is not JSON-RPC ({} bytes): {problem}; passed on unchanged",
                line.len()
            ));
            shared.to_client(line);
        }
        Line::Single(_) | Line::Blank => shared.to_client(line),
    }
}

/// Looks at the answer to a remembered request. `Some(result)` replaces the result the client
/// gets (a redacted tool answer); `None` passes the line on unchanged.
fn answer(shared: &Shared, peek: &Peek) -> Option<Value> {
    let id = peek.id_key()?;
    let pending = shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)?;
    let result = peek.result?;
    match pending {
        Pending::ToolsList { continued } => {
            let parsed: Value = serde_json::from_str(result.get()).ok()?;
            gather_listing(shared, &parsed, continued);
            None
        }
        Pending::ToolsCall { tool, redact } => scan_answer(shared, &tool, result, redact),
        Pending::Other => None,
    }
}

/// Gathers a listing's pages; the whole listing is checked against the pins at its last page,
/// so tools on page two of a server's first listing are pinned like those on page one.
fn gather_listing(shared: &Shared, result: &Value, continued: bool) {
    let Some(page) = result.get("tools").and_then(Value::as_array) else {
        return;
    };
    let mut listing = shared.listing.lock().unwrap_or_else(|e| e.into_inner());
    if !continued {
        listing.clear();
    }
    listing.extend(page.iter().cloned());
    if result.get("nextCursor").is_some_and(|c| !c.is_null()) {
        return;
    }
    let tools = std::mem::take(&mut *listing);
    drop(listing);
    pin_listing(shared, &tools);
}

/// Compares a whole `tools/list` with the pins in quintd and records a changed definition.
fn pin_listing(shared: &Shared, tools: &[Value]) {
    let definitions: Vec<ToolDefinition> = tools
        .iter()
        .filter_map(|tool| {
            Some(ToolDefinition {
                name: tool.get("name")?.as_str()?.to_string(),
                sha256: message::tool_fingerprint(tool),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect();
    let Some(client) = shared.daemon() else {
        return;
    };
    let reply: ListingReply = match client.call(&Request::McpListing {
        server: shared.options.name.clone(),
        tools: definitions,
        complete: true,
    }) {
        Ok(reply) => reply,
        Err(e) => {
            shared.warn(&format!(
                "tool definitions not checked against their pins: {e}"
            ));
            return;
        }
    };
    let mut pins = shared.pins.lock().unwrap_or_else(|e| e.into_inner());
    for tool in &reply.tools {
        pins.insert(tool.name.clone(), tool.state);
    }
    drop(pins);
    let named = |state: PinState| -> Vec<&str> {
        reply
            .tools
            .iter()
            .filter(|t| t.state == state)
            .map(|t| t.name.as_str())
            .collect()
    };
    let (changed, new) = (named(PinState::Changed), named(PinState::New));
    if changed.is_empty() && new.is_empty() {
        return;
    }
    shared.warn(&format!(
        "tool definitions differ from their pins (changed: {changed:?}, new: {new:?}); review them, then `quintctl mcp approve {}`",
        shared.options.name
    ));
    let mut event = shared.base_event(None);
    event.target = Some(format!("{}: tools/list", shared.options.name));
    let state = if changed.is_empty() { "new" } else { "changed" };
    event.labels.insert("mcp_tool_pin".into(), state.into());
    event.arguments = serde_json::json!({
        "changed": changed,
        "new": new,
        "removed": reply.removed,
    });
    shared.decide(event);
}

/// Scans a tool's answer for secrets. What is recorded is only which kinds were found; the
/// answer reaches the client unchanged unless a matching rule is tagged `redact-response`.
fn scan_answer(shared: &Shared, tool: &str, result: &RawValue, redact: bool) -> Option<Value> {
    let redactor = shared.redactor()?;
    let findings = redactor.find(result.get());
    if findings.is_empty() {
        return None;
    }
    let mut kinds: Vec<String> = findings.iter().map(|f| f.rule_id.clone()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut event = shared.base_event(Some(tool));
    event.labels.insert("mcp_phase".into(), "response".into());
    event.arguments = serde_json::json!({
        "response": { "bytes": result.get().len(), "secrets": findings.len(), "secret_kinds": kinds },
    });
    shared.decide(event);
    if !redact {
        return None;
    }
    let parsed: Value = serde_json::from_str(result.get()).ok()?;
    Some(redactor.redact_json(&parsed).0)
}
