//! `quintctl hooks install|uninstall`: writes Quint's hook into each agent's settings file.
//!
//! Installing merges into what is there (other hooks and settings untouched), is idempotent, and
//! keeps the original bytes in a `<file>.quint-backup` sidecar. Uninstalling restores those bytes
//! exactly when the file is as Quint left it; if the user edited it since, only Quint's entries
//! are removed. `--dry-run` prints the diff instead of writing.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::settings_file::{self, read_optional, Installed, Outcome, Uninstalled};
use crate::hook::Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The user's own settings (`~/.claude/settings.json`, …).
    User,
    /// System-wide managed settings that users cannot override (needs root).
    Managed,
}

/// The settings file of an agent for a scope, or why there is none.
pub fn settings_path(agent: Agent, scope: Scope, home: &Path) -> Result<PathBuf, String> {
    let macos = cfg!(target_os = "macos");
    Ok(match (agent, scope) {
        (Agent::ClaudeCode, Scope::User) => home.join(".claude/settings.json"),
        (Agent::Cursor, Scope::User) => home.join(".cursor/hooks.json"),
        (Agent::Codex, Scope::User) => home.join(".codex/hooks.json"),
        (Agent::GeminiCli, Scope::User) => home.join(".gemini/settings.json"),
        (Agent::ClaudeCode, Scope::Managed) if macos => "/Library/Application Support/ClaudeCode/managed-settings.json".into(),
        (Agent::ClaudeCode, Scope::Managed) => "/etc/claude-code/managed-settings.json".into(),
        (Agent::Cursor, Scope::Managed) if macos => "/Library/Application Support/Cursor/hooks.json".into(),
        (Agent::Cursor, Scope::Managed) => "/etc/cursor/hooks.json".into(),
        (Agent::GeminiCli, Scope::Managed) if macos => "/Library/Application Support/GeminiCli/settings.json".into(),
        (Agent::GeminiCli, Scope::Managed) => "/etc/gemini-cli/settings.json".into(),
        (Agent::Codex, Scope::Managed) => {
            return Err("Codex managed hooks live in requirements.toml, which quintctl does not edit yet; install per user".into())
        }
    })
}

/// Whether the agent is installed for this home (its config directory exists).
pub fn agent_present(agent: Agent, home: &Path) -> bool {
    agent_home_dir(agent, home).is_dir()
}

/// The agent's own config directory in a home, whose presence means the agent is installed.
fn agent_home_dir(agent: Agent, home: &Path) -> PathBuf {
    home.join(match agent {
        Agent::ClaudeCode => ".claude",
        Agent::Cursor => ".cursor",
        Agent::Codex => ".codex",
        Agent::GeminiCli => ".gemini",
    })
}

/// Hook events Quint registers for, per agent.
fn events(agent: Agent) -> &'static [&'static str] {
    match agent {
        Agent::ClaudeCode => &[
            "PreToolUse",
            "UserPromptSubmit",
            "SessionStart",
            "SessionEnd",
        ],
        Agent::Codex => &["PreToolUse", "UserPromptSubmit", "SessionStart"],
        Agent::GeminiCli => &["BeforeTool", "BeforeAgent", "SessionStart", "SessionEnd"],
        Agent::Cursor => &[
            "beforeShellExecution",
            "beforeMCPExecution",
            "beforeReadFile",
            "beforeSubmitPrompt",
            "afterFileEdit",
        ],
    }
}

fn hook_command(executable: &Path, agent: Agent) -> String {
    let program = executable.display().to_string();
    let quoted = if program.contains([' ', '"', '\'']) {
        format!("'{}'", program.replace('\'', "'\\''"))
    } else {
        program
    };
    format!("{quoted} hook {}", agent.id())
}

fn is_quint_command(command: &str) -> bool {
    command.contains("quintctl") && command.contains(" hook ")
}

/// Adds Quint's hooks to a settings document; false when they were all already there.
fn add_hooks(agent: Agent, document: &mut Value, command: &str) -> Result<bool, String> {
    let root = document
        .as_object_mut()
        .ok_or("the settings file is not a JSON object")?;
    if agent == Agent::Cursor {
        root.entry("version").or_insert(json!(1));
    }
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks
        .as_object_mut()
        .ok_or("`hooks` is not a JSON object")?;
    let mut changed = false;
    for event in events(agent) {
        let list = hooks.entry(*event).or_insert_with(|| json!([]));
        let list = list
            .as_array_mut()
            .ok_or_else(|| format!("`hooks.{event}` is not a list"))?;
        if list.iter().any(|entry| entry_is_ours(agent, entry)) {
            continue;
        }
        list.push(match agent {
            Agent::Cursor => json!({ "command": command, "timeout": 30 }),
            Agent::ClaudeCode => json!({ "matcher": "*", "hooks": [{ "type": "command", "command": command, "timeout": 30 }] }),
            Agent::Codex => json!({ "matcher": ".*", "hooks": [{ "type": "command", "command": command, "timeout": 30 }] }),
            // Gemini's timeout is in milliseconds; `name` is what `/hooks disable` refers to.
            Agent::GeminiCli => json!({ "matcher": "*", "hooks": [{ "name": "quint", "type": "command", "command": command, "timeout": 30000 }] }),
        });
        changed = true;
    }
    Ok(changed)
}

