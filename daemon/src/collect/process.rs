//! Agent sessions from process events: an agent's root process and every descendant. The
//! table is fed by fork/exec/exit (the proc connector, or a /proc scan at start and as the
//! fallback) and answers, for each exec, which session it belongs to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::agents::{ProcessFacts, Signatures};

/// What `/proc/<pid>` said when it was read; a process that already exited leaves gaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    /// When it started, in a unit of the platform's (clock ticks since boot on Linux): with
    /// the pid, it names the process uniquely, and orders processes by age.
    pub start_ticks: Option<u64>,
    /// When it started, in ms since the Unix epoch.
    pub started_ms: Option<u64>,
}

impl ProcessInfo {
    /// The command line as one string, for policy's command matchers.
    pub fn command_line(&self) -> String {
        if self.argv.is_empty() {
            self.exe.clone().unwrap_or_default()
        } else {
            self.argv.join(" ")
        }
    }

    /// Whether everything was read (short-lived processes vanish before).
    pub fn complete(&self) -> bool {
        self.exe.is_some() && !self.argv.is_empty() && self.ppid.is_some()
    }
}

/// Reads what it can of `/proc/<pid>` at once.
#[cfg(target_os = "linux")]
pub fn read_process(pid: u32) -> ProcessInfo {
    let base = format!("/proc/{pid}");
    let mut info = ProcessInfo {
        pid,
        ..ProcessInfo::default()
    };
    info.exe = std::fs::read_link(format!("{base}/exe"))
        .ok()
        .map(|p| p.display().to_string());
    if let Ok(cmdline) = std::fs::read(format!("{base}/cmdline")) {
        info.argv = cmdline
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
    }
    info.cwd = std::fs::read_link(format!("{base}/cwd"))
        .ok()
        .map(|p| p.display().to_string());
    if let Ok(stat) = std::fs::read_to_string(format!("{base}/stat")) {
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            info.ppid = fields.get(1).and_then(|f| f.parse().ok());
            info.start_ticks = fields.get(19).and_then(|f| f.parse().ok());
            info.started_ms = info.start_ticks.map(ticks_to_unix_ms);
        }
    }
    if let Ok(status) = std::fs::read_to_string(format!("{base}/status")) {
        info.uid = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().next())
            .and_then(|uid| uid.parse().ok());
    }
    info
}

/// A process's parent from /proc (the collector may not have seen its fork yet); `None`
/// where there is no /proc.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The session a process is a member of, from the map alone (no /proc read: the file guard
/// asks this for every open under its marks).
pub fn member_session(members: &SessionMembers, pid: u32) -> Option<Arc<Session>> {
    members
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&pid)
        .cloned()
}

/// The session of a process or of its nearest ancestor that has one: the collector thread may
/// not have placed a just-started process yet when the process already acts (a hook call, an
/// open), but its ancestors were placed long before.
pub fn session_of_lineage(members: &SessionMembers, pid: u32) -> Option<Arc<Session>> {
    let mut current = pid;
    for _ in 0..16 {
        if let Some(session) = member_session(members, current) {
            return Some(session);
        }
        current = parent_pid(current).filter(|p| *p > 1)?;
    }
    None
}

/// Every process in /proc, for the scan at start.
#[cfg(target_os = "linux")]
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One agent session, as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// `{root_pid}-{start_unix_ms}`, the envelope's fallback session id format.
    pub id: String,
    pub platform: String,
    pub name: String,
    pub root_pid: u32,
    /// When the root process started (Unix ms; 0 when unknown).
    pub started_ms: u64,
    /// The root's working directory when it started: the tree whose changes are recorded.
    pub workspace: Option<String>,
    /// Who runs the agent.
    pub uid: Option<u32>,
}

/// What an exec meant.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A process of no agent session.
    Outside,
    /// An agent started: the process is the root of a new session.
    SessionStarted(Arc<Session>),
    /// A process of an existing session ran a program.
    Exec(Arc<Session>),
}

#[derive(Debug, Clone)]
struct Tracked {
    parent: Option<u32>,
    session: Option<Arc<Session>>,
}

/// Which process belongs to which agent session, shared with the file guard: it answers opens
/// for everyone else at once, so this lookup is all it does before answering them.
pub type SessionMembers = Arc<RwLock<HashMap<u32, Arc<Session>>>>;

