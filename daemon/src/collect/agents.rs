//! Which AI agent a process is, from signatures kept as data (`agents.yaml`, compiled in).
//!
//! A local file extends the built-in list like policy layers do: same `id` replaces the agent,
//! a new `id` adds one, `disabled: true` removes one. Detection runs on every exec, so all
//! patterns are compiled once: hash lookups for exact names, one glob set per kind of evidence.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

const BUILTIN: &str = include_str!("agents.yaml");
const BUILTIN_NAME: &str = "built-in agents.yaml";

/// Interpreter arguments looked at for an entry script: options and their values come first,
/// the script soon after; arguments further on are the program's own and never evidence.
const SCRIPT_ARGS: usize = 3;
/// Longer arguments are data (a prompt, inline code), not a script path.
const MAX_ARG_LEN: usize = 4096;

/// What the collector knows about one process.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFacts<'a> {
    /// Executable path (`/proc/<pid>/exe`), when readable.
    pub exe: Option<&'a str>,
    pub argv: &'a [String],
    /// macOS bundle identifier of the app the process belongs to.
    pub bundle_id: Option<&'a str>,
}

/// A recognised agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected<'a> {
    /// Platform id used in events.
    pub id: &'a str,
    pub name: &'a str,
    /// Whether the process's descendants belong to its session.
    pub inherit: bool,
}

/// Compiled signatures.
pub struct Signatures {
    agents: Vec<Agent>,
    names: HashMap<String, usize>,
    bundles: HashMap<String, usize>,
    paths: GlobSet,
    path_owner: Vec<usize>,
    interpreters: GlobSet,
    interpreter_owners: Vec<Vec<usize>>,
    scripts: GlobSet,
    script_owner: Vec<usize>,
    modules: HashMap<String, Vec<usize>>,
}

struct Agent {
    id: String,
    name: String,
    inherit: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    #[serde(default)]
    interpreter_groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    agents: Vec<AgentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSpec {
    id: String,
    name: Option<String>,
    inherit: Option<bool>,
    #[serde(default)]
    exe_names: Vec<String>,
    #[serde(default)]
    exe_paths: Vec<String>,
    #[serde(default)]
    interpreters: Vec<String>,
    #[serde(default)]
    scripts: Vec<String>,
    #[serde(default)]
    python_modules: Vec<String>,
    #[serde(default)]
    bundle_ids: Vec<String>,
    #[serde(default)]
    disabled: bool,
}

/// An agent spec and the file it came from, for error messages.
struct Located {
    file: String,
    spec: AgentSpec,
}

impl Signatures {
    /// The compiled-in signatures. A unit test proves they compile, so this cannot panic.
    pub fn builtin() -> Signatures {
        Signatures::load(None).expect("built-in agents.yaml compiles")
    }

    /// The built-in signatures extended by `extra` (same id replaces, `disabled: true`
    /// removes). Errors name the file and, where it applies, the agent id.
    pub fn load(extra: Option<&Path>) -> Result<Signatures, String> {
        let mut groups = BTreeMap::new();
        let mut merged: Vec<Located> = Vec::new();
        merge(BUILTIN_NAME, BUILTIN, &mut groups, &mut merged)?;
        if let Some(path) = extra {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            merge(&name, &text, &mut groups, &mut merged)?;
        }
        merged.retain(|agent| !agent.spec.disabled);
        compile(&groups, &merged)
    }

    /// Number of agents known.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Agent ids in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(|a| a.id.as_str())
    }

    /// The agent this process is, if any. Evidence in order of specificity: an interpreter
    /// running an agent's script (an editor running an extension's script is that
    /// extension), then the executable's name, its path, the bundle id.
    pub fn detect(&self, process: &ProcessFacts) -> Option<Detected<'_>> {
        let exe = process.exe.map(strip_deleted);
        let arg0 = process.argv.first().map(String::as_str);
        let exe_base = exe.map(basename);
        let arg0_base = arg0.map(basename);

