//! `quintctl mcp install|uninstall`: routes agents' stdio MCP servers through `quintctl mcp wrap`.
//!
//! The wrapper sees each `tools/call` before the server does, so policy covers MCP tools too. Only
//! `command` and `args` of stdio entries change (the original command moves after `--`); remote
//! servers are not a pipe we can sit in, so they are left alone and reported. Backups, byte-exact
//! uninstall and `--dry-run` are shared with `quintctl hooks install` (see `settings_file`); the
//! sidecar is `<file>.quint-mcp-backup`, apart from the hooks' one, because Gemini CLI keeps hooks
//! and MCP servers in the same settings.json and each must be undoable on its own.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::settings_file::{self, Installed, Outcome, Uninstalled};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpAgent {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Windsurf,
    GeminiCli,
}

impl McpAgent {
    pub const ALL: [McpAgent; 5] = [
        McpAgent::ClaudeCode,
        McpAgent::ClaudeDesktop,
        McpAgent::Cursor,
        McpAgent::Windsurf,
        McpAgent::GeminiCli,
    ];

    /// The id passed to `quintctl mcp wrap --agent`, and shown in reports.
    pub fn id(self) -> &'static str {
        match self {
            McpAgent::ClaudeCode => "claude-code",
            McpAgent::ClaudeDesktop => "claude-desktop",
            McpAgent::Cursor => "cursor",
            McpAgent::Windsurf => "windsurf",
            McpAgent::GeminiCli => "gemini-cli",
        }
    }

    /// The user config file holding the agent's `mcpServers`.
    fn config_path(self, home: &Path) -> PathBuf {
        home.join(match self {
            McpAgent::ClaudeCode => ".claude.json",
            McpAgent::ClaudeDesktop if cfg!(target_os = "macos") => {
                "Library/Application Support/Claude/claude_desktop_config.json"
            }
            McpAgent::ClaudeDesktop => ".config/Claude/claude_desktop_config.json",
            McpAgent::Cursor => ".cursor/mcp.json",
            McpAgent::Windsurf => ".codeium/windsurf/mcp_config.json",
            McpAgent::GeminiCli => ".gemini/settings.json",
        })
    }
}

const SIDECAR: &str = "quint-mcp-backup";
const REMOTE: &str = "remote server: not a stdio pipe, cannot be wrapped";

/// What happened to one server entry.
#[derive(Debug, Serialize)]
struct ServerOutcome {
    server: String,
    /// The Claude Code project the entry belongs to; none for user-wide entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    /// wrapped, already-wrapped, unwrapped, skipped
    result: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

#[derive(Debug, Serialize)]
struct McpOutcome {
    #[serde(flatten)]
    outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    servers: Vec<ServerOutcome>,
}

/// An `mcpServers` map, with the Claude Code project it belongs to (`projects.<path>`).
type ServerMap<'a> = (Option<String>, &'a mut Map<String, Value>);

/// Each `mcpServers` map in the document.
fn server_maps(agent: McpAgent, document: &mut Value) -> Result<Vec<ServerMap<'_>>, String> {
    let root = document
        .as_object_mut()
        .ok_or("the config file is not a JSON object")?;
    let mut maps = Vec::new();
    for (key, value) in root.iter_mut() {
        if key == "mcpServers" {
            let servers = value
                .as_object_mut()
                .ok_or("`mcpServers` is not a JSON object")?;
            maps.push((None, servers));
        } else if key == "projects" && agent == McpAgent::ClaudeCode {
            let Some(projects) = value.as_object_mut() else {
                continue;
            };
            for (project, settings) in projects.iter_mut() {
                match settings.get_mut("mcpServers") {
                    None => {}
                    Some(Value::Object(servers)) => maps.push((Some(project.clone()), servers)),
                    Some(_) => {
                        return Err(format!(
                            "`projects.{project}.mcpServers` is not a JSON object"
                        ))
                    }
                }
            }
        }
    }
    Ok(maps)
}

