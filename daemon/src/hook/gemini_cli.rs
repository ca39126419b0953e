//! Gemini CLI hooks: `session_id`, `cwd`, `hook_event_name` (`BeforeTool`, `AfterTool`,
//! `BeforeAgent`, `SessionStart`, …), `tool_name`, `tool_input`, `timestamp`. Answers are
//! `{"decision":"allow|deny","reason"}`; Gemini has no "ask", so ask is a deny that says why.

use quint_policy::{ActionType, Decision};
use serde_json::{json, Map, Value};

use super::{
    base_event, proceed, string_field, target_of, Agent, HookAnswer, HookCall, HookKind, Outcome,
};

pub(super) fn parse(object: &Map<String, Value>) -> Result<HookCall, String> {
    let name = string_field(object, "hook_event_name").ok_or("missing `hook_event_name`")?;
    let session = string_field(object, "session_id");
    let agent = Agent::GeminiCli;
    let (kind, event) = match name {
        "BeforeTool" | "AfterTool" => {
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
            let kind = if name == "BeforeTool" {
                HookKind::PreAction
            } else {
                HookKind::Observe
            };
            (kind, Some(event))
        }
        "BeforeAgent" => {
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

pub(super) fn answer(call: &HookCall, outcome: &Outcome) -> HookAnswer {
    if call.kind == HookKind::Observe {
        return proceed();
    }
    let stdout = match outcome.decision {
        Decision::Deny | Decision::Ask => json!({ "decision": "deny", "reason": outcome.message }),
        Decision::Allow | Decision::Alert => json!({ "decision": "allow" }),
    };
    HookAnswer {
        stdout: stdout.to_string(),
        stderr: String::new(),
        exit_code: 0,
    }
}
