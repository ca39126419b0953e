//! Claude Code, and Codex, which speaks the same hook protocol.
//!
//! Input: `session_id`, `transcript_path`, `cwd`, `permission_mode`, `hook_event_name`, and for
//! tool events `tool_name`, `tool_input`, `tool_use_id`. A PreToolUse is answered with
//! `hookSpecificOutput.permissionDecision`. A plain allow prints `{}`: answering `allow` would
//! skip the agent's own permission prompt, which is not Quint's call to make, and Codex treats
//! unknown output fields as a failed hook. Codex also treats `ask` as a failed hook and runs the
//! tool, so for Codex an ask is answered as a deny that says approval is needed.

use quint_policy::{ActionType, Decision};
use serde_json::{json, Map, Value};

use super::{
    base_event, proceed, string_field, target_of, Agent, HookAnswer, HookCall, HookKind, Outcome,
};

pub(super) fn parse(agent: Agent, object: &Map<String, Value>) -> Result<HookCall, String> {
    let name = string_field(object, "hook_event_name").ok_or("missing `hook_event_name`")?;
    let session = string_field(object, "session_id");
    let (kind, event) = match name {
        "PreToolUse" | "PostToolUse" => {
            let tool = string_field(object, "tool_name").ok_or("missing `tool_name`")?;
            let mut event = base_event(agent, ActionType::ToolCall, session, name);
            event.tool_name = Some(tool.to_string());
            let input = object
                .get("tool_input")
                .cloned()
                .unwrap_or_else(|| json!({}));
            event.target = target_of(&input);
            event.arguments = input;
            if let Some(response) = object.get("tool_response") {
                event.arguments["tool_response"] = response.clone();
            }
            let kind = if name == "PreToolUse" {
                HookKind::PreAction
            } else {
                HookKind::Observe
            };
            (kind, Some(event))
        }
        "UserPromptSubmit" => {
            let mut event = base_event(agent, ActionType::PromptSubmit, session, name);
            event.arguments = json!({ "prompt": string_field(object, "prompt").unwrap_or("") });
            (HookKind::Prompt, Some(event))
        }
        "SessionStart" => (
            HookKind::Observe,
            Some(base_event(agent, ActionType::SessionStart, session, name)),
        ),
        "SessionEnd" => (
            HookKind::Observe,
            Some(base_event(agent, ActionType::SessionEnd, session, name)),
        ),
        _ => (HookKind::Observe, None),
    };
    Ok(HookCall {
        kind,
        hook_event_name: name.to_string(),
        event,
    })
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
