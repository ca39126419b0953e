//! What a tool name means, across agents. Kept as data: each agent names the same capability
//! differently (`Bash`, `run_shell_command`, `Shell`), and rules should not have to list them.

use crate::envelope::ActionType;

/// The capability behind a tool name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Shell,
    Read,
    Write,
    Fetch,
    Mcp,
    Other,
}

/// Lowercased tool names per kind, for Claude Code, Codex, Cursor, Gemini CLI, Cline and others.
const TOOL_KINDS: &[(ToolKind, &[&str])] = &[
    (
        ToolKind::Shell,
        &[
            "bash",
            "shell",
            "run_shell_command",
            "exec_command",
            "local_shell",
            "shell_command",
            "execute_command",
            "run_terminal_cmd",
            "terminal",
            "container.exec",
        ],
    ),
    (
        ToolKind::Read,
        &[
            "read",
            "read_file",
            "read_many_files",
            "notebookread",
            "view",
            "view_file",
            "open_file",
            // Content search reads the files it searches.
            "grep",
            "search_file_content",
            "grep_search",
        ],
    ),
    (
        ToolKind::Write,
        &[
            "write",
            "edit",
            "multiedit",
            "notebookedit",
            "write_file",
            "replace",
            "edit_file",
            "apply_patch",
            "create_file",
            "write_to_file",
            "replace_in_file",
            "str_replace_editor",
        ],
    ),
    (
        ToolKind::Fetch,
        &[
            "webfetch",
            "web_fetch",
            "fetch",
            "websearch",
            "google_web_search",
            "web_search",
        ],
    ),
];

/// Classifies a tool name (case-insensitive). `mcp__server__tool` names are MCP tools.
pub fn classify(tool_name: &str) -> ToolKind {
    let lower = tool_name.to_ascii_lowercase();
    if lower.starts_with("mcp__") {
        return ToolKind::Mcp;
    }
    TOOL_KINDS
        .iter()
        .find(|(_, names)| names.contains(&lower.as_str()))
        .map(|(kind, _)| *kind)
        .unwrap_or(ToolKind::Other)
}

impl ToolKind {
    /// The action a call of this tool amounts to, so `action: [file.read]` in a rule covers a
    /// `Read` tool call as well as an observed `open()`.
    pub fn implied_action(self) -> Option<ActionType> {
        match self {
            ToolKind::Shell => Some(ActionType::ProcessExec),
            ToolKind::Read => Some(ActionType::FileRead),
            ToolKind::Write => Some(ActionType::FileWrite),
            ToolKind::Mcp => Some(ActionType::McpCall),
            ToolKind::Fetch | ToolKind::Other => None,
        }
    }
}

/// What an MCP tool's name says it does with what it is given. MCP servers name tools freely
/// (`read_text_file`, `getFileContents`, `run_query`), so the words of the name decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct McpToolVerbs {
    /// Runs the commands in its arguments (`executeCommand`, `run_shell`, `start_process`).
    pub runs_commands: bool,
    /// Changes the paths in its arguments (`write_file`, `move_file`); otherwise a tool given
    /// paths counts as reading them, the weakest claim.
    pub writes: bool,
}

pub fn mcp_tool_verbs(tool: &str) -> McpToolVerbs {
    match classify(tool) {
        ToolKind::Shell => {
            return McpToolVerbs {
                runs_commands: true,
                writes: false,
            }
        }
        ToolKind::Write => {
            return McpToolVerbs {
                runs_commands: false,
                writes: true,
            }
        }
        ToolKind::Read => return McpToolVerbs::default(),
        _ => {}
    }
    // `executeCommand`, `write-file`, `run_shell`: words split at case changes and punctuation.
    let mut spaced = String::with_capacity(tool.len() + 8);
    let mut previous_lower = false;
    for c in tool.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            spaced.push(' ');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        spaced.push(c.to_ascii_lowercase());
    }
    let words: Vec<&str> = spaced
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    McpToolVerbs {
        // Counts only when the arguments hold a command, so broad words cost nothing.
        runs_commands: has(&[
            "exec", "execute", "run", "shell", "terminal", "command", "spawn", "process", "start",
            "launch", "invoke", "bash", "sh", "cmd", "script", "eval",
        ]),
        writes: has(&[
            "write", "edit", "create", "move", "delete", "remove", "rename", "upload", "put",
            "save", "append", "patch", "replace", "mkdir",
        ]),
    }
}

#[cfg(test)]
mod mcp_name_tests {
    use super::*;

    #[test]
    fn mcp_tool_names_say_what_they_do_by_their_words() {
        let verbs = |runs_commands, writes| McpToolVerbs {
            runs_commands,
            writes,
        };
        assert_eq!(mcp_tool_verbs("executeCommand"), verbs(true, false));
        assert_eq!(mcp_tool_verbs("start_process"), verbs(true, false));
        assert_eq!(mcp_tool_verbs("writeFile"), verbs(false, true));
        assert_eq!(mcp_tool_verbs("move_file"), verbs(false, true));
        assert_eq!(mcp_tool_verbs("edit_script"), verbs(true, true));
        assert_eq!(mcp_tool_verbs("read_text_file"), verbs(false, false));
        assert_eq!(mcp_tool_verbs("getFileContents"), verbs(false, false));
    }
}

/// Splits `mcp__server__tool` into its server and tool.
pub fn split_mcp_tool_name(tool_name: &str) -> Option<(&str, &str)> {
    let rest = tool_name.strip_prefix("mcp__")?;
    let (server, tool) = rest.split_once("__")?;
    (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_across_agents() {
        assert_eq!(classify("Bash"), ToolKind::Shell);
        assert_eq!(classify("run_shell_command"), ToolKind::Shell);
        assert_eq!(classify("read_file"), ToolKind::Read);
        assert_eq!(classify("MultiEdit"), ToolKind::Write);
        assert_eq!(classify("mcp__github__create_issue"), ToolKind::Mcp);
        assert_eq!(classify("TodoWrite"), ToolKind::Other);
        assert_eq!(
            split_mcp_tool_name("mcp__github__create_issue"),
            Some(("github", "create_issue"))
        );
        assert_eq!(split_mcp_tool_name("mcp__x"), None);
    }
}