/// How long an exited process still counts as a member of its session.
const EXITED_KEPT: std::time::Duration = std::time::Duration::from_secs(5);

/// Processes and their sessions. Only processes seen (forked, exec'd or scanned) are known.
pub struct SessionTable {
    signatures: Signatures,
    processes: HashMap<u32, Tracked>,
    members: SessionMembers,
    /// Exited processes still in `members`, oldest first.
    exited: std::collections::VecDeque<(std::time::Instant, u32)>,
}

impl SessionTable {
    pub fn new(signatures: Signatures) -> SessionTable {
        SessionTable {
            signatures,
            processes: HashMap::new(),
            members: SessionMembers::default(),
            exited: Default::default(),
        }
    }

    pub fn members(&self) -> SessionMembers {
        self.members.clone()
    }

    fn track(&mut self, pid: u32, tracked: Tracked) {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        match &tracked.session {
            Some(session) => members.insert(pid, session.clone()),
            None => members.remove(&pid),
        };
        drop(members);
        self.processes.insert(pid, tracked);
    }

    /// A child inherits its parent's session (when the agent's signature says children belong
    /// to it): forks are when the tree is built, so a process that never execs is still known.
    pub fn fork(&mut self, parent: u32, child: u32) {
        let session = self
            .processes
            .get(&parent)
            .and_then(|tracked| tracked.session.clone());
        self.track(
            child,
            Tracked {
                parent: Some(parent),
                session,
            },
        );
    }

    /// A process exited. It stays a member for a few seconds: file change notifications are
    /// read after the fact, often after a short-lived `mv` or `mkdir` is gone. A new process
    /// with the same pid comes through `fork`, which sets its membership anew.
    pub fn exit(&mut self, pid: u32) {
        self.processes.remove(&pid);
        let now = std::time::Instant::now();
        self.exited.push_back((now, pid));
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        while let Some(&(at, gone)) = self.exited.front() {
            if now.duration_since(at) < EXITED_KEPT {
                break;
            }
            self.exited.pop_front();
            if !self.processes.contains_key(&gone) {
                members.remove(&gone);
            }
        }
    }

    /// An exec: the process may have become an agent, or be running something for one.
    pub fn exec(&mut self, info: &ProcessInfo) -> Observation {
        // The fork event's parent first: /proc says 1 once the real parent has died.
        let parent = self
            .processes
            .get(&info.pid)
            .and_then(|t| t.parent)
            .or(info.ppid);
        let inherited = self
            .processes
            .get(&info.pid)
            .and_then(|t| t.session.clone())
            .or_else(|| {
                parent.and_then(|p| self.processes.get(&p).and_then(|t| t.session.clone()))
            });
        if let Some(session) = inherited {
            self.track(
                info.pid,
                Tracked {
                    parent,
                    session: Some(session.clone()),
                },
            );
            return Observation::Exec(session);
        }
        let facts = ProcessFacts {
            exe: info.exe.as_deref(),
            argv: &info.argv,
            bundle_id: None,
        };
        let Some(agent) = self.signatures.detect(&facts) else {
            self.track(
                info.pid,
                Tracked {
                    parent,
                    session: None,
                },
            );
            return Observation::Outside;
        };
        let started_ms = info.started_ms.unwrap_or(0);
        let session = Arc::new(Session {
            id: format!("{}-{started_ms}", info.pid),
            platform: agent.id.to_string(),
            name: agent.name.to_string(),
            root_pid: info.pid,
            started_ms,
            workspace: info.cwd.clone(),
            uid: info.uid,
        });
        let inherit = agent.inherit;
        // An agent that does not own its children (an editor hosting an agent extension) is
        // recorded as started, but its children stay outside.
        self.track(
            info.pid,
            Tracked {
                parent,
                session: inherit.then(|| session.clone()),
            },
        );
        Observation::SessionStarted(session)
    }

    /// The parent a process was forked from, as far as the table knows.
    pub fn parent_of(&self, pid: u32) -> Option<u32> {
        self.processes.get(&pid).and_then(|t| t.parent)
    }

    /// The session a process belongs to, if any.
    pub fn session_of(&self, pid: u32) -> Option<Arc<Session>> {
        self.processes.get(&pid).and_then(|t| t.session.clone())
    }

