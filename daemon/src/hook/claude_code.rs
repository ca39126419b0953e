//! Claude Code, and Codex, which speaks the same hook protocol.
//!
//! Input: `session_id`, `transcript_path`, `cwd`, `permission_mode`, `hook_event_name`, and for
//! tool events `tool_name`, `tool_input`, `tool_use_id`. A PreToolUse is answered with
//! `hookSpecificOutput.permissionDecision`. A plain allow prints `{}`: answering `allow` would
//! skip the agent's own permission prompt, which is not Quint's call to make, and Codex treats
//! unknown output fields as a failed hook. Codex also treats `ask` as a failed hook and runs the
//! tool, so for Codex an ask is answered as a deny that says approval is needed.

use quint_policy::Decision;
use serde_json::{json, Map, Value};

use super::{parse_tool_hook, proceed, Agent, EventNames, HookAnswer, HookCall, HookKind, Outcome};

const EVENTS: EventNames = EventNames {
    pre_tool: "PreToolUse",
    post_tool: "PostToolUse",
    prompt: "UserPromptSubmit",
    session_start: "SessionStart",
    session_end: "SessionEnd",
};

pub(super) fn parse(agent: Agent, object: &Map<String, Value>) -> Result<HookCall, String> {
    parse_tool_hook(agent, object, &EVENTS)
}

pub(super) fn answer(agent: Agent, call: &HookCall, outcome: &Outcome) -> HookAnswer {
    let permission = match (agent, outcome.decision) {
        (Agent::Codex, Decision::Ask) => "deny",
        (_, decision) => decision.as_str(),
    };
    let stdout = match (call.kind, outcome.decision) {
        (HookKind::PreAction, Decision::Deny | Decision::Ask) => json!({
            "hookSpecificOutput": {
                "hookEventName": call.hook_event_name,
                "permissionDecision": permission,
                "permissionDecisionReason": outcome.message,
            }
        }),
        (HookKind::Prompt, Decision::Deny | Decision::Ask) => json!({
            "decision": "block",
            "reason": outcome.message,
        }),
        _ => return proceed(),
    };
    HookAnswer {
        stdout: stdout.to_string(),
        stderr: String::new(),
        exit_code: 0,
    }
}