/// Where an already wrapped entry's original command starts in its `args`.
fn wrapped_at(entry: &Value) -> Option<Option<usize>> {
    let command = entry.get("command")?.as_str()?;
    let args = entry.get("args")?.as_array()?;
    let is_quintctl = Path::new(command)
        .file_name()
        .is_some_and(|n| n == "quintctl");
    if !is_quintctl || args.len() < 2 || args[0] != "mcp" || args[1] != "wrap" {
        return None;
    }
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            Some("--") => return Some((i + 1 < args.len()).then_some(i + 1)),
            Some("--name" | "--agent") => i += 2,
            _ => i += 1,
        }
    }
    Some(None)
}

/// Wraps one entry in place; the result and why.
fn wrap(entry: &mut Value, name: &str, agent: McpAgent, quintctl: &str) -> (&'static str, String) {
    if wrapped_at(entry).is_some() {
        return ("already-wrapped", String::new());
    }
    let Some(object) = entry.as_object_mut() else {
        return ("skipped", "not a JSON object".into());
    };
    let remote_type = object.get("type").and_then(Value::as_str).is_some_and(|t| {
        matches!(
            t,
            "http" | "sse" | "streamable-http" | "streamableHttp" | "ws"
        )
    });
    let has_url = ["url", "httpUrl", "serverUrl"]
        .iter()
        .any(|k| object.contains_key(*k));
    let command = match object.get("command") {
        Some(Value::String(command)) if !remote_type => command.clone(),
        None if remote_type || has_url => return ("skipped", REMOTE.into()),
        _ if remote_type => return ("skipped", REMOTE.into()),
        _ => return ("skipped", "no `command` string: not a stdio server".into()),
    };
    let original_args = match object.get("args") {
        None => Vec::new(),
        Some(Value::Array(args)) if args.iter().all(Value::is_string) => args.clone(),
        Some(_) => return ("skipped", "`args` is not a list of strings".into()),
    };
    let mut args: Vec<Value> = ["mcp", "wrap", "--name", name, "--agent", agent.id(), "--"]
        .map(Value::from)
        .to_vec();
    args.push(Value::from(command));
    args.extend(original_args);
    object.insert("command".into(), Value::from(quintctl));
    object.insert("args".into(), Value::Array(args));
    ("wrapped", String::new())
}

/// Unwraps one entry in place; None when it is not wrapped. `original` is the same entry before
/// install, if the backup has it: it says whether `args` was there at all.
fn unwrap(entry: &mut Value, original: Option<&Value>) -> Option<(&'static str, String)> {
    let at = wrapped_at(entry)?;
    let Some(at) = at else {
        return Some((
            "skipped",
            "wrapped without `-- COMMAND`: left as it is".into(),
        ));
    };
    let object = entry.as_object_mut()?;
    let Some(Value::Array(args)) = object.get("args") else {
        return None;
    };
    let command = args[at].clone();
    let rest = args[at + 1..].to_vec();
    object.insert("command".into(), command);
    let had_no_args = original.is_some_and(|o| o.get("args").is_none());
    if rest.is_empty() && had_no_args {
        object.shift_remove("args");
    } else {
        object.insert("args".into(), Value::Array(rest));
    }
    Some(("unwrapped", String::new()))
}

/// The entry `name` of a project (or the user-wide map) in a document.
fn entry_in<'a>(document: &'a Value, project: Option<&str>, name: &str) -> Option<&'a Value> {
    match project {
        None => document.get("mcpServers")?.get(name),
        Some(project) => document
            .get("projects")?
            .get(project)?
            .get("mcpServers")?
            .get(name),
    }
}