fn entry_is_ours(agent: Agent, entry: &Value) -> bool {
    let command_of = |hook: &Value| {
        hook.get("command")
            .and_then(Value::as_str)
            .is_some_and(is_quint_command)
    };
    match agent {
        Agent::Cursor => command_of(entry),
        _ => entry
            .get("hooks")
            .and_then(Value::as_array)
            .is_some_and(|hooks| hooks.iter().any(command_of)),
    }
}

/// Removes Quint's hooks (and containers left empty by that); false when there were none.
fn remove_hooks(agent: Agent, document: &mut Value) -> bool {
    let Some(root) = document.as_object_mut() else {
        return false;
    };
    let Some(Value::Object(hooks)) = root.get_mut("hooks") else {
        return false;
    };
    let mut changed = false;
    let mut emptied = Vec::new();
    for (event, list) in hooks.iter_mut() {
        let Some(list) = list.as_array_mut() else {
            continue;
        };
        let before = list.len();
        match agent {
            Agent::Cursor => list.retain(|entry| !entry_is_ours(agent, entry)),
            _ => {
                for group in list.iter_mut() {
                    if let Some(inner) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                        let inner_before = inner.len();
                        inner.retain(|hook| {
                            !hook
                                .get("command")
                                .and_then(Value::as_str)
                                .is_some_and(is_quint_command)
                        });
                        changed |= inner.len() != inner_before;
                    }
                }
                list.retain(|group| {
                    group
                        .get("hooks")
                        .and_then(Value::as_array)
                        .is_none_or(|h| !h.is_empty())
                });
            }
        }
        if list.len() != before {
            changed = true;
            if list.is_empty() {
                emptied.push(event.clone());
            }
        }
    }
    for event in emptied {
        hooks.remove(&event);
    }
    if hooks.is_empty() && changed {
        root.remove("hooks");
    }
    changed
}

/// The sidecar's suffix: `settings.json.quint-backup`.
const SIDECAR: &str = "quint-backup";

fn outcome(agent: Agent, path: Option<&Path>, result: &str, detail: impl Into<String>) -> Outcome {
    Outcome::new(agent.id(), path, result, detail)
}

pub fn install_one(agent: Agent, path: &Path, command: &str, dry_run: bool) -> Outcome {
    let installed = settings_file::install(path, SIDECAR, dry_run, |document| {
        add_hooks(agent, document, command)
    });
    match installed {
        Err(e) => outcome(agent, Some(path), "error", e),
        Ok(Installed::Unchanged) => outcome(
            agent,
            Some(path),
            "already-installed",
            "Quint's hook is already there",
        ),
        Ok(Installed::DryRun(diff)) => Outcome::dry_run(agent.id(), path, diff),
        Ok(Installed::Written(backup_file)) => {
            let mut result = outcome(
                agent,
                Some(path),
                "installed",
                format!("backup in {}", backup_file.display()),
            );
            if agent == Agent::Codex {
                result
                    .detail
                    .push_str("; Codex runs new hooks only after you approve them in /hooks");
            }
            result
        }
    }
}

pub fn uninstall_one(agent: Agent, path: &Path, dry_run: bool) -> Outcome {
    let uninstalled = settings_file::uninstall(path, SIDECAR, dry_run, |document, _| {
        remove_hooks(agent, document)
    });
    let (result, detail) = match uninstalled {
        Err(e) => ("error", e),
        Ok(Uninstalled::NoFile) => ("not-installed", "no settings file".into()),
        Ok(Uninstalled::NothingToRemove) => ("not-installed", "no Quint hook in this file".into()),
        Ok(Uninstalled::DryRun(diff)) => return Outcome::dry_run(agent.id(), path, diff),
        Ok(Uninstalled::Restored) => ("removed", "restored the original file".into()),
        Ok(Uninstalled::Removed) => (
            "removed",
            "removed Quint's entries (file was edited since install)".into(),
        ),
    };
    outcome(agent, Some(path), result, detail)
}

/// Whether an agent's settings file for a scope carries Quint's hook.
pub fn is_installed(agent: Agent, scope: Scope, home: &Path) -> bool {
    let Ok(path) = settings_path(agent, scope, home) else {
        return false;
    };
    let Ok(Some(text)) = read_optional(&path) else {
        return false;
    };
    let Ok(document) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    document
        .get("hooks")
        .and_then(Value::as_object)
        .is_some_and(|hooks: &Map<String, Value>| {
            hooks
                .values()
                .filter_map(Value::as_array)
                .flatten()
                .any(|entry| entry_is_ours(agent, entry))
        })
}