    /// Builds the table from /proc: agents already running and their descendants. Parents
    /// are read before children, so sessions flow down the tree.
    pub fn scan(&mut self, mut processes: Vec<ProcessInfo>) -> Vec<Arc<Session>> {
        processes.sort_by_key(|p| p.start_ticks.unwrap_or(0));
        let mut started = Vec::new();
        for info in &processes {
            if let Observation::SessionStarted(session) = self.exec(info) {
                started.push(session);
            }
        }
        started
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }
}

/// A start time from /proc (clock ticks since boot) in ms since the Unix epoch.
#[cfg(target_os = "linux")]
fn ticks_to_unix_ms(ticks: u64) -> u64 {
    static CLOCK: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let (boot_ms, ticks_per_second) = *CLOCK.get_or_init(|| {
        let boot_ms = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|line| line.strip_prefix("btime "))
                    .and_then(|seconds| seconds.trim().parse::<u64>().ok())
            })
            .map(|seconds| seconds * 1000)
            .unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        (boot_ms, ticks)
    });
    boot_ms + ticks * 1000 / ticks_per_second
}

/// Elsewhere, a process is read through sysinfo.
#[cfg(not(target_os = "linux"))]
pub fn read_process(pid: u32) -> ProcessInfo {
    super::process_scan::SysinfoSnapshot::default().read(pid)
}

/// Every process now (the scan at start, and the fallback's passes).
#[cfg(target_os = "linux")]
pub fn snapshot() -> Vec<ProcessInfo> {
    all_pids().into_iter().map(read_process).collect()
}

#[cfg(not(target_os = "linux"))]
pub fn snapshot() -> Vec<ProcessInfo> {
    super::process_scan::SysinfoSnapshot::default().all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ppid: u32, exe: &str, argv: &[&str], start: u64) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid: Some(ppid),
            exe: Some(exe.into()),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            cwd: Some("/home/ana/project".into()),
            uid: Some(1000),
            start_ticks: Some(start),
            started_ms: Some(1_700_000_000_000 + start),
        }
    }

    #[test]
    fn descendants_of_an_agent_share_its_session_and_others_stay_outside() {
        let mut table = SessionTable::new(Signatures::builtin());
        let shell = process(100, 1, "/usr/bin/bash", &["bash"], 1);
        assert_eq!(table.exec(&shell), Observation::Outside);
        table.fork(100, 200);
        let claude = process(
            200,
            100,
            "/usr/bin/node",
            &[
                "node",
                "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js",
            ],
            5,
        );
        let Observation::SessionStarted(session) = table.exec(&claude) else {
            panic!("claude code not detected")
        };
        assert_eq!(session.platform, "claude-code");
        assert_eq!(session.root_pid, 200);
        // A grandchild that exits before /proc is read: the fork events still place it.
        table.fork(200, 300);
        table.fork(300, 301);
        let gone = ProcessInfo {
            pid: 301,
            ..ProcessInfo::default()
        };
        assert_eq!(table.exec(&gone), Observation::Exec(session.clone()));
        table.exit(301);
        assert_eq!(table.session_of(301), None);
        // Still a member for a while: its file changes are read after it is gone…
        assert!(table.members().read().unwrap().contains_key(&301));
        assert_eq!(table.session_of(300), Some(session.clone()));
        // …until the pid is reused: the new process is judged on its own.
        table.fork(100, 301);
        assert!(!table.members().read().unwrap().contains_key(&301));
        // The user's own shell is not part of it.
        table.fork(100, 400);
        let cat = process(400, 100, "/usr/bin/cat", &["cat", "notes.txt"], 9);
        assert_eq!(table.exec(&cat), Observation::Outside);
    }

    #[test]
    fn a_scan_finds_agents_already_running_and_their_children() {
        let mut table = SessionTable::new(Signatures::builtin());
        let started = table.scan(vec![
            process(12, 11, "/usr/bin/cat", &["cat"], 30),
            process(11, 10, "/usr/bin/bash", &["bash", "-c", "cat"], 20),
            process(10, 1, "/home/ana/.local/bin/aider", &["aider"], 10),
        ]);
        assert_eq!(started.len(), 1);
        assert_eq!(table.session_of(12).map(|s| s.root_pid), Some(10));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_from_proc() {
        let me = read_process(std::process::id());
        assert!(me.complete(), "{me:?}");
        assert_eq!(me.ppid, Some(std::os::unix::process::parent_id()));
        assert!(all_pids().contains(&std::process::id()));
    }
}
