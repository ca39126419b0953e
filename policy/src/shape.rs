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
    "fact",
    "message",
    "messages",
    "instructions",
];

/// Keys whose values are kept whole up to `MAX_FIELD_CHARS` however long (paths, URLs,
/// patterns); any other string longer than `MAX_TEXT_CHARS` is treated as a body, because
/// unknown tools (MCP servers) put file contents and query results in arbitrary fields.
const KEPT_KEYS: &[&str] = &[
    "file_path",
    "path",
    "paths",
    "absolute_path",
    "notebook_path",
    "directory",
    "dir_path",
    "cwd",
    "url",
    "urls",
    "pattern",
    "glob",
    "include",
    "exclude",
    "query",
    "description",
    "tool_name",
    "server",
];

/// Commands are kept whole up to this size; policy needs to see them.
pub const MAX_COMMAND_CHARS: usize = 64 * 1024;
/// Paths, URLs and patterns are capped to this size.
pub const MAX_FIELD_CHARS: usize = 4 * 1024;
/// Other strings longer than this are bodies (stored as summaries).
pub const MAX_TEXT_CHARS: usize = 1024;
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

/// A prompt's summary also keeps the URLs in it: Gemini's `web_fetch` takes its URLs inside
/// the prompt, and which sites an agent was sent to is what a reviewer needs.
fn prompt_summary(text: &str) -> Value {
    let mut summary = body_summary(text);
    let urls: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')'))
        .filter(|word| word.starts_with("https://") || word.starts_with("http://"))
        .map(|url| url.trim_end_matches(['.', ',', ';', ':']))
        .take(MAX_URLS)
        .collect();
    if !urls.is_empty() {
        summary["urls"] = json!(urls);
    }
    summary
}

const MAX_URLS: usize = 32;
/// Room kept for `…[truncated N bytes]`.
const TRUNCATION_MARKER_BYTES: usize = 40;

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
    text: usize,
    items: usize,
}

impl Limits {
    const STORAGE: Limits = Limits {
        command: MAX_COMMAND_CHARS,
        field: MAX_FIELD_CHARS,
        text: MAX_TEXT_CHARS,
        items: MAX_ITEMS,
    };
    const NONE: Limits = Limits {
        command: usize::MAX,
        field: usize::MAX,
        text: usize::MAX,
        items: usize::MAX,
    };
}

