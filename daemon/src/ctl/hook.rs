//! `quintctl hook <agent>`: the agent's pre-action hook. Reads the agent's JSON on stdin, asks
//! quintd, answers in the agent's format. When quintd cannot be reached it decides with the last
//! policy snapshot in-process and spools the event, so a denial never turns into a silent allow
//! and nothing is lost. It never waits on stdin or the daemon for longer than a fixed bound.

use std::io::Read;
use std::time::Duration;

use quint_policy::default_pack::default_sources;
use quint_policy::shape::body_summary;
use quint_policy::{ActionType, Decision, Event, Policy, Source};

use crate::client::{ClientError, DaemonClient};
use crate::config::Config;
use crate::hook::{self, Agent, HookAnswer, HookContext, Outcome};
use crate::policy_layers;
use crate::protocol::{EvaluateReply, Request, MALFORMED_INPUT_RULE};
use crate::spool;

const STDIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the hook and returns what to print and the exit code.
pub fn run(agent_name: &str, config: Option<&Config>) -> HookAnswer {
    let agent = match agent_name.parse::<Agent>() {
        Ok(agent) => agent,
        Err(message) => return hook::refuse(None, &message),
    };
    let Some(config) = config else {
        return hook::refuse(
            Some(agent),
            "cannot load the Quint config; see `quintctl status`",
        );
    };
    let context = HookContext {
        home: std::env::var("HOME").ok(),
        user: std::env::var("USER").ok(),
        parent_pid: Some(std::os::unix::process::parent_id()),
        parent_start_ms: None,
    };
    let input = match read_stdin(config.hook.max_input_bytes) {
        Ok(input) => input,
        Err(problem) => return refuse_and_record(agent, config, &context, problem),
    };
    let value: serde_json::Value = match serde_json::from_slice(&input) {
        Ok(value) => value,
        Err(e) => {
            let problem = InputProblem {
                message: format!("malformed hook input: {e}"),
                input: Some(input),
            };
            return refuse_and_record(agent, config, &context, problem);
        }
    };
    let call = match hook::parse(agent, &value, &context) {
        Ok(call) => call,
        Err(message) => {
            let problem = InputProblem {
                message: format!("unusable hook input: {message}"),
                input: Some(input),
            };
            return refuse_and_record(agent, config, &context, problem);
        }
    };
    let Some(event) = call.event.clone() else {
        return hook::answer(
            agent,
            &call,
            &Outcome {
                decision: Decision::Allow,
                message: String::new(),
                tags: Vec::new(),
            },
        );
    };
    match decide(config, event) {
        Ok(outcome) => hook::answer(agent, &call, &outcome),
        // quintd is up but would not take the event (too large, a version it cannot read):
        // block and leave a record, rather than decide offline with what quintd refused.
        Err(message) => {
            let problem = InputProblem {
                message,
                input: Some(input),
            };
            refuse_and_record(agent, config, &context, problem)
        }
    }
}

struct InputProblem {
    message: String,
    input: Option<Vec<u8>>,
}

/// Reads all of stdin, bounded in size and time: an agent that never closes stdin must not
/// hang itself on its own hook. `poll` rather than a reader thread: this runs before every
/// tool call and a thread costs more than the read.
fn read_stdin(max_bytes: usize) -> Result<Vec<u8>, InputProblem> {
    match read_bounded(max_bytes, STDIN_TIMEOUT) {
        Ok(Ok(buffer)) if buffer.len() > max_bytes => Err(InputProblem {
            message: format!("hook input larger than {max_bytes} bytes; refusing to evaluate it"),
            input: Some(buffer),
        }),
        Ok(Ok(buffer)) if buffer.iter().all(u8::is_ascii_whitespace) => Err(InputProblem {
            message: "empty hook input".into(),
            input: None,
        }),
        Ok(Ok(buffer)) => Ok(buffer),
        Ok(Err(e)) => Err(InputProblem {
            message: format!("cannot read hook input: {e}"),
            input: None,
        }),
        Err(()) => Err(InputProblem {
            message: format!("no complete hook input within {}s", STDIN_TIMEOUT.as_secs()),
            input: None,
        }),
    }
}

