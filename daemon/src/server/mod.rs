//! quintd's core: the socket API, the single SQLite writer (group commit), policy hot reload
//! and spool ingestion. An answer to an `evaluate` is sent only after its record is committed,
//! so every answered hook call survives a `kill -9`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

mod collectors;

use anyhow::Context;
use quint_policy::shape::summarize_bodies;
use quint_policy::{ActionType, Event, PolicyError, Source, SCHEMA_VERSION};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::config::Config;
use crate::policy_layers::{self, LoadedPolicy};
use crate::protocol::{
    CollectorStatus, DaemonStatus, EvaluateReply, OutboxStatus, PathsStatus, PolicyStatus, Reply,
    Request, MALFORMED_INPUT_RULE, MAX_REQUEST_BYTES,
};
use crate::spool;
use crate::store::mcp_pins;
use crate::store::outbox::{self, EventFilter};
use crate::store::{open_reader, Appended, Recorder};

/// Events per SQLite transaction at most; more waiting requests go into the next one.
const MAX_BATCH_EVENTS: usize = 512;
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
const SPOOL_INTERVAL: Duration = Duration::from_secs(2);
/// Batches of 500 spool files ingested per round at most.
const MAX_SPOOL_PASSES: usize = 100;
const POLICY_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// A quiet machine still gets its newest records signed within this time.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The disk budget is looked at after a commit at most this often.
const BUDGET_INTERVAL: Duration = Duration::from_secs(1);
/// Commits slower than this are logged: hooks wait on them.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

struct WriteJob {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Vec<Appended>, String>>,
}

enum WriterMessage {
    Write(WriteJob),
    /// What the relay did with uploaded events.
    Uploaded(
        crate::fleet::forwarder::UploadOutcome,
        oneshot::Sender<Result<(), String>>,
    ),
    /// Sign the chain head if records were added since the last checkpoint.
    Checkpoint,
    /// Apply the disk budget now (also done after commits, at most once a second).
    EnforceBudget,
    /// Answered at once: the watchdog's proof that the writer is not stuck.
    Ping(oneshot::Sender<()>),
    Shutdown,
}

pub struct Daemon {
    config: Config,
    policy: RwLock<Arc<LoadedPolicy>>,
    policy_errors: Mutex<Vec<PolicyError>>,
    policy_fingerprint: Mutex<String>,
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
    writer: mpsc::Sender<WriterMessage>,
    head: watch::Receiver<u64>,
    connections: AtomicUsize,
    connections_done: Notify,
    spool_rejected: AtomicU64,
    spool_lock: tokio::sync::Mutex<()>,
    own_uid: u32,
    redactor: quint_policy::redact::Redactor,
    /// Opens the spool files hooks sealed while quintd was down.
    spool_key: crypto_box::SecretKey,
    /// The OS collectors' states for `quintctl status`.
    process_collector: Mutex<CollectorState>,
    file_collector: Mutex<CollectorState>,
    file_changes: Mutex<CollectorState>,
    /// Watches new workspaces for changes as agent sessions start in them.
    change_source: Mutex<Option<Arc<dyn crate::collect::changes::ChangeSource>>>,
    /// Processes the collector stopped (SIGKILL), whose children are stopped too.
    stopped: Mutex<std::collections::HashSet<u32>>,
    /// Which process is in which observed agent session (set when the collector runs).
    members: Mutex<Option<crate::collect::process::SessionMembers>>,
    /// Observed session id → the session id the agent declared in its hooks: once a hook call
    /// comes from inside an observed session, its process and file events use the agent's id.
    joins: Mutex<HashMap<String, String>>,
    /// What each session declared recently (hooks, MCP): target and arguments as text, to tell
    /// an observed access the agent announced from one it did not.
    declared: Mutex<HashMap<String, std::collections::VecDeque<(Instant, String)>>>,
    /// Where an undeclared open is worth a divergence alert (refreshed with the guard's marks).
    #[cfg(target_os = "linux")]
    sensitive: Mutex<Arc<crate::collect::protected_paths::SensitivePlaces>>,
    /// The relay this device reports to, once enrolled.
    link: crate::fleet::Link,
}

/// How far back a declared action explains an observed one.
const DIVERGENCE_WINDOW: Duration = Duration::from_secs(10);
/// Declared actions kept per session for the comparison.
const DECLARED_KEPT: usize = 64;
/// The rule id of a divergence alert.
pub const DIVERGENCE_RULE: &str = "quint.divergence";

/// One collector as `quintctl status` shows it: its counters are appended to the detail
/// when not zero.
struct CollectorState {
    state: &'static str,
    detail: String,
    counters: Vec<(&'static str, Arc<AtomicU64>)>,
}

impl CollectorState {
    fn off(why: impl Into<String>) -> Mutex<CollectorState> {
        Mutex::new(CollectorState {
            state: "off",
            detail: why.into(),
            counters: Vec::new(),
        })
    }
}

impl Daemon {
    fn current_policy(&self) -> Arc<LoadedPolicy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs quintd until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    prepare_directories(&config)?;
    let recorder = Recorder::open(&config)?;
    let redaction_key = crate::redaction::load_or_create_key(&config.redaction_key_path())?;
    let redactor = quint_policy::redact::Redactor::builtin(&redaction_key).map_err(|errors| {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "built-in redaction rules do not compile:\n{}",
            listed.join("\n")
        )
    })?;
    let spool_key =
        spool::load_or_create_seal_key(&config.spool_seal_key_path(), &config.spool_dir())
            .context("publishing the spool key")?;
    let (head_tx, head_rx) = watch::channel(recorder.head().seq);
    let (writer_tx, writer_rx) = mpsc::channel(4096);
    let writer_thread = std::thread::Builder::new()
        .name("quintd-writer".into())
        .spawn({
            let budget = config.storage.outbox_budget_mb.saturating_mul(1 << 20);
            move || run_writer(recorder, writer_rx, head_tx, budget)
        })?;
    let stop_checkpointer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpointer = std::thread::Builder::new()
        .name("quintd-wal".into())
        .spawn({
            let (path, stop) = (config.database_path(), stop_checkpointer.clone());
            move || crate::store::run_wal_checkpointer(&path, WAL_CHECKPOINT_INTERVAL, &stop)
        })?;