fn shape_value(key: Option<&str>, value: &Value, depth: usize, limits: Limits) -> Value {
    match value {
        Value::String(text) => match key {
            Some("prompt") => prompt_summary(text),
            Some(k) if BODY_KEYS.contains(&k) => body_summary(text),
            Some("command" | "cmd") => Value::String(cap(text, limits.command)),
            Some(k) if KEPT_KEYS.contains(&k) => Value::String(cap(text, limits.field)),
            _ if text.len() > limits.text => body_summary(text),
            _ => Value::String(text.clone()),
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
    value.as_object().is_some_and(|o| {
        (3..=4).contains(&o.len())
            && o.contains_key("sha256")
            && o.contains_key("bytes")
            && o.contains_key("lines")
    })
}

/// Cuts `text` so the result, marker included, fits in `max` bytes (so capping is idempotent).
fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(TRUNCATION_MARKER_BYTES);
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
    fn long_fields_are_capped_and_long_unknown_text_is_a_body() {
        let shaped = shape_arguments(&json!({
            "description": "x".repeat(10_000),
            "command": "y".repeat(100),
            "sql": "select 1;\n".repeat(200),
        }));
        assert!(shaped["description"]
            .as_str()
            .unwrap()
            .ends_with("[truncated 5944 bytes]"));
        assert!(shaped["description"].as_str().unwrap().len() <= MAX_FIELD_CHARS);
        assert_eq!(shaped["command"].as_str().unwrap().len(), 100);
        assert_eq!(shaped["sql"]["bytes"], 2000);
        assert_eq!(shape_arguments(&shaped), shaped);
    }

    /// Every supported agent's tools: what a reviewer needs stays, bodies become summaries.
    /// `kept` fields must come back equal; `bodies` must become `{sha256, bytes, lines}`.
    #[test]
    fn each_agents_tools_keep_commands_paths_urls_and_summarise_bodies() {
        let body = "fn main() {\n    let key = \"BODY-MARKER\";\n}\n";
        let cases: &[(&str, Value, &[&str], &[&str])] = &[
            (
                "claude Bash",
                json!({"command": "cargo test", "description": "Run tests", "timeout": 60000}),
                &["command", "description", "timeout"],
                &[],
            ),
            (
                "claude Read",
                json!({"file_path": "/p/src/main.rs", "offset": 10, "limit": 50}),
                &["file_path", "offset", "limit"],
                &[],
            ),
            (
                "claude Write",
                json!({"file_path": "/p/src/main.rs", "content": body}),
                &["file_path"],
                &["content"],
            ),
            (
                "claude Edit",
                json!({"file_path": "/p/a.rs", "old_string": body, "new_string": body, "replace_all": false}),
                &["file_path", "replace_all"],
                &["old_string", "new_string"],
            ),
            (
                "claude MultiEdit",
                json!({"file_path": "/p/a.rs", "edits": [{"old_string": body, "new_string": body}]}),
                &["file_path"],
                &["edits"],
            ),
            (
                "claude NotebookEdit",
                json!({"notebook_path": "/p/n.ipynb", "new_source": body, "cell_id": "c1"}),
                &["notebook_path", "cell_id"],
                &["new_source"],
            ),
            (
                "claude WebFetch",
                json!({"url": "https://docs.rs/tokio", "prompt": body}),
                &["url"],
                &["prompt"],
            ),
            (
                "claude WebSearch",
                json!({"query": "tokio mpsc bounded", "allowed_domains": ["docs.rs"]}),
                &["query", "allowed_domains"],
                &[],
            ),
            (
                "claude Grep",
                json!({"pattern": "fn main", "path": "/p", "glob": "*.rs"}),
                &["pattern", "path", "glob"],
                &[],
            ),
            (
                "claude Task",
                json!({"description": "explore", "prompt": body, "subagent_type": "general"}),
                &["description", "subagent_type"],
                &["prompt"],
            ),
            (
                "mcp tool",
                json!({"owner": "acme", "repo": "api", "title": "Bug", "body": body, "files": [{"path": "a.rs", "content": body}]}),
                &["owner", "repo", "title"],
                &["body"],
            ),
            (
                "cursor shell",
                json!({"command": "npm test", "cwd": "/p"}),
                &["command", "cwd"],
                &[],
            ),
            (
                "cursor read",
                json!({"file_path": "/p/.env", "content": body}),
                &["file_path"],
                &["content"],
            ),
            (
                "cursor edit",
                json!({"file_path": "/p/a.ts", "edits": [{"old_string": body, "new_string": body}]}),
                &["file_path"],
                &["edits"],
            ),
            ("cursor prompt", json!({"prompt": body}), &[], &["prompt"]),
            (
                "gemini run_shell_command",
                json!({"command": "ls -la", "description": "list", "directory": "src"}),
                &["command", "description", "directory"],
                &[],
            ),
            (
                "gemini read_file",
                json!({"absolute_path": "/p/README.md", "offset": 0, "limit": 100}),
                &["absolute_path", "offset", "limit"],
                &[],
            ),
            (
                "gemini write_file",
                json!({"file_path": "/p/a.py", "content": body}),
                &["file_path"],
                &["content"],
            ),
            (
                "gemini replace",
                json!({"file_path": "/p/a.py", "old_string": body, "new_string": body, "expected_replacements": 1}),
                &["file_path", "expected_replacements"],
                &["old_string", "new_string"],
            ),
            (
                "gemini web_fetch",
                json!({"prompt": "Summarise https://example.org/a and https://docs.rs/b."}),
                &[],
                &["prompt"],
            ),
            (
                "gemini google_web_search",
                json!({"query": "rust regex lookaround"}),
                &["query"],
                &[],
            ),
            ("gemini save_memory", json!({"fact": body}), &[], &["fact"]),
            (
                "codex shell",
                json!({"command": ["bash", "-lc", "cargo build"], "workdir": "/p"}),
                &["command", "workdir"],
                &[],
            ),
            (
                "codex apply_patch",
                json!({"input": "*** Begin Patch\n*** Update File: a.rs\n"}),
                &[],
                &["input"],
            ),
        ];
        for (name, input, kept, bodies) in cases {
            let shaped = shape_arguments(input);
            for key in *kept {
                assert_eq!(shaped[key], input[key], "{name}: {key} kept");
            }
            for key in *bodies {
                assert!(
                    is_summary(&shaped[key]),
                    "{name}: {key} summarised: {shaped}"
                );
            }
            assert!(
                !shaped.to_string().contains("BODY-MARKER"),
                "{name}: {shaped}"
            );
            assert_eq!(shape_arguments(&shaped), shaped, "{name}: idempotent");
        }
        let fetch = shape_arguments(&cases[19].1);
        assert_eq!(
            fetch["prompt"]["urls"],
            json!(["https://example.org/a", "https://docs.rs/b"]),
            "a prompt keeps its URLs"
        );
    }
}