/// Reads stdin to its end or to `max_bytes + 1`; `Err(())` when the deadline passes first.
fn read_bounded(max_bytes: usize, timeout: Duration) -> Result<std::io::Result<Vec<u8>>, ()> {
    let deadline = std::time::Instant::now() + timeout;
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut fds = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready =
            unsafe { libc::poll(&mut fds, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Ok(Err(error));
        }
        if ready == 0 {
            return Err(());
        }
        match stdin.read(&mut chunk) {
            Ok(0) => return Ok(Ok(buffer)),
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                if buffer.len() > max_bytes {
                    return Ok(Ok(buffer));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// Blocks the action and still records that it happened, with a digest of what was sent.
fn refuse_and_record(
    agent: Agent,
    config: &Config,
    context: &HookContext,
    problem: InputProblem,
) -> HookAnswer {
    let mut event = Event::new(Source::Hook, agent.id(), ActionType::ToolCall, "");
    event.session_id = context.fallback_session_id();
    event.labels.insert("error".into(), problem.message.clone());
    if let Some(input) = &problem.input {
        event.arguments =
            serde_json::json!({ "raw_input": body_summary(&String::from_utf8_lossy(input)) });
    }
    let client = DaemonClient::new(&config.socket, config.hook_timeout());
    if let Err(e) = client.call::<EvaluateReply>(&Request::RecordRefusal {
        event: Box::new(event.clone()),
    }) {
        eprintln!("quint: {e}; spooling the refusal");
        event.decision = Decision::Deny;
        event.rule_ids = vec![MALFORMED_INPUT_RULE.into()];
        spool_event(config, &event);
    }
    hook::refuse(Some(agent), &problem.message)
}

/// Asks quintd; falls back to the local snapshot and the spool when it does not answer.
/// quintd's answer; the local snapshot's when quintd cannot be reached; `Err` when quintd
/// answered but refused the request.
pub(crate) fn decide(config: &Config, mut event: Event) -> Result<Outcome, String> {
    let client = DaemonClient::new(&config.socket, config.hook_timeout());
    match client.call::<EvaluateReply>(&Request::Evaluate {
        event: Box::new(event.clone()),
    }) {
        Ok(reply) => {
            return Ok(Outcome {
                decision: reply.decision,
                message: hook::explain(
                    reply.decision,
                    &reply.rule_ids,
                    reply.reason.as_deref(),
                    false,
                ),
                tags: reply.tags,
            })
        }
        Err(ClientError::Refused { code, message }) => {
            return Err(format!("quintd refused the event ({code}): {message}"))
        }
        Err(e) => eprintln!("quint: {e}; deciding with the local policy snapshot"),
    }
    let verdict = offline_policy(config).evaluate(&event);
    verdict.apply_to(&mut event);
    event
        .labels
        .insert("decided_by".into(), "hook-snapshot".into());
    spool_event(config, &event);
    Ok(Outcome {
        decision: verdict.decision,
        message: hook::explain(
            verdict.decision,
            &verdict.rule_ids,
            verdict.reason.as_deref(),
            true,
        ),
        tags: verdict.tags,
    })
}

/// Spools the event sealed to quintd. If quintd never published its key (it has never run
/// here), the event is redacted first with a one-off key: nothing readable is left behind,
/// at the price of fingerprints that `audit find-secret` cannot match.
fn spool_event(config: &Config, event: &Event) {
    let dir = config.spool_dir();
    let seal = spool::published_seal_key(&dir);
    let mut event = event.clone();
    if seal.is_none() {
        eprintln!("quint: quintd has not published a spool key; redacting with a one-off key");
        match crate::redaction::one_off_redactor() {
            Ok(redactor) => {
                crate::redaction::scrub_event(&redactor, &mut event);
            }
            Err(e) => {
                // Never leave the raw event: keep only what identifies the call.
                eprintln!("quint: {e}; spooling the event without its arguments");
                event.arguments = serde_json::Value::Null;
                event.target = None;
            }
        }
    }
    if let Err(e) = spool::write(&dir, &event, seal.as_ref()) {
        eprintln!(
            "quint: cannot spool the event to {}: {e}",
            config.spool_dir().display()
        );
    }
}

/// The last policy quintd loaded; failing that, the built-in pack with the readable local files.
fn offline_policy(config: &Config) -> Policy {
    if let Some(loaded) = policy_layers::load_snapshot(&config.policy_snapshot_path()) {
        return loaded.policy;
    }
    match policy_layers::compile_layers(&config.policy_dir, None) {
        Ok(loaded) => loaded.policy,
        Err(_) => Policy::compile(&default_sources()).expect("the default pack compiles"),
    }
}
