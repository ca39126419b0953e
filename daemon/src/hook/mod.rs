//! Agent hooks: each agent's hook JSON in, an envelope out; a verdict in, the agent's own answer
//! format and exit-code convention out. One module per agent; the shared shape lives here.

mod claude_code;
mod cursor;
mod gemini_cli;

use std::fmt;
use std::str::FromStr;

use quint_policy::{ActionType, Decision, Event, Source};
use serde_json::{Map, Value};

/// Agents whose hook protocol `quintctl hook` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    ClaudeCode,
    Cursor,
    Codex,
    GeminiCli,
}

impl Agent {
    pub const ALL: [Agent; 4] = [
        Agent::ClaudeCode,
        Agent::Cursor,
        Agent::Codex,
        Agent::GeminiCli,
    ];

    /// The platform id used in events.
    pub fn id(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Cursor => "cursor",
            Agent::Codex => "codex",
            Agent::GeminiCli => "gemini-cli",
        }
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Agent {
    type Err = String;
    fn from_str(s: &str) -> Result<Agent, String> {
        Agent::ALL.into_iter().find(|a| a.id() == s).ok_or_else(|| {
            format!(
                "unknown agent `{s}`; quintctl hook supports: {}",
                Agent::ALL.map(Agent::id).join(", ")
            )
        })
    }
}

/// Whether the agent waits on this hook's answer to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// Before a tool runs: the answer can deny it.
    PreAction,
    /// Before a prompt is sent to the model: the answer can block it.
    Prompt,
    /// After the fact, or a lifecycle event: recorded, never blocking.
    Observe,
}

/// A parsed hook call.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub kind: HookKind,
    pub hook_event_name: String,
    /// `None` for events Quint does not record (e.g. `Stop`, `Notification`).
    pub event: Option<Event>,
}

/// What the process prints and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// The verdict as the agent should hear it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub message: String,
    /// Tags of the matching rules (the MCP gateway acts on `redact-response`).
    pub tags: Vec<String>,
}

/// Process facts of the hook invocation that the agent's JSON does not carry.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    pub home: Option<String>,
    pub user: Option<String>,
    pub parent_pid: Option<u32>,
    /// When the parent (the agent, or its shell) started, ms since the Unix epoch.
    pub parent_start_ms: Option<u64>,
}

impl HookContext {
    /// `{root_pid}-{start_unix_ms}` for agents that send no session id: the hook's parent
    /// process outlives each call, and its start time keeps a reused pid from joining sessions.
    pub fn fallback_session_id(&self) -> String {
        // Looked up only here: most agents send a session id, and reading /proc/stat is not free.
        let started = self
            .parent_start_ms
            .or_else(|| self.parent_pid.and_then(process_start_ms));
        format!("{}-{}", self.parent_pid.unwrap_or(0), started.unwrap_or(0))
    }
}

/// A process's start time in ms since the Unix epoch (Linux: /proc; elsewhere unknown).
pub fn process_start_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start_ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot_secs: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(boot_secs * 1000 + start_ticks * 1000 / ticks_per_sec)
}

/// Parses an agent's hook input into an event (undecided).
pub fn parse(agent: Agent, input: &Value, context: &HookContext) -> Result<HookCall, String> {
    let object = input.as_object().ok_or("hook input is not a JSON object")?;
    let call = match agent {
        Agent::ClaudeCode | Agent::Codex => claude_code::parse(agent, object)?,
        Agent::Cursor => cursor::parse(object)?,
        Agent::GeminiCli => gemini_cli::parse(object)?,
    };
    Ok(HookCall {
        event: call.event.map(|e| with_context(e, object, context)),
        ..call
    })
}

/// Formats a verdict in the agent's convention.
pub fn answer(agent: Agent, call: &HookCall, outcome: &Outcome) -> HookAnswer {
    match agent {
        Agent::ClaudeCode | Agent::Codex => claude_code::answer(agent, call, outcome),
        Agent::Cursor => cursor::answer(call, outcome),
        Agent::GeminiCli => gemini_cli::answer(call, outcome),
    }
}

/// The answer to input Quint could not understand: block (pre-action conventions) with the
/// reason, because letting an unreadable action through would be a silent allow.
pub fn refuse(agent: Option<Agent>, message: &str) -> HookAnswer {
    let text = format!("quint: {message}");
    match agent {
        // Cursor blocks on exit code 2 too; the JSON says why where it is read.
        Some(Agent::Cursor) => HookAnswer {
            stdout: cursor::permission_json("deny", &text).to_string(),
            stderr: format!("{text}\n"),
            exit_code: 2,
        },
        // Claude Code, Codex and Gemini CLI block on exit code 2 and show stderr.
        _ => HookAnswer {
            stdout: String::new(),
            stderr: format!("{text}\n"),
            exit_code: 2,
        },
    }
}

/// A neutral "carry on" answer that every agent accepts.
fn proceed() -> HookAnswer {
    HookAnswer {
        stdout: "{}".into(),
        stderr: String::new(),
        exit_code: 0,
    }
}

