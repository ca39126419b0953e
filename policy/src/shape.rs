//! Argument shaping: keep what a security reviewer needs (commands, paths, URLs, names, sizes)
//! and replace bodies (file contents, edit strings, prompts, tool output) with
//! `{sha256, bytes, lines}`, so neither source code nor pasted secrets are stored or sent.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Keys whose string values are bodies, across agents' tool inputs.
const BODY_KEYS: &[&str] = &[
    "content",
    "contents",
    "new_string",
    "old_string",
    "new_source",
    "new_str",
    "old_str",
    "file_text",
    "prompt",
    "text",
    "body",
    "output",
    "stdout",
    "stderr",
    "tool_output",
    "tool_response",
    "result",
    "patch",
    "diff",
    "input",
    "edits",
];

/// Commands are kept whole up to this size; policy needs to see them.
pub const MAX_COMMAND_CHARS: usize = 64 * 1024;
/// Any other kept string is capped to this size.
pub const MAX_FIELD_CHARS: usize = 4 * 1024;
const MAX_DEPTH: usize = 8;
const MAX_ITEMS: usize = 256;

/// The summary that stands in for a body.
pub fn body_summary(text: &str) -> Value {
    json!({
        "sha256": hex::encode(Sha256::digest(text.as_bytes())),
        "bytes": text.len(),
        "lines": text.lines().count(),
    })
}

/// Shapes a tool's arguments for storage: bodies summarised, fields capped. Idempotent.
/// Policy must be evaluated *before* this, on `summarize_bodies`, so caps cannot hide anything.
pub fn shape_arguments(arguments: &Value) -> Value {
    shape_value(None, arguments, 0, Limits::STORAGE)
}

/// Replaces bodies with summaries and keeps everything else whole: what a hook sends to quintd
/// and what policy sees.
pub fn summarize_bodies(arguments: &Value) -> Value {
    shape_value(None, arguments, 0, Limits::NONE)
}

/// Caps a stored string field (the envelope's `target`).
pub fn cap_field(text: &str) -> String {
    cap(text, MAX_COMMAND_CHARS)
}

#[derive(Clone, Copy)]
struct Limits {
    command: usize,
    field: usize,
    items: usize,
}

impl Limits {
    const STORAGE: Limits = Limits {
        command: MAX_COMMAND_CHARS,
        field: MAX_FIELD_CHARS,
        items: MAX_ITEMS,
    };
    const NONE: Limits = Limits {
        command: usize::MAX,
        field: usize::MAX,
        items: usize::MAX,
    };
}

fn shape_value(key: Option<&str>, value: &Value, depth: usize, limits: Limits) -> Value {
    match value {
        Value::String(text) => match key {
            Some(k) if BODY_KEYS.contains(&k) => body_summary(text),
            Some("command" | "cmd") => Value::String(cap(text, limits.command)),
            _ => Value::String(cap(text, limits.field)),
        },
        Value::Array(items) if depth < MAX_DEPTH => {
            let mut shaped: Vec<Value> = items
                .iter()
                .take(limits.items)
                .map(|v| shape_value(key, v, depth + 1, limits))
                .collect();
            if items.len() > limits.items {
                shaped.push(Value::String(format!(
                    "[{} more items]",
                    items.len() - limits.items
                )));
            }
            Value::Array(shaped)
        }
        Value::Object(fields) if depth < MAX_DEPTH => {
            let mut shaped = Map::new();
            for (k, v) in fields.iter().take(limits.items) {
                let body = BODY_KEYS.contains(&k.as_str());
                // Edit lists (`edits: [{old_string, new_string}]`) are bodies through and through.
                let child = if body && !v.is_string() && !is_summary(v) {
                    body_summary(&v.to_string())
                } else {
                    shape_value(Some(k), v, depth + 1, limits)
                };
                shaped.insert(k.clone(), child);
            }
            Value::Object(shaped)
        }
        Value::Array(_) | Value::Object(_) => body_summary(&value.to_string()),
        other => other.clone(),
    }
}

fn is_summary(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.len() == 3 && o.contains_key("sha256") && o.contains_key("bytes"))
}

fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated {} bytes]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_summaries_and_paths_stay() {
        let args = json!({
            "file_path": "/home/a/src/main.rs",
            "content": "fn main() {}\nprintln!(\"secret\");\n",
            "edits": [{"old_string": "a", "new_string": "b"}],
        });
        let shaped = shape_arguments(&args);
        assert_eq!(shaped["file_path"], "/home/a/src/main.rs");
        assert_eq!(shaped["content"]["bytes"], 33);
        assert_eq!(shaped["content"]["lines"], 2);
        assert!(shaped["edits"]["sha256"].is_string());
        assert!(!shaped.to_string().contains("secret"));
        assert_eq!(shape_arguments(&shaped), shaped);
    }

    #[test]
    fn long_fields_are_capped() {
        let shaped = shape_arguments(
            &json!({"description": "x".repeat(10_000), "command": "y".repeat(100)}),
        );
        assert!(shaped["description"]
            .as_str()
            .unwrap()
            .ends_with("[truncated 5904 bytes]"));
        assert_eq!(shaped["command"].as_str().unwrap().len(), 100);
    }
}
