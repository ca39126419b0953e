//! The YAML rule file format, as written by people. `compile` turns it into set matchers.

use serde::{Deserialize, Deserializer};

use crate::envelope::{ActionType, Decision, Severity};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub description: String,
    #[serde(rename = "match")]
    pub condition: Condition,
    pub verdict: Decision,
    pub severity: Severity,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Lets a local or tenant file switch off a rule of the same id from a lower layer.
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub tests: RuleTests,
}

/// A condition: every matcher present must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, deserialize_with = "one_or_many")]
    pub action: Vec<ActionType>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub platform: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub tool: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub path: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub command_words: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub host: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub mcp_server: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub mcp_tool: Vec<String>,
    /// The pin state of the MCP tool: `pinned`, `changed`, `new`, `unlisted`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub mcp_tool_pin: Vec<String>,
    /// Regexes over SQL found in MCP arguments.
    #[serde(default, deserialize_with = "one_or_many")]
    pub sql: Vec<String>,
    #[serde(default)]
    pub any: Vec<Condition>,
    #[serde(default)]
    pub all: Vec<Condition>,
    #[serde(default)]
    pub not: Option<Box<Condition>>,
}

impl Condition {
    pub fn is_empty(&self) -> bool {
        self.action.is_empty()
            && self.platform.is_empty()
            && self.tool.is_empty()
            && self.path.is_empty()
            && self.command.is_empty()
            && self.command_words.is_empty()
            && self.host.is_empty()
            && self.mcp_server.is_empty()
            && self.mcp_tool.is_empty()
            && self.mcp_tool_pin.is_empty()
            && self.sql.is_empty()
            && self.any.is_empty()
            && self.all.is_empty()
            && self.not.is_none()
    }
}

/// Embedded examples: the list named after the rule's verdict must match, `allow` must not.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTests {
    #[serde(default)]
    pub deny: Vec<TestCase>,
    #[serde(default)]
    pub ask: Vec<TestCase>,
    #[serde(default)]
    pub alert: Vec<TestCase>,
    #[serde(default)]
    pub allow: Vec<TestCase>,
}

impl RuleTests {
    pub fn expecting(&self, verdict: Decision) -> &[TestCase] {
        match verdict {
            Decision::Deny => &self.deny,
            Decision::Ask => &self.ask,
            Decision::Alert => &self.alert,
            Decision::Allow => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
            && self.ask.is_empty()
            && self.alert.is_empty()
            && self.allow.is_empty()
    }
}

/// A compact event description used in rule tests and `quintctl policy eval` flags.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub action: Option<ActionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_tool_pin: Option<String>,
    /// SQL passed to an MCP tool (as its `sql` argument).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// Accepts `key: value` as well as `key: [value, …]`, keeping each element's own error.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_yaml::Value::deserialize(deserializer)?;
    let parsed = match value {
        serde_yaml::Value::Sequence(_) => serde_yaml::from_value::<Vec<T>>(value),
        single => serde_yaml::from_value::<T>(single).map(|item| vec![item]),
    };
    parsed.map_err(serde::de::Error::custom)
}