/// The event skeleton shared by all agents.
fn base_event(
    agent: Agent,
    action: ActionType,
    session_id: Option<&str>,
    hook_event_name: &str,
) -> Event {
    let session = session_id.filter(|s| !s.is_empty()).map(str::to_string);
    let mut event = Event::new(
        Source::Hook,
        agent.id(),
        action,
        session.as_deref().unwrap_or(""),
    );
    event
        .labels
        .insert("hook_event".into(), hook_event_name.to_string());
    event
}

/// Hook event names of the agents that share Claude Code's input shape (Claude Code, Codex,
/// Gemini CLI): `session_id`, `hook_event_name`, `tool_name`, `tool_input`, `tool_response`.
struct EventNames {
    pre_tool: &'static str,
    post_tool: &'static str,
    prompt: &'static str,
    session_start: &'static str,
    session_end: &'static str,
}

fn parse_tool_hook(
    agent: Agent,
    object: &Map<String, Value>,
    names: &EventNames,
) -> Result<HookCall, String> {
    let name = string_field(object, "hook_event_name").ok_or("missing `hook_event_name`")?;
    let session = string_field(object, "session_id");
    let (kind, event) = if name == names.pre_tool || name == names.post_tool {
        let tool = string_field(object, "tool_name").ok_or("missing `tool_name`")?;
        let mut event = base_event(agent, ActionType::ToolCall, session, name);
        event.tool_name = Some(tool.to_string());
        let input = object
            .get("tool_input")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        event.target = target_of(&input);
        event.arguments = input;
        if let (Some(response), Some(arguments)) =
            (object.get("tool_response"), event.arguments.as_object_mut())
        {
            arguments.insert("tool_response".into(), response.clone());
        }
        let kind = if name == names.pre_tool {
            HookKind::PreAction
        } else {
            HookKind::Observe
        };
        (kind, Some(event))
    } else if name == names.prompt {
        let mut event = base_event(agent, ActionType::PromptSubmit, session, name);
        event.arguments =
            serde_json::json!({ "prompt": string_field(object, "prompt").unwrap_or("") });
        (HookKind::Prompt, Some(event))
    } else if name == names.session_start {
        (
            HookKind::Observe,
            Some(base_event(agent, ActionType::SessionStart, session, name)),
        )
    } else if name == names.session_end {
        (
            HookKind::Observe,
            Some(base_event(agent, ActionType::SessionEnd, session, name)),
        )
    } else {
        (HookKind::Observe, None)
    };
    Ok(HookCall {
        kind,
        hook_event_name: name.to_string(),
        event,
    })
}

/// The main object of a tool call: command line, path, URL or pattern.
fn target_of(tool_input: &Value) -> Option<String> {
    let object = tool_input.as_object()?;
    for key in [
        "command",
        "cmd",
        "file_path",
        "path",
        "notebook_path",
        "absolute_path",
        "url",
        "pattern",
        "query",
    ] {
        match object.get(key) {
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            Some(Value::Array(argv)) if !argv.is_empty() => {
                return Some(
                    argv.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
            _ => {}
        }
    }
    None
}

fn string_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Adds what every event gets from the hook's process and the common input fields.
fn with_context(mut event: Event, object: &Map<String, Value>, context: &HookContext) -> Event {
    if let Some(cwd) = string_field(object, "cwd").filter(|c| !c.is_empty()) {
        event.labels.insert("cwd".into(), cwd.to_string());
    }
    for key in [
        "permission_mode",
        "transcript_path",
        "tool_use_id",
        "generation_id",
        "model",
    ] {
        if let Some(value) = string_field(object, key) {
            event
                .labels
                .insert(key.into(), value.chars().take(512).collect());
        }
    }
    if let Some(home) = &context.home {
        event.labels.insert("home".into(), home.clone());
    }
    if let Some(user) = &context.user {
        event.labels.insert("user".into(), user.clone());
    }
    if let Some(pid) = context.parent_pid {
        event
            .labels
            .insert("hook_parent_pid".into(), pid.to_string());
    }
    if event.session_id.is_empty() {
        // No agent session id: fall back to the agent process, which outlives each hook call.
        event.session_id = context.fallback_session_id();
    }
    // Bodies are summarised here (requests stay small, contents never leave the process);
    // caps are applied by quintd only after policy has seen everything.
    event.arguments = quint_policy::shape::summarize_bodies(&event.arguments);
    event
}

/// The short text an agent shows when Quint blocks or questions an action.
pub fn explain(
    decision: Decision,
    rule_ids: &[String],
    reason: Option<&str>,
    offline: bool,
) -> String {
    let verb = match decision {
        Decision::Deny => "blocked",
        Decision::Ask => "needs approval",
        Decision::Alert => "allowed, flagged",
        Decision::Allow => "allowed",
    };
    let mut text = format!("Quint policy: {verb}");
    if let Some(reason) = reason {
        text.push_str(&format!(": {reason}"));
    }
    if !rule_ids.is_empty() {
        text.push_str(&format!(" [rule {}]", rule_ids.join(", ")));
    }
    if offline {
        text.push_str(" (quintd unreachable; decided with the local policy snapshot)");
    }
    text
}

#[cfg(test)]
mod tests;
