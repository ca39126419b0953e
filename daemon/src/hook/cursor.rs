//! Cursor hooks: `conversation_id`, `generation_id`, `hook_event_name`, `workspace_roots`, and per
//! event `command`/`cwd` (beforeShellExecution), `tool_name`/`tool_input` (beforeMCPExecution),
//! `file_path`/`content` (beforeReadFile), `prompt` (beforeSubmitPrompt). Answers are
//! `{"permission","user_message","agent_message"}`, `{"decision","reason"}` for the generic
//! `preToolUse`, and `{"continue"}` for prompts. Messages go out in snake_case and camelCase,
//! because Cursor versions differ and ignore fields they do not know.

use quint_policy::{ActionType, Decision};
use serde_json::{json, Map, Value};

use super::{base_event, proceed, string_field, Agent, HookAnswer, HookCall, HookKind, Outcome};

pub(super) fn parse(object: &Map<String, Value>) -> Result<HookCall, String> {
    let name = string_field(object, "hook_event_name").ok_or("missing `hook_event_name`")?;
    let session = string_field(object, "conversation_id");
    let agent = Agent::Cursor;
    let (kind, event) = match name {
        "beforeShellExecution" => {
            let command = string_field(object, "command").ok_or("missing `command`")?;
            let mut event = base_event(agent, ActionType::ToolCall, session, name);
            event.tool_name = Some("Shell".into());
            event.target = Some(command.to_string());
            event.arguments = json!({ "command": command, "cwd": string_field(object, "cwd") });
            (HookKind::PreAction, Some(event))
        }
        "preToolUse" => {
            let tool = string_field(object, "tool_name").ok_or("missing `tool_name`")?;
            let mut event = base_event(agent, ActionType::ToolCall, session, name);
            event.tool_name = Some(tool.to_string());
            let input = match object.get("tool_input") {
                Some(Value::String(text)) => {
                    serde_json::from_str(text).unwrap_or_else(|_| json!({ "input": text }))
                }
                Some(value) => value.clone(),
                None => json!({}),
            };
            event.target = super::target_of(&input);
            event.arguments = input;
            (HookKind::PreAction, Some(event))
        }
        "beforeMCPExecution" => {
            let tool = string_field(object, "tool_name").ok_or("missing `tool_name`")?;
            let mut event = base_event(agent, ActionType::McpCall, session, name);
            let server = mcp_server_name(object);
            event.tool_name = Some(format!("mcp__{server}__{tool}"));
            event.target = Some(format!("{server}/{tool}"));
            event.labels.insert("mcp_server".into(), server);
            event.labels.insert("mcp_tool".into(), tool.to_string());
            // Cursor sends tool_input as a JSON string; keep it structured when it parses.
            event.arguments = match object.get("tool_input") {
                Some(Value::String(text)) => {
                    serde_json::from_str(text).unwrap_or_else(|_| json!({ "input": text }))
                }
                Some(value @ Value::Object(_)) => value.clone(),
                _ => json!({}),
            };
            (HookKind::PreAction, Some(event))
        }
        "beforeReadFile" => {
            let path = string_field(object, "file_path").ok_or("missing `file_path`")?;
            let mut event = base_event(agent, ActionType::ToolCall, session, name);
            event.tool_name = Some("Read".into());
            event.target = Some(path.to_string());
            event.arguments = json!({ "file_path": path, "content": string_field(object, "content").unwrap_or("") });
            (HookKind::PreAction, Some(event))
        }
        "afterFileEdit" => {
            let path = string_field(object, "file_path").unwrap_or("");
            let mut event = base_event(agent, ActionType::ToolCall, session, name);
            event.tool_name = Some("Write".into());
            event.target = Some(path.to_string());
            event.arguments = json!({ "file_path": path, "edits": object.get("edits").cloned().unwrap_or(Value::Null) });
            (HookKind::Observe, Some(event))
        }
        "beforeSubmitPrompt" => {
            let mut event = base_event(agent, ActionType::PromptSubmit, session, name);
            event.arguments = json!({ "prompt": string_field(object, "prompt").unwrap_or("") });
            (HookKind::Prompt, Some(event))
        }
        _ => (HookKind::Observe, None),
    };
    Ok(HookCall {
        kind,
        hook_event_name: name.to_string(),
        event,
    })
}

/// Cursor names the server by how it is reached; use the command's program or the URL host.
fn mcp_server_name(object: &Map<String, Value>) -> String {
    if let Some(url) = string_field(object, "url") {
        let host = url
            .split("://")
            .nth(1)
            .unwrap_or(url)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        if !host.is_empty() {
            return host.to_string();
        }
    }
    if let Some(command) = string_field(object, "command") {
        if let Some(program) = command.split_whitespace().last() {
            return program.rsplit('/').next().unwrap_or(program).to_string();
        }
    }
    "unknown".into()
}

/// `{"permission", …}` with the message in both casings.
pub(super) fn permission_json(permission: &str, message: &str) -> Value {
    if permission == "allow" {
        return json!({ "permission": "allow" });
    }
    json!({
        "permission": permission,
        "user_message": message,
        "agent_message": message,
        "userMessage": message,
        "agentMessage": message,
    })
}

pub(super) fn answer(call: &HookCall, outcome: &Outcome) -> HookAnswer {
    let stdout = match call.kind {
        HookKind::PreAction if call.hook_event_name == "preToolUse" => match outcome.decision {
            // The generic preToolUse knows only allow and deny.
            Decision::Deny | Decision::Ask => {
                json!({ "decision": "deny", "reason": outcome.message })
            }
            Decision::Allow | Decision::Alert => json!({ "decision": "allow" }),
        },
        HookKind::PreAction => {
            // beforeReadFile knows only allow and deny: an ask must not become an allow.
            let permission = match outcome.decision {
                Decision::Deny => "deny",
                Decision::Ask if call.hook_event_name == "beforeReadFile" => "deny",
                Decision::Ask => "ask",
                Decision::Allow | Decision::Alert => "allow",
            };
            permission_json(permission, &outcome.message)
        }
        HookKind::Prompt => match outcome.decision {
            Decision::Deny | Decision::Ask => {
                json!({ "continue": false, "user_message": outcome.message })
            }
            _ => json!({ "continue": true }),
        },
        HookKind::Observe => return proceed(),
    };
    HookAnswer {
        stdout: stdout.to_string(),
        stderr: String::new(),
        exit_code: 0,
    }
}
