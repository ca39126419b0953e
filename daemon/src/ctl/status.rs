//! `quintctl status`: one screen that says whether this machine is protected, and why not.

use serde::Serialize;

use super::hooks_install::{is_installed, Scope};
use super::output::{human_duration, print_fields, print_json};
use crate::client::DaemonClient;
use crate::config::Config;
use crate::hook::Agent;
use crate::protocol::{DaemonStatus, Request};
use crate::spool;
use crate::store::mcp_pins::{PinState, ServerPins};

#[derive(Serialize)]
struct StatusReport {
    protected: bool,
    /// Why not protected, or what needs attention; empty when all is well.
    problems: Vec<String>,
    daemon: Option<DaemonStatus>,
    /// Set when the daemon did not answer.
    daemon_error: Option<String>,
    spooled_offline: usize,
    /// Per agent: whether Quint's hook is in its user and managed settings.
    hooks: Vec<HookPresence>,
    /// MCP servers seen through `quintctl mcp wrap`, with tools awaiting approval.
    mcp_servers: Vec<McpServerState>,
}

#[derive(Serialize)]
struct McpServerState {
    server: String,
    tools: usize,
    /// Tools whose definition changed since pinned, or that appeared since.
    awaiting_approval: Vec<String>,
}

fn mcp_servers(client: &DaemonClient) -> Vec<McpServerState> {
    let servers: Vec<ServerPins> = client.call(&Request::McpServers).unwrap_or_default();
    servers
        .into_iter()
        .map(|server| McpServerState {
            tools: server.tools.iter().filter(|t| !t.removed).count(),
            awaiting_approval: server
                .tools
                .iter()
                .filter(|t| matches!(t.state, PinState::Changed | PinState::New))
                .map(|t| t.name.clone())
                .collect(),
            server: server.server,
        })
        .collect()
}

#[derive(Serialize)]
struct HookPresence {
    agent: String,
    user: bool,
    managed: bool,
}

fn hook_presence() -> Vec<HookPresence> {
    let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    Agent::ALL
        .iter()
        .map(|&agent| HookPresence {
            agent: agent.id().into(),
            user: is_installed(agent, Scope::User, &home),
            managed: is_installed(agent, Scope::Managed, &home),
        })
        .collect()
}

