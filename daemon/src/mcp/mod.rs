//! The MCP gateway: `quintctl mcp wrap` sits between an agent and a stdio MCP server, decides on
//! every `tools/call` before the server sees it, pins tool definitions, and scans tool answers
//! for secrets. See docs/mcp.md.

pub mod decide;
pub mod message;
pub mod proxy;

/// A server name for events and pins when `--name` is not given: the package or script the
/// command runs (`npx -y @modelcontextprotocol/server-filesystem /tmp` → `server-filesystem`).
pub fn derive_server_name(command: &[std::ffi::OsString]) -> String {
    const LAUNCHERS: &[&str] = &[
        "npx", "node", "bunx", "bun", "deno", "uvx", "uv", "pipx", "python", "python3", "docker",
        "podman",
    ];
    let words: Vec<String> = command
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let base = |word: &str| -> String {
        let last = word.rsplit('/').next().unwrap_or(word);
        let last = match last.rfind('@') {
            Some(at) if at > 0 => &last[..at],
            _ => last,
        };
        last.trim_end_matches(".js")
            .trim_end_matches(".mjs")
            .trim_end_matches(".py")
            .to_string()
    };
    let Some(first) = words.first() else {
        return "mcp-server".into();
    };
    if !LAUNCHERS.contains(&base(first).as_str()) {
        return base(first);
    }
    let skip = ["run", "-y", "--yes", "x", "tool", "-m", "--rm", "-i"];
    let candidate = words[1..]
        .iter()
        .find(|w| !w.starts_with('-') && !skip.contains(&w.as_str()));
    match candidate.map(|w| base(w)) {
        Some(name) if name == "index" || name == "main" => words[1..]
            .iter()
            .find(|w| !w.starts_with('-'))
            .and_then(|w| {
                let parts: Vec<&str> = w.split('/').collect();
                parts
                    .iter()
                    .rev()
                    .skip(1)
                    .find(|p| !matches!(**p, "dist" | "build" | "lib" | "src" | "bin" | ""))
                    .map(|p| p.to_string())
            })
            .unwrap_or(name),
        Some(name) if !name.is_empty() => name,
        _ => base(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(words: &[&str]) -> String {
        let command: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
        derive_server_name(&command)
    }

    #[test]
    fn names_come_from_the_package_or_script() {
        assert_eq!(
            name(&[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/tmp"
            ]),
            "server-filesystem"
        );
        assert_eq!(
            name(&["npx", "-y", "mcp-server-kubernetes@1.2.0"]),
            "mcp-server-kubernetes"
        );
        assert_eq!(name(&["uvx", "mcp-server-git"]), "mcp-server-git");
        assert_eq!(name(&["node", "/opt/weather/dist/index.js"]), "weather");
        assert_eq!(
            name(&["/usr/local/bin/github-mcp-server", "stdio"]),
            "github-mcp-server"
        );
    }
}