        let found = self
            .by_script(exe_base, arg0_base, process.argv)
            .or_else(|| {
                [exe_base, arg0_base]
                    .into_iter()
                    .flatten()
                    .find_map(|name| self.names.get(name).copied())
            })
            .or_else(|| {
                [exe, arg0.filter(|a| a.contains('/'))]
                    .into_iter()
                    .flatten()
                    .find_map(|path| first_owner(&self.paths, &self.path_owner, path))
            })
            .or_else(|| {
                let bundle = process.bundle_id?.to_ascii_lowercase();
                self.bundles.get(&bundle).copied()
            })?;
        let agent = &self.agents[found];
        Some(Detected {
            id: &agent.id,
            name: &agent.name,
            inherit: agent.inherit,
        })
    }

    fn by_script(
        &self,
        exe_base: Option<&str>,
        arg0_base: Option<&str>,
        argv: &[String],
    ) -> Option<usize> {
        if argv.len() < 2 {
            return None;
        }
        let mut candidates: Vec<usize> = Vec::new();
        for name in [exe_base, arg0_base].into_iter().flatten() {
            for glob in self.interpreters.matches(name) {
                candidates.extend_from_slice(&self.interpreter_owners[glob]);
            }
        }
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_unstable();
        candidates.dedup();
        let allowed = |agent: &usize| candidates.binary_search(agent).is_ok();

        let mut looked = 0;
        let mut args = argv[1..].iter();
        while let Some(arg) = args.next() {
            if arg == "-m" {
                let module = args.next()?;
                let top = module.split('.').next().unwrap_or(module);
                return self
                    .modules
                    .get(top)
                    .and_then(|owners| owners.iter().copied().find(allowed));
            }
            if arg.starts_with('-') || arg.len() > MAX_ARG_LEN {
                continue;
            }
            let candidate = Candidate::new(arg);
            if let Some(agent) = self
                .scripts
                .matches_candidate(&candidate)
                .into_iter()
                .map(|glob| self.script_owner[glob])
                .filter(allowed)
                .min()
            {
                return Some(agent);
            }
            looked += 1;
            if looked == SCRIPT_ARGS {
                break;
            }
        }
        None
    }
}

/// Lowest agent index (file order) among the globs that match.
fn first_owner(set: &GlobSet, owner: &[usize], text: &str) -> Option<usize> {
    set.matches(text).into_iter().map(|glob| owner[glob]).min()
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The kernel marks the exe link of a binary replaced on disk (an agent's auto-update).
fn strip_deleted(exe: &str) -> &str {
    exe.strip_suffix(" (deleted)").unwrap_or(exe)
}

fn merge(
    file: &str,
    text: &str,
    groups: &mut BTreeMap<String, Vec<String>>,
    merged: &mut Vec<Located>,
) -> Result<(), String> {
    let parsed: SignatureFile = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(at) => format!("{file}: line {}: {e}", at.line()),
        None => format!("{file}: {e}"),
    })?;
    groups.extend(parsed.interpreter_groups);
    let mut seen: HashSet<String> = HashSet::new();
    for spec in parsed.agents {
        if !seen.insert(spec.id.clone()) {
            return Err(format!("{file}: agent {}: listed twice", spec.id));
        }
        check_spec(file, &spec)?;
        let located = Located {
            file: file.to_string(),
            spec,
        };
        match merged.iter().position(|a| a.spec.id == located.spec.id) {
            Some(index) => merged[index] = located,
            None => merged.push(located),
        }
    }
    Ok(())
}

/// What serde cannot check: ids, required fields of a live agent, matchers that need each other.
fn check_spec(file: &str, spec: &AgentSpec) -> Result<(), String> {
    let fail = |message: &str| Err(format!("{file}: agent {}: {message}", spec.id));
    let id_ok = !spec.id.is_empty()
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return fail("id must be lowercase letters, digits and '-'");
    }
    if spec.disabled {
        return Ok(());
    }
    if spec.name.as_deref().is_none_or(str::is_empty) {
        return fail("name is required");
    }
    if spec.inherit.is_none() {
        return fail("inherit (true or false) is required");
    }
    let needs_interpreter = !spec.scripts.is_empty() || !spec.python_modules.is_empty();
    if needs_interpreter && spec.interpreters.is_empty() {
        return fail("scripts and python_modules need interpreters");
    }
    if !spec.interpreters.is_empty() && !needs_interpreter {
        return fail("interpreters need scripts or python_modules");
    }
    if spec.exe_names.is_empty()
        && spec.exe_paths.is_empty()
        && !needs_interpreter
        && spec.bundle_ids.is_empty()
    {
        return fail("no matcher: give exe_names, exe_paths, scripts or bundle_ids");
    }
    Ok(())
}