pub struct Request {
    pub install: bool,
    pub agents: Vec<Agent>,
    pub scope: Scope,
    pub dry_run: bool,
    pub json: bool,
}

pub fn run(request: Request) -> i32 {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    if request.scope == Scope::Managed && unsafe { libc::geteuid() } != 0 && !request.dry_run {
        eprintln!("quintctl: the managed scope writes system settings and needs root (try sudo, or --scope user)");
        return 2;
    }
    let explicit = !request.agents.is_empty();
    let agents = if explicit {
        request.agents.clone()
    } else {
        Agent::ALL.to_vec()
    };
    let executable = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("quintctl"));
    let command = hook_command(&executable, Agent::ClaudeCode);
    let mut outcomes = Vec::new();
    for agent in agents {
        let path = match settings_path(agent, request.scope, &home) {
            Ok(path) => path,
            Err(reason) => {
                outcomes.push(outcome(agent, None, "skipped", reason));
                continue;
            }
        };
        let detected =
            request.scope == Scope::Managed || agent_present(agent, &home) || path.exists();
        if request.install && !explicit && !detected {
            outcomes.push(outcome(
                agent,
                Some(&path),
                "skipped",
                "agent not detected (use --agent to install anyway)",
            ));
            continue;
        }
        let command = command.replace(" hook claude-code", &format!(" hook {}", agent.id()));
        outcomes.push(if request.install {
            install_one(agent, &path, &command, request.dry_run)
        } else {
            uninstall_one(agent, &path, request.dry_run)
        });
    }
    settings_file::report(&outcomes, request.json, |o| o, |_| Vec::new())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::settings_file::{backup_path, render};
    use super::*;

    const USER_SETTINGS: &str = r#"{
    "model": "opus",
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "/home/u/bin/guard.sh"}]}
        ]
    },
    "permissions": {"allow": ["Bash(ls:*)"]}
}
"#;

    #[test]
    fn install_then_uninstall_is_byte_identical_for_every_agent() {
        for agent in Agent::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("settings.json");
            fs::write(&path, USER_SETTINGS).unwrap();
            let command = "/usr/bin/quintctl hook x";
            assert_eq!(
                install_one(agent, &path, command, false).result,
                "installed"
            );
            let installed = fs::read_to_string(&path).unwrap();
            assert!(
                installed.contains("/home/u/bin/guard.sh") && installed.contains(command),
                "{installed}"
            );
            assert_eq!(
                install_one(agent, &path, command, false).result,
                "already-installed"
            );
            assert_eq!(uninstall_one(agent, &path, false).result, "removed");
            assert_eq!(fs::read_to_string(&path).unwrap(), USER_SETTINGS, "{agent}");
            assert!(!backup_path(&path, SIDECAR).exists());
        }
    }

    #[test]
    fn uninstall_after_user_edits_keeps_their_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        fs::write(&path, USER_SETTINGS).unwrap();
        install_one(
            Agent::ClaudeCode,
            &path,
            "/usr/bin/quintctl hook claude-code",
            false,
        );
        let mut document: Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        document["theme"] = json!("dark");
        fs::write(&path, render(&document)).unwrap();
        assert_eq!(
            uninstall_one(Agent::ClaudeCode, &path, false).result,
            "removed"
        );
        let after: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(after["theme"], "dark");
        assert_eq!(after["hooks"]["PreToolUse"].as_array().unwrap().len(), 1);
        assert!(!fs::read_to_string(&path).unwrap().contains("quintctl"));
    }

    #[test]
    fn missing_file_is_created_and_removed_again_and_bad_json_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cursor/hooks.json");
        let dry = install_one(Agent::Cursor, &path, "/usr/bin/quintctl hook cursor", true);
        assert!(dry.diff.unwrap().contains("+  \"version\": 1"));
        assert!(!path.exists());
        install_one(Agent::Cursor, &path, "/usr/bin/quintctl hook cursor", false);
        assert!(is_installed_at(Agent::Cursor, &path));
        uninstall_one(Agent::Cursor, &path, false);
        assert!(!path.exists());

        fs::write(&path, "{ not json").unwrap();
        let broken = install_one(Agent::Cursor, &path, "/usr/bin/quintctl hook cursor", false);
        assert_eq!(broken.result, "error");
        assert_eq!(fs::read_to_string(&path).unwrap(), "{ not json");
    }

    fn is_installed_at(agent: Agent, path: &Path) -> bool {
        let document: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        document["hooks"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .any(|e| entry_is_ours(agent, e))
    }
}
