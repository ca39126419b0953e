//! The quintd socket protocol: one JSON request per line, one JSON reply per line.
//!
//! Replies are `{"ok":true,"result":…}` or `{"ok":false,"error":{"code","message"}}`; `follow`
//! keeps the connection open and sends one `StoredEvent` per line.

use quint_policy::{Decision, Event};
use serde::{Deserialize, Serialize};

use crate::store::outbox::EventFilter;

/// Requests larger than this are refused: hooks shape bodies away before sending.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The rule id recorded when a hook blocks input it could not parse.
pub const MALFORMED_INPUT_RULE: &str = "quint.malformed-hook-input";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Decide on an action and record it; the reply comes after the record is committed.
    Evaluate {
        event: Box<Event>,
    },
    /// Decide on and record several events at once (the MCP gateway's allowed calls); one
    /// reply per event, in order.
    EvaluateBatch {
        events: Vec<Event>,
    },
    /// Record that a hook refused input it could not understand (always a deny).
    RecordRefusal {
        event: Box<Event>,
    },
    Status,
    Events {
        filter: EventFilter,
    },
    Follow {
        filter: EventFilter,
    },
    /// Ingest events spooled by hooks while quintd was unreachable, now.
    IngestSpool,
    /// Redact a text with the device's rules and key (`quintctl redact`).
    Redact {
        text: String,
    },
    /// Where a candidate secret was recorded (by fingerprint; nothing of it is stored).
    FindSecret {
        candidate: String,
    },
    /// An MCP server's `tools/list` result, compared with (or, the first time, becoming) the
    /// caller's pins for that server.
    McpListing {
        server: String,
        tools: Vec<crate::store::mcp_pins::ToolDefinition>,
        /// Not paginated: tools missing from it are gone.
        complete: bool,
    },
    /// One tool's pin state, for a call made without a listing in this session.
    McpToolState {
        server: String,
        tool: String,
    },
    /// Accept a server's tools as last listed (`quintctl mcp approve`).
    McpApprove {
        server: String,
    },
    /// The caller's pinned servers and tools (every user's, for root).
    McpServers,
    /// Agent sessions the process collector is following now, with their process trees.
    Sessions,
    /// Enroll this device with a relay (root or quintd's own user only).
    Enroll {
        relay: String,
        deploy_token: String,
    },
}

/// What `quintctl enroll` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollReply {
    pub relay: String,
    pub tenant_id: String,
    pub device_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluateReply {
    pub event_id: String,
    pub decision: Decision,
    pub rule_ids: Vec<String>,
    pub reason: Option<String>,
    pub risk_score: u8,
    /// False when the same event id had already been recorded.
    pub recorded: bool,
    /// Tags of the matching rules (see `Verdict::tags`).
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedactReply {
    pub redacted: String,
    pub findings: Vec<quint_policy::redact::Finding>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretSighting {
    pub seq: u64,
    pub event_id: String,
    pub timestamp: String,
    pub session_id: String,
    /// The redaction rule(s) that replaced it there.
    pub rule_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindSecretReply {
    pub fingerprint: String,
    pub sightings: Vec<SecretSighting>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    pub fn ok(result: impl Serialize) -> Reply {
        Reply {
            ok: true,
            result: Some(serde_json::to_value(result).unwrap_or_default()),
            error: None,
        }
    }

    pub fn error(code: &str, message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        line.push(b'\n');
        line
    }
}

/// What `quintctl status` shows; produced by quintd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub started_at: String,
    pub uptime_seconds: u64,
    pub policy: PolicyStatus,
    /// Recorded actions by decision.
    pub decisions: std::collections::BTreeMap<String, u64>,
    pub active_sessions: Vec<crate::store::outbox::SessionSummary>,
    pub outbox: OutboxStatus,
    pub collectors: Vec<CollectorStatus>,
    /// The fleet link: enrollment, uploads, tenant policy.
    pub relay: crate::fleet::LinkStatus,
    pub paths: PathsStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub hash: String,
    pub rules: usize,
    /// `layers` when built from the files as they are, `snapshot` when the files did not compile
    /// at start and the last good policy is in force.
    pub origin: String,
    pub sources: Vec<String>,
    pub loaded_at: String,
    /// Errors of the newest policy files; non-empty means the files on disk are not in force.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Actions not yet acknowledged by a relay.
    pub pending: u64,
    pub recorded: u64,
    pub audit_head_seq: u64,
    /// Hook events waiting in the spool.
    pub spooled: usize,
    /// Spool files that could not be read and were set aside.
    pub spool_rejected: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectorStatus {
    pub name: String,
    /// `active`, `fallback` or `off`.
    pub state: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathsStatus {
    pub state_dir: String,
    pub socket: String,
    pub policy_dir: String,
    pub database: String,
}

/// An agent session the process collector follows now (`quintctl sessions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedSession {
    /// The id its events are recorded under: the agent's own, once a hook call joined them.
    pub session_id: String,
    /// The collector's id: `{root_pid}-{start_unix_ms}`.
    pub observed_id: String,
    pub platform: String,
    pub name: String,
    pub root_pid: u32,
    pub uid: Option<u32>,
    pub started_at: Option<String>,
    pub age_seconds: Option<u64>,
    pub workspace: Option<String>,
    pub actions: u64,
    pub denials: u64,
    /// The session's processes, parents before children.
    pub processes: Vec<ObservedProcess>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedProcess {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub command: String,
    /// False for a process that exited a moment ago (kept briefly for its file events).
    pub running: bool,
}