    let enrollment = match crate::fleet::Enrollment::load(&config.enrollment_path()) {
        Ok(enrollment) => enrollment,
        Err(e) => {
            tracing::error!(error = %e, "the stored enrollment is unreadable; enroll again with `quintctl enroll`");
            None
        }
    };
    let tenant_layer = policy_layers::TenantLayer::load(&config.tenant_policy_path());
    let (loaded, errors) = match policy_layers::compile_layers(
        &config.policy_dir,
        tenant_layer.as_ref(),
    ) {
        Ok(loaded) => (loaded, Vec::new()),
        Err(errors) => {
            for error in &errors {
                tracing::error!(%error, "policy file rejected; starting with the last good policy");
            }
            (
                policy_layers::fallback_policy(&config.policy_dir, &config.policy_snapshot_path()),
                errors,
            )
        }
    };
    if let Err(e) = policy_layers::write_snapshot(&config.policy_snapshot_path(), &loaded) {
        tracing::warn!(error = %e, "cannot write the policy snapshot hooks use offline");
    }
    tracing::info!(
        hash = loaded.policy.hash(),
        rules = loaded.policy.rules().len(),
        "policy loaded"
    );

    let listener = bind_socket(&config.socket)?;
    let daemon = Arc::new(Daemon {
        policy_fingerprint: Mutex::new(policy_dir_fingerprint(&config.policy_dir)),
        config,
        policy: RwLock::new(Arc::new(loaded)),
        policy_errors: Mutex::new(errors),
        started: Instant::now(),
        started_at: chrono::Utc::now(),
        writer: writer_tx.clone(),
        head: head_rx,
        connections: AtomicUsize::new(0),
        connections_done: Notify::new(),
        spool_rejected: AtomicU64::new(0),
        spool_lock: tokio::sync::Mutex::new(()),
        own_uid: unsafe { libc::geteuid() },
        redactor,
        spool_key,
        process_collector: CollectorState::off("collectors.process is off in the config"),
        file_collector: CollectorState::off("starts with the process collector"),
        file_changes: CollectorState::off("starts with the process collector"),
        change_source: Mutex::new(None),
        stopped: Mutex::new(std::collections::HashSet::new()),
        members: Mutex::new(None),
        joins: Mutex::new(HashMap::new()),
        declared: Mutex::new(HashMap::new()),
        #[cfg(target_os = "linux")]
        sensitive: Mutex::new(Arc::default()),
        link: crate::fleet::Link::new(enrollment),
    });
    if let Some(layer) = &tenant_layer {
        daemon.link.note(|s| {
            s.policy_etag = Some(layer.etag.clone());
            s.policy_fetched_at = Some(layer.fetched_at.clone());
        });
    }
    crate::fleet::start(&daemon);
    collectors::start_process_collector(&daemon);
    release_freed_memory();
    tracing::info!(socket = %daemon.config.socket.display(), state_dir = %daemon.config.state_dir.display(), "quintd listening");

    // Under systemd (Type=notify): ready once the socket answers, and watchdog pings while
    // the writer that every hook answer waits on keeps answering.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    if let Some(timeout) = sd_notify::watchdog_enabled() {
        tokio::spawn(ping_watchdog(writer_tx.clone(), timeout));
    }
    let _watcher = watch_policy_dir(daemon.clone());
    tokio::spawn(poll_policy_dir(daemon.clone()));
    tokio::spawn(ingest_spool_periodically(daemon.clone()));
    tokio::spawn(checkpoint_periodically(writer_tx.clone()));
    tokio::spawn(enforce_budget_periodically(writer_tx.clone()));
    tokio::spawn(release_freed_memory_periodically());

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    daemon.connections.fetch_add(1, Ordering::SeqCst);
                    let daemon = daemon.clone();
                    tokio::spawn(async move {
                        handle_connection(&daemon, stream).await;
                        if daemon.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
                            daemon.connections_done.notify_waiters();
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break; }
        }
    }

    // Stop taking connections, let the ones in flight finish (bounded), then flush the writer.
    drop(listener);
    let _ = std::fs::remove_file(&daemon.config.socket);
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while daemon.connections.load(Ordering::SeqCst) > 0 {
        tokio::select! {
            _ = daemon.connections_done.notified() => {}
            _ = &mut deadline => { tracing::warn!("in-flight requests did not finish within 5 s"); break; }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let _ = writer_tx.send(WriterMessage::Shutdown).await;
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .ok();
    stop_checkpointer.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || checkpointer.join())
        .await
        .ok();
    tracing::info!("quintd stopped");
    Ok(())
}

