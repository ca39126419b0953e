//! The event envelope, schema version 1: one flat, source-independent record of an agent action.
//!
//! Field names are the wire names. Nothing here is platform-specific; extra detail goes into
//! `labels`. `device_id` and `tenant_id` are carried but never trusted from a device.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The only schema version this build understands.
pub const SCHEMA_VERSION: u16 = 1;

/// One agent action, as stored locally and forwarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub schema_version: u16,
    pub event_id: Uuid,
    #[serde(with = "rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
    pub source: Source,
    pub platform: String,
    pub action_type: ActionType,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub decision: Decision,
    #[serde(default)]
    pub rule_ids: Vec<String>,
    #[serde(default)]
    pub risk_score: u8,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl Event {
    /// A new, not yet decided event with a fresh UUID v7 and the current time.
    pub fn new(source: Source, platform: &str, action_type: ActionType, session_id: &str) -> Self {
        Event {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            timestamp: Utc::now(),
            source,
            platform: platform.to_string(),
            action_type,
            session_id: session_id.to_string(),
            agent_pid: None,
            tool_name: None,
            arguments: empty_object(),
            target: None,
            decision: Decision::Allow,
            rule_ids: Vec::new(),
            risk_score: 0,
            labels: BTreeMap::new(),
            device_id: None,
            tenant_id: None,
        }
    }

    /// Parses an envelope from JSON, refusing schema versions this build does not know.
    /// Valid events are read once; only a failure reads the version on its own, so that an
    /// event from a newer schema is named as such rather than as a field error.
    pub fn from_json(bytes: &[u8]) -> Result<Event, EnvelopeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: Option<u16>,
        }
        let parsed = serde_json::from_slice::<Event>(bytes);
        let version = match &parsed {
            Ok(event) => Some(event.schema_version),
            Err(_) => {
                serde_json::from_slice::<VersionOnly>(bytes)
                    .map_err(EnvelopeError::Json)?
                    .schema_version
            }
        };
        match version {
            Some(SCHEMA_VERSION) => parsed.map_err(EnvelopeError::Json),
            Some(other) => Err(EnvelopeError::UnknownSchemaVersion(other)),
            None => Err(EnvelopeError::MissingSchemaVersion),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("invalid event JSON: {0}")]
    Json(serde_json::Error),
    #[error("unknown schema_version {0} (this build understands {SCHEMA_VERSION})")]
    UnknownSchemaVersion(u16),
    #[error("missing schema_version")]
    MissingSchemaVersion,
}

/// Timestamps are RFC 3339 UTC with millisecond precision on the wire.
pub mod rfc3339_millis {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Defines a wire enum whose string forms are listed once and used by serde, `FromStr` and
/// `Display` alike, so the YAML rules, the JSON envelope and the CLI flags cannot drift apart.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} `{}` (expected one of: {})",
                        stringify!($name),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

wire_enum!(
    /// Where an event was observed.
    Source {
        Hook => "hook",
        Mcp => "mcp",
        Process => "process",
        File => "file",
        Daemon => "daemon",
    }
);

wire_enum!(
    /// What kind of action the agent took.
    ActionType {
        ToolCall => "tool.call",
        McpCall => "mcp.call",
        ProcessExec => "process.exec",
        FileRead => "file.read",
        FileWrite => "file.write",
        FileDelete => "file.delete",
        FileRename => "file.rename",
        PromptSubmit => "prompt.submit",
        SessionStart => "session.start",
        SessionEnd => "session.end",
        PolicyTamper => "policy.tamper",
    }
);

impl ActionType {
    /// A bit per action type, so a rule's action list is one mask test.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

wire_enum!(
    /// The verdict on an action. Declared weakest first: `Ord` is "strength".
    Decision {
        Allow => "allow",
        Alert => "alert",
        Ask => "ask",
        Deny => "deny",
    }
);

wire_enum!(
    /// How bad a rule's match is; drives the risk score.
    Severity {
        Info => "info",
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_millisecond_timestamps() {
        let mut event = Event::new(Source::Hook, "claude-code", ActionType::ToolCall, "s1");
        event.tool_name = Some("Bash".into());
        event.decision = Decision::Deny;
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains("\"action_type\":\"tool.call\""), "{json}");
        let ts = serde_json::to_value(&event).unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000Z".len(),
            "{ts}"
        );
        let back = Event::from_json(json.as_bytes()).unwrap();
        assert_eq!(back.event_id, event.event_id);
        assert_eq!(back.decision, Decision::Deny);
    }

    #[test]
    fn refuses_unknown_schema_version() {
        let event = Event::new(Source::Hook, "cursor", ActionType::ToolCall, "s1");
        let mut value = serde_json::to_value(&event).unwrap();
        value["schema_version"] = 2.into();
        let err = Event::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown schema_version 2"),
            "{err}"
        );
    }

    #[test]
    fn decisions_order_by_strength() {
        assert!(Decision::Deny > Decision::Ask);
        assert!(Decision::Ask > Decision::Alert);
        assert!(Decision::Alert > Decision::Allow);
    }
}
