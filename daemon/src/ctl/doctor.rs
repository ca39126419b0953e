//! `quintctl doctor`: checks an installation piece by piece and says, for each failure, how to
//! fix it: quintd answering, the socket's permissions, the collectors' privileges, hooks in
//! every installed agent, enrollment, the relay reachable, the clock.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use serde::Serialize;

use super::hooks_install::{agent_present, is_installed, Scope};
use super::output::print_json;
use crate::client::DaemonClient;
use crate::config::Config;
use crate::hook::Agent;
use crate::protocol::{DaemonStatus, Request};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Works, but not as well as it could.
    Warn,
    Fail,
    /// Not checked: an earlier failure makes it meaningless.
    Skip,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(
    name: &'static str,
    outcome: Outcome,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        outcome,
        detail: detail.into(),
        fix,
    }
}

/// Clock skew past this breaks token expiry and event times.
const MAX_SKEW_SECONDS: i64 = 60;

pub fn run(config: &Config, json: bool) -> i32 {
    let checks = checks(config);
    if json {
        print_json(&checks);
    } else {
        for c in &checks {
            let mark = match c.outcome {
                Outcome::Pass => "ok  ",
                Outcome::Warn => "warn",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            println!("[{mark}] {:<12} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("       fix: {fix}");
            }
        }
    }
    i32::from(checks.iter().any(|c| c.outcome == Outcome::Fail))
}

pub fn checks(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let client = DaemonClient::new(&config.socket, Duration::from_secs(5));
    let status = client.call::<DaemonStatus>(&Request::Status);
    checks.push(match &status {
        Ok(s) => check("daemon", Outcome::Pass, format!("quintd {} answering (pid {})", s.version, s.pid), None),
        Err(e) => check(
            "daemon",
            Outcome::Fail,
            e.to_string(),
            Some("start it: `sudo systemctl enable --now quintd` (or run `quintd` for a private daemon)".into()),
        ),
    });
    checks.push(socket_check(config));
    let Ok(status) = status else {
        for name in ["collectors", "policy", "enrollment", "relay", "clock"] {
            checks.push(check(name, Outcome::Skip, "quintd is not answering", None));
        }
        checks.extend(hook_checks());
        return checks;
    };
    checks.push(collector_check(&status));
    checks.push(if status.policy.errors.is_empty() && status.relay.policy_error.is_none() {
        check("policy", Outcome::Pass, format!("{} rules in force ({})", status.policy.rules, status.policy.origin), None)
    } else {
        let mut errors = status.policy.errors.clone();
        errors.extend(status.relay.policy_error.clone());
        check(
            "policy",
            Outcome::Warn,
            format!("the last good policy is in force; newer ones were refused: {}", errors.join("; ")),
            Some("fix the files named (`quintctl policy lint`), or the tenant policy at the relay".into()),
        )
    });
    let relay = &status.relay;
    checks.push(if !relay.enrolled {
        check(
            "enrollment",
            Outcome::Warn,
            "not enrolled: actions stay on this machine",
            Some("`quintctl enroll --relay URL --token-file FILE` with a deploy token from your security team".into()),
        )
    } else if relay.revoked {
        check(
            "enrollment",
            Outcome::Fail,
            "device revoked: uploads stopped, events are kept",
            Some("enroll again with a new deploy token: `quintctl enroll --relay URL --token-file FILE`".into()),
        )
    } else {
        check(
            "enrollment",
            Outcome::Pass,
            format!(
                "tenant {} · device {}",
                relay.tenant_id.as_deref().unwrap_or("?"),
                relay.device_id.as_deref().unwrap_or("?")
            ),
            None,
        )
    });
    match relay.relay.as_deref() {
        Some(url) => {
            let (reach, clock) = relay_checks(url, relay.pending);
            checks.push(reach);
            checks.push(clock);
        }
        None => {
            checks.push(check("relay", Outcome::Skip, "not enrolled", None));
            checks.push(check(
                "clock",
                Outcome::Skip,
                "no relay to compare with",
                None,
            ));
        }
    }
    checks.extend(hook_checks());
    checks
}

/// A system quintd's socket must let every user's hooks in; a private one only its owner.
fn socket_check(config: &Config) -> Check {
    let meta = match std::fs::metadata(&config.socket) {
        Ok(meta) => meta,
        Err(e) => {
            return check(
                "socket",
                Outcome::Fail,
                format!("{}: {e}", config.socket.display()),
                Some("start quintd; it creates the socket".into()),
            )
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    let detail = format!(
        "{} mode {mode:o}, owner uid {}",
        config.socket.display(),
        meta.uid()
    );
    if meta.uid() == 0 && mode & 0o006 != 0o006 {
        return check(
            "socket",
            Outcome::Fail,
            format!("{detail}: other users' hooks cannot connect"),
            Some(
                "restart quintd (it sets 0666 on its socket); check nothing else changes it".into(),
            ),
        );
    }
    check("socket", Outcome::Pass, detail, None)
}

/// The process collector and file guard need root (proc connector, fanotify).
fn collector_check(status: &DaemonStatus) -> Check {
    let degraded: Vec<String> = status
        .collectors
        .iter()
        .filter(|c| matches!(c.name.as_str(), "process" | "file" | "file-changes"))
        .filter(|c| c.state != "active")
        .map(|c| format!("{} {} ({})", c.name, c.state, c.detail))
        .collect();
    if degraded.is_empty() {
        return check(
            "collectors",
            Outcome::Pass,
            "process, file guard and file changes active",
            None,
        );
    }
    check(
        "collectors",
        Outcome::Warn,
        degraded.join("; "),
        Some("run quintd as root through its systemd unit (packaging/linux/quintd.service), with collectors.process: auto".into()),
    )
}

/// Every agent found in this home has Quint's hook, per user or managed.
fn hook_checks() -> Vec<Check> {
    let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let present: Vec<Agent> = Agent::ALL
        .iter()
        .copied()
        .filter(|&agent| agent_present(agent, &home))
        .collect();
    if present.is_empty() {
        return vec![check(
            "hooks",
            Outcome::Pass,
            "no agent found in this home",
            None,
        )];
    }
    present
        .into_iter()
        .map(|agent| {
            if is_installed(agent, Scope::Managed, &home) || is_installed(agent, Scope::User, &home)
            {
                check(
                    "hooks",
                    Outcome::Pass,
                    format!("{}: Quint's hook is installed", agent.id()),
                    None,
                )
            } else {
                check(
                    "hooks",
                    Outcome::Fail,
                    format!(
                        "{}: installed, but without Quint's hook: its actions are not seen",
                        agent.id()
                    ),
                    Some(format!("`quintctl hooks install --agent {}`", agent.id())),
                )
            }
        })
        .collect()
}

/// The relay's health endpoint answered, and its clock agrees with ours.
fn relay_checks(url: &str, pending: u64) -> (Check, Check) {
    let asked = std::time::Instant::now();
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                let response = reqwest::Client::new()
                    .get(format!("{url}/healthz"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| {
                        crate::fleet::RelayError::unreachable(e)
                            .message()
                            .to_string()
                    })?;
                let date = response
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok());
                Ok((response.status(), date))
            })
        });
    let took = asked.elapsed();
    match answer {
        Ok((code, date)) => {
            let reach = if code.is_success() {
                check("relay", Outcome::Pass, format!("{url} answered in {} ms; {pending} event(s) pending", took.as_millis()), None)
            } else {
                check("relay", Outcome::Fail, format!("{url}/healthz answered {code}"), Some("ask the relay's operators; events are kept meanwhile".into()))
            };
            let clock = match date {
                Some(date) => {
                    let skew = (chrono::Utc::now() - date.with_timezone(&chrono::Utc)).num_seconds();
                    if skew.abs() <= MAX_SKEW_SECONDS {
                        check("clock", Outcome::Pass, format!("{skew:+} s against the relay"), None)
                    } else {
                        check(
                            "clock",
                            Outcome::Fail,
                            format!("{skew:+} s against the relay: event times and token expiry will be wrong"),
                            Some("enable time sync: `timedatectl set-ntp true`".into()),
                        )
                    }
                }
                None => check("clock", Outcome::Skip, "the relay sent no Date header", None),
            };
            (reach, clock)
        }
        Err(message) => (
            check(
                "relay",
                Outcome::Fail,
                format!("{url}: {message}; {pending} event(s) wait"),
                Some("check the network and proxy settings to the relay; events are kept until it answers".into()),
            ),
            check("clock", Outcome::Skip, "the relay did not answer", None),
        ),
    }
}
