//! Decisions for the gateway. A round trip to quintd (evaluate, commit, answer) costs more than
//! an MCP tool call's whole budget, so the wrapper evaluates quintd's published policy (the
//! snapshot quintd rewrites on every load: the same rules, compiled the same way) in-process.
//! A call that policy allows goes on at once and quintd records it right after, off the call's
//! path; anything stronger (ask, deny) is decided by quintd itself before the call proceeds,
//! so every refusal is quintd's and is on disk before the client hears of it.

use std::os::unix::fs::MetadataExt;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use quint_policy::{Decision, Event, Policy};

use crate::client::DaemonClient;
use crate::config::Config;
use crate::hook::{explain, Outcome};
use crate::policy_layers;
use crate::protocol::{EvaluateReply, Request};

/// How long the wrapper waits at exit for quintd to record the calls it allowed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Decider {
    config: Option<Config>,
    snapshot: Mutex<CachedPolicy>,
    to_record: Mutex<Option<mpsc::Sender<Event>>>,
    recorder: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct CachedPolicy {
    /// (modified, size, inode) of the snapshot file the policy was compiled from.
    stamp: Option<(i64, i64, u64, u64)>,
    policy: Option<Arc<Policy>>,
}

impl Decider {
    pub fn new(config: Option<Config>, server: String) -> Decider {
        let (sender, receiver) = mpsc::channel::<Event>();
        let recorder = config.clone().and_then(|config| {
            std::thread::Builder::new()
                .name("mcp-recorder".into())
                .spawn(move || record_allowed(&config, &server, receiver))
                .ok()
        });
        Decider {
            config,
            snapshot: Mutex::new(CachedPolicy::default()),
            to_record: Mutex::new(Some(sender)),
            recorder: Mutex::new(recorder),
        }
    }

    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// quintd's current policy, recompiled only when quintd has published a new snapshot.
    pub fn local_policy(&self) -> Option<Arc<Policy>> {
        let path = self.config.as_ref()?.policy_snapshot_path();
        let meta = std::fs::metadata(&path).ok()?;
        let stamp = (meta.mtime(), meta.mtime_nsec(), meta.size(), meta.ino());
        let mut cached = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if cached.stamp != Some(stamp) {
            cached.policy =
                policy_layers::load_snapshot(&path).map(|loaded| Arc::new(loaded.policy));
            cached.stamp = Some(stamp);
        }
        cached.policy.clone()
    }

    /// Decides on a tool call: in-process when the published policy allows it (recorded by
    /// quintd afterwards), by quintd when it does not.
    pub fn decide_call(&self, event: Event) -> Outcome {
        let Some(policy) = self.local_policy() else {
            return self.decide(event);
        };
        let verdict = policy.evaluate(&event);
        if verdict.decision > Decision::Alert {
            return self.decide(event);
        }
        let sent = match self
            .to_record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(sender) => sender.send(event).map_err(|back| back.0),
            None => Err(event),
        };
        match sent {
            Ok(()) => Outcome {
                decision: verdict.decision,
                message: explain(
                    verdict.decision,
                    &verdict.rule_ids,
                    verdict.reason.as_deref(),
                    false,
                ),
                tags: verdict.tags,
            },
            // No recorder (the wrapper is exiting): quintd decides and records it now.
            Err(event) => self.decide(event),
        }
    }

    /// quintd's decision, recorded before it returns (or the offline snapshot's, spooled); a
    /// config that cannot load blocks.
    pub fn decide(&self, event: Event) -> Outcome {
        let Some(config) = &self.config else {
            return blocked("Quint cannot load its config, so MCP tool calls are blocked; see `quintctl status`");
        };
        match crate::ctl::hook::decide(config, event) {
            Ok(outcome) => outcome,
            Err(message) => blocked(&message),
        }
    }

    /// Waits (bounded) until every allowed call is recorded; called once, at exit.
    pub fn flush(&self) {
        drop(
            self.to_record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let Some(recorder) = self
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
        while !recorder.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if recorder.is_finished() {
            let _ = recorder.join();
        } else {
            eprintln!(
                "quint mcp: quintd did not record every allowed call within {FLUSH_TIMEOUT:?}"
            );
        }
    }
}

pub fn blocked(message: &str) -> Outcome {
    Outcome {
        decision: Decision::Deny,
        message: format!("Quint policy: blocked: {message}"),
        tags: Vec::new(),
    }
}

/// At most this many allowed calls, or about this many bytes, go to quintd in one request.
const MAX_BATCH_EVENTS: usize = 256;
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Hands allowed calls to quintd in batches (one request and one commit for all the calls that
/// queued up meanwhile, so recording costs little CPU next to the calls), where they are
/// evaluated and recorded. When quintd cannot be reached each call is decided offline and
/// spooled, as the hook does. quintd deciding otherwise means its policy changed after the
/// wrapper read the snapshot; the record holds quintd's verdict and the user is told.
fn record_allowed(config: &Config, server: &str, calls: mpsc::Receiver<Event>) {
    let client = DaemonClient::new(&config.socket, config.hook_timeout());
    while let Ok(first) = calls.recv() {
        let mut batch = vec![first];
        let mut bytes = 0;
        while batch.len() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
            match calls.try_recv() {
                Ok(event) => {
                    bytes += event.arguments.to_string().len();
                    batch.push(event);
                }
                Err(_) => break,
            }
        }
        let tools: Vec<String> = batch
            .iter()
            .map(|e| e.tool_name.clone().unwrap_or_default())
            .collect();
        match client.call::<Vec<EvaluateReply>>(&Request::EvaluateBatch {
            events: batch.clone(),
        }) {
            Ok(replies) => {
                for (reply, tool) in replies.iter().zip(&tools) {
                    if reply.decision > Decision::Alert {
                        eprintln!(
                            "quint mcp[{server}]: {tool} was allowed with the policy snapshot, but quintd's newer policy says {} [rule {}]",
                            reply.decision,
                            reply.rule_ids.join(", ")
                        );
                    }
                }
            }
            Err(e) => {
                eprintln!("quint mcp[{server}]: quintd did not take {} allowed call(s) ({e}); recording them offline", batch.len());
                for event in batch {
                    if let Err(message) = crate::ctl::hook::decide(config, event) {
                        eprintln!("quint mcp[{server}]: a call was not recorded: {message}");
                    }
                }
            }
        }
    }
}