fn compile(
    groups: &BTreeMap<String, Vec<String>>,
    merged: &[Located],
) -> Result<Signatures, String> {
    let mut agents = Vec::with_capacity(merged.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut bundles: HashMap<String, usize> = HashMap::new();
    let mut modules: HashMap<String, Vec<usize>> = HashMap::new();
    let mut paths = GlobSetBuilder::new();
    let mut path_owner = Vec::new();
    let mut scripts = GlobSetBuilder::new();
    let mut script_owner = Vec::new();
    // One glob per distinct interpreter pattern, shared by the agents that list it.
    let mut interpreter_index: HashMap<String, usize> = HashMap::new();
    let mut interpreters = GlobSetBuilder::new();
    let mut interpreter_owners: Vec<Vec<usize>> = Vec::new();

    for (index, Located { file, spec }) in merged.iter().enumerate() {
        let fail = |message: String| format!("{file}: agent {}: {message}", spec.id);
        let glob = |pattern: &str| {
            GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| fail(format!("bad glob {pattern:?}: {e}")))
        };
        agents.push(Agent {
            id: spec.id.clone(),
            name: spec.name.clone().unwrap_or_default(),
            inherit: spec.inherit.unwrap_or(false),
        });
        for name in &spec.exe_names {
            claim(&mut names, name.clone(), index, merged, "exe name").map_err(&fail)?;
        }
        for bundle in &spec.bundle_ids {
            claim(
                &mut bundles,
                bundle.to_ascii_lowercase(),
                index,
                merged,
                "bundle id",
            )
            .map_err(&fail)?;
        }
        for module in &spec.python_modules {
            modules.entry(module.clone()).or_default().push(index);
        }
        for pattern in &spec.exe_paths {
            paths.add(glob(pattern)?);
            path_owner.push(index);
        }
        for pattern in &spec.scripts {
            scripts.add(glob(pattern)?);
            script_owner.push(index);
        }
        let expanded = spec
            .interpreters
            .iter()
            .flat_map(|name| match groups.get(name) {
                Some(members) => members.clone(),
                None => vec![name.clone()],
            });
        for pattern in expanded {
            let slot = match interpreter_index.get(&pattern) {
                Some(&slot) => slot,
                None => {
                    interpreters.add(glob(&pattern)?);
                    interpreter_owners.push(Vec::new());
                    interpreter_index.insert(pattern, interpreter_owners.len() - 1);
                    interpreter_owners.len() - 1
                }
            };
            if !interpreter_owners[slot].contains(&index) {
                interpreter_owners[slot].push(index);
            }
        }
    }
    let build = |builder: GlobSetBuilder| {
        builder
            .build()
            .map_err(|e| format!("agent signatures: {e}"))
    };
    Ok(Signatures {
        agents,
        names,
        bundles,
        paths: build(paths)?,
        path_owner,
        interpreters: build(interpreters)?,
        interpreter_owners,
        scripts: build(scripts)?,
        script_owner,
        modules,
    })
}