fn prepare_directories(config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    };
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state dir {}", config.state_dir.display()))?;
    // Hooks of every user read the snapshot and write the spool; nothing else here is theirs.
    set_mode(&config.state_dir, 0o755)?;
    let spool = config.spool_dir();
    std::fs::create_dir_all(&spool)?;
    // Hooks trust the spool key only if the dir's owner wrote it: a dir someone else made
    // first would let them publish a key of their own.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&spool)?.uid();
    let me = unsafe { libc::geteuid() };
    if owner != me {
        anyhow::bail!(
            "{} belongs to uid {owner}, not to quintd (uid {me}); remove it and start again",
            spool.display()
        );
    }
    set_mode(&spool, 0o1733)?;
    std::fs::create_dir_all(config.spool_rejected_dir())?;
    set_mode(&config.spool_rejected_dir(), 0o700)?;
    if let Some(parent) = config.socket.parent().filter(|p| !p.exists()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        // Every user's hooks must reach the socket inside (quintd's umask is 077). Only a
        // directory quintd created is touched: a private socket may live in /tmp.
        set_mode(parent, 0o755)?;
    }
    let _ = std::fs::create_dir_all(&config.policy_dir);
    Ok(())
}

/// Binds the socket, refusing to steal it from a quintd that is still answering.
fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another quintd is already listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    // Every user's agents must reach a system daemon; a private daemon stays private.
    let mode = if unsafe { libc::geteuid() } == 0 {
        0o666
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

fn run_writer(
    mut recorder: Recorder,
    mut jobs: mpsc::Receiver<WriterMessage>,
    head: watch::Sender<u64>,
    budget_bytes: u64,
) {
    let mut shutting_down = false;
    let mut budget_checked = Instant::now() - BUDGET_INTERVAL;
    let mut over_budget_warned = false;
    while !shutting_down {
        let Some(first) = jobs.blocking_recv() else {
            break;
        };
        let mut batch = Vec::new();
        match first {
            WriterMessage::Write(job) => batch.push(job),
            WriterMessage::Checkpoint => {
                if let Err(e) = recorder.checkpoint() {
                    tracing::error!(error = %e, "cannot sign an audit checkpoint");
                }
                continue;
            }
            WriterMessage::Shutdown => break,
            WriterMessage::EnforceBudget => {
                budget_checked = Instant::now();
                enforce_budget(&mut recorder, budget_bytes, &mut over_budget_warned);
                continue;
            }
            other => {
                answer_at_once(&mut recorder, other);
                continue;
            }
        }
        let mut events = batch[0].events.len();
        while events < MAX_BATCH_EVENTS {
            match jobs.try_recv() {
                Ok(WriterMessage::Write(job)) => {
                    events += job.events.len();
                    batch.push(job);
                }
                Ok(WriterMessage::Shutdown) => {
                    shutting_down = true;
                    break;
                }
                Ok(WriterMessage::Checkpoint | WriterMessage::EnforceBudget) => {}
                Ok(other) => answer_at_once(&mut recorder, other),
                Err(_) => break,
            }
        }
        let all: Vec<Event> = batch
            .iter()
            .flat_map(|job| job.events.iter().cloned())
            .collect();
        let started = Instant::now();
        let appended = recorder.append(&all);
        let took = started.elapsed();
        if took > SLOW_COMMIT {
            tracing::warn!(
                events = all.len(),
                millis = took.as_millis() as u64,
                "slow SQLite commit"
            );
        }
        match appended {
            Ok(outcomes) => {
                let mut rest = outcomes.as_slice();
                for job in batch {
                    let (mine, tail) = rest.split_at(job.events.len());
                    rest = tail;
                    let _ = job.reply.send(Ok(mine.to_vec()));
                }
                head.send_replace(recorder.head().seq);
                if budget_checked.elapsed() >= BUDGET_INTERVAL {
                    budget_checked = Instant::now();
                    enforce_budget(&mut recorder, budget_bytes, &mut over_budget_warned);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = all.len(), "cannot record actions");
                for job in batch {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
    if let Err(e) = recorder.checkpoint() {
        tracing::error!(error = %e, "cannot sign the final audit checkpoint");
    }
}

/// The requests answered wherever they arrive, even while a batch is being gathered: the
/// watchdog's ping and the forwarder's upload marks. Other messages are not expected here.
fn answer_at_once(recorder: &mut Recorder, message: WriterMessage) {
    match message {
        WriterMessage::Ping(reply) => {
            let _ = reply.send(());
        }
        WriterMessage::Uploaded(outcome, reply) => {
            let marked = recorder
                .mark_uploaded(&outcome.acknowledged, &outcome.rejected)
                .map_err(|e| e.to_string());
            let _ = reply.send(marked);
        }
        _ => {}
    }
}

/// Applies the disk budget after a commit; logs what it removed, and once when nothing more
/// can go (only deny, ask and alert decisions and the audit chain are left).
fn enforce_budget(recorder: &mut Recorder, budget_bytes: u64, warned: &mut bool) {
    match recorder.enforce_budget(budget_bytes) {
        Ok(outcome) => {
            if outcome.dropped > 0 {
                tracing::warn!(
                    dropped = outcome.dropped,
                    pruned = outcome.pruned,
                    "outbox over its disk budget: oldest allow decisions not yet uploaded were dropped"
                );
            } else if outcome.pruned > 0 {
                tracing::info!(
                    pruned = outcome.pruned,
                    "outbox over its disk budget: uploaded allow decisions pruned"
                );
            } else if !*warned && recorder.over_budget(budget_bytes).unwrap_or(false) {
                *warned = true;
                tracing::error!(budget_bytes, "outbox over its disk budget with nothing left to drop: deny, ask and alert decisions are always kept");
            }
        }
        Err(e) => tracing::error!(error = %e, "enforcing the outbox disk budget failed"),
    }
}

impl Daemon {
    async fn record(&self, events: Vec<Event>) -> Result<Vec<Appended>, String> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(WriterMessage::Write(WriteJob { events, reply }))
            .await
            .map_err(|_| "quintd is shutting down".to_string())?;
        answer.await.map_err(|_| "the writer stopped".to_string())?
    }

    async fn evaluate(&self, event: Event, peer: Peer) -> Reply {
        match self.evaluate_all(vec![event], peer).await {
            Ok(mut replies) if replies.len() == 1 => Reply::ok(replies.remove(0)),
            Ok(_) => Reply::error("internal", "one event in, one decision out"),
            Err(reply) => reply,
        }
    }

    /// Decides on one event and prepares it for storage: what is returned holds no secret.
    fn decide_one(
        &self,
        policy: &LoadedPolicy,
        mut event: Event,
    ) -> (Event, quint_policy::Verdict) {
        // Decide on everything the client sent (bodies summarised), store it capped.
        event.arguments = summarize_bodies(&event.arguments);
        let verdict = policy.policy.evaluate(&event);
        verdict.apply_to(&mut event);
        crate::redaction::prepare_for_storage(&self.redactor, &mut event);
        if verdict.decision > quint_policy::Decision::Allow {
            tracing::info!(event_id = %event.event_id, platform = %event.platform, decision = %verdict.decision, rules = ?verdict.rule_ids, "policy verdict");
        }
        (event, verdict)
    }

    /// Decides on every event and records them in one write; the replies come after the commit.
    /// The MCP gateway sends what it allowed in batches: one request and one commit for many.
    async fn evaluate_all(
        &self,
        events: Vec<Event>,
        peer: Peer,
    ) -> Result<Vec<EvaluateReply>, Reply> {
        if let Some(event) = events.iter().find(|e| e.schema_version != SCHEMA_VERSION) {
            return Err(Reply::error(
                "unsupported_schema",
                format!(
                    "schema_version {} is not supported (expected {SCHEMA_VERSION})",
                    event.schema_version
                ),
            ));
        }
        let policy = self.current_policy();
        let mut verdicts = Vec::with_capacity(events.len());
        let mut prepared = Vec::with_capacity(events.len());
        for mut event in events {
            peer.label(&mut event, self.own_uid);
            self.join_declared_session(&mut event, peer);
            self.remember_declared(&event);
            let (event, verdict) = self.decide_one(&policy, event);
            verdicts.push((event.event_id.to_string(), verdict));
            prepared.push(event);
        }
        let outcomes = self
            .record(prepared)
            .await
            .map_err(|message| Reply::error("storage", message))?;
        Ok(verdicts
            .into_iter()
            .zip(outcomes)
            .map(|((event_id, verdict), outcome)| EvaluateReply {
                event_id,
                decision: verdict.decision,
                rule_ids: verdict.rule_ids,
                reason: verdict.reason,
                risk_score: verdict.risk_score,
                recorded: outcome != Appended::Duplicate,
                tags: verdict.tags,
            })
            .collect())
    }

    /// The hook blocked input it could not read; the record says so, whatever the client claims.
    async fn record_refusal(&self, mut event: Event, peer: Peer) -> Reply {
        peer.label(&mut event, self.own_uid);
        crate::redaction::prepare_for_storage(&self.redactor, &mut event);
        event.decision = quint_policy::Decision::Deny;
        event.rule_ids = vec![MALFORMED_INPUT_RULE.into()];
        event.risk_score = 50;
        let event_id = event.event_id.to_string();
        tracing::warn!(%event_id, platform = %event.platform, error = ?event.labels.get("error"), "hook refused malformed input");
        match self.record(vec![event]).await {
            Ok(outcomes) => Reply::ok(EvaluateReply {
                event_id,
                decision: quint_policy::Decision::Deny,
                rule_ids: vec![MALFORMED_INPUT_RULE.into()],
                reason: None,
                risk_score: 50,
                recorded: outcomes.first() != Some(&Appended::Duplicate),
                tags: Vec::new(),
            }),
            Err(message) => Reply::error("storage", message),
        }
    }

    /// Runs a pin-store operation on its own connection (pins change rarely; the recorder's
    /// writer thread stays dedicated to actions).
    async fn with_pins<T: serde::Serialize + Send + 'static>(
        &self,
        operation: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Reply {
        let database = self.config.database_path();
        let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
            let mut conn = crate::store::open_database(&database, "NORMAL")?;
            Ok(operation(&mut conn)?)
        })
        .await;
        match outcome {
            Ok(Ok(result)) => Reply::ok(result),
            Ok(Err(e)) => Reply::error("storage", e.to_string()),
            Err(e) => Reply::error("internal", e.to_string()),
        }
    }

    async fn status(&self) -> anyhow::Result<DaemonStatus> {
        let database = self.config.database_path();
        let (decisions, sessions) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let conn = open_reader(&database)?;
            let since = (chrono::Utc::now() - chrono::Duration::minutes(30))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            Ok((
                outbox::decision_counts(&conn)?,
                outbox::sessions_since(&conn, &since)?,
            ))
        })
        .await??;
        // The link's numbers come from the outbox too: pending is counted once, there.
        let relay = self.link_status().await?;
        let loaded = self.current_policy();
        let errors = self
            .policy_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(ToString::to_string)
            .collect();
        let config = &self.config;
        Ok(DaemonStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            started_at: self
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            uptime_seconds: self.started.elapsed().as_secs(),
            policy: PolicyStatus {
                hash: loaded.policy.hash().into(),
                rules: loaded.policy.rules().len(),
                origin: loaded.origin.into(),
                sources: loaded.sources.iter().map(|s| s.name.clone()).collect(),
                loaded_at: loaded
                    .loaded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                errors,
            },
            outbox: OutboxStatus {
                pending: relay.pending,
                recorded: decisions.values().sum(),
                audit_head_seq: *self.head.borrow(),
                spooled: spool::pending(&config.spool_dir()),
                spool_rejected: self.spool_rejected.load(Ordering::Relaxed),
            },
            decisions,
            active_sessions: sessions,
            collectors: self.collectors(),
            relay,
            paths: PathsStatus {
                state_dir: config.state_dir.display().to_string(),
                socket: config.socket.display().to_string(),
                policy_dir: config.policy_dir.display().to_string(),
                database: config.database_path().display().to_string(),
            },
        })
    }

    async fn events(&self, filter: EventFilter) -> anyhow::Result<Vec<outbox::StoredEvent>> {
        let database = self.config.database_path();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            Ok(outbox::query_events(&open_reader(&database)?, &filter)?)
        })
        .await?
    }

    /// Streams new events to the client until it goes away.
    async fn follow(
        &self,
        mut filter: EventFilter,
        stream: &mut tokio::net::unix::OwnedWriteHalf,
        client: &mut (impl tokio::io::AsyncRead + Unpin),
    ) {
        let mut probe = [0u8; 64];
        let mut head = self.head.clone();
        if filter.after_seq.is_none() {
            filter.after_seq = Some(*head.borrow());
        }
        filter.limit = Some(500);
        loop {
            let events = match self.events(filter.clone()).await {
                Ok(events) => events,
                Err(e) => {
                    let _ = stream
                        .write_all(&Reply::error("storage", e.to_string()).to_line())
                        .await;
                    return;
                }
            };
            let mut fetched = 0;
            for stored in events {
                fetched += 1;
                filter.after_seq = Some(stored.seq);
                if stream
                    .write_all(&Reply::ok(&stored).to_line())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if fetched < 500 {
                // Wake on the next commit; a client that hangs up ends the stream at once.
                tokio::select! {
                    _ = head.changed() => {}
                    read = client.read(&mut probe) => {
                        if !matches!(read, Ok(n) if n > 0) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ingests spooled hook events; returns how many were newly recorded.
    async fn ingest_spool(&self) -> usize {
        let _guard = self.spool_lock.lock().await;
        let dir = self.config.spool_dir();
        let mut total = 0;
        // Bounded: a file that can be neither read, moved nor removed must not spin the loop.
        for _ in 0..MAX_SPOOL_PASSES {
            let entries = match tokio::task::spawn_blocking({
                let dir = dir.clone();
                let key = self.spool_key.clone();
                move || spool::read(&dir, 500, &key)
            })
            .await
            {
                Ok(Ok(entries)) if !entries.is_empty() => entries,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the spool");
                    return total;
                }
                _ => return total,
            };
            let mut events = Vec::new();
            let mut paths = Vec::new();
            for entry in entries {
                match entry.event {
                    Ok(mut event) => {
                        event.labels.insert("spooled".into(), "true".into());
                        event
                            .labels
                            .insert("peer_uid".into(), entry.owner_uid.to_string());
                        crate::redaction::prepare_for_storage(&self.redactor, &mut event);
                        events.push(event);
                        paths.push(entry.path);
                    }
                    Err(reason) => {
                        self.spool_rejected.fetch_add(1, Ordering::Relaxed);
                        match spool::quarantine(&self.config.spool_rejected_dir(), &entry.path) {
                            Ok(kept) => {
                                tracing::warn!(file = %kept.display(), %reason, "unreadable spool file set aside")
                            }
                            Err(e) => {
                                tracing::error!(file = %entry.path.display(), error = %e, "cannot set aside a spool file")
                            }
                        }
                    }
                }
            }
            if events.is_empty() {
                // Only unreadable files this pass: go on only if they all left the spool.
                if spool::read(&dir, 1, &self.spool_key)
                    .map(|left| left.is_empty())
                    .unwrap_or(true)
                {
                    return total;
                }
                continue;
            }
            match self.record(events).await {
                Ok(outcomes) => {
                    total += outcomes
                        .iter()
                        .filter(|o| matches!(o, Appended::Recorded(_)))
                        .count();
                    for path in paths {
                        let _ = std::fs::remove_file(path);
                    }
                }
                Err(message) => {
                    tracing::error!(%message, "cannot record spooled events; they stay in the spool");
                    return total;
                }
            }
        }
        total
    }

    fn reload_policy(&self) {
        let fingerprint = policy_dir_fingerprint(&self.config.policy_dir);
        *self
            .policy_fingerprint
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = fingerprint;
        let tenant_layer = policy_layers::TenantLayer::load(&self.config.tenant_policy_path());
        match policy_layers::compile_layers(&self.config.policy_dir, tenant_layer.as_ref()) {
            Ok(loaded) => {
                self.policy_errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                if loaded.policy.hash() == self.current_policy().policy.hash() {
                    return;
                }
                if let Err(e) =
                    policy_layers::write_snapshot(&self.config.policy_snapshot_path(), &loaded)
                {
                    tracing::warn!(error = %e, "cannot write the policy snapshot");
                }
                tracing::info!(
                    hash = loaded.policy.hash(),
                    rules = loaded.policy.rules().len(),
                    "policy reloaded"
                );
                *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                release_freed_memory();
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!(%error, "policy file rejected; keeping the last good policy");
                }
                *self.policy_errors.lock().unwrap_or_else(|e| e.into_inner()) = errors;
            }
        }
    }
}

/// What the fleet link needs of quintd.
impl Daemon {
    pub fn link(&self) -> &crate::fleet::Link {
        &self.link
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes whenever actions are committed: the forwarder wakes on it.
    pub fn head_changes(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// Marks uploaded events acknowledged or rejected, through the single writer.
    pub async fn record_upload(
        &self,
        outcome: crate::fleet::forwarder::UploadOutcome,
    ) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(WriterMessage::Uploaded(outcome, reply))
            .await
            .map_err(|_| "the writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the writer has stopped".to_string())?
    }

    /// The ETag of the tenant layer stored here, if any.
    pub fn tenant_policy_etag(&self) -> Option<String> {
        policy_layers::TenantLayer::load(&self.config.tenant_policy_path()).map(|l| l.etag)
    }

    /// Puts the tenant's layer (or, with `None`, no layer) in force if the whole policy
    /// compiles with it; otherwise nothing changes and the errors say why.
    pub fn apply_tenant_policy(
        &self,
        layer: Option<policy_layers::TenantLayer>,
    ) -> Result<(), crate::fleet::policy_sync::ApplyError> {
        use crate::fleet::policy_sync::ApplyError;
        policy_layers::compile_layers(&self.config.policy_dir, layer.as_ref())
            .map_err(ApplyError::Invalid)?;
        let path = self.config.tenant_policy_path();
        let stored = match &layer {
            Some(layer) => serde_json::to_vec(layer)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| crate::key_file::replace(&path, &bytes)),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
        };
        if let Err(e) = stored {
            return Err(ApplyError::Storage(format!(
                "cannot store the tenant policy in {}: {e:#}",
                path.display()
            )));
        }
        self.reload_policy();
        self.link.note(|s| {
            s.policy_etag = layer.as_ref().map(|l| l.etag.clone());
            s.policy_fetched_at = layer.as_ref().map(|l| l.fetched_at.clone());
            s.policy_error = None;
        });
        Ok(())
    }

    /// The link's state with the outbox's numbers.
    pub async fn link_status(&self) -> anyhow::Result<crate::fleet::LinkStatus> {
        let database = self.config.database_path();
        let (pending, oldest, rejected, dropped) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let conn = open_reader(&database)?;
                Ok((
                    outbox::pending_count(&conn)?,
                    outbox::oldest_pending(&conn)?,
                    outbox::rejected_count(&conn)?,
                    outbox::dropped_count(&conn)?,
                ))
            })
            .await??;
        let mut status = self.link.status();
        status.pending = pending;
        status.oldest_pending_seconds =
            oldest.map(|at| (chrono::Utc::now() - at).num_seconds().max(0) as u64);
        status.rejected = rejected;
        status.dropped = dropped;
        Ok(status)
    }

    /// What the heartbeat reports.
    pub async fn health(&self) -> anyhow::Result<serde_json::Value> {
        let link = self.link_status().await?;
        let loaded = self.current_policy();
        Ok(serde_json::json!({
            "daemon_version": env!("CARGO_PKG_VERSION"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "policy": {
                "hash": loaded.policy.hash(),
                "tenant_etag": link.policy_etag,
                "error": link.policy_error,
            },
            "collectors": self.collectors().iter().map(|c| serde_json::json!({
                "name": c.name, "state": c.state,
            })).collect::<Vec<_>>(),
            "outbox": {
                "pending": link.pending,
                "oldest_pending_seconds": link.oldest_pending_seconds,
                "rejected": link.rejected,
                "dropped": link.dropped,
            },
            "last_error": link.last_error,
        }))
    }

    /// `quintctl enroll`: enrolls, stores the device token, and switches the link to it.
    async fn enroll(&self, relay: &str, deploy_token: &str) -> Reply {
        match crate::fleet::enrollment::enroll(self.link.http(), relay, deploy_token).await {
            Ok(enrollment) => {
                if let Err(e) = enrollment.save(&self.config.enrollment_path()) {
                    return Reply::error(
                        "storage",
                        format!("enrolled, but cannot store the device token: {e:#}"),
                    );
                }
                tracing::info!(relay = %enrollment.relay_url, tenant = %enrollment.tenant_id, device = %enrollment.device_id, "enrolled");
                let reply = crate::protocol::EnrollReply {
                    relay: enrollment.relay_url.clone(),
                    tenant_id: enrollment.tenant_id.clone(),
                    device_id: enrollment.device_id.clone(),
                };
                self.link.replace(enrollment);
                Reply::ok(reply)
            }
            Err(message) => Reply::error("enroll_failed", message),
        }
    }
}

/// The client on the other end of the socket, from the kernel (SO_PEERCRED), not from its words.
#[derive(Debug, Clone, Copy)]
struct Peer {
    uid: u32,
    gid: u32,
    pid: Option<i32>,
}

impl Peer {
    fn of(stream: &UnixStream) -> Option<Peer> {
        stream.peer_cred().ok().map(|c| Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        })
    }

    /// Other users see only their own events: commands and paths are personal data.
    fn scope(&self, mut filter: EventFilter, own_uid: u32) -> EventFilter {
        if self.uid != 0 && self.uid != own_uid {
            filter.peer_uid = Some(self.uid);
        }
        filter
    }

    /// Overwrites what only quintd may say about an event; the client's word is not taken for
    /// who it is, where the event came from, or how it was decided.
    fn label(&self, event: &mut Event, own_uid: u32) {
        for owned in ["spooled", "decided_by", "peer_uid", "peer_gid", "peer_pid"] {
            event.labels.remove(owned);
        }
        if !matches!(
            event.source,
            quint_policy::Source::Hook | quint_policy::Source::Mcp
        ) {
            event.source = quint_policy::Source::Hook;
        }
        event.labels.insert("peer_uid".into(), self.uid.to_string());
        event.labels.insert("peer_gid".into(), self.gid.to_string());
        if let Some(pid) = self.pid {
            event.labels.insert("peer_pid".into(), pid.to_string());
        }
        // A system daemon does not take a user's word for their home directory.
        if self.uid != own_uid {
            match home_of(self.uid) {
                Some(home) => event.labels.insert("home".into(), home),
                None => event.labels.remove("home"),
            };
        }
    }
}

/// Home directories by uid, looked up once: the password database may be slow (NSS, LDAP)
/// and this runs for every hook call from another user.
fn home_of(uid: u32) -> Option<String> {
    static CACHE: std::sync::LazyLock<Mutex<std::collections::HashMap<u32, Option<String>>>> =
        std::sync::LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(uid).or_insert_with(|| lookup_home(uid)).clone()
}

fn lookup_home(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into our buffers only, and we read pw_dir only on success.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || entry.pw_dir.is_null() {
        return None;
    }
    let dir = unsafe { std::ffi::CStr::from_ptr(entry.pw_dir) };
    Some(dir.to_string_lossy().into_owned())
}

async fn handle_connection(daemon: &Daemon, stream: UnixStream) {
    let peer = Peer::of(&stream).unwrap_or(Peer {
        uid: u32::MAX,
        gid: u32::MAX,
        pid: None,
    });
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES as u64 + 1);
    let mut line = Vec::new();
    let reply =
        match tokio::time::timeout(REQUEST_READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await
        {
            Err(_) => Reply::error("timeout", "no complete request within 5 s"),
            Ok(Err(e)) => Reply::error("io", e.to_string()),
            Ok(Ok(_)) if line.len() > MAX_REQUEST_BYTES => Reply::error(
                "too_large",
                format!(
                "request larger than {MAX_REQUEST_BYTES} bytes; hooks shape bodies before sending"
            ),
            ),
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
                Err(e) => Reply::error("bad_request", format!("malformed request: {e}")),
                Ok(Request::Follow { filter }) => {
                    let filter = peer.scope(filter, daemon.own_uid);
                    daemon.follow(filter, &mut write, &mut reader).await;
                    return;
                }
                Ok(request) => dispatch(daemon, request, peer).await,
            },
        };
    if reply.error.is_some() {
        tracing::debug!(error = ?reply.error, peer_pid = ?peer.pid, "request refused");
    }
    let _ = write.write_all(&reply.to_line()).await;
}

