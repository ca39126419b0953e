//! The collectors' side of quintd: observed execs and opens decided by policy and recorded,
//! joins between declared and observed sessions, divergence alerts, and their status.

use super::*;
#[cfg(target_os = "linux")]
use crate::collect::process_watch::Observed;

impl Daemon {
    pub(super) fn collectors(&self) -> Vec<CollectorStatus> {
        let entry = |name: &str, state: &str, detail: &str| CollectorStatus {
            name: name.into(),
            state: state.into(),
            detail: detail.into(),
        };
        let process = self
            .process_collector
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dropped = process
            .dropped
            .as_ref()
            .map(|d| d.load(Ordering::Relaxed))
            .unwrap_or(0);
        let process_detail = if dropped > 0 {
            format!("{}; {dropped} event batch(es) dropped", process.detail)
        } else {
            process.detail.clone()
        };
        vec![
            entry("hooks", "active", "agent hooks answered over the socket"),
            entry(
                "spool",
                "active",
                "events decided offline by hooks are ingested every 2 s",
            ),
            entry(
                "mcp",
                "active",
                "every tools/call of servers run through `quintctl mcp wrap` is decided before it reaches the server",
            ),
            entry("process", process.state, &process_detail),
            {
                let file = self.file_collector.lock().unwrap_or_else(|e| e.into_inner());
                entry("file", file.0, &file.1)
            },
        ]
    }

    /// A hook call from a process the collector placed in an agent session ties the agent's
    /// declared session id to that session (the caller's pid comes from the kernel).
    pub(super) fn join_declared_session(&self, event: &mut Event, peer: Peer) {
        if event.source != Source::Hook || event.session_id.is_empty() {
            return;
        }
        let (Some(pid), Some(members)) = (
            peer.pid,
            self.members
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        ) else {
            return;
        };
        let Some(observed) = crate::collect::process::session_of_lineage(&members, pid as u32)
        else {
            return;
        };
        event
            .labels
            .insert("observed_session".into(), observed.id.clone());
        event.agent_pid.get_or_insert(observed.root_pid);
        let mut joins = self.joins.lock().unwrap_or_else(|e| e.into_inner());
        if joins.len() >= 10_000 {
            joins.clear();
        }
        joins.insert(observed.id.clone(), event.session_id.clone());
    }

    /// Keeps what an agent declared (before redaction: compared in memory, never stored).
    pub(super) fn remember_declared(&self, event: &Event) {
        if !matches!(event.source, Source::Hook | Source::Mcp) {
            return;
        }
        let text = format!(
            "{} {} {}",
            event.tool_name.as_deref().unwrap_or(""),
            event.target.as_deref().unwrap_or(""),
            event.arguments
        );
        let mut declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        if declared.len() >= 10_000 {
            declared.clear();
        }
        let recent = declared.entry(event.session_id.clone()).or_default();
        if recent.len() >= DECLARED_KEPT {
            recent.pop_front();
        }
        recent.push_back((Instant::now(), text));
    }

