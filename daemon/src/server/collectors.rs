//! The collectors' side of quintd: observed execs and opens decided by policy and recorded,
//! joins between declared and observed sessions, divergence alerts, and their status.

use super::*;
use crate::collect::changes::{Change, ChangeSource, FileChange};
use crate::collect::process_watch::Observed;

impl Daemon {
    pub(super) fn collectors(&self) -> Vec<CollectorStatus> {
        let entry = |name: &str, state: &str, detail: &str| CollectorStatus {
            name: name.into(),
            state: state.into(),
            detail: detail.into(),
        };
        let show = |name: &str, state: &Mutex<CollectorState>| {
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            let mut detail = state.detail.clone();
            for (what, count) in &state.counters {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    detail.push_str(&format!("; {count} {what}"));
                }
            }
            entry(name, state.state, &detail)
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
            show("process", &self.process_collector),
            show("file", &self.file_collector),
            show("file-changes", &self.file_changes),
        ]
    }

    /// The sessions the process collector follows, each with its processes read from /proc
    /// now. Users other than root (and quintd's own) see only their own agents.
    pub(super) async fn observed_sessions(
        &self,
        peer: Peer,
    ) -> anyhow::Result<Vec<crate::protocol::ObservedSession>> {
        use crate::protocol::{ObservedProcess, ObservedSession};
        let members = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(members) = members else {
            return Ok(Vec::new());
        };
        let mut grouped: HashMap<String, (Arc<crate::collect::process::Session>, Vec<u32>)> =
            HashMap::new();
        for (pid, session) in members.read().unwrap_or_else(|e| e.into_inner()).iter() {
            grouped
                .entry(session.id.clone())
                .or_insert_with(|| (session.clone(), Vec::new()))
                .1
                .push(*pid);
        }
        let visible = |session: &crate::collect::process::Session| {
            peer.uid == 0 || peer.uid == self.own_uid || session.uid == Some(peer.uid)
        };
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let mut sessions: Vec<ObservedSession> = grouped
            .into_values()
            .filter(|(session, _)| visible(session))
            .map(|(session, mut pids)| {
                pids.sort();
                let processes = pids
                    .into_iter()
                    .map(|pid| {
                        let info = crate::collect::process::read_process(pid);
                        ObservedProcess {
                            pid,
                            ppid: info.ppid,
                            running: info.exe.is_some() || !info.argv.is_empty(),
                            command: info.command_line(),
                        }
                    })
                    .collect();
                let started = (session.started_ms > 0).then_some(session.started_ms);
                ObservedSession {
                    session_id: self.session_id_for(&session),
                    observed_id: session.id.clone(),
                    platform: session.platform.clone(),
                    name: session.name.clone(),
                    root_pid: session.root_pid,
                    uid: session.uid,
                    started_at: started.and_then(|ms| {
                        chrono::DateTime::from_timestamp_millis(ms as i64)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    }),
                    age_seconds: started.map(|ms| now_ms.saturating_sub(ms) / 1000),
                    workspace: session.workspace.clone(),
                    actions: 0,
                    denials: 0,
                    processes,
                }
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.age_seconds));
        let database = self.config.database_path();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let conn = open_reader(&database)?;
            for session in &mut sessions {
                (session.actions, session.denials) =
                    outbox::session_counts(&conn, &session.session_id)?;
            }
            Ok(sessions)
        })
        .await?
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
        )
        .to_lowercase();
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

    /// An alert when an agent that declares its actions (its hooks reach quintd) did
    /// something observed (`action` on `target`) that nothing it declared in the last few
    /// seconds names: no declared text holds any of `names` (compared in lower case).
    fn divergence(
        &self,
        session: &crate::collect::process::Session,
        action: ActionType,
        target: &str,
        names: &[&str],
    ) -> Option<Event> {
        let declared_id = self
            .joins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.id)
            .cloned()?;
        let names: Vec<String> = names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| n.to_lowercase())
            .collect();
        let explained = self
            .declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&declared_id)
            .is_some_and(|recent| {
                recent.iter().any(|(at, text)| {
                    at.elapsed() <= DIVERGENCE_WINDOW && names.iter().any(|n| text.contains(n))
                })
            });
        if explained {
            return None;
        }
        let source = if action == ActionType::ProcessExec {
            Source::Process
        } else {
            Source::File
        };
        let mut event = Event::new(source, &session.platform, action, &declared_id);
        event.agent_pid = Some(session.root_pid);
        event.target = Some(target.to_string());
        event.decision = quint_policy::Decision::Alert;
        event.rule_ids = vec![DIVERGENCE_RULE.into()];
        event.risk_score = 60;
        event
            .labels
            .insert("observed_session".into(), session.id.clone());
        event.labels.insert(
            "divergence".into(),
            format!(
                "nothing this agent declared in the last {}s names this",
                DIVERGENCE_WINDOW.as_secs()
            ),
        );
        crate::redaction::prepare_for_storage(&self.redactor, &mut event);
        Some(event)
    }

    /// An observed action of a session: recorded under the agent's declared id once joined
    /// (the observed id then labelled `observed_session`), with the session's root as
    /// `agent_pid`.
    fn session_event(
        &self,
        session: &crate::collect::process::Session,
        source: Source,
        action: ActionType,
        target: String,
    ) -> Event {
        let session_id = self.session_id_for(session);
        let mut event = Event::new(source, &session.platform, action, &session_id);
        if session_id != session.id {
            event
                .labels
                .insert("observed_session".into(), session.id.clone());
        }
        event.agent_pid = Some(session.root_pid);
        event.target = Some(target);
        event
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

    fn set_collector(
        state: &Mutex<CollectorState>,
        to: &'static str,
        detail: String,
        counters: Vec<(&'static str, Arc<AtomicU64>)>,
    ) {
        *state.lock().unwrap_or_else(|e| e.into_inner()) = CollectorState {
            state: to,
            detail,
            counters,
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

    /// Changes in a new session's workspace are seen even on a filesystem no home is on (and,
    /// with the notify fallback, only there).
    fn watch_changes_in(&self, session: &crate::collect::process::Session) {
        let source = self
            .change_source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let (Some(source), Some(workspace)) = (source, &session.workspace) {
            if let Err(e) = source.watch(Path::new(workspace)) {
                tracing::debug!(workspace, error = %e, "cannot watch changes in this workspace");
            }
        }
    }

    /// An exec the process collector saw in an agent session: decided by policy like any
    /// action; a denied program is stopped with SIGKILL at once, then the record is written.
    fn observe_exec(&self, observed: Observed) -> Vec<Event> {
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
        if session_start {
            self.watch_changes_in(&session);
        }
        let mut event =
            self.session_event(&session, Source::Process, action, process.command_line());
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
        // What the agent itself starts must be something it declared; what those start in
        // turn is theirs. Quint's own hook, started by the agent, declares itself.
        // argv[0], or the executable when the process was gone before its argv was read.
        let program = process
            .argv
            .first()
            .or(process.exe.as_ref())
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or_default();
        let script = process
            .argv
            .windows(2)
            .find(|pair| pair[0] == "-c")
            .map(|pair| pair[1].as_str())
            .unwrap_or_default();
        // A process gone before anything of it was read cannot be compared.
        let divergence = (!session_start
            && parent == Some(session.root_pid)
            && !program.is_empty()
            && program != "quintctl")
            .then(|| {
                self.divergence(
                    &session,
                    ActionType::ProcessExec,
                    &process.command_line(),
                    &[program, script],
                )
            })
            .flatten();
        std::iter::once(event).chain(divergence).collect()
    }
}

/// How long an agent process's open may wait for policy. Past it the open is allowed and
/// counted: a stuck decision never hangs the process, nor the opens queued behind it (the
/// kernel hands the guard one event at a time).
#[cfg(target_os = "linux")]
const DECISION_DEADLINE: Duration = Duration::from_millis(250);
/// How long an open by a process the collector does not know waits for the collector to
/// catch up (only while agents run and the collector is behind).
#[cfg(target_os = "linux")]
const PLACEMENT_WAIT: Duration = Duration::from_millis(5);
/// Protected paths are marked again this often: a file replaced by rename loses its mark, and
/// a directory created since (a first `aws configure`) has none yet.
#[cfg(target_os = "linux")]
const REMARK_INTERVAL: Duration = Duration::from_secs(30);

/// A guarded open by an agent process, waiting for the decider thread.
#[cfg(target_os = "linux")]
struct OpenJob {
    pid: u32,
    path: String,
    exec: bool,
    session: Arc<crate::collect::process::Session>,
    answer: std::sync::mpsc::SyncSender<bool>,
}

/// What Quint's own files allow an agent process, before policy (whose tamper rules name the
/// installed paths, not this quintd's): hooks and the MCP gateway read the policy snapshot and
/// the public keys, and hooks write sealed files to the spool; nothing else in the state dir is
/// an agent's to read, and nothing of Quint's is its to change.
#[cfg(target_os = "linux")]
enum OwnFile {
    NotOurs,
    Allowed,
    Refused(&'static str),
}

impl Daemon {
    #[cfg(target_os = "linux")]
    fn own_file(&self, path: &Path, write: bool) -> OwnFile {
        let config = &self.config;
        if path.starts_with(&config.policy_dir) {
            return if write {
                OwnFile::Refused("tamper.quint-files-write")
            } else {
                OwnFile::Allowed
            };
        }
        if !path.starts_with(&config.state_dir) {
            return OwnFile::NotOurs;
        }
        let readable = [
            config.policy_snapshot_path(),
            config.audit_public_key_path(),
            config.spool_dir().join(crate::spool::SEAL_PUBLIC_FILE),
        ];
        if path.starts_with(config.spool_dir()) && write {
            OwnFile::Allowed
        } else if write {
            OwnFile::Refused("tamper.quint-files-write")
        } else if path.is_dir() || readable.iter().any(|r| r == path) {
            OwnFile::Allowed
        } else {
            OwnFile::Refused("tamper.quint-state-access")
        }
    }

    /// Directories and files the guard holds opens under: what policy protects (deny and ask
    /// rules' paths) and Quint's own files (never its database). Returns how many marks are in place.
    #[cfg(target_os = "linux")]
    fn mark_protected_paths(&self, guard: &dyn crate::collect::open_guard::OpenGuard) -> usize {
        use crate::collect::protected_paths::{homes, marks_for, Mark, SensitivePlaces};
        let protected =
            quint_policy::rules::protected::protected_paths(&self.current_policy().sources)
                .unwrap_or_default();
        let homes = homes();
        *self.sensitive.lock().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(SensitivePlaces::new(&protected, &homes));
        let patterns: Vec<String> = protected.into_iter().map(|p| p.pattern).collect();
        let config = &self.config;
        // Never the state directory itself, whatever policy names: each open under a mark
        // hands quintd a descriptor of the file, and closing one on the database's files drops
        // the POSIX locks SQLite holds on them in this process; the next connection from
        // outside then truncates the shared-memory index under quintd's writer (SIGBUS).
        let mut marks: Vec<Mark> = marks_for(&patterns, &homes)
            .into_iter()
            .filter(|mark| match mark {
                Mark::Directory(dir) => *dir != config.state_dir,
                Mark::File(file) => !file.starts_with(&config.state_dir),
            })
            .collect();
        if config.policy_dir.is_dir() {
            marks.push(Mark::Directory(config.policy_dir.clone()));
        }
        // The secrets in the state directory, one by one (the database is owner-only).
        let keys = [
            config.redaction_key_path(),
            config.spool_seal_key_path(),
            config.audit_key_path(),
        ];
        marks.extend(keys.into_iter().filter(|k| k.is_file()).map(Mark::File));
        let mut marked = 0;
        for mark in &marks {
            match guard.protect(mark) {
                Ok(()) => marked += 1,
                Err(e) => tracing::debug!(?mark, error = %e, "cannot mark a protected path"),
            }
        }
        marked
    }

    /// Decides one guarded open: the events to record and whether the open may proceed.
    #[cfg(target_os = "linux")]
    fn decide_open(&self, job: &OpenJob) -> (Vec<Event>, bool) {
        let session = &job.session;
        let write =
            !job.exec && crate::collect::file_guard::opening_for_write(job.pid) == Some(true);
        let action = if job.exec {
            ActionType::ProcessExec
        } else if write {
            ActionType::FileWrite
        } else {
            ActionType::FileRead
        };
        let mut event = self.session_event(session, Source::File, action, job.path.clone());
        let labels = &mut event.labels;
        labels.insert("pid".into(), job.pid.to_string());
        if let Ok(exe) = std::fs::read_link(format!("/proc/{}/exe", job.pid)) {
            labels.insert("exe".into(), exe.display().to_string());
        }
        let owner = std::fs::metadata(format!("/proc/{}", job.pid))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .ok();
        if let Some(home) = owner.and_then(home_of) {
            labels.insert("home".into(), home);
        }
        // Where policy protects this kind of access; elsewhere (a read of a file guarded only
        // against writes, like /etc/passwd that every user lookup reads) an open policy has
        // nothing to say about is let through unrecorded.
        let sensitive = self
            .sensitive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .covers(action, Path::new(&job.path));
        let (mut event, allowed, tamper) = match self.own_file(Path::new(&job.path), write) {
            OwnFile::Allowed => return (Vec::new(), true),
            OwnFile::Refused(rule) => {
                event.decision = quint_policy::Decision::Deny;
                event.rule_ids = vec![rule.into()];
                event.risk_score = 90;
                crate::redaction::prepare_for_storage(&self.redactor, &mut event);
                tracing::info!(event_id = %event.event_id, rule, path = %job.path, "agent process refused Quint's own file");
                (event, false, true)
            }
            OwnFile::NotOurs => {
                let policy = self.current_policy();
                let (event, verdict) = self.decide_one(&policy, event);
                if !sensitive && verdict.rule_ids.is_empty() {
                    return (Vec::new(), true);
                }
                let allowed = verdict.decision != quint_policy::Decision::Deny;
                let tamper = verdict.rule_ids.iter().any(|r| r.starts_with("tamper."));
                (event, allowed, tamper)
            }
        };
        // A refused open of what carries Quint's hooks or its own state is tampering.
        if !allowed && tamper {
            event.action_type = ActionType::PolicyTamper;
        }
        if !allowed {
            event
                .labels
                .insert("enforcement".into(), "open refused (EPERM)".into());
        }
        // Quint's own files are always sensitive.
        let sensitive = sensitive || tamper;
        let name = job.path.rsplit('/').next().unwrap_or(&job.path);
        let divergence = sensitive
            .then(|| self.divergence(session, action, &job.path, &[name]))
            .flatten();
        (std::iter::once(event).chain(divergence).collect(), allowed)
    }
}

impl Daemon {
    /// An agent's open that creates a file is refused only after the kernel made the file:
    /// in Quint's own directories that empty file (a policy file, say) is removed again.
    #[cfg(target_os = "linux")]
    fn undo_planted_file(
        &self,
        session: &crate::collect::process::Session,
        change: &FileChange,
    ) -> Option<Event> {
        let path = Path::new(&change.path);
        if change.change != Change::Created || change.directory {
            return None;
        }
        let OwnFile::Refused(rule) = self.own_file(path, true) else {
            return None;
        };
        let empty = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0);
        let outcome = if !empty {
            "left in place: not empty".to_string()
        } else {
            match std::fs::remove_file(path) {
                Ok(()) => "removed the empty file the refused open left".to_string(),
                Err(e) => format!("not removed: {e}"),
            }
        };
        let mut event = self.session_event(
            session,
            Source::File,
            ActionType::PolicyTamper,
            change.path.clone(),
        );
        event.decision = quint_policy::Decision::Deny;
        event.rule_ids = vec![rule.into()];
        event.risk_score = 90;
        if let Some(pid) = change.pid {
            event.labels.insert("pid".into(), pid.to_string());
        }
        event.labels.insert("change".into(), "created".into());
        event.labels.insert("enforcement".into(), outcome);
        crate::redaction::prepare_for_storage(&self.redactor, &mut event);
        Some(event)
    }
}

/// Holds opens of protected paths and refuses the ones policy denies to agent processes. The
/// guard thread answers everyone else at once; agent processes' opens go to a decider thread
/// and wait for it at most `DECISION_DEADLINE`.
#[cfg(target_os = "linux")]
fn start_file_guard(
    daemon: &Arc<Daemon>,
    members: crate::collect::process::SessionMembers,
    caught_up: Arc<dyn Fn() -> bool + Send + Sync>,
) {
    use crate::collect::open_guard::OpenGuard;
    let guard: Arc<dyn OpenGuard> = match crate::collect::file_guard::FileGuard::open() {
        Ok(guard) => Arc::new(guard),
        Err(e) => {
            Daemon::set_collector(
                &daemon.file_collector,
                "off",
                format!("fanotify needs root (CAP_SYS_ADMIN): {e}"),
                Vec::new(),
            );
            return;
        }
    };
    let marked = daemon.mark_protected_paths(guard.as_ref());
    let late = Arc::new(AtomicU64::new(0));
    let unrecorded = Arc::new(AtomicU64::new(0));
    let unplaced = Arc::new(AtomicU64::new(0));
    Daemon::set_collector(
        &daemon.file_collector,
        "active",
        format!(
            "fanotify permission events on {marked} protected paths (policy's deny and ask paths, Quint's own files); agent processes' opens decided by policy"
        ),
        vec![
            ("opens allowed because the decision was late", late.clone()),
            ("guarded opens not recorded (recorder behind)", unrecorded.clone()),
            (
                "opens answered before the process collector had caught up",
                unplaced.clone(),
            ),
        ],
    );
    tracing::info!(marks = marked, "file guard active");
    let sender = spawn_recorder(daemon, "guarded opens");

    let (jobs, queue) = std::sync::mpsc::sync_channel::<OpenJob>(64);
    // Lets the tests make decisions late on purpose.
    let test_delay = std::env::var("QUINTD_TEST_DECISION_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let decider = daemon.clone();
    let decider_unrecorded = unrecorded.clone();
    let spawned = std::thread::Builder::new()
        .name("quintd-file-decide".into())
        .spawn(move || {
            for job in queue {
                if let Some(delay) = test_delay {
                    std::thread::sleep(delay);
                }
                let (mut events, allowed) = decider.decide_open(&job);
                if job.answer.send(allowed).is_err() {
                    if let Some(event) = events.first_mut() {
                        event.labels.insert(
                            "enforcement".into(),
                            "none: decided after the deadline, the open went ahead".into(),
                        );
                    }
                }
                for event in events {
                    if sender.try_send(event).is_err() {
                        decider_unrecorded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "file guard could not start its decider");
        return;
    }

    let remarker = (daemon.clone(), guard.clone());
    let _ = std::thread::Builder::new()
        .name("quintd-file-marks".into())
        .spawn(move || loop {
            std::thread::sleep(REMARK_INTERVAL);
            remarker.0.mark_protected_paths(remarker.1.as_ref());
        });

    let spawned = std::thread::Builder::new()
        .name("quintd-file-guard".into())
        .spawn(move || {
            // Only the members map, kept current by the collector thread: a lookup in /proc
            // here would cost every open under the marks ~20 µs (measured).
            let session_of = |pid: u32| crate::collect::process::member_session(&members, pid);
            // An agent's fresh process can open before the collector thread has read its fork.
            // The kernel queues a fork's event before the child runs, so once the collector
            // has taken in everything queued, an unknown pid is in no session. While agents
            // run and the collector is behind, wait for it (briefly), then look again.
            let watched = |pid: u32| {
                if session_of(pid).is_some() {
                    return true;
                }
                let agents_running = !members.read().unwrap_or_else(|e| e.into_inner()).is_empty();
                if !agents_running || caught_up() {
                    return false;
                }
                let deadline = Instant::now() + PLACEMENT_WAIT;
                while !caught_up() {
                    if Instant::now() >= deadline {
                        unplaced.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    std::thread::yield_now();
                }
                session_of(pid).is_some()
            };
            let error = guard.serve(&watched, &mut |request| {
                let Some(session) = session_of(request.pid) else {
                    return true;
                };
                let (answer, answered) = std::sync::mpsc::sync_channel(1);
                let job = OpenJob {
                    pid: request.pid,
                    path: request.path.to_string(),
                    exec: request.exec,
                    session,
                    answer,
                };
                if jobs.try_send(job).is_err() {
                    late.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                answered
                    .recv_timeout(DECISION_DEADLINE)
                    .unwrap_or_else(|_| {
                        late.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            pid = request.pid,
                            path = request.path,
                            "open allowed: no decision within the deadline"
                        );
                        true
                    })
            });
            tracing::error!(%error, "file guard stopped");
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "file guard could not start");
    }
}

/// A task that records what a collector thread hands it, many events per write; the thread
/// never waits on it (`try_send`).
fn spawn_recorder(daemon: &Arc<Daemon>, what: &'static str) -> mpsc::Sender<Event> {
    let (sender, mut receiver) = mpsc::channel::<Event>(4096);
    let recorder = daemon.clone();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while receiver.recv_many(&mut batch, 512).await > 0 {
            if let Err(e) = recorder.record(std::mem::take(&mut batch)).await {
                tracing::error!(error = %e, what, "cannot record collector events");
            }
        }
    });
    sender
}

/// Noise under a home: caches and package stores that agents' tools churn through.
const CHANGE_NOISE: &[&str] = &[
    "/.cache/",
    "/.npm/",
    "/.cargo/registry/",
    "/.rustup/",
    "/node_modules/",
    "/.git/objects/",
    "/__pycache__/",
    "/.local/share/pnpm/",
    "/go/pkg/mod/",
];

/// The platform's change source: fanotify as root on Linux, the notify crate otherwise.
fn open_change_source() -> Result<Arc<dyn ChangeSource>, String> {
    // Unprivileged fanotify opens, but can neither mark a filesystem nor resolve handles.
    #[cfg(target_os = "linux")]
    // SAFETY: geteuid has no preconditions.
    let fanotify_error = match unsafe { libc::geteuid() } {
        0 => match crate::collect::file_events::FileEvents::open() {
            Ok(events) => return Ok(Arc::new(events)),
            Err(e) => e.to_string(),
        },
        _ => "quintd is not root".to_string(),
    };
    match crate::collect::changes::NotifyChanges::open() {
        Ok(changes) => Ok(Arc::new(changes)),
        #[cfg(target_os = "linux")]
        Err(e) => Err(format!(
            "fanotify needs root (CAP_SYS_ADMIN): {fanotify_error}; notify: {e}"
        )),
        #[cfg(not(target_os = "linux"))]
        Err(e) => Err(format!("notify: {e}")),
    }
}

/// Creates, deletes, renames and writes by agent processes in their workspace and their home,
/// recorded after the fact (a notification cannot be refused; a rule that would deny makes it
/// an alert).
fn start_file_changes(daemon: &Arc<Daemon>, members: crate::collect::process::SessionMembers) {
    let source = match open_change_source() {
        Ok(source) => source,
        Err(why) => {
            Daemon::set_collector(&daemon.file_changes, "off", why, Vec::new());
            return;
        }
    };
    let mut filesystems = 0;
    if source.whole_filesystems() {
        let mut roots = crate::collect::protected_paths::homes();
        roots.push(daemon.config.policy_dir.clone());
        roots.push(daemon.config.state_dir.clone());
        for root in &roots {
            match source.watch(root) {
                Ok(true) => filesystems += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(root = %root.display(), error = %e, "cannot watch changes on this filesystem")
                }
            }
        }
    }
    let unrecorded = Arc::new(AtomicU64::new(0));
    let (state, how) = source.describe();
    let scope = if source.whole_filesystems() {
        format!("; {filesystems} filesystem(s) and each agent workspace's; changes by agent processes in their workspace and home")
    } else {
        String::new()
    };
    Daemon::set_collector(
        &daemon.file_changes,
        state,
        format!("{how}{scope}"),
        vec![
            (
                "overflows of the change queue (each lost an unknown number of changes)",
                source.overflows(),
            ),
            ("changes not recorded (recorder behind)", unrecorded.clone()),
        ],
    );
    *daemon
        .change_source
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(source.clone());
    let sender = spawn_recorder(daemon, "file changes");
    let daemon = daemon.clone();
    let spawned = std::thread::Builder::new()
        .name("quintd-file-changes".into())
        .spawn(move || {
            let session_of = |pid: u32| crate::collect::process::member_session(&members, pid);
            let mut shedding = false;
            let error = source.serve(&|pid| session_of(pid).is_some(), &mut |change| {
                let session = match change.pid {
                    Some(pid) => session_of(pid),
                    None => session_by_workspace(&members, &change.path),
                };
                let Some(session) = session else {
                    return;
                };
                // Nothing waits on this thread but the kernel's queue, which holds every
                // process's changes: it waits for the recorder up to a point. Past it the
                // change is dropped and counted, and so is every next one the recorder has no
                // room for at once, until it has room again: a stuck disk must not stop the
                // queue from draining.
                if let Some(event) = daemon.observe_change(&session, &change) {
                    let recorded = if shedding {
                        sender.try_send(event).is_ok()
                    } else {
                        send_patiently(&sender, event)
                    };
                    shedding = !recorded;
                    if !recorded {
                        unrecorded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            tracing::error!(%error, "file change events stopped");
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "file change events could not start");
    }
}

/// How long the change thread waits for room in the recorder's queue before it drops a
/// change (counted).
const RECORDER_PATIENCE: Duration = Duration::from_secs(2);

fn send_patiently(sender: &mpsc::Sender<Event>, mut event: Event) -> bool {
    let deadline = Instant::now() + RECORDER_PATIENCE;
    loop {
        match sender.try_send(event) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(back)) if Instant::now() < deadline => {
                event = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return false,
        }
    }
}

/// Without pids, a change belongs to the session whose workspace holds it (the deepest one).
fn session_by_workspace(
    members: &crate::collect::process::SessionMembers,
    path: &str,
) -> Option<Arc<crate::collect::process::Session>> {
    members
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|s| {
            s.workspace
                .as_deref()
                .is_some_and(|w| w != "/" && Path::new(path).starts_with(w))
        })
        .max_by_key(|s| s.workspace.as_ref().map(String::len))
        .cloned()
}

impl Daemon {
    /// The record of one change by an agent session, decided by policy: nothing when it is
    /// outside the agent's workspace and home, or in a cache.
    fn observe_change(
        &self,
        session: &crate::collect::process::Session,
        change: &FileChange,
    ) -> Option<Event> {
        #[cfg(target_os = "linux")]
        if let Some(event) = self.undo_planted_file(session, change) {
            return Some(event);
        }
        let home = session.uid.and_then(home_of);
        let inside = |root: &Option<String>| {
            root.as_deref().is_some_and(|root| {
                Path::new(&change.path).starts_with(root)
                    || change
                        .from
                        .as_deref()
                        .is_some_and(|f| Path::new(f).starts_with(root))
            })
        };
        if !(inside(&session.workspace) || inside(&home))
            || CHANGE_NOISE.iter().any(|noise| change.path.contains(noise))
        {
            return None;
        }
        let action = match change.change {
            Change::Created | Change::Written => ActionType::FileWrite,
            Change::Deleted => ActionType::FileDelete,
            Change::Renamed => ActionType::FileRename,
        };
        let mut event = self.session_event(session, Source::File, action, change.path.clone());
        let labels = &mut event.labels;
        match change.pid {
            Some(pid) => labels.insert("pid".into(), pid.to_string()),
            None => labels.insert(
                "attribution".into(),
                "workspace (this change source does not know pids)".into(),
            ),
        };
        labels.insert(
            "change".into(),
            format!("{:?}", change.change).to_lowercase(),
        );
        if let Some(from) = &change.from {
            labels.insert("from".into(), from.clone());
        }
        if change.directory {
            labels.insert("directory".into(), "true".into());
        }
        if let Some(home) = home {
            labels.insert("home".into(), home);
        }
        let policy = self.current_policy();
        let (mut event, verdict) = self.decide_one(&policy, event);
        if verdict.decision >= quint_policy::Decision::Ask {
            // Already done: what policy would have refused is an alert.
            event.labels.insert(
                "enforcement".into(),
                format!(
                    "none: seen after it happened (policy says {})",
                    verdict.decision
                ),
            );
            event.decision = quint_policy::Decision::Alert;
        }
        Some(event)
    }
}

/// Starts the process collector (the platform's `ProcessSource`) and, with it, the file
/// collectors: the guard on Linux as root, change events everywhere.
pub(super) fn start_process_collector(daemon: &Arc<Daemon>) {
    use crate::config::CollectorMode;
    let collectors = &daemon.config.collectors;
    if collectors.process == CollectorMode::Off {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if collectors.process == CollectorMode::Auto && unsafe { libc::geteuid() } != 0 {
        Daemon::set_collector(
            &daemon.process_collector,
            "off",
            "quintd is not root; `collectors.process: on` runs it anyway (without the file guard)"
                .into(),
            Vec::new(),
        );
        return;
    }
    let signatures =
        match crate::collect::agents::Signatures::load(collectors.agents_file.as_deref()) {
            Ok(signatures) => signatures,
            Err(e) => {
                tracing::error!(error = %e, "agent signatures rejected; process collector off");
                Daemon::set_collector(
                    &daemon.process_collector,
                    "off",
                    format!("agent signatures rejected: {e}"),
                    Vec::new(),
                );
                return;
            }
        };
    let (sender, mut receiver) = mpsc::channel(4096);
    let scan_only = collectors.process == CollectorMode::Scan;
    match crate::collect::process_watch::spawn(signatures, sender, scan_only) {
        Ok(running) => {
            tracing::info!(state = running.state, detail = %running.detail, "process collector started");
            Daemon::set_collector(
                &daemon.process_collector,
                running.state,
                running.detail,
                vec![("event batch(es) dropped", running.dropped)],
            );
            *daemon.members.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(running.members.clone());
            #[cfg(target_os = "linux")]
            start_file_guard(daemon, running.members.clone(), running.caught_up.clone());
            #[cfg(not(target_os = "linux"))]
            Daemon::set_collector(
                &daemon.file_collector,
                "off",
                "no file guard on this platform yet (Endpoint Security needs Apple's entitlement)"
                    .into(),
                Vec::new(),
            );
            start_file_changes(daemon, running.members.clone());
            let daemon = daemon.clone();
            // Each exec is decided (and a denied one stopped) as soon as it arrives; the records
            // of everything that queued meanwhile go to disk in one write.
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while receiver.recv_many(&mut batch, 512).await > 0 {
                    let events: Vec<Event> = batch
                        .drain(..)
                        .flat_map(|observed| daemon.observe_exec(observed))
                        .collect();
                    if let Err(e) = daemon.record(events).await {
                        tracing::error!(error = %e, "cannot record observed execs");
                    }
                }
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "process collector could not start");
            Daemon::set_collector(
                &daemon.process_collector,
                "off",
                format!("could not start: {e}"),
                Vec::new(),
            );
        }
    }
}