async fn dispatch(daemon: &Daemon, request: Request, peer: Peer) -> Reply {
    match request {
        Request::Evaluate { event } => daemon.evaluate(*event, peer).await,
        Request::EvaluateBatch { events } => match daemon.evaluate_all(events, peer).await {
            Ok(replies) => Reply::ok(replies),
            Err(reply) => reply,
        },
        Request::RecordRefusal { event } => daemon.record_refusal(*event, peer).await,
        Request::Enroll {
            relay,
            deploy_token,
        } => {
            if peer.uid != 0 && peer.uid != daemon.own_uid {
                return Reply::error(
                    "forbidden",
                    "only root (or quintd's own user) can enroll this device",
                );
            }
            daemon.enroll(&relay, &deploy_token).await
        }
        Request::Status => match daemon.status().await {
            Ok(status) => Reply::ok(status),
            Err(e) => Reply::error("storage", e.to_string()),
        },
        Request::Events { filter } => match daemon.events(peer.scope(filter, daemon.own_uid)).await
        {
            Ok(events) => Reply::ok(events),
            Err(e) => Reply::error("storage", e.to_string()),
        },
        Request::FindSecret { candidate } => {
            let fingerprint = daemon.redactor.fingerprint(&candidate);
            let scope = peer.scope(EventFilter::default(), daemon.own_uid).peer_uid;
            let database = daemon.config.database_path();
            let found = tokio::task::spawn_blocking({
                let fingerprint = fingerprint.clone();
                move || -> anyhow::Result<_> {
                    Ok(outbox::find_fingerprint(
                        &open_reader(&database)?,
                        &fingerprint,
                        scope,
                    )?)
                }
            })
            .await;
            match found {
                Ok(Ok(sightings)) => Reply::ok(crate::protocol::FindSecretReply {
                    fingerprint,
                    sightings,
                }),
                Ok(Err(e)) => Reply::error("storage", e.to_string()),
                Err(e) => Reply::error("internal", e.to_string()),
            }
        }
        Request::Redact { text } => {
            let (redacted, findings) = daemon.redactor.redact(&text);
            Reply::ok(crate::protocol::RedactReply { redacted, findings })
        }
        Request::IngestSpool => {
            Reply::ok(serde_json::json!({ "ingested": daemon.ingest_spool().await }))
        }
        Request::Follow { .. } => Reply::error("bad_request", "follow is a streaming request"),
        Request::McpListing {
            server,
            tools,
            complete,
        } => {
            daemon
                .with_pins(move |conn| {
                    mcp_pins::check_listing(conn, peer.uid, &server, &tools, complete)
                })
                .await
        }
        Request::McpToolState { server, tool } => {
            daemon
                .with_pins(move |conn| mcp_pins::tool_state(conn, peer.uid, &server, &tool))
                .await
        }
        Request::McpApprove { server } => {
            let named = server.clone();
            match daemon
                .with_pins(move |conn| mcp_pins::approve(conn, peer.uid, &server))
                .await
            {
                Reply { ok: true, result: Some(serde_json::Value::Null), .. } => Reply::error(
                    "not_found",
                    format!("no MCP server named {named:?} has been listed through `quintctl mcp wrap` by this user"),
                ),
                reply => reply,
            }
        }
        Request::Sessions => match daemon.observed_sessions(peer).await {
            Ok(sessions) => Reply::ok(sessions),
            Err(e) => Reply::error("internal", e.to_string()),
        },
        Request::McpServers => {
            let scope = peer.scope(EventFilter::default(), daemon.own_uid).peer_uid;
            daemon
                .with_pins(move |conn| mcp_pins::list(conn, scope))
                .await
        }
    }
}