    /// An alert when an agent that declares its actions (its hooks reach quintd) touched
    /// `path` without having declared anything that names the file in the last few seconds.
    fn divergence(&self, session: &crate::collect::process::Session, path: &str) -> Option<Event> {
        let declared_id = self
            .joins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.id)
            .cloned()?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let explained = self
            .declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&declared_id)
            .is_some_and(|recent| {
                recent
                    .iter()
                    .any(|(at, text)| at.elapsed() <= DIVERGENCE_WINDOW && text.contains(name))
            });
        if explained {
            return None;
        }
        let mut event = Event::new(
            Source::File,
            &session.platform,
            ActionType::FileRead,
            &declared_id,
        );
        event.agent_pid = Some(session.root_pid);
        event.target = Some(path.to_string());
        event.decision = quint_policy::Decision::Alert;
        event.rule_ids = vec![DIVERGENCE_RULE.into()];
        event.risk_score = 60;
        event
            .labels
            .insert("observed_session".into(), session.id.clone());
        event.labels.insert(
            "divergence".into(),
            format!(
                "no action this agent declared in the last {}s names this file",
                DIVERGENCE_WINDOW.as_secs()
            ),
        );
        crate::redaction::prepare_for_storage(&self.redactor, &mut event);
        Some(event)
    }

    /// The session id process and file events of an observed session are recorded under.
    fn session_id_for(&self, session: &crate::collect::process::Session) -> String {
        self.joins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.id)
            .cloned()
            .unwrap_or_else(|| session.id.clone())
    }

    fn process_collector_off(&self, why: String) {
        *self
            .process_collector
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = ProcessCollectorState {
            state: "off",
            detail: why,
            dropped: None,
        };
    }

    fn stopped_contains(&self, pid: u32) -> bool {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&pid)
    }

    /// Remembers a stopped process so what it started is stopped too; pids are reused, so
    /// only the most recent ones are kept.
    fn stopped_insert(&self, pid: u32) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if stopped.len() >= 4096 {
            stopped.clear();
        }
        stopped.insert(pid);
    }

    /// An exec the process collector saw in an agent session: decided by policy like any
    /// action; a denied program is stopped with SIGKILL at once, then the record is written.
    #[cfg(target_os = "linux")]
    fn observe_exec(&self, observed: Observed) -> Event {
        let Observed {
            session,
            process,
            parent,
            session_start,
        } = observed;
        let action = if session_start {
            ActionType::SessionStart
        } else {
            ActionType::ProcessExec
        };
        let session_id = self.session_id_for(&session);
        let mut event = Event::new(Source::Process, &session.platform, action, &session_id);
        if session_id != session.id {
            event
                .labels
                .insert("observed_session".into(), session.id.clone());
        }
        event.agent_pid = Some(session.root_pid);
        event.target = Some(process.command_line());
        let labels = &mut event.labels;
        labels.insert("pid".into(), process.pid.to_string());
        if let Some(ppid) = process.ppid {
            labels.insert("ppid".into(), ppid.to_string());
        }
        if let Some(exe) = &process.exe {
            labels.insert("exe".into(), exe.clone());
        }
        if let Some(cwd) = &process.cwd {
            labels.insert("cwd".into(), cwd.clone());
        }
        if !process.complete() {
            labels.insert(
                "partial".into(),
                "the process exited before /proc was read".into(),
            );
        }
        if let Some(uid) = process.uid {
            labels.insert("uid".into(), uid.to_string());
            // `~` in rules means the process owner's home.
            if let Some(home) = home_of(uid) {
                labels.insert("home".into(), home);
            }
        }
        let policy = self.current_policy();
        let (mut event, verdict) = self.decide_one(&policy, event);
        // A denied program is stopped, and so is anything it started before the kill landed.
        let parent_stopped = parent.is_some_and(|p| self.stopped_contains(p));
        let denied = verdict.decision == quint_policy::Decision::Deny && !session_start;
        if denied || parent_stopped {
            // SAFETY: kill(2) on a pid; at worst the process is already gone (ESRCH).
            let killed = unsafe { libc::kill(process.pid as i32, libc::SIGKILL) } == 0;
            let outcome = match (killed, denied) {
                (true, true) => "SIGKILL".to_string(),
                (true, false) => "SIGKILL (started by a stopped process)".to_string(),
                (false, _) => format!("not stopped: {}", std::io::Error::last_os_error()),
            };
            event.labels.insert("enforcement".into(), outcome);
            self.stopped_insert(process.pid);
        }
        event
    }
}

