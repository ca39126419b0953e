//! Gemini CLI hooks: `session_id`, `cwd`, `hook_event_name` (`BeforeTool`, `AfterTool`,
//! `BeforeAgent`, `SessionStart`, …), `tool_name`, `tool_input`, `timestamp`. Answers are
//! `{"decision":"allow|deny","reason"}`; Gemini has no "ask", so ask is a deny that says why.

use quint_policy::Decision;
use serde_json::{json, Map, Value};

use super::{parse_tool_hook, proceed, Agent, EventNames, HookAnswer, HookCall, HookKind, Outcome};

const EVENTS: EventNames = EventNames {
    pre_tool: "BeforeTool",
    post_tool: "AfterTool",
    prompt: "BeforeAgent",
    session_start: "SessionStart",
    session_end: "SessionEnd",
};

pub(super) fn parse(object: &Map<String, Value>) -> Result<HookCall, String> {
    parse_tool_hook(Agent::GeminiCli, object, &EVENTS)
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