fn server_outcome(
    project: &Option<String>,
    name: &str,
    (result, detail): (&'static str, String),
) -> ServerOutcome {
    ServerOutcome {
        server: name.into(),
        project: project.clone(),
        result,
        detail,
    }
}

fn install_one(agent: McpAgent, path: &Path, quintctl: &str, dry_run: bool) -> McpOutcome {
    let mut servers = Vec::new();
    if !path.exists() {
        let outcome = Outcome::new(agent.id(), Some(path), "skipped", "agent not configured");
        return McpOutcome { outcome, servers };
    }
    let installed = settings_file::install(path, SIDECAR, dry_run, |document| {
        for (project, map) in server_maps(agent, document)? {
            for (name, entry) in map.iter_mut() {
                let done = wrap(entry, name, agent, quintctl);
                servers.push(server_outcome(&project, name, done));
            }
        }
        Ok(servers.iter().any(|s| s.result == "wrapped"))
    });
    let wrapped = servers.iter().filter(|s| s.result == "wrapped").count();
    let (result, detail) = match installed {
        Err(e) => ("error", e),
        Ok(Installed::DryRun(diff)) => {
            let outcome = Outcome::dry_run(agent.id(), path, diff);
            return McpOutcome { outcome, servers };
        }
        Ok(Installed::Written(backup)) => (
            "installed",
            format!(
                "wrapped {wrapped} server(s); backup in {}",
                backup.display()
            ),
        ),
        Ok(Installed::Unchanged) if servers.iter().any(|s| s.result == "already-wrapped") => (
            "already-installed",
            "every stdio server already runs through quintctl".into(),
        ),
        Ok(Installed::Unchanged) => ("skipped", "no stdio MCP server to wrap".into()),
    };
    let outcome = Outcome::new(agent.id(), Some(path), result, detail);
    McpOutcome { outcome, servers }
}

fn uninstall_one(agent: McpAgent, path: &Path, dry_run: bool) -> McpOutcome {
    let mut servers = Vec::new();
    let uninstalled = settings_file::uninstall(path, SIDECAR, dry_run, |document, original| {
        let Ok(maps) = server_maps(agent, document) else {
            return false;
        };
        for (project, map) in maps {
            for (name, entry) in map.iter_mut() {
                let before = entry_in(original, project.as_deref(), name);
                if let Some(done) = unwrap(entry, before) {
                    servers.push(server_outcome(&project, name, done));
                }
            }
        }
        servers.iter().any(|s| s.result == "unwrapped")
    });
    let unwrapped = servers.iter().filter(|s| s.result == "unwrapped").count();
    let (result, detail) = match uninstalled {
        Err(e) => ("error", e),
        Ok(Uninstalled::NoFile) => ("skipped", "agent not configured".into()),
        Ok(Uninstalled::NothingToRemove) => {
            ("not-installed", "no wrapped MCP server in this file".into())
        }
        Ok(Uninstalled::DryRun(diff)) => {
            let outcome = Outcome::dry_run(agent.id(), path, diff);
            return McpOutcome { outcome, servers };
        }
        Ok(Uninstalled::Restored) => ("removed", "restored the original file".into()),
        Ok(Uninstalled::Removed) => (
            "removed",
            format!(
                "unwrapped {unwrapped} server(s); the file was edited since install, edits kept"
            ),
        ),
    };
    let outcome = Outcome::new(agent.id(), Some(path), result, detail);
    McpOutcome { outcome, servers }
}

pub struct Request {
    pub install: bool,
    /// Empty: all of them (those without a config file are reported as skipped).
    pub agents: Vec<McpAgent>,
    pub dry_run: bool,
    pub json: bool,
}

pub fn run(request: Request) -> i32 {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    // An absolute path: Claude Desktop and IDEs start servers without the shell's PATH.
    let quintctl = match std::env::current_exe() {
        Ok(path) => path.display().to_string(),
        Err(e) => {
            eprintln!("quintctl: cannot find quintctl's own path ({e}); nothing changed");
            return 1;
        }
    };
    let agents = if request.agents.is_empty() {
        McpAgent::ALL.to_vec()
    } else {
        request.agents.clone()
    };
    let outcomes: Vec<McpOutcome> = agents
        .into_iter()
        .map(|agent| {
            let path = agent.config_path(&home);
            if request.install {
                install_one(agent, &path, &quintctl, request.dry_run)
            } else {
                uninstall_one(agent, &path, request.dry_run)
            }
        })
        .collect();
    settings_file::report(
        &outcomes,
        request.json,
        |o| &o.outcome,
        |o| {
            o.servers
                .iter()
                .map(|s| {
                    let project = s
                        .project
                        .as_deref()
                        .map(|p| format!(" [{p}]"))
                        .unwrap_or_default();
                    let detail = if s.detail.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", s.detail)
                    };
                    format!("    {}{project}  {}{detail}", s.server, s.result)
                })
                .collect()
        },
    )
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;
    use crate::ctl::hooks_install;
    use crate::hook::Agent;

    const QUINTCTL: &str = "/opt/quint/bin/quintctl";

    // Hand-formatted (4 spaces, key order of its own) so that only a byte-exact restore passes.
    const CURSOR: &str = r#"{
    "mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_TOKEN": "t"}},
        "local": {"command": "/usr/local/bin/my-server"},
        "linear": {"url": "https://mcp.linear.app/sse"}
    },
    "other": true
}
"#;

    fn config(home: &Path, agent: McpAgent, text: &str) -> PathBuf {
        let path = agent.config_path(home);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The user editing the config between install and uninstall.
    fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
        let mut document = read_json(path);
        change(&mut document);
        fs::write(path, settings_file::render(&document)).unwrap();
    }

    fn result_of<'a>(outcome: &'a McpOutcome, server: &str) -> &'a str {
        outcome
            .servers
            .iter()
            .find(|s| s.server == server)
            .unwrap()
            .result
    }

    #[test]
    fn install_then_uninstall_restores_the_bytes_and_mode() {
        let home = tempfile::tempdir().unwrap();
        let path = config(home.path(), McpAgent::Cursor, CURSOR);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        let installed = install_one(McpAgent::Cursor, &path, QUINTCTL, false);
        assert_eq!(installed.outcome.result, "installed", "{installed:?}");
        let document = read_json(&path);
        let github = &document["mcpServers"]["github"];
        assert_eq!(github["command"], QUINTCTL);
        assert_eq!(
            github["args"],
            json!([
                "mcp",
                "wrap",
                "--name",
                "github",
                "--agent",
                "cursor",
                "--",
                "npx",
                "-y",
                "@modelcontextprotocol/server-github"
            ])
        );
        assert_eq!(github["env"], json!({"GITHUB_TOKEN": "t"}));
        assert_eq!(
            document["mcpServers"]["local"]["args"],
            json!([
                "mcp",
                "wrap",
                "--name",
                "local",
                "--agent",
                "cursor",
                "--",
                "/usr/local/bin/my-server"
            ])
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sidecar = settings_file::backup_path(&path, SIDECAR);
        assert_eq!(
            fs::metadata(&sidecar).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let removed = uninstall_one(McpAgent::Cursor, &path, false);
        assert_eq!(removed.outcome.detail, "restored the original file");
        assert_eq!(fs::read_to_string(&path).unwrap(), CURSOR);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!sidecar.exists());
        let again = uninstall_one(McpAgent::Cursor, &path, false);
        assert_eq!(again.outcome.result, "not-installed");
    }

    #[test]
    fn second_install_changes_nothing_and_remote_servers_are_skipped() {
        let home = tempfile::tempdir().unwrap();
        let path = config(home.path(), McpAgent::Cursor, CURSOR);
        let first = install_one(McpAgent::Cursor, &path, QUINTCTL, false);
        assert_eq!(result_of(&first, "linear"), "skipped");
        let skipped = first.servers.iter().find(|s| s.server == "linear").unwrap();
        assert_eq!(skipped.detail, REMOTE);
        let installed = fs::read_to_string(&path).unwrap();
        assert!(installed.contains(r#""url": "https://mcp.linear.app/sse""#));
        let sidecar = fs::read_to_string(settings_file::backup_path(&path, SIDECAR)).unwrap();

        let second = install_one(McpAgent::Cursor, &path, QUINTCTL, false);
        assert_eq!(second.outcome.result, "already-installed");
        assert_eq!(result_of(&second, "github"), "already-wrapped");
        assert_eq!(fs::read_to_string(&path).unwrap(), installed);
        assert_eq!(
            fs::read_to_string(settings_file::backup_path(&path, SIDECAR)).unwrap(),
            sidecar
        );

        // Every kind of remote entry the five agents write.
        for entry in [
            json!({"type": "http", "url": "https://a"}),
            json!({"type": "sse", "url": "https://a"}),
            json!({"httpUrl": "https://a"}),
            json!({"serverUrl": "https://a"}),
        ] {
            let mut wrapped = entry.clone();
            assert_eq!(
                wrap(&mut wrapped, "r", McpAgent::GeminiCli, QUINTCTL),
                ("skipped", REMOTE.into())
            );
            assert_eq!(wrapped, entry);
        }
    }

    #[test]
    fn uninstall_after_user_edits_removes_only_the_wrapping() {
        let home = tempfile::tempdir().unwrap();
        let path = config(home.path(), McpAgent::Cursor, CURSOR);
        install_one(McpAgent::Cursor, &path, QUINTCTL, false);
        let user_edit = |document: &mut Value| {
            document["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] = json!("rotated");
            document["mcpServers"]["mine"] = json!({"command": "uvx", "args": ["mine"]});
        };
        edit(&path, user_edit);

        let removed = uninstall_one(McpAgent::Cursor, &path, false);
        assert_eq!(removed.outcome.result, "removed");
        assert!(removed.outcome.detail.contains("edits kept"), "{removed:?}");
        let after = read_json(&path);
        let mut expected: Value = serde_json::from_str(CURSOR).unwrap();
        user_edit(&mut expected);
        // Same keys in the same order: `local` gets no `args` it did not have.
        assert_eq!(
            serde_json::to_string(&after).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert!(!settings_file::backup_path(&path, SIDECAR).exists());
    }

    #[test]
    fn servers_added_between_installs_survive_uninstall() {
        let home = tempfile::tempdir().unwrap();
        let path = config(home.path(), McpAgent::Windsurf, CURSOR);
        install_one(McpAgent::Windsurf, &path, QUINTCTL, false);
        edit(&path, |document| {
            document["mcpServers"]["new"] = json!({"command": "new-server", "args": []});
        });
        let second = install_one(McpAgent::Windsurf, &path, QUINTCTL, false);
        assert_eq!(result_of(&second, "new"), "wrapped");

        uninstall_one(McpAgent::Windsurf, &path, false);
        let after = read_json(&path);
        assert_eq!(
            after["mcpServers"]["new"],
            json!({"command": "new-server", "args": []})
        );
        assert_eq!(after["mcpServers"]["github"]["command"], "npx");
        assert!(!fs::read_to_string(&path).unwrap().contains("quintctl"));
    }

    #[test]
    fn dry_run_writes_nothing() {
        let home = tempfile::tempdir().unwrap();
        let path = config(home.path(), McpAgent::ClaudeDesktop, CURSOR);
        let dry = install_one(McpAgent::ClaudeDesktop, &path, QUINTCTL, true);
        assert_eq!(dry.outcome.result, "would-change");
        let diff = dry.outcome.diff.unwrap();
        assert!(
            diff.contains(&format!("+      \"command\": \"{QUINTCTL}\"")),
            "{diff}"
        );
        assert!(diff.contains("\"claude-desktop\""), "{diff}");
        assert_eq!(fs::read_to_string(&path).unwrap(), CURSOR);
        assert!(!settings_file::backup_path(&path, SIDECAR).exists());

        install_one(McpAgent::ClaudeDesktop, &path, QUINTCTL, false);
        let installed = fs::read_to_string(&path).unwrap();
        let dry = uninstall_one(McpAgent::ClaudeDesktop, &path, true);
        let diff = dry.outcome.diff.unwrap();
        assert!(
            diff.contains(&format!("-      \"command\": \"{QUINTCTL}\"")),
            "{diff}"
        );
        assert!(
            diff.contains("+        \"github\": {\"command\": \"npx\""),
            "{diff}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), installed);
        assert!(settings_file::backup_path(&path, SIDECAR).exists());
    }

    #[test]
    fn invalid_json_is_reported_and_left_alone_and_missing_files_skipped() {
        let home = tempfile::tempdir().unwrap();
        let path = config(home.path(), McpAgent::GeminiCli, "{ \"mcpServers\": ");
        let broken = install_one(McpAgent::GeminiCli, &path, QUINTCTL, false);
        assert_eq!(broken.outcome.result, "error");
        assert!(
            broken.outcome.detail.contains(&path.display().to_string()),
            "{broken:?}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "{ \"mcpServers\": ");
        assert!(!settings_file::backup_path(&path, SIDECAR).exists());
        assert_eq!(
            uninstall_one(McpAgent::GeminiCli, &path, false)
                .outcome
                .result,
            "error"
        );

        let missing = McpAgent::Cursor.config_path(home.path());
        let skipped = install_one(McpAgent::Cursor, &missing, QUINTCTL, false);
        assert_eq!(
            (
                skipped.outcome.result.as_str(),
                skipped.outcome.detail.as_str()
            ),
            ("skipped", "agent not configured")
        );
        assert!(!missing.exists());
    }

    #[test]
    fn claude_code_project_servers_are_wrapped_too() {
        let home = tempfile::tempdir().unwrap();
        let text = r#"{"numStartups":3,"mcpServers":{"memory":{"type":"stdio","command":"npx","args":["-y","@modelcontextprotocol/server-memory"],"env":{}}},"projects":{"/home/u/app":{"allowedTools":[],"mcpServers":{"db":{"type":"stdio","command":"uvx","args":["db-mcp"],"env":{}},"sentry":{"type":"http","url":"https://mcp.sentry.dev/mcp"}}},"/home/u/empty":{"mcpServers":{}}}}"#;
        let path = config(home.path(), McpAgent::ClaudeCode, text);
        let installed = install_one(McpAgent::ClaudeCode, &path, QUINTCTL, false);
        assert_eq!(installed.outcome.result, "installed");
        let db = installed.servers.iter().find(|s| s.server == "db").unwrap();
        assert_eq!(
            (db.project.as_deref(), db.result),
            (Some("/home/u/app"), "wrapped")
        );
        assert_eq!(result_of(&installed, "memory"), "wrapped");
        assert_eq!(result_of(&installed, "sentry"), "skipped");
        let document = read_json(&path);
        assert_eq!(
            document["projects"]["/home/u/app"]["mcpServers"]["db"]["args"],
            json!([
                "mcp",
                "wrap",
                "--name",
                "db",
                "--agent",
                "claude-code",
                "--",
                "uvx",
                "db-mcp"
            ])
        );
        assert_eq!(
            document["projects"]["/home/u/app"]["mcpServers"]["db"]["type"],
            "stdio"
        );

        // Claude Code rewrites this file all the time: uninstall then unwraps in place.
        edit(&path, |document| document["numStartups"] = json!(4));
        uninstall_one(McpAgent::ClaudeCode, &path, false);
        let mut expected: Value = serde_json::from_str(text).unwrap();
        expected["numStartups"] = json!(4);
        assert_eq!(read_json(&path), expected);
    }

    #[test]
    fn gemini_hooks_and_mcp_servers_are_undone_separately() {
        let home = tempfile::tempdir().unwrap();
        let text = "{\"mcpServers\":{\"fs\":{\"command\":\"node\",\"args\":[\"fs.js\"]}}}\n";
        let path = config(home.path(), McpAgent::GeminiCli, text);
        let hooks = "/opt/quint/bin/quintctl hook gemini-cli";
        assert_eq!(
            hooks_install::install_one(Agent::GeminiCli, &path, hooks, false).result,
            "installed"
        );
        install_one(McpAgent::GeminiCli, &path, QUINTCTL, false);

        uninstall_one(McpAgent::GeminiCli, &path, false);
        let document = read_json(&path);
        assert_eq!(document["mcpServers"]["fs"]["command"], "node");
        assert!(
            document["hooks"]["BeforeTool"].is_array(),
            "the hook stays: {document}"
        );

        hooks_install::uninstall_one(Agent::GeminiCli, &path, false);
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_symlinked_config_stays_a_symlink() {
        let home = tempfile::tempdir().unwrap();
        let target = home.path().join("dotfiles/mcp.json");
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(&target, CURSOR).unwrap();
        let path = McpAgent::Cursor.config_path(home.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        install_one(McpAgent::Cursor, &path, QUINTCTL, false);
        assert!(fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::read_to_string(&target).unwrap().contains(QUINTCTL));
        uninstall_one(McpAgent::Cursor, &path, false);
        assert_eq!(fs::read_to_string(&target).unwrap(), CURSOR);
        assert!(fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
