//! `quintctl sessions`: the agent sessions the process collector follows, as process trees.

use std::collections::HashMap;

use crate::client::DaemonClient;
use crate::config::Config;
use crate::protocol::{ObservedProcess, ObservedSession, Request};

use super::output::{human_duration, print_json};

pub fn run(config: &Config, only: Option<&str>, json: bool) -> i32 {
    let client = DaemonClient::new(&config.socket, std::time::Duration::from_secs(5));
    let mut sessions: Vec<ObservedSession> = match client.call(&Request::Sessions) {
        Ok(sessions) => sessions,
        Err(e) => {
            eprintln!("quintctl: {e}");
            return 1;
        }
    };
    if let Some(id) = only {
        sessions.retain(|s| s.session_id == id || s.observed_id == id);
        if sessions.is_empty() {
            eprintln!(
                "quintctl: no agent session {id:?} is running (`quintctl sessions` lists them)"
            );
            return 1;
        }
    }
    if json {
        print_json(&sessions);
        return 0;
    }
    if sessions.is_empty() {
        println!(
            "no agent sessions running (or the process collector is off: see `quintctl status`)"
        );
        return 0;
    }
    for session in &sessions {
        let age = session
            .age_seconds
            .map(human_duration)
            .unwrap_or_else(|| "age unknown".into());
        println!(
            "{} {}  root pid {} · {age} · {} actions, {} denied{}",
            session.platform,
            session.session_id,
            session.root_pid,
            session.actions,
            session.denials,
            session
                .workspace
                .as_deref()
                .map(|w| format!(" · {w}"))
                .unwrap_or_default(),
        );
        for line in tree_lines(&session.processes) {
            println!("  {line}");
        }
    }
    0
}

/// The processes as an indented tree: each under its parent when the parent is in the session.
fn tree_lines(processes: &[ObservedProcess]) -> Vec<String> {
    let in_session: HashMap<u32, &ObservedProcess> = processes.iter().map(|p| (p.pid, p)).collect();
    let mut children: HashMap<u32, Vec<&ObservedProcess>> = HashMap::new();
    let mut roots = Vec::new();
    for process in processes {
        match process.ppid.filter(|ppid| in_session.contains_key(ppid)) {
            Some(ppid) => children.entry(ppid).or_default().push(process),
            None => roots.push(process),
        }
    }
    let mut lines = Vec::new();
    let mut stack: Vec<(&ObservedProcess, usize)> =
        roots.into_iter().rev().map(|p| (p, 0)).collect();
    while let Some((process, depth)) = stack.pop() {
        let state = if process.running { "" } else { " (exited)" };
        lines.push(format!(
            "{}{} {}{state}",
            "  ".repeat(depth),
            process.pid,
            process.command
        ));
        if depth < 64 {
            for child in children.get(&process.pid).into_iter().flatten().rev() {
                stack.push((child, depth + 1));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ppid: u32, command: &str) -> ObservedProcess {
        ObservedProcess {
            pid,
            ppid: Some(ppid),
            command: command.into(),
            running: true,
        }
    }

    #[test]
    fn children_are_indented_under_their_parents() {
        let lines = tree_lines(&[
            process(10, 1, "claude"),
            process(12, 11, "sleep 5"),
            process(11, 10, "bash -c sleep 5"),
            process(13, 10, "git status"),
        ]);
        assert_eq!(
            lines,
            [
                "10 claude",
                "  11 bash -c sleep 5",
                "    12 sleep 5",
                "  13 git status"
            ]
        );
    }
}