/// Exact names must say one agent: two claiming the same name would make detection depend on
/// file order without anyone noticing.
fn claim(
    map: &mut HashMap<String, usize>,
    key: String,
    index: usize,
    merged: &[Located],
    what: &str,
) -> Result<(), String> {
    match map.get(&key) {
        Some(&other) if other != index => Err(format!(
            "{what} {key:?} is already claimed by agent {}",
            merged[other].spec.id
        )),
        _ => {
            map.insert(key, index);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect<'a>(
        signatures: &'a Signatures,
        exe: Option<&str>,
        argv: &[&str],
        bundle: Option<&str>,
    ) -> Option<Detected<'a>> {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        signatures.detect(&ProcessFacts {
            exe,
            argv: &argv,
            bundle_id: bundle,
        })
    }

    /// Expected id, exe, argv, bundle id.
    type Example = (
        &'static str,
        Option<&'static str>,
        &'static [&'static str],
        Option<&'static str>,
    );

    /// One realistic process per agent (several for the ones installed in several ways): exe
    /// path, argv as /proc shows it, bundle id on macOS.
    #[rustfmt::skip]
    const EXAMPLES: &[Example] = &[
        // Native install: the exe is a version-numbered file, argv[0] the symlink's name.
        ("claude-code", Some("/home/dev/.local/share/claude/versions/2.0.64"), &["claude"], None),
        ("claude-code", Some("/usr/bin/node"), &["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"], None),
        // npm through its shebang: argv[1] is the bin symlink as found on PATH.
        ("claude-code", Some("/home/dev/.nvm/versions/node/v22.11.0/bin/node"), &["node", "/home/dev/.nvm/versions/node/v22.11.0/bin/claude", "--resume"], None),
        ("claude-code", Some("/home/dev/.vscode/extensions/anthropic.claude-code-2.0.10-linux-x64/resources/native-binary/claude"), &["/home/dev/.vscode/extensions/anthropic.claude-code-2.0.10-linux-x64/resources/native-binary/claude", "--output-format", "stream-json"], None),
        ("claude-desktop", Some("/Applications/Claude.app/Contents/MacOS/Claude"), &["/Applications/Claude.app/Contents/MacOS/Claude"], Some("com.anthropic.claudefordesktop")),
        ("cursor", Some("/usr/share/cursor/cursor"), &["/usr/share/cursor/cursor", "--no-sandbox"], None),
        ("cursor", Some("/Applications/Cursor.app/Contents/MacOS/Cursor"), &["/Applications/Cursor.app/Contents/MacOS/Cursor"], Some("com.todesktop.230313mzl4w4u92")),
        ("cursor-agent", Some("/home/dev/.local/share/cursor-agent/versions/2025.09.18-7ae6800/node"), &["/home/dev/.local/share/cursor-agent/versions/2025.09.18-7ae6800/node", "--use-system-ca", "/home/dev/.local/share/cursor-agent/versions/2025.09.18-7ae6800/index.js", "-p", "fix the tests"], None),
        ("windsurf", Some("/usr/share/windsurf/windsurf"), &["/usr/share/windsurf/windsurf"], None),
        ("windsurf", Some("/Applications/Windsurf.app/Contents/Resources/app/extensions/windsurf/bin/language_server_macos_arm"), &["/Applications/Windsurf.app/Contents/Resources/app/extensions/windsurf/bin/language_server_macos_arm", "--api_server_url", "https://server.codeium.com"], None),
        // The editor's Electron run as Node on a script from the extension's folder.
        ("vscode-copilot", Some("/usr/share/code/code"), &["/usr/share/code/code", "/home/dev/.vscode/extensions/github.copilot-chat-0.31.2/dist/worker.js", "--stdio"], None),
        ("copilot-cli", Some("/usr/bin/node"), &["node", "/usr/local/lib/node_modules/@github/copilot/index.js"], None),
        ("copilot-cli", Some("/home/dev/.local/bin/copilot"), &["copilot"], None),
        ("codex", Some("/usr/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex"), &["/usr/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", "exec", "add a test"], None),
        ("codex", Some("/usr/bin/node"), &["node", "/usr/local/bin/codex"], None),
        ("gemini-cli", Some("/usr/bin/node"), &["node", "/usr/local/bin/gemini"], None),
        ("gemini-cli", Some("/usr/bin/node"), &["node", "--max-old-space-size=8192", "/usr/lib/node_modules/@google/gemini-cli/dist/index.js"], None),
        ("aider", Some("/home/dev/.local/share/uv/tools/aider-chat/bin/python3.12"), &["/home/dev/.local/share/uv/tools/aider-chat/bin/python", "/home/dev/.local/bin/aider", "--model", "sonnet"], None),
        ("aider", Some("/usr/bin/python3.11"), &["python3", "-m", "aider", "--yes"], None),
        ("aider", Some("/home/dev/.local/bin/uv"), &["uvx", "aider-chat@latest"], None),
        ("cline", Some("/usr/bin/node"), &["node", "/home/dev/.npm-global/bin/cline", "task"], None),
        ("roo-code", Some("/Applications/Visual Studio Code.app/Contents/Frameworks/Code Helper (Plugin).app/Contents/MacOS/Code Helper (Plugin)"), &["/Applications/Visual Studio Code.app/Contents/Frameworks/Code Helper (Plugin).app/Contents/MacOS/Code Helper (Plugin)", "/Users/dev/.vscode/extensions/rooveterinaryinc.roo-cline-3.28.0/dist/workers/countTokens.js"], None),
        ("kilo-code", Some("/usr/bin/node"), &["node", "/usr/local/bin/kilocode"], None),
        ("continue", Some("/usr/bin/node"), &["node", "/usr/local/bin/cn", "-p", "summarise"], None),
        ("continue", Some("/home/dev/.local/share/JetBrains/IntelliJIdea2025.2/continue-intellij-extension/core/linux-x64/bin/continue-binary"), &["continue-binary"], None),
        ("goose", Some("/home/dev/.local/bin/goose"), &["goose", "session"], None),
        ("goose", Some("/opt/homebrew/Cellar/block-goose-cli/1.25.0/bin/goose"), &["goose", "run", "-t", "hi"], None),
        ("opencode", Some("/home/dev/.opencode/bin/opencode"), &["opencode"], None),
        ("amp", Some("/home/dev/.amp/bin/amp"), &["amp", "-x", "what changed"], None),
        ("amp", Some("/usr/bin/node"), &["node", "/usr/lib/node_modules/@sourcegraph/amp/dist/main.js"], None),
        ("kiro", Some("/Applications/Kiro.app/Contents/MacOS/Electron"), &["/Applications/Kiro.app/Contents/MacOS/Electron"], Some("dev.kiro.desktop")),
        ("kiro", Some("/usr/share/kiro/kiro"), &["/usr/share/kiro/kiro"], None),
        ("kiro-cli", Some("/home/dev/.local/bin/kiro-cli"), &["kiro-cli", "chat"], None),
        ("antigravity", Some("/Applications/Antigravity.app/Contents/MacOS/Electron"), &["/Applications/Antigravity.app/Contents/MacOS/Electron"], Some("com.google.antigravity")),
        ("zed", Some("/home/dev/.local/zed.app/libexec/zed-editor"), &["/home/dev/.local/zed.app/libexec/zed-editor"], None),
        ("zed", Some("/Applications/Zed.app/Contents/MacOS/zed"), &["/Applications/Zed.app/Contents/MacOS/zed"], Some("dev.zed.Zed")),
        ("junie", Some("/home/dev/.local/bin/junie"), &["junie"], None),
        ("junie", Some("/usr/bin/java"), &["java", "-Xmx2g", "-cp", "/opt/junie-bin/junie-app/lib/junie.jar", "com.intellij.ml.llm.agents.MainKt"], None),
        ("cody", Some("/usr/bin/node"), &["node", "/usr/lib/node_modules/@sourcegraph/cody/dist/index.js", "chat", "-m", "hi"], None),
        ("cody", Some("/private/var/folders/r2/3cy58nrn4jz5h7w48_hxs6k00000gn/T/cody-agent14037689495849978522"), &["/private/var/folders/r2/3cy58nrn4jz5h7w48_hxs6k00000gn/T/cody-agent14037689495849978522"], None),
        ("tabnine", Some("/home/dev/.vscode/extensions/tabnine.tabnine-vscode-3.300.0/binaries/4.300.0/x86_64-unknown-linux-musl/TabNine"), &["/home/dev/.vscode/extensions/tabnine.tabnine-vscode-3.300.0/binaries/4.300.0/x86_64-unknown-linux-musl/TabNine", "--client", "vscode"], None),
        ("open-interpreter", Some("/home/dev/.local/pipx/venvs/open-interpreter/bin/python3.11"), &["/home/dev/.local/pipx/venvs/open-interpreter/bin/python", "/home/dev/.local/bin/interpreter", "--model", "gpt-4o"], None),
        ("crush", Some("/opt/homebrew/Cellar/crush/0.7.0/bin/crush"), &["crush"], None),
        ("qwen-code", Some("/opt/homebrew/bin/node"), &["node", "/opt/homebrew/bin/qwen"], None),
        ("auggie", Some("/usr/bin/node"), &["node", "/usr/local/bin/auggie", "--print", "explain"], None),
        ("plandex", Some("/usr/local/bin/plandex"), &["pdx", "tell", "add auth"], None),
        ("warp", Some("/Applications/Warp.app/Contents/MacOS/stable"), &["/Applications/Warp.app/Contents/MacOS/stable"], Some("dev.warp.Warp-Stable")),
        ("warp", Some("/opt/warpdotdev/warp-terminal/warp"), &["warp-terminal"], None),
    ];

    #[test]
    fn builtin_signatures_compile_and_cover_at_least_25_agents() {
        let signatures = Signatures::builtin();
        assert!(signatures.len() >= 25, "{}", signatures.len());
    }

    #[test]
    fn every_agent_is_detected_from_a_realistic_process() {
        let signatures = Signatures::builtin();
        let mut failures = Vec::new();
        for (id, exe, argv, bundle) in EXAMPLES {
            let found = detect(&signatures, *exe, argv, *bundle).map(|d| d.id);
            if found != Some(*id) {
                failures.push(format!("{id}: got {found:?} for {exe:?} {argv:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        // And the table has an example for every built-in agent.
        for id in signatures.ids() {
            assert!(EXAMPLES.iter().any(|e| e.0 == id), "no example for {id}");
        }
    }

    #[test]
    fn bundle_id_alone_is_enough_on_macos() {
        let signatures = Signatures::builtin();
        // A helper whose path we do not know, tagged with the app's bundle id.
        let found = detect(
            &signatures,
            Some("/opt/x/helper"),
            &["helper"],
            Some("DEV.ZED.ZED"),
        );
        assert_eq!(found.map(|d| d.id), Some("zed"));
    }

    #[test]
    fn inherit_follows_the_kind_of_agent() {
        let signatures = Signatures::builtin();
        let cli = detect(&signatures, Some("/usr/local/bin/codex"), &["codex"], None).unwrap();
        assert!(cli.inherit);
        let editor = detect(
            &signatures,
            Some("/usr/share/cursor/cursor"),
            &["cursor"],
            None,
        )
        .unwrap();
        assert!(!editor.inherit);
        assert_eq!(editor.name, "Cursor");
    }

    #[test]
    fn ordinary_processes_are_not_agents() {
        let signatures = Signatures::builtin();
        #[rustfmt::skip]
        let negatives: &[(Option<&str>, &[&str])] = &[
            (Some("/usr/bin/node"), &["node", "server.js"]),
            (Some("/usr/bin/node"), &["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "install"]),
            (Some("/usr/bin/python3.12"), &["python", "manage.py", "runserver"]),
            (Some("/usr/bin/python3.12"), &["python3", "-m", "pytest", "-q"]),
            // VS Code itself and its own helpers, with no agent extension's script.
            (Some("/usr/share/code/code"), &["/usr/share/code/code"]),
            (Some("/usr/share/code/code"), &["/usr/share/code/code", "/usr/share/code/resources/app/out/cli.js", "/home/dev/project"]),
            (Some("/usr/share/code/code"), &["/usr/share/code/code", "--type=utility", "--utility-sub-type=node.mojom.NodeService"]),
            (Some("/usr/bin/bash"), &["bash"]),
            (Some("/usr/bin/bash"), &["bash", "-c", "claude --version"]),
            (Some("/usr/bin/git"), &["git", "status"]),
            // pressly/goose, the migration tool, shares the binary name with Block's goose.
            (Some("/usr/local/bin/goose"), &["goose", "postgres", "up"]),
            // An agent's path as a plain argument to a non-interpreter.
            (Some("/usr/bin/vim"), &["vim", "/home/dev/.local/bin/aider"]),
            // An agent-looking path deep in a program's own arguments.
            (Some("/usr/bin/node"), &["node", "build.js", "--out", "dist", "--target", "es2022", "/tmp/bin/claude"]),
            (None, &[]),
        ];
        for (exe, argv) in negatives {
            let found = detect(&signatures, *exe, argv, None);
            assert_eq!(found, None, "{exe:?} {argv:?}");
        }
    }

    #[test]
    fn a_replaced_binary_is_still_recognised() {
        let signatures = Signatures::builtin();
        let exe = "/home/dev/.local/share/claude/versions/2.0.63 (deleted)";
        let found = detect(
            &signatures,
            Some(exe),
            &["/home/dev/.local/share/claude/versions/2.0.63"],
            None,
        );
        assert_eq!(found.map(|d| d.id), Some("claude-code"));
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn a_local_file_adds_replaces_and_removes_agents_by_id() {
        let local = write(
            "agents:\n\
             - id: acme-agent\n  name: ACME agent\n  inherit: true\n  exe_names: [acme]\n\
             - id: goose\n  name: Goose (ours)\n  inherit: false\n  exe_paths: [\"/opt/tools/goose\"]\n\
             - id: copilot-cli\n  disabled: true\n",
        );
        let builtin = Signatures::builtin();
        let signatures = Signatures::load(Some(local.path())).unwrap();
        assert_eq!(signatures.len(), builtin.len());

        let acme = detect(&signatures, Some("/usr/local/bin/acme"), &["acme"], None).unwrap();
        assert_eq!(
            (acme.id, acme.name, acme.inherit),
            ("acme-agent", "ACME agent", true)
        );

        // Replaced wholesale: the new path matches, the built-in ones no longer do.
        let ours = detect(&signatures, Some("/opt/tools/goose"), &["goose"], None).unwrap();
        assert_eq!((ours.name, ours.inherit), ("Goose (ours)", false));
        assert_eq!(
            detect(
                &signatures,
                Some("/home/dev/.local/bin/goose"),
                &["goose"],
                None
            ),
            None
        );

        assert_eq!(
            detect(
                &signatures,
                Some("/home/dev/.local/bin/copilot"),
                &["copilot"],
                None
            ),
            None
        );
        // The rest is untouched.
        let codex = detect(&signatures, Some("/usr/local/bin/codex"), &["codex"], None);
        assert_eq!(codex.map(|d| d.id), Some("codex"));
    }

    #[test]
    fn a_broken_local_file_is_an_error_naming_it() {
        let path = Path::new("/nonexistent/quint/agents.yaml");
        let error = Signatures::load(Some(path)).err().unwrap();
        assert!(error.contains("/nonexistent/quint/agents.yaml"), "{error}");

        let syntax = write("agents:\n  - id: x\n    name: [unclosed\n");
        let error = Signatures::load(Some(syntax.path())).err().unwrap();
        let name = syntax.path().display().to_string();
        assert!(
            error.starts_with(&name) && error.contains("line"),
            "{error}"
        );

        let unknown =
            write("agents:\n  - id: x\n    name: X\n    inherit: true\n    exe_name: [x]\n");
        let error = Signatures::load(Some(unknown.path())).err().unwrap();
        assert!(error.contains("exe_name"), "{error}");
    }

    #[test]
    fn errors_name_the_file_and_the_agent() {
        let cases = [
            ("agents:\n  - id: bad-glob\n    name: B\n    inherit: true\n    exe_paths: [\"**/[x\"]\n", "agent bad-glob: bad glob"),
            ("agents:\n  - id: thief\n    name: T\n    inherit: true\n    exe_names: [claude]\n", "agent thief: exe name \"claude\" is already claimed by agent claude-code"),
            ("agents:\n  - id: no-inherit\n    name: N\n    exe_names: [n]\n", "agent no-inherit: inherit"),
            ("agents:\n  - id: lonely\n    name: L\n    inherit: true\n    scripts: [\"**/x.js\"]\n", "agent lonely: scripts and python_modules need interpreters"),
            ("agents:\n  - id: empty\n    name: E\n    inherit: true\n", "agent empty: no matcher"),
            ("agents:\n  - id: Upper\n    name: U\n    inherit: true\n    exe_names: [u]\n", "agent Upper: id must be"),
        ];
        for (text, expected) in cases {
            let file = write(text);
            let error = Signatures::load(Some(file.path())).err().unwrap();
            let name = file.path().display().to_string();
            assert!(error.starts_with(&name), "{error}");
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }

    #[test]
    fn a_local_file_can_add_interpreters_to_a_group() {
        let local = write(
            "interpreter_groups:\n  node: [node, my-node]\n\
             agents:\n  - id: gemini-cli\n    name: Gemini CLI\n    inherit: true\n    interpreters: [node]\n    scripts: [\"**/bin/gemini\"]\n",
        );
        let signatures = Signatures::load(Some(local.path())).unwrap();
        let found = detect(
            &signatures,
            Some("/opt/my-node"),
            &["my-node", "/usr/local/bin/gemini"],
            None,
        );
        assert_eq!(found.map(|d| d.id), Some("gemini-cli"));
    }
}