pub fn run(config: &Config, json: bool) -> i32 {
    let client = DaemonClient::new(&config.socket, std::time::Duration::from_secs(5));
    let (daemon, daemon_error) = match client.call::<DaemonStatus>(&Request::Status) {
        Ok(status) => (Some(status), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut problems = Vec::new();
    if let Some(error) = &daemon_error {
        problems.push(format!("quintd is not answering ({error}); hooks decide with the last policy snapshot and spool events"));
    }
    let hooks = hook_presence();
    if !hooks.iter().any(|h| h.user || h.managed) {
        problems.push("no agent has Quint's hook installed: run `quintctl hooks install`".into());
    }
    if let Some(status) = &daemon {
        let relay = &status.relay;
        if relay.revoked {
            problems.push("device revoked — re-enroll with `quintctl enroll`: uploads stopped, every event is kept".into());
        } else if relay.enrolled && relay.reachable == Some(false) {
            problems.push(format!(
                "the relay is unreachable ({}); {} event(s) wait to be uploaded",
                relay.last_error.as_deref().unwrap_or("no answer"),
                relay.pending
            ));
        }
        if let Some(error) = &relay.policy_error {
            problems.push(error.clone());
        }
        if relay.dropped > 0 {
            problems.push(format!(
                "{} allow-decision event(s) dropped by the outbox's disk budget",
                relay.dropped
            ));
        }
        if !status.policy.errors.is_empty() {
            problems.push(format!(
                "{} policy error(s): the files on disk are not in force, the last good policy is",
                status.policy.errors.len()
            ));
        }
    }
    let mcp = if daemon.is_some() {
        mcp_servers(&client)
    } else {
        Vec::new()
    };
    for server in mcp.iter().filter(|s| !s.awaiting_approval.is_empty()) {
        problems.push(format!(
            "MCP server {}: {} tool definition(s) changed since pinned and are blocked ({}); review them, then `quintctl mcp approve {}`",
            server.server,
            server.awaiting_approval.len(),
            server.awaiting_approval.join(", "),
            server.server
        ));
    }
    let hooked = hooks.iter().any(|h| h.user || h.managed);
    let report = StatusReport {
        // Hooks are how actions reach quintd: without one, nothing is intercepted.
        protected: daemon.is_some() && hooked,
        problems,
        spooled_offline: spool::pending(&config.spool_dir()),
        hooks,
        daemon,
        daemon_error,
        mcp_servers: mcp,
    };
    if json {
        print_json(&report);
    } else {
        print_human(&report);
    }
    if report.protected {
        0
    } else {
        1
    }
}

fn print_human(report: &StatusReport) {
    let headline = match (report.protected, report.problems.is_empty(), &report.daemon) {
        (true, true, _) => "PROTECTED — quintd is running and enforcing policy",
        (true, false, _) => "PROTECTED, with warnings",
        (false, _, None) => "NOT PROTECTED — quintd is not running",
        (false, _, Some(_)) => "NOT PROTECTED — no agent hook installed",
    };
    println!("Quint: {headline}");
    for problem in &report.problems {
        println!("  ! {problem}");
    }
    let Some(status) = &report.daemon else {
        if report.spooled_offline > 0 {
            println!(
                "  {} event(s) decided offline wait in the spool for quintd",
                report.spooled_offline
            );
        }
        println!("  start it with `systemctl start quintd` (or run `quintd` for a private daemon)");
        return;
    };
    println!();
    print_fields(&[
        (
            "daemon",
            format!(
                "quintd {} (pid {}), up {}",
                status.version,
                status.pid,
                human_duration(status.uptime_seconds)
            ),
        ),
        (
            "policy",
            format!(
                "{} rules, hash {}, from {} ({} files), loaded {}",
                status.policy.rules,
                status.policy.hash,
                status.policy.origin,
                status.policy.sources.len(),
                status.policy.loaded_at
            ),
        ),
    ]);
    for error in &status.policy.errors {
        println!("    error: {error}");
    }
    let decisions = ["allow", "alert", "ask", "deny"]
        .iter()
        .map(|d| format!("{d} {}", status.decisions.get(*d).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(" · ");
    let collectors = status
        .collectors
        .iter()
        .map(|c| format!("{} {}", c.name, c.state))
        .collect::<Vec<_>>()
        .join(" · ");
    print_fields(&[
        ("decisions", decisions),
        (
            "outbox",
            format!(
                "{} recorded, {} pending upload, audit head #{}, {} spooled, {} spool files rejected",
                status.outbox.recorded, status.outbox.pending, status.outbox.audit_head_seq, status.outbox.spooled, status.outbox.spool_rejected
            ),
        ),
        ("collectors", collectors),
        ("hooks", hooks_line(&report.hooks)),
        ("mcp", mcp_line(&report.mcp_servers)),
        ("relay", relay_line(&status.relay)),
        ("sessions", format!("{} active in the last 30 min", status.active_sessions.len())),
    ]);
    for session in status.active_sessions.iter().take(5) {
        let root = session
            .agent_pid
            .map(|pid| format!("root pid {pid} · "))
            .unwrap_or_default();
        let age = chrono::DateTime::parse_from_rfc3339(&session.first_seen)
            .map(|first| {
                let seconds = (chrono::Utc::now() - first.with_timezone(&chrono::Utc))
                    .num_seconds()
                    .max(0) as u64;
                format!("age {} · ", super::output::human_duration(seconds))
            })
            .unwrap_or_default();
        println!(
            "    {:<12} {:<40} {root}{age}{} actions, {} denied, last {}",
            session.platform,
            session.session_id,
            session.actions,
            session.denials,
            session.last_seen
        );
    }
    print_fields(&[
        ("state", status.paths.state_dir.clone()),
        ("socket", status.paths.socket.clone()),
    ]);
}

fn relay_line(relay: &crate::fleet::LinkStatus) -> String {
    if !relay.enrolled {
        return "not enrolled: actions stay on this machine (`quintctl enroll --relay URL`)".into();
    }
    let mut parts = vec![format!(
        "{} · tenant {} · device {}",
        relay.relay.as_deref().unwrap_or("?"),
        relay.tenant_id.as_deref().unwrap_or("?"),
        relay.device_id.as_deref().unwrap_or("?")
    )];
    parts.push(match (relay.revoked, relay.reachable, relay.latency_ms) {
        (true, _, _) => "DEVICE REVOKED — re-enroll".into(),
        (false, Some(true), Some(ms)) => format!("reachable ({ms} ms)"),
        (false, Some(true), None) => "reachable".into(),
        (false, Some(false), _) => "UNREACHABLE".into(),
        (false, None, _) => "not contacted yet".into(),
    });
    parts.push(format!(
        "last upload {}",
        relay
            .last_upload_at
            .as_deref()
            .unwrap_or("never (since start)")
    ));
    let oldest = relay
        .oldest_pending_seconds
        .map(|s| format!(", oldest {}", human_duration(s)))
        .unwrap_or_default();
    parts.push(format!(
        "{} pending{oldest} · {} rejected · {} dropped",
        relay.pending, relay.rejected, relay.dropped
    ));
    parts.push(format!(
        "tenant policy {}",
        relay.policy_etag.as_deref().unwrap_or("none")
    ));
    parts.join(" · ")
}

fn mcp_line(servers: &[McpServerState]) -> String {
    if servers.is_empty() {
        return "no server wrapped yet (`quintctl mcp install`)".into();
    }
    let waiting: usize = servers.iter().map(|s| s.awaiting_approval.len()).sum();
    format!(
        "{} server(s) wrapped, {} tools pinned, {waiting} awaiting approval",
        servers.len(),
        servers.iter().map(|s| s.tools).sum::<usize>()
    )
}

fn hooks_line(hooks: &[HookPresence]) -> String {
    hooks
        .iter()
        .map(|h| {
            let state = match (h.user, h.managed) {
                (_, true) => "managed",
                (true, false) => "user",
                (false, false) => "not installed",
            };
            format!("{} {state}", h.agent)
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
