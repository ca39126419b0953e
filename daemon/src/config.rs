//! quintd's configuration: `/etc/quint/config.yaml`, overridden by `QUINT_CONFIG`,
//! `QUINT_STATE_DIR` and `QUINT_SOCKET` so tests and unprivileged users can run a private daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/quint/config.yaml";

#[cfg(target_os = "macos")]
const DEFAULT_STATE_DIR: &str = "/Library/Application Support/Quint";
#[cfg(not(target_os = "macos"))]
const DEFAULT_STATE_DIR: &str = "/var/lib/quint";
// macOS has no /run (the system volume is read-only); /var/run is its equivalent.
#[cfg(target_os = "macos")]
const DEFAULT_SOCKET: &str = "/var/run/quint/quintd.sock";
#[cfg(not(target_os = "macos"))]
const DEFAULT_SOCKET: &str = "/run/quint/quintd.sock";
const DEFAULT_POLICY_DIR: &str = "/etc/quint/policy.d";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub policy_dir: PathBuf,
    /// `info`, `debug`, … or a full `tracing` filter.
    pub log_level: String,
    /// Log format: `text` or `json`.
    pub log_format: String,
    pub storage: StorageConfig,
    pub hook: HookConfig,
    pub collectors: CollectorsConfig,
    /// Set when `QUINT_*` overrides were present but ignored (see `load_for_hook`).
    #[serde(skip)]
    pub hook_overrides_ignored: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite `synchronous`: `normal` survives a crash of quintd (kill -9); `full` also
    /// survives power loss, at the cost of an fsync per batch.
    pub synchronous: String,
    /// Sign an audit checkpoint after this many records (and at shutdown).
    pub checkpoint_every: u64,
    /// The database's disk budget in MB. Past it the oldest allow decisions are removed
    /// (first those the relay has, then those it has not, counted as dropped); deny, ask and
    /// alert never are.
    pub outbox_budget_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorsConfig {
    /// The process collector: `auto` runs it when quintd is root (the proc connector and the
    /// file guard), `on` also when it is not (the connector where the kernel allows it, else a
    /// periodic scan; no file guard), `scan` with the periodic scan only, `off` never.
    pub process: CollectorMode,
    /// Agent signatures that add to or replace (by id) the built-in ones.
    pub agents_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectorMode {
    Auto,
    On,
    /// The periodic scan even where the proc connector is available.
    Scan,
    Off,
}

impl Default for CollectorsConfig {
    fn default() -> Self {
        CollectorsConfig {
            process: CollectorMode::Auto,
            agents_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookConfig {
    /// How long `quintctl hook` waits for quintd before deciding with the local snapshot.
    pub daemon_timeout_ms: u64,
    /// Largest hook input accepted; larger input is blocked with a clear message.
    pub max_input_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: DEFAULT_STATE_DIR.into(),
            socket: DEFAULT_SOCKET.into(),
            policy_dir: DEFAULT_POLICY_DIR.into(),
            log_level: "info".into(),
            log_format: "text".into(),
            storage: StorageConfig::default(),
            hook: HookConfig::default(),
            collectors: CollectorsConfig::default(),
            hook_overrides_ignored: false,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            synchronous: "normal".into(),
            checkpoint_every: 1000,
            outbox_budget_mb: 1024,
        }
    }
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            daemon_timeout_ms: 3000,
            max_input_bytes: 8 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Loads the config the environment points at. A missing default file means defaults; a
    /// missing file named by `QUINT_CONFIG` is an error, because someone asked for it.
    pub fn load() -> Result<Config, ConfigError> {
        let explicit = std::env::var_os("QUINT_CONFIG").map(PathBuf::from);
        let path = explicit
            .clone()
            .unwrap_or_else(|| DEFAULT_CONFIG_PATH.into());
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Config::default(),
            Ok(text) => serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                Config::default()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if let Some(dir) = std::env::var_os("QUINT_STATE_DIR") {
            config.state_dir = dir.into();
        }
        if let Some(socket) = std::env::var_os("QUINT_SOCKET") {
            config.socket = socket.into();
        }
        config.validate(&path)?;
        Ok(config)
    }

    /// The config for `quintctl hook`. Agents take environment variables from repository files
    /// (`.gemini/.env`, `env` in `.claude/settings.json`), so on a machine with a system
    /// installation the `QUINT_*` overrides are ignored: a repository must not be able to
    /// point the hook at a daemon or a policy snapshot of its own.
    pub fn load_for_hook() -> Result<Config, ConfigError> {
        Config::load_for_hook_from(Path::new(DEFAULT_CONFIG_PATH), Path::new(DEFAULT_SOCKET))
    }

    fn load_for_hook_from(
        system_config: &Path,
        system_socket: &Path,
    ) -> Result<Config, ConfigError> {
        if !(system_config.exists() || system_socket.exists()) {
            return Config::load();
        }
        let mut config = match std::fs::read_to_string(system_config) {
            Ok(text) if !text.trim().is_empty() => {
                serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: system_config.into(),
                    source,
                })?
            }
            _ => Config::default(),
        };
        config.validate(system_config)?;
        config.hook_overrides_ignored = ["QUINT_CONFIG", "QUINT_STATE_DIR", "QUINT_SOCKET"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if !matches!(self.storage.synchronous.as_str(), "normal" | "full") {
            return Err(invalid(format!(
                "storage.synchronous must be `normal` or `full`, not `{}`",
                self.storage.synchronous
            )));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid(format!(
                "log_format must be `text` or `json`, not `{}`",
                self.log_format
            )));
        }
        if self.storage.outbox_budget_mb == 0 {
            return Err(invalid(
                "storage.outbox_budget_mb must be at least 1".into(),
            ));
        }
        if self.storage.checkpoint_every == 0 {
            return Err(invalid(
                "storage.checkpoint_every must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("quint.db")
    }

    /// Where hooks drop events when quintd cannot be reached; quintd ingests them later.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    /// Spool files quintd could not read, kept for inspection (quintd only).
    pub fn spool_rejected_dir(&self) -> PathBuf {
        self.state_dir.join("spool-rejected")
    }

    /// The last policy quintd loaded, readable by hooks for offline decisions.
    pub fn policy_snapshot_path(&self) -> PathBuf {
        self.state_dir.join("policy-snapshot.json")
    }

    pub fn audit_key_path(&self) -> PathBuf {
        self.state_dir.join("audit-signing.pk8")
    }

    /// The key secrets' fingerprints are computed under (root-only).
    pub fn redaction_key_path(&self) -> PathBuf {
        self.state_dir.join("redaction.key")
    }

    /// Secret half of the key hooks seal spool files to (the public half is in the spool dir).
    pub fn spool_seal_key_path(&self) -> PathBuf {
        self.state_dir.join("spool-seal.key")
    }

    /// The relay this device is enrolled with and its device token (root-only).
    pub fn enrollment_path(&self) -> PathBuf {
        self.state_dir.join("enrollment.json")
    }

    /// The tenant's policy layer as last fetched from the relay, and its ETag.
    pub fn tenant_policy_path(&self) -> PathBuf {
        self.state_dir.join("tenant-policy.json")
    }

    pub fn audit_public_key_path(&self) -> PathBuf {
        self.state_dir.join("audit-signing.pub")
    }

    pub fn hook_timeout(&self) -> Duration {
        Duration::from_millis(self.hook.daemon_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_ignore_environment_overrides_on_a_system_install() {
        let dir = tempfile::tempdir().unwrap();
        let system_config = dir.path().join("config.yaml");
        std::fs::write(
            &system_config,
            "socket: /run/quint/quintd.sock\nstate_dir: /var/lib/quint\n",
        )
        .unwrap();
        // What a repository's `.gemini/.env` could set for the agent and so for its hook.
        std::env::set_var("QUINT_SOCKET", "/nonexistent/evil.sock");
        std::env::set_var("QUINT_STATE_DIR", "/tmp/repo/.q");
        let config =
            Config::load_for_hook_from(&system_config, &dir.path().join("absent.sock")).unwrap();
        assert_eq!(config.socket, PathBuf::from("/run/quint/quintd.sock"));
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/quint"));
        assert!(config.hook_overrides_ignored);

        // No system install (a developer's private daemon): the overrides apply.
        let private = Config::load_for_hook_from(
            &dir.path().join("absent.yaml"),
            &dir.path().join("absent.sock"),
        );
        std::env::remove_var("QUINT_SOCKET");
        std::env::remove_var("QUINT_STATE_DIR");
        assert_eq!(
            private.unwrap().socket,
            PathBuf::from("/nonexistent/evil.sock")
        );
    }
}