/// Holds opens of credential directories and refuses the ones policy denies to agent
/// processes. Runs on its own thread: the kernel waits on every answer.
#[cfg(target_os = "linux")]
fn start_file_guard(daemon: &Arc<Daemon>, members: crate::collect::process::SessionMembers) {
    use crate::collect::file_guard::{credential_directories, FileGuard};
    let set_state = |state: &'static str, detail: String| {
        *daemon
            .file_collector
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (state, detail);
    };
    let guard = match FileGuard::open() {
        Ok(guard) => guard,
        Err(e) => {
            set_state("off", format!("fanotify needs root (CAP_SYS_ADMIN): {e}"));
            return;
        }
    };
    let mut marked = Vec::new();
    for dir in credential_directories() {
        match guard.protect_directory(&dir) {
            Ok(()) => marked.push(dir.display().to_string()),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot protect directory"),
        }
    }
    set_state(
        "active",
        format!(
            "fanotify permission events on {} credential directories; agent processes' opens decided by policy",
            marked.len()
        ),
    );
    tracing::info!(directories = ?marked, "file guard active");
    let (sender, mut receiver) = mpsc::channel::<Event>(4096);
    let recorder = daemon.clone();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while receiver.recv_many(&mut batch, 512).await > 0 {
            if let Err(e) = recorder.record(std::mem::take(&mut batch)).await {
                tracing::error!(error = %e, "cannot record guarded opens");
            }
        }
    });
    let daemon = daemon.clone();
    let spawned = std::thread::Builder::new()
        .name("quintd-file-guard".into())
        .spawn(move || {
            // Only the members map, kept current by the collector thread: a lookup in /proc
            // here would cost every open under the marks ~20 µs (measured). An agent process
            // that opens before the collector has placed it is not held (docs/collectors.md).
            let session_of = |pid: u32| {
                members
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&pid)
                    .cloned()
            };
            let watched = |pid: u32| session_of(pid).is_some();
            let error = guard.serve(watched, |request| {
                let Some(session) = session_of(request.pid) else {
                    return true;
                };
                let action = if request.exec {
                    ActionType::ProcessExec
                } else if crate::collect::file_guard::opening_for_write(request.pid) == Some(true) {
                    ActionType::FileWrite
                } else {
                    ActionType::FileRead
                };
                let session_id = daemon.session_id_for(&session);
                let mut event = Event::new(Source::File, &session.platform, action, &session_id);
                event.agent_pid = Some(session.root_pid);
                event.target = Some(request.path.to_string());
                let labels = &mut event.labels;
                labels.insert("pid".into(), request.pid.to_string());
                if session_id != session.id {
                    labels.insert("observed_session".into(), session.id.clone());
                }
                if let Ok(exe) = std::fs::read_link(format!("/proc/{}/exe", request.pid)) {
                    labels.insert("exe".into(), exe.display().to_string());
                }
                let owner = std::fs::metadata(format!("/proc/{}", request.pid))
                    .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                    .ok();
                if let Some(home) = owner.and_then(home_of) {
                    labels.insert("home".into(), home);
                }
                let policy = daemon.current_policy();
                let (mut event, verdict) = daemon.decide_one(&policy, event);
                let allowed = verdict.decision != quint_policy::Decision::Deny;
                // A refused write to what carries Quint's hooks or its own state is tampering.
                if !allowed && verdict.rule_ids.iter().any(|r| r.starts_with("tamper.")) {
                    event.action_type = ActionType::PolicyTamper;
                }
                if !allowed {
                    event
                        .labels
                        .insert("enforcement".into(), "open refused (EPERM)".into());
                }
                let divergence = daemon.divergence(&session, request.path);
                // Never wait here: every open under the marks waits on this thread.
                for event in std::iter::once(event).chain(divergence) {
                    if sender.try_send(event).is_err() {
                        tracing::warn!("a guarded open could not be recorded (recorder behind)");
                    }
                }
                allowed
            });
            tracing::error!(%error, "file guard stopped");
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "file guard could not start");
    }
}

/// macOS: Endpoint Security needs an Apple entitlement; until then hooks and MCP only.
#[cfg(not(target_os = "linux"))]
pub(super) fn start_process_collector(_daemon: &Arc<Daemon>) {}

#[cfg(target_os = "linux")]
pub(super) fn start_process_collector(daemon: &Arc<Daemon>) {
    use crate::config::CollectorMode;
    let collectors = &daemon.config.collectors;
    if collectors.process == CollectorMode::Off {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if collectors.process == CollectorMode::Auto && unsafe { libc::geteuid() } != 0 {
        daemon.process_collector_off(
            "quintd is not root; `collectors.process: on` runs the /proc-scan fallback anyway"
                .into(),
        );
        return;
    }
    let signatures =
        match crate::collect::agents::Signatures::load(collectors.agents_file.as_deref()) {
            Ok(signatures) => signatures,
            Err(e) => {
                tracing::error!(error = %e, "agent signatures rejected; process collector off");
                daemon.process_collector_off(format!("agent signatures rejected: {e}"));
                return;
            }
        };
    let (sender, mut receiver) = mpsc::channel(4096);
    match crate::collect::process_watch::spawn(signatures, sender) {
        Ok(running) => {
            tracing::info!(state = running.state, detail = %running.detail, "process collector started");
            *daemon
                .process_collector
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = ProcessCollectorState {
                state: running.state,
                detail: running.detail,
                dropped: Some(running.dropped),
            };
            *daemon.members.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(running.members.clone());
            start_file_guard(daemon, running.members.clone());
            let daemon = daemon.clone();
            // Each exec is decided (and a denied one stopped) as soon as it arrives; the records
            // of everything that queued meanwhile go to disk in one write.
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while receiver.recv_many(&mut batch, 512).await > 0 {
                    let events: Vec<Event> = batch
                        .drain(..)
                        .map(|observed| daemon.observe_exec(observed))
                        .collect();
                    if let Err(e) = daemon.record(events).await {
                        tracing::error!(error = %e, "cannot record observed execs");
                    }
                }
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "process collector could not start");
            daemon.process_collector_off(format!("could not start: {e}"));
        }
    }
}