/// Pings systemd's watchdog at a third of its timeout, each time only after the writer
/// answered: a wedged writer stops the pings and systemd restarts quintd.
async fn ping_watchdog(writer: mpsc::Sender<WriterMessage>, timeout: Duration) {
    loop {
        tokio::time::sleep(timeout / 3).await;
        let (reply, answer) = oneshot::channel();
        if writer.send(WriterMessage::Ping(reply)).await.is_err() {
            return;
        }
        match tokio::time::timeout(timeout / 3, answer).await {
            Ok(Ok(())) => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            _ => tracing::error!(
                "the writer did not answer the watchdog; systemd will restart quintd if this lasts"
            ),
        }
    }
}

/// The budget is enforced after commits; this catches the last burst before a quiet spell.
async fn enforce_budget_periodically(writer: mpsc::Sender<WriterMessage>) {
    loop {
        tokio::time::sleep(BUDGET_INTERVAL * 2).await;
        if writer.send(WriterMessage::EnforceBudget).await.is_err() {
            return;
        }
    }
}

async fn checkpoint_periodically(writer: mpsc::Sender<WriterMessage>) {
    let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
    interval.tick().await;
    loop {
        interval.tick().await;
        if writer.send(WriterMessage::Checkpoint).await.is_err() {
            return;
        }
    }
}

