//! The process collector's thread: a `ProcessSource` (the proc connector, or without it a scan
//! every few seconds) → the session table → one `Observed` per exec in an agent session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::agents::Signatures;
#[cfg(target_os = "linux")]
use super::proc_connector::{ProcConnector, ProcEvent};
#[cfg(target_os = "linux")]
use super::process::read_process;
use super::process::{snapshot, Observation, ProcessInfo, Session, SessionTable};

/// How often the fallback scan looks for new processes.
const SCAN_INTERVAL: Duration = Duration::from_secs(2);

/// An exec in an agent session (or an agent starting).
#[derive(Debug, Clone)]
pub struct Observed {
    pub session: Arc<Session>,
    pub process: ProcessInfo,
    /// The process it was forked from (from the fork event; /proc may already say 1).
    pub parent: Option<u32>,
    /// This exec started the session (the agent itself).
    pub session_start: bool,
}

/// What the collector is doing, for `quintctl status`.
pub struct Running {
    /// `active` (proc connector) or `fallback` (periodic /proc scan).
    pub state: &'static str,
    pub detail: String,
    /// Events the kernel dropped because the collector fell behind (ENOBUFS), or observations
    /// quintd could not take.
    pub dropped: Arc<AtomicU64>,
    /// Which process is in which session, kept current by the collector thread.
    pub members: super::process::SessionMembers,
    /// Whether the collector has placed every process started so far.
    pub caught_up: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Where process starts come from: the platform's event stream, or a periodic scan. Each
/// feeds the session table; `observe` hands on the execs in agent sessions.
pub trait ProcessSource: Send + 'static {
    /// `active` (every event) or `fallback` (a scan that misses short-lived processes), and
    /// what it does, for `quintctl status`.
    fn describe(&self) -> (&'static str, String);
    /// Whether every process started so far has been placed in the session table (so an
    /// unknown pid belongs to no agent). A scan can never say: it answers true.
    fn caught_up(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        Arc::new(|| true)
    }
    /// Follows processes until it fails or quintd can no longer take observations.
    fn follow(
        self: Box<Self>,
        table: SessionTable,
        out: mpsc::Sender<Observed>,
        dropped: &AtomicU64,
        own_pid: u32,
    );
}

/// Linux: the proc connector when quintd has CAP_NET_ADMIN, the /proc scan otherwise.
#[cfg(target_os = "linux")]
fn platform_source() -> Box<dyn ProcessSource> {
    match ProcConnector::open() {
        Ok(connector) => Box::new(connector),
        Err(e) => Box::new(PeriodicScan {
            why: format!("the proc connector needs CAP_NET_ADMIN: {e}"),
        }),
    }
}

/// Elsewhere (macOS): the sysinfo scan; Endpoint Security needs an entitlement from Apple.
#[cfg(not(target_os = "linux"))]
fn platform_source() -> Box<dyn ProcessSource> {
    Box::new(PeriodicScan {
        why: "no process event source on this platform yet".into(),
    })
}

/// Starts the collector thread. The event source is subscribed before processes are listed,
/// so no process falls between the two.
/// `scan_only` skips the platform's event source.
pub fn spawn(
    signatures: Signatures,
    out: mpsc::Sender<Observed>,
    scan_only: bool,
) -> std::io::Result<Running> {
    let dropped = Arc::new(AtomicU64::new(0));
    let mut table = SessionTable::new(signatures);
    let members = table.members();
    let own_pid = std::process::id();
    let source = if scan_only {
        Box::new(PeriodicScan {
            why: "collectors.process is `scan`".into(),
        })
    } else {
        platform_source()
    };
    // Agents already running are found by a scan either way, and recorded as started.
    let existing: Vec<ProcessInfo> = snapshot()
        .into_iter()
        .filter(|p| p.pid != own_pid)
        .collect();
    let roots: HashMap<u32, ProcessInfo> = existing.iter().map(|p| (p.pid, p.clone())).collect();
    for session in table.scan(existing) {
        tracing::info!(session = %session.id, platform = %session.platform, root_pid = session.root_pid, "agent already running");
        if let Some(process) = roots.get(&session.root_pid).cloned() {
            let observed = Observed {
                session,
                parent: process.ppid,
                process,
                session_start: true,
            };
            if out.try_send(observed).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let (state, detail) = source.describe();
    let caught_up = source.caught_up();
    {
        let dropped = dropped.clone();
        std::thread::Builder::new()
            .name("quintd-process".into())
            .spawn(move || source.follow(table, out, &dropped, own_pid))?;
    }
    Ok(Running {
        state,
        detail,
        dropped,
        members,
        caught_up,
    })
}

fn deliver(out: &mpsc::Sender<Observed>, observed: Observed, dropped: &AtomicU64) -> bool {
    match out.blocking_send(observed) {
        Ok(()) => true,
        Err(_) => {
            dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

fn observe(
    table: &mut SessionTable,
    info: ProcessInfo,
    out: &mpsc::Sender<Observed>,
    dropped: &AtomicU64,
) -> bool {
    let (session, session_start) = match table.exec(&info) {
        Observation::Outside => return true,
        Observation::SessionStarted(session) => (session, true),
        Observation::Exec(session) => (session, false),
    };
    let parent = table.parent_of(info.pid);
    deliver(
        out,
        Observed {
            session,
            process: info,
            parent,
            session_start,
        },
        dropped,
    )
}

#[cfg(target_os = "linux")]
impl ProcessSource for ProcConnector {
    fn describe(&self) -> (&'static str, String) {
        ("active", "proc connector: every fork, exec and exit".into())
    }

    fn caught_up(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let progress = self.progress();
        Arc::new(move || progress.caught_up())
    }

    fn follow(
        self: Box<Self>,
        table: SessionTable,
        out: mpsc::Sender<Observed>,
        dropped: &AtomicU64,
        own_pid: u32,
    ) {
        follow_connector(*self, table, out, dropped, own_pid)
    }
}

#[cfg(target_os = "linux")]
fn follow_connector(
    mut connector: ProcConnector,
    mut table: SessionTable,
    out: mpsc::Sender<Observed>,
    dropped: &AtomicU64,
    own_pid: u32,
) {
    let mut events = Vec::new();
    loop {
        match connector.next_events(&mut events) {
            Ok(true) => {}
            // Everything sent so far is in the table: idle until more comes.
            Ok(false) => match connector.wait() {
                Ok(()) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "process collector stopped");
                    return;
                }
            },
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("the kernel dropped process events: the collector fell behind");
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "process collector stopped");
                return;
            }
        }
        for event in &events {
            match *event {
                ProcEvent::Fork { parent, child } => table.fork(parent, child),
                ProcEvent::Exec { pid } if pid == own_pid => {}
                // Read at once: a short-lived process may already be gone; what was readable
                // is recorded, the rest is marked.
                ProcEvent::Exec { pid } => {
                    if !observe(&mut table, read_process(pid), &out, dropped) {
                        return;
                    }
                }
                ProcEvent::Exit { pid, .. } => table.exit(pid),
            }
        }
    }
}

/// A pass over every process every `SCAN_INTERVAL`: new ones are judged as execs.
struct PeriodicScan {
    why: String,
}

impl ProcessSource for PeriodicScan {
    fn describe(&self) -> (&'static str, String) {
        (
            "fallback",
            format!(
                "periodic process scan every {}s ({}); short-lived processes are missed",
                SCAN_INTERVAL.as_secs(),
                self.why
            ),
        )
    }

    fn follow(
        self: Box<Self>,
        table: SessionTable,
        out: mpsc::Sender<Observed>,
        dropped: &AtomicU64,
        own_pid: u32,
    ) {
        scan_periodically(table, out, dropped, own_pid)
    }
}

fn scan_periodically(
    mut table: SessionTable,
    out: mpsc::Sender<Observed>,
    dropped: &AtomicU64,
    own_pid: u32,
) {
    // Everything running now was seen by the first scan.
    let mut known: std::collections::HashSet<(u32, u64)> = snapshot()
        .into_iter()
        .map(|info| (info.pid, info.start_ticks.unwrap_or(0)))
        .collect();
    loop {
        std::thread::sleep(SCAN_INTERVAL);
        let current: Vec<ProcessInfo> = snapshot()
            .into_iter()
            .filter(|p| p.pid != own_pid)
            .collect();
        let identities: std::collections::HashSet<(u32, u64)> = current
            .iter()
            .map(|info| (info.pid, info.start_ticks.unwrap_or(0)))
            .collect();
        // Gone since the last pass: forgotten, so a reused pid does not inherit a session.
        for (pid, _) in known.difference(&identities) {
            table.exit(*pid);
        }
        let mut fresh: Vec<ProcessInfo> = current
            .into_iter()
            .filter(|info| !known.contains(&(info.pid, info.start_ticks.unwrap_or(0))))
            .collect();
        known = identities;
        fresh.sort_by_key(|p| p.start_ticks.unwrap_or(0));
        for info in fresh {
            if !observe(&mut table, info, &out, dropped) {
                return;
            }
        }
    }
}