async fn ingest_spool_periodically(daemon: Arc<Daemon>) {
    loop {
        let ingested = daemon.ingest_spool().await;
        if ingested > 0 {
            tracing::info!(ingested, "spooled hook events recorded");
        }
        tokio::time::sleep(SPOOL_INTERVAL).await;
    }
}

/// Names, sizes and modification times of the policy files: a change means reload.
fn policy_dir_fingerprint(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    let mut parts: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let modified = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some(format!(
                "{}:{}:{}",
                e.file_name().to_string_lossy(),
                meta.len(),
                modified
            ))
        })
        .collect();
    parts.sort();
    parts.join("|")
}

/// inotify/FSEvents on the policy directory; a reload follows each burst of changes.
fn watch_policy_dir(daemon: Arc<Daemon>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the directory (as a reload does) raises access events: reacting to those
        // would reload forever.
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch the policy directory; polling every 5 s"))
    .ok()?;
    if let Err(e) = watcher.watch(
        &daemon.config.policy_dir,
        notify::RecursiveMode::NonRecursive,
    ) {
        tracing::warn!(error = %e, dir = %daemon.config.policy_dir.display(), "cannot watch the policy directory; polling every 5 s");
        return None;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Editors write in several steps: wait for the burst to end.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            reload_in_background(&daemon).await;
        }
    });
    Some(watcher)
}

/// Compiling a policy takes milliseconds of CPU: keep it off the threads that answer hooks.
async fn reload_in_background(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || daemon.reload_policy()).await {
        tracing::error!(error = %e, "policy reload panicked");
    }
}

/// A safety net for file systems where change notification is missed.
async fn poll_policy_dir(daemon: Arc<Daemon>) {
    loop {
        tokio::time::sleep(POLICY_POLL_INTERVAL).await;
        let current = policy_dir_fingerprint(&daemon.config.policy_dir);
        let changed = *daemon
            .policy_fingerprint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            != current;
        if changed {
            reload_in_background(&daemon).await;
        }
    }
}

/// What a burst (a build's file changes, a busy agent) allocated and freed goes back to the
/// kernel once a minute, so an idle quintd stays small.
async fn release_freed_memory_periodically() {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    interval.tick().await;
    loop {
        interval.tick().await;
        let _ = tokio::task::spawn_blocking(release_freed_memory).await;
    }
}

/// Compiling the policy and the redaction rules needs several times the memory the compiled
/// forms keep; glibc holds on to what was freed unless asked to give it back.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
